"""An evaluation's files, read and written without Django: paths in, NumPy in, NumPy out.

The files are what an evaluation keeps between the tries of its job (a resumed job skips what they already
hold) and what a chosen set is recomputed from without any model, so their formats live in this one plain
module: a benchmark, a notebook or a test opens them without a database. The Django layer (``selectors``,
``services``, ``runners``) only decides which path; every write here is atomic (``core.files``), so a reader
never sees half a file.

An evaluation's folder is ``MEDIA_ROOT/evaluations/<pk>/`` (``evaluation_folder``):

- ``probs.npz`` — the slice-probability store (``write_probs``): ``probs`` (R, N) float32, the out-of-fold
  P(sarcoma) of every tumour slice of the cohort by each repeat's model of the fold that held the slice's
  patient out (METHOD §6), and per slice ``rows`` (the cohort array-store row), ``case_id`` (Case pk),
  ``sequence_idx`` (position in ``SEQUENCE_CODES``), ``fold`` and ``label`` (1 = sarcoma); ``store_hash``
  the cohort store's content hash, ``n_folds``. One file of R·N·4 bytes: 24 repeats × 100,000 slices is
  9.6 MB, never one database row per slice.
- ``parts/r<repeat>-f<fold>.npz`` — one file per finished model while predictions are being collected
  (``p`` (n,) float32 and its ``source``, "reused" or "predicted"); resume skips them.
- ``subsets.npz`` — the full search table of every sequence set for the CSV download (``write_subset_table``).
- ``cases/case-<pk>.npz`` — a new patient's predictions by every model (``write_case_predictions``), and
  ``cases/case-<pk>-<crops hash>/r<repeat>-f<fold>.npy`` one file per finished model while they are made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.files import atomic_path

EVALUATION_ROOT = "evaluations"
PROBS_FILE = "probs.npz"
SUBSETS_FILE = "subsets.npz"
PARTS_DIR = "parts"
CASES_DIR = "cases"
PROBS_FORMAT = 1


def evaluation_folder(media_root: str | Path, evaluation_pk: int) -> Path:
    return Path(media_root) / EVALUATION_ROOT / str(evaluation_pk)


def probs_relative_path(evaluation_pk: int) -> str:
    """Where ``probs.npz`` lies under MEDIA_ROOT (what ``Evaluation.store_path`` keeps)."""
    return f"{EVALUATION_ROOT}/{evaluation_pk}/{PROBS_FILE}"


def save_npz_atomic(path: Path, **arrays) -> None:
    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


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


# --- one model's predictions: its part file, and what its training saved ---------------------------------

def model_part_path(parts: Path, repeat: int, fold: int) -> Path:
    return parts / f"r{repeat:02d}-f{fold}.npz"


def read_model_part(path: Path, n: int) -> tuple[np.ndarray | None, str]:
    """A finished model's (n,) predictions and their source; (None, "") when missing, unreadable or not n long."""
    if not path.is_file():
        return None, ""
    try:
        with np.load(path) as saved:
            p, source = saved["p"], str(saved["source"])
    except (OSError, KeyError, ValueError):
        return None, ""
    return (p, source) if p.shape == (n,) else (None, "")


def write_model_part(path: Path, p: np.ndarray, source: str) -> None:
    save_npz_atomic(path, p=p.astype(np.float32), source=np.str_(source))


def read_heldout_predictions(folder: Path, *, store_hash: str, rows: np.ndarray, case_ids: np.ndarray,
                             sequence_idx: np.ndarray) -> np.ndarray | None:
    """A model's own held-out predictions from its checkpoint folder, if they are those of ``rows``.

    Match = ``state.json`` says finished and names ``store_hash``, and the file's rows, case ids and sequence
    indexes equal ``rows``, ``case_ids`` and ``sequence_idx`` (the store's, at ``rows``); the probabilities are
    finite and in [0, 1]. Anything else: None, and the model predicts again.
    """
    from training.fit import PREDICTIONS_FILE, STATE_FILE

    try:
        state = json.loads((folder / STATE_FILE).read_text())
        if not state.get("finished") or state.get("store_hash") != store_hash:
            return None
        with np.load(folder / PREDICTIONS_FILE) as saved:
            if not (np.array_equal(saved["rows"], rows) and np.array_equal(saved["case_id"], case_ids)
                    and np.array_equal(saved["sequence_idx"], sequence_idx)):
                return None
            p = np.asarray(saved["p_sarcoma"], dtype=np.float32)
    except (OSError, KeyError, ValueError):
        return None
    if p.shape != rows.shape or not np.all(np.isfinite(p)) or p.min(initial=0) < 0 or p.max(initial=0) > 1:
        return None
    return p


# --- the table of every sequence set ------------------------------------------------------------------------

def write_subset_table(path: Path, ens, single) -> None:
    """Per-set figures of both searches (fractions), indexed like ``masks``, for the CSV download.

    Per kind: rank, the means over the members of SS-Avg, accuracy, sensitivity, specificity and AUC, the
    AUC's median over the members (``auc_median``; tables written before it was added lack it) and the
    SS-Avg's minimum and maximum over the members.

    ``ens``, ``single``: the ``inference.combinations`` search results of the ensembles and the single models.
    """
    if not np.array_equal(ens.masks, single.masks):
        raise ValueError("the ensemble and single-model searches evaluated different sets")
    arrays = {"masks": ens.masks, "sizes": ens.sizes, "coverage": ens.coverage,
              "n_patients": np.int64(ens.n_patients), "codes": np.array(ens.codes)}
    for kind, search in (("ensemble", ens), ("single", single)):
        rank = np.empty(search.masks.size, dtype=np.int32)
        rank[search.order] = np.arange(1, search.masks.size + 1, dtype=np.int32)
        ss = search.ss_avg
        arrays |= {f"{kind}_rank": rank, f"{kind}_ss_avg": search.mean_ss_avg,
                   f"{kind}_accuracy": search.mean_accuracy, f"{kind}_sensitivity": search.mean_sensitivity,
                   f"{kind}_specificity": search.mean_specificity, f"{kind}_auc": search.mean_auc,
                   f"{kind}_auc_median": search.median_auc(),
                   f"{kind}_ss_avg_min": ss.min(axis=0), f"{kind}_ss_avg_max": ss.max(axis=0)}
    save_npz_atomic(path, **arrays)


def read_subset_table(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as saved:
        return {name: saved[name] for name in saved.files}


def subset_rank(path: Path, mask: int) -> int | None:
    """1-based rank of a set among the ensembles' (None if the table is missing or lacks the set)."""
    if not path.is_file():
        return None
    with np.load(path) as table:
        at = np.searchsorted(table["masks"], mask)
        if at < table["masks"].size and int(table["masks"][at]) == mask:
            return int(table["ensemble_rank"][at])
    return None


# --- a new patient's predictions ----------------------------------------------------------------------------

def case_predictions_path(folder: Path, case_pk: int) -> Path:
    """``folder``: the evaluation's folder."""
    return folder / CASES_DIR / f"case-{case_pk}.npz"


def case_parts_dir(path: Path, crops_sha256: str) -> Path:
    """Where the models' predictions of these crops are kept one by one while they are made."""
    return path.parent / f"{path.stem}-{crops_sha256[:16]}"


def write_case_predictions(path: Path, *, fold_probs: np.ndarray, sequence_idx: np.ndarray, slice_no: np.ndarray,
                           crops_sha256: str) -> None:
    """fold_probs (R, F, N) float32: every model's P(sarcoma) of each crop; sequence_idx, slice_no (N,)."""
    save_npz_atomic(path, fold_probs=fold_probs, sequence_idx=sequence_idx, slice_no=slice_no,
                    crops_sha256=np.str_(crops_sha256))


def case_predictions_for_crops(path: Path, crops_sha256: str) -> np.ndarray | None:
    """The stored (R, F, N) predictions if they were made of exactly these crops, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as saved:
            return saved["fold_probs"] if str(saved["crops_sha256"]) == crops_sha256 else None
    except (OSError, KeyError, ValueError):
        return None


def read_case_predictions(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(fold_probs (R, F, N), sequence_idx (N,)) of a stored new patient."""
    with np.load(path) as saved:
        return saved["fold_probs"], saved["sequence_idx"]


def stored_case_predictions(folder: Path) -> list[tuple[int, Path]]:
    """(case pk, file) of every new patient predicted with the evaluation whose folder this is."""
    cases = folder / CASES_DIR
    found = []
    for path in sorted(cases.glob("case-*.npz")) if cases.is_dir() else []:
        try:
            found.append((int(path.stem.removeprefix("case-")), path))
        except ValueError:
            continue
    return found


def case_part_path(parts: Path, repeat: int, fold: int) -> Path:
    return parts / f"r{repeat:02d}-f{fold}.npy"


def read_case_part(path: Path, n: int) -> np.ndarray | None:
    p = np.load(path) if path.is_file() else None
    return p if p is not None and p.shape == (n,) else None


def write_case_part(path: Path, p: np.ndarray) -> None:
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, p.astype(np.float32))
