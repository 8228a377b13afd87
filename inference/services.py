"""Shared pieces of the inference Django layer: where an evaluation keeps its files, the slice-probability
store, and which training run an ID on the command line names.

An evaluation's folder is ``MEDIA_ROOT/evaluations/<pk>/``:

- ``probs.npz`` — the slice-probability store (``write_probs``): ``probs`` (R, N) float32, the out-of-fold
  P(sarcoma) of every tumour slice of the cohort by each repeat's model of the fold that held the slice's
  patient out (METHOD §6), and per slice ``rows`` (the cohort array-store row), ``case_id`` (Case pk),
  ``sequence_idx`` (position in ``SEQUENCE_CODES``), ``fold`` and ``label`` (1 = sarcoma); ``store_hash``
  the cohort store's content hash, ``n_folds``. One file of R·N·4 bytes: 24 repeats × 100,000 slices is
  9.6 MB, never one database row per slice.
- ``parts/`` — one file per finished model while predictions are being collected (resume skips them).
- ``subsets.npz`` — the full search table for the CSV download (``services_evaluation``).
- ``cases/case-<pk>.npz`` — a new patient's predictions by every model (``services_prediction``).

The science is in ``inference.predictions`` / ``combinations`` / ``thresholds``; these services only move
data between the database, the files and those functions.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.exceptions import ValidationError

from inference.models import Evaluation

EVALUATION_ROOT = "evaluations"
PROBS_FILE = "probs.npz"
SUBSETS_FILE = "subsets.npz"
PROBS_FORMAT = 1


def evaluation_dir(evaluation: Evaluation) -> Path:
    return Path(settings.MEDIA_ROOT) / EVALUATION_ROOT / str(evaluation.pk)


def probs_relative_path(evaluation: Evaluation) -> str:
    return f"{EVALUATION_ROOT}/{evaluation.pk}/{PROBS_FILE}"


def save_npz_atomic(path: Path, **arrays) -> None:
    """np.savez to a temporary file in the same folder, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    os.close(handle)
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- the slice-probability store ----------------------------------------------------------------------

@dataclass(frozen=True)
class SliceProbabilities:
    """An evaluation's out-of-fold slice probabilities and what each slice is (see the module docstring).

    probs (R, N) float32; rows, case_id (N,) int64; sequence_idx (N,) int16; fold (N,) int16;
    label (N,) uint8 (1 = sarcoma).
    """

    probs: np.ndarray
    rows: np.ndarray
    case_id: np.ndarray
    sequence_idx: np.ndarray
    fold: np.ndarray
    label: np.ndarray
    store_hash: str
    n_folds: int

    @property
    def n_repeats(self) -> int:
        return int(self.probs.shape[0])

    @property
    def n_slices(self) -> int:
        return int(self.probs.shape[1])

    def patients(self) -> Patients:
        """The patients in Case-pk order with their truth and fold, and the slice → (patient, sequence) index."""
        from inference.predictions import SliceIndex

        case_ids, first, patient = np.unique(self.case_id, return_index=True, return_inverse=True)
        index = SliceIndex.build(patient.astype(np.int64), self.sequence_idx.astype(np.int64),
                                 n_patients=int(case_ids.size), patient_labels=tuple(int(c) for c in case_ids))
        return Patients(case_ids=case_ids.astype(np.int64), truth=self.label[first] == 1,
                        fold=self.fold[first].astype(np.int64), index=index)


@dataclass(frozen=True)
class Patients:
    case_ids: np.ndarray   # (P,) Case pks, ascending
    truth: np.ndarray      # (P,) bool, True = sarcoma
    fold: np.ndarray       # (P,) the patient's cross-validation fold
    index: object          # inference.predictions.SliceIndex over the store's slices


def write_probs(path: Path, data: SliceProbabilities) -> None:
    if not np.all(np.isfinite(data.probs)):
        raise ValueError(f"{path}: some slices have no prediction (NaN); every model must predict its fold")
    save_npz_atomic(path, format=np.int64(PROBS_FORMAT), probs=data.probs.astype(np.float32),
                    rows=data.rows.astype(np.int64), case_id=data.case_id.astype(np.int64),
                    sequence_idx=data.sequence_idx.astype(np.int16), fold=data.fold.astype(np.int16),
                    label=data.label.astype(np.uint8), store_hash=np.str_(data.store_hash),
                    n_folds=np.int64(data.n_folds))


def read_probs(path: Path) -> SliceProbabilities:
    """Open a slice-probability store; a missing or malformed file is a ValueError naming it and why."""
    if not path.is_file():
        raise ValueError(f"slice-probability store {path} not found (run the evaluation first)")
    with np.load(path) as saved:
        names = ("format", "probs", "rows", "case_id", "sequence_idx", "fold", "label", "store_hash", "n_folds")
        missing = [name for name in names if name not in saved.files]
        if missing:
            raise ValueError(f"slice-probability store {path}: lacks {', '.join(missing)}")
        if int(saved["format"]) != PROBS_FORMAT:
            raise ValueError(f"slice-probability store {path}: format {int(saved['format'])} is not {PROBS_FORMAT}")
        data = SliceProbabilities(
            probs=saved["probs"], rows=saved["rows"], case_id=saved["case_id"], sequence_idx=saved["sequence_idx"],
            fold=saved["fold"], label=saved["label"], store_hash=str(saved["store_hash"]),
            n_folds=int(saved["n_folds"]))
    n = data.probs.shape[1] if data.probs.ndim == 2 else -1
    for name in ("rows", "case_id", "sequence_idx", "fold", "label"):
        if getattr(data, name).shape != (n,):
            raise ValueError(f"slice-probability store {path}: {name} has shape {getattr(data, name).shape}, "
                             f"expected ({n},) like the probabilities")
    return data


def evaluation_probs(evaluation: Evaluation) -> SliceProbabilities:
    return read_probs(Path(settings.MEDIA_ROOT) / (evaluation.store_path or probs_relative_path(evaluation)))


# --- which run an ID names ------------------------------------------------------------------------------

def training_run_for(*, training_job: int | None = None, run: int | None = None):
    """The training run named on the command line.

    ``run``: the TrainingRun's pk. ``training_job``: the pk of the run's training *job* (what ``manage.py
    train`` prints as "job N"); when no run has that job, it is taken as a run pk, so either number works.
    """
    from training.models import TrainingRun

    if (training_job is None) == (run is None):
        raise ValidationError({"training_run": "name the training run: --training-job ID or --run ID"})
    if run is not None:
        found = TrainingRun.objects.filter(pk=run).select_related("cohort").first()
        if found is None:
            raise ValidationError({"training_run": f"no training run {run}"})
        return found
    found = (TrainingRun.objects.filter(job_id=training_job).select_related("cohort").first()
             or TrainingRun.objects.filter(pk=training_job).select_related("cohort").first())
    if found is None:
        raise ValidationError({"training_run": f"no training run has job {training_job}, and no run has id "
                                               f"{training_job}"})
    return found


def latest_evaluation_of(run) -> Evaluation:
    """The run's most recent finished evaluation (its thresholds and subset serve new patients)."""
    evaluation = run.evaluations.filter(status=Evaluation.Status.DONE).order_by("-created_at", "-pk").first()
    if evaluation is None:
        raise ValidationError({"evaluation": f"training run {run.name!r} has no finished evaluation; run "
                                             f"`manage.py evaluate --run {run.pk}` first"})
    return evaluation


def json_safe(value):
    """Plain JSON for a JSONField: NumPy scalars and arrays to Python, NaN/inf to None (PostgreSQL rejects NaN)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else None
    return value
