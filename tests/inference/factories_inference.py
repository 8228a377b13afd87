"""SYNTHETIC fixtures for the inference Django layer: a tiny two-sequence cohort with a fold split, a run
whose models "finished" with hand-made held-out predictions (no Keras), and a new case with stored series
volumes and tumour boxes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from core.constants import SARCOMA, SEQUENCE_CODES  # noqa: E402
from factories_training import TINY_CONFIG, make_tiny_cohort  # noqa: E402
from imaging.arraystore import open_array_store, write_array_store  # noqa: E402
from imaging.importer_store import write_volume  # noqa: E402
from imaging.models import Case, Cohort, Series, TumourBox  # noqa: E402
from imaging.volumes import encode_volume  # noqa: E402
from training.models import FoldSplit, TrainedModel  # noqa: E402

T2AXI, DWI = SEQUENCE_CODES.index("T2axi"), SEQUENCE_CODES.index("DWI")
__all__ = ["TINY_CONFIG", "make_cohort", "fake_trained_run", "make_new_case", "add_boxed_series", "heldout_probs",
           "T2AXI", "DWI"]


def make_cohort(name: str = "tc", *, n_folds: int = 2, patients_per_class: int = 6, slices: int = 3,
                seed: int = 0) -> Cohort:
    """make_tiny_cohort with two sequences — the last slice of every patient but the first two is DWI (so
    two patients lack DWI) — and a stratified split into ``n_folds`` folds (case i → fold (i // 2) % n_folds).

    Keep ``name`` to 3 characters: make_tiny_cohort's source_key_hash is the name plus 61 characters, and the
    column holds 64 (PostgreSQL refuses longer values; SQLite does not check)."""
    cohort = make_tiny_cohort(name=name, patients_per_class=patients_per_class, slices=slices, seed=seed)
    path = Path(settings.MEDIA_ROOT) / cohort.store_path
    store = open_array_store(path)
    cases = [int(c) for c in store.case_list()]
    sequence = store.sequence_idx.astype(np.int64).copy()
    for i, case in enumerate(cases):
        if i >= 2:
            sequence[np.flatnonzero(store.case_ids == case)[-1]] = DWI
    cohort.content_hash = write_array_store(path, np.array(store.slices), store.case_ids, sequence, store.slice_no,
                                            store.labels, {"cohort": name, "synthetic": True}, overwrite=True)
    cohort.save(update_fields=["content_hash"])
    FoldSplit.objects.create(cohort=cohort, n_folds=n_folds, seed=0,
                             assignment={str(c): (i // 2) % n_folds for i, c in enumerate(cases)})
    return cohort


def heldout_probs(labels: np.ndarray, seed: int) -> np.ndarray:
    """Informative but noisy P(sarcoma) per slice: around 0.75 for sarcoma, 0.25 for leiomyoma slices."""
    rng = np.random.default_rng(seed)
    return np.clip(0.25 + 0.5 * labels + rng.normal(0, 0.2, labels.size), 0.01, 0.99).astype(np.float32)


def fake_trained_run(cohort: Cohort, *, repeats: int = 3):
    """A training run whose every model is "done" with held-out predictions in its checkpoint folder, written
    in training.fit's format (heldout_predictions.npz + state.json), but no .keras file: nothing is trained."""
    from training import services

    run = services.training_run_start(cohort=cohort, config=TINY_CONFIG, repeats=repeats, enqueue=False)
    store = services.open_cohort_store(cohort)
    fold_of = {int(k): v for k, v in cohort.fold_split.assignment.items()}
    for model in run.models.all():
        folder = services.checkpoint_dir_for(model)
        folder.mkdir(parents=True, exist_ok=True)
        rows = store.slice_indices([c for c, f in fold_of.items() if f == model.fold])
        np.savez(folder / "heldout_predictions.npz", rows=rows, case_id=store.case_ids[rows],
                 sequence_idx=store.sequence_idx[rows], slice_no=store.slice_no[rows], label=store.labels[rows],
                 p_sarcoma=heldout_probs(store.labels[rows], seed=10 * model.repeat + model.fold))
        (folder / "state.json").write_text(json.dumps({"finished": True, "store_hash": store.content_hash}))
    run.models.update(status=TrainedModel.Status.DONE, card={"data_hash": store.content_hash})
    return run


def _blob_volume(n_slices: int, size: int, bright: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    stack = rng.integers(300, 500, (n_slices, size, size)).astype(np.uint16)
    lo, hi = size // 4, 3 * size // 4
    stack[:, lo:hi, lo:hi] = 1100 if bright else 100
    return stack


def make_new_case(pseudonym: str = "SYN-NEW-001", *, codes=("T2axi", "DWI"), n_slices: int = 4, size: int = 48,
                  boxed: int = 3, truth: str = SARCOMA) -> Case:
    """A case outside every cohort, with one stored series per code and tumour boxes on ``boxed`` slices each."""
    case = Case.objects.create(pseudonym=pseudonym, source_key_hash=f"new-{pseudonym}".ljust(64, "0")[:64],
                               truth=truth, is_synthetic=True)
    return add_boxed_series(case, codes=codes, n_slices=n_slices, size=size, boxed=boxed)


def add_boxed_series(case: Case, *, codes=("T2axi", "DWI"), n_slices: int = 4, size: int = 48,
                     boxed: int = 3) -> Case:
    """Give ``case`` one stored SYNTHETIC series per code (a blob, bright for a sarcoma) with tumour boxes on its
    first ``boxed`` slices."""
    truth = case.truth
    lo, hi = size // 4, 3 * size // 4
    for number, code in enumerate(codes, start=1):
        stored = _blob_volume(n_slices, size, truth == SARCOMA, seed=number)
        positions = np.array([[0.0, 0.0, 5.0 * k] for k in range(n_slices)])
        encoded = encode_volume(stored, pixel_spacing=[1.0, 1.0], slice_positions=positions,
                                orientation=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), slice_thickness=5.0)
        uid = f"2.25.{case.pk}{number:03d}"
        volume_path, sha256 = write_volume(uid, encoded)
        series = Series.objects.create(case=case, series_uid=uid, series_number=number, mapped_code=code,
                                       plane="axial", n_slices=n_slices, rows=size, cols=size, meta=encoded.meta,
                                       volume_path=volume_path, volume_sha256=sha256)
        for k in range(boxed):
            TumourBox.objects.create(series=series, slice_index=k, x0=lo, y0=lo, x1=hi, y1=hi)
    return case
