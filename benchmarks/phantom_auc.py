"""Phantom check of training: does it learn a planted signal, and find none when there is none?

Django-free core. For an array store and a patient -> fold split it trains one small model per
fold (one repeat), predicts every held-out slice, averages each patient's slice probabilities and
returns the patient-level held-out AUC. With `permute_labels=True` the patients' labels are shuffled
first (patient level, so a patient's slices keep one label): a pipeline without leakage between
training and held-out patients must then score near chance (AUC ~ 0.5). A clearly higher permuted
AUC means held-out patients' slices reached training.

`synthetic_blob_store` makes a SYNTHETIC store (bright blob = sarcoma, dark blob = leiomyoma) for tests
and for the CLI; `--cohort NAME` takes a cohort built by the platform (Django is set up only then), e.g.
the phantom cohort of the imaging app (SYNTHETIC DICOM: make_phantoms → import_dicom → build_cohort):

    .venv/bin/python benchmarks/phantom_auc.py --synthetic --out /tmp/phantom
    .venv/bin/python benchmarks/phantom_auc.py --store var/media/cohorts/<name>/store --out /tmp/phantom
    DEBUG=1 .venv/bin/python manage.py make_phantoms /tmp/ph --patients 24 --sarcoma-fraction 0.5
    DEBUG=1 .venv/bin/python manage.py import_dicom /tmp/ph/dicom --manifest /tmp/ph/manifest.csv \
        --boxes /tmp/ph/boxes.csv --inline
    DEBUG=1 .venv/bin/python manage.py build_cohort phantoms --cases synthetic --inline
    DEBUG=1 .venv/bin/python benchmarks/phantom_auc.py --cohort phantoms --out /tmp/phantom
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no oneDNN / CPU-feature chatter

if __package__ in (None, ""):  # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imaging.arraystore import ArrayStore, open_array_store, write_array_store  # noqa: E402
from training.fit import model_seed, roc_auc, train_one_model  # noqa: E402
from training.folds import make_folds, train_heldout_split  # noqa: E402
from training.network import TrainingConfig  # noqa: E402

# Tests: a few seconds per model in eager mode at 32 x 32 (checks the mechanics, not learning).
SMOKE_CONFIG = TrainingConfig(epochs=2, samples_per_epoch=32, batch_size=16, input_size=32, width=0.35,
                              learning_rate=1e-3, batchnorm_momentum=0.0, run_eagerly=True)
# CLI default: compiled, 150 steps per model, enough for the planted signal (BatchNorm momentum 0.9 so the
# moving averages used at inference catch up within those steps; see TrainingConfig).
PHANTOM_CONFIG = TrainingConfig(epochs=3, samples_per_epoch=800, batch_size=16, input_size=32, width=0.35,
                                learning_rate=1e-3, batchnorm_momentum=0.9)


@dataclass
class HeldoutAUC:
    """Patient-level out-of-fold result of one repeat.

    case_ids (P,) int64, labels (P,) 0/1 as trained on (permuted if permuted), scores (P,) mean
    P(sarcoma) of each patient's held-out slices, auc over all P patients, fold_auc: slice-level
    held-out AUC of each fold's model (None when its held-out fold lacks a class).
    """

    auc: float | None
    case_ids: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    fold_auc: dict[int, float | None]
    permuted: bool


def heldout_auc(
    store: ArrayStore,
    fold_of: Mapping[int, int],
    config: TrainingConfig,
    workdir: str | Path,
    *,
    seed: int = 0,
    permute_labels: bool = False,
    on_model: Callable[[int, dict], None] | None = None,
) -> HeldoutAUC:
    """Train one model per fold, score its held-out patients, return the patient-level AUC.

    fold_of: {case_id: fold} from training.folds.make_folds (every case of the store must be in it).
    workdir: checkpoints go to workdir/fold-<k>[-permuted]; rerunning resumes / reuses them.
    seed: seeds the models (model_seed(seed, 0, fold)) and the label permutation.
    on_model(fold, heldout_metrics): called after each fold's model is done.
    """
    missing = np.setdiff1d(store.case_list(), np.fromiter(fold_of, dtype=np.int64))
    if missing.size:
        raise ValueError(f"cases {missing[:5].tolist()} of the array store have no fold")
    if permute_labels:
        store = store.with_labels(permuted_patient_labels(store, seed))
    workdir = Path(workdir)
    case_scores: dict[int, float] = {}
    fold_auc: dict[int, float | None] = {}
    for fold in sorted(set(fold_of.values())):
        train_ids, heldout_ids = train_heldout_split(fold_of, fold)
        result = train_one_model(
            store=store, train_case_ids=train_ids, heldout_case_ids=heldout_ids, config=config,
            checkpoint_dir=workdir / f"fold-{fold}{'-permuted' if permute_labels else ''}",
            seed=model_seed(seed, 0, fold))
        fold_auc[fold] = result.heldout["auc"]
        case_ids = store.case_ids[result.heldout_rows]
        for case in np.unique(case_ids):
            case_scores[int(case)] = float(result.heldout_p_sarcoma[case_ids == case].mean())
        if on_model is not None:
            on_model(fold, dict(result.heldout))
    case_ids = np.array(sorted(case_scores), dtype=np.int64)
    labels_of = store.case_labels()
    labels = np.array([labels_of[int(c)] for c in case_ids], dtype=np.uint8)
    scores = np.array([case_scores[int(c)] for c in case_ids])
    return HeldoutAUC(auc=roc_auc(labels, scores), case_ids=case_ids, labels=labels, scores=scores,
                      fold_auc=fold_auc, permuted=permute_labels)


def permuted_patient_labels(store: ArrayStore, seed: int) -> np.ndarray:
    """Per-slice labels after shuffling the patients' labels (seeded); (N,) uint8, class counts kept."""
    case_label = store.case_labels()
    cases = np.array(sorted(case_label), dtype=np.int64)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x9E4]))
    shuffled = np.array([case_label[int(c)] for c in cases], dtype=np.uint8)[rng.permutation(cases.size)]
    return shuffled[np.searchsorted(cases, store.case_ids)]


def folds_for_store(store: ArrayStore, n_folds: int, seed: int) -> dict[int, int]:
    """make_folds over the store's cases, stratified by label and balanced by slice count."""
    labels, counts = store.case_labels(), store.slices_per_case()
    cases = sorted(labels)
    return make_folds(cases, [labels[c] for c in cases], [counts[c] for c in cases], n_folds=n_folds,
                      seed=seed)


def synthetic_blob_store(path: str | Path, *, n_per_class: int = 6, slices_per_case: int = 4,
                         size: int = 32, seed: int = 0) -> ArrayStore:
    """Write and open a SYNTHETIC store: noisy slices with a bright (sarcoma) or dark (leiomyoma) disc.

    Cases 0..2*n_per_class-1, alternating leiomyoma / sarcoma; disc position, radius and the patient's
    background level vary, so the only class signal is the disc's brightness.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    slices, case_ids, labels, slice_no = [], [], [], []
    for case in range(2 * n_per_class):
        label = case % 2
        background = rng.uniform(70, 110)
        for k in range(slices_per_case):
            img = rng.normal(background, 12, (size, size))
            cy, cx = rng.uniform(0.3, 0.7, 2) * size
            radius = rng.uniform(0.12, 0.22) * size
            disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
            img[disc] = rng.normal(200 if label else 25, 12, int(disc.sum()))
            slices.append(np.clip(img, 0, 255).astype(np.uint8))
            case_ids.append(case)
            labels.append(label)
            slice_no.append(k)
    n = len(slices)
    write_array_store(path, np.stack(slices), np.array(case_ids), rng.integers(0, 15, n), np.array(slice_no),
                      np.array(labels), {"cohort": "synthetic-blobs", "synthetic": True}, overwrite=True)
    return open_array_store(path)


def platform_cohort_store(name: str) -> ArrayStore:
    """The array store of a cohort built by the platform (Django set up here, on first use only)."""
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from imaging.models import Cohort
    from training.services import open_cohort_store

    cohort = Cohort.objects.filter(name=name).first()
    if cohort is None:
        raise SystemExit(f"no cohort named {name!r} (build one with `manage.py build_cohort`)")
    if not cohort.store_path:
        raise SystemExit(f"cohort {name!r} has no array store yet (build it with `manage.py build_cohort {name}`)")
    return open_cohort_store(cohort)


def store_folder(path: Path) -> Path:
    """An array store folder; a platform cohort's folder (MEDIA_ROOT/cohorts/<name>) holds it as `store/`."""
    path = Path(path)
    if not (path / "slices.npy").exists() and (path / "store" / "slices.npy").exists():
        return path / "store"
    return path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--store", type=Path, help="an array store folder")
    source.add_argument("--synthetic", action="store_true", help="make a synthetic bright/dark blob store")
    source.add_argument("--cohort", help="a cohort built by the platform (its array store), e.g. the phantoms")
    parser.add_argument("--out", type=Path, default=None,
                        help="work folder for stores and checkpoints (default: a new temporary folder, printed)")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-per-class", type=int, default=12, help="synthetic patients per class")
    parser.add_argument("--epochs", type=int, default=PHANTOM_CONFIG.epochs)
    parser.add_argument("--samples-per-epoch", type=int, default=PHANTOM_CONFIG.samples_per_epoch)
    parser.add_argument("--eager", action="store_true", help="run_eagerly (no ~30 s compile per model)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.out is None:
        import tempfile

        args.out = Path(tempfile.mkdtemp(prefix="phantom-auc-"))
    began = time.monotonic()
    if args.cohort:
        store = platform_cohort_store(args.cohort)
    elif args.synthetic:
        store = synthetic_blob_store(args.out / "store", n_per_class=args.n_per_class,
                                     size=PHANTOM_CONFIG.input_size, seed=args.seed)
    else:
        store = open_array_store(store_folder(args.store))
    config = TrainingConfig.from_dict({**PHANTOM_CONFIG.to_dict(), "input_size": store.input_size,
                                       "epochs": args.epochs, "samples_per_epoch": args.samples_per_epoch,
                                       "run_eagerly": args.eager})
    fold_of = folds_for_store(store, args.folds, args.seed)
    report = {"n_cases": int(store.case_list().size), "n_slices": store.n_slices, "folds": args.folds}
    for permuted in (False, True):
        result = heldout_auc(store, fold_of, config, args.out / "models", seed=args.seed,
                             permute_labels=permuted)
        report["permuted_auc" if permuted else "auc"] = result.auc
        report["permuted_fold_auc" if permuted else "fold_auc"] = result.fold_auc
    report["synthetic"] = bool(store.meta.get("synthetic"))
    report["config"] = config.to_dict()
    report["seconds"] = round(time.monotonic() - began, 1)
    report["out"] = str(args.out)
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
