"""Slice → sequence → patient predictions, ensembles and the sarcoma likelihood (METHOD.md §6, §7, §9).

No Django import: NumPy in, NumPy out. Letters used in shapes:

    R  repeats (training sets M1…M24; 24)        F  folds (6)
    N  tumour slices of the cohort               P  patients
    S  sequence codes (15, ``SEQUENCE_CODES``)   M  members: the 24 ensembles, or the 24 single models

Arrays:

- ``slice index`` (:class:`SliceIndex`): for each slice, its patient (0…P-1) and sequence (0…S-1).
- ``repeat_probs`` ``(R, N)`` float in [0, 1]: P(sarcoma) of every slice by repeat r's model of the fold
  that holds the slice's patient out. Row r is the *single-model prediction* of repeat r (METHOD §6).
- ``ensemble_probs`` ``(R, N)``: row j is Ens_j, the mean of the other R-1 rows (leave one repeat out).
- ``sequence probabilities`` ``(M, P, S)`` float, NaN where the patient has no slice of that sequence.
- ``calls`` ``(M, P, S)`` int8: +1 sarcoma, -1 leiomyoma, 0 sequence missing (METHOD §7.2).
- ``scores`` ``(M, P)`` int: the patient's sum of the calls of the sequences of a set (METHOD §7.3).

Sequence calls (METHOD §7.2, configurable, the paper is silent): rule ``"mean"`` (default) calls sarcoma
when the mean slice probability is >= ``cutoff`` (0.5); rule ``"majority"`` calls each slice (probability
>= ``cutoff``) and the sequence by majority of its slices, a tie (exactly half) calling sarcoma, the
same side as ``>=`` in the mean rule.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.constants import N_SEQUENCES, SEQUENCE_CODES
from inference.subsets import SubsetLike, as_mask, mask_vector

SEQUENCE_RULES = ("mean", "majority")
DEFAULT_CUTOFF = 0.5


# ---------------------------------------------------------------------------------------------------------
# Validation helpers: messages name the argument and the reason.

def _probabilities(values, name: str, ndim: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"{name}: expected {ndim} dimensions, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinite probabilities")
    if array.size and (array.min() < 0.0 or array.max() > 1.0):
        raise ValueError(f"{name}: probabilities must lie in [0, 1], got range "
                         f"[{array.min():.4g}, {array.max():.4g}]")
    return array


def _index_array(values, name: str, upper: int) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of one value per slice, got shape {array.shape}")
    if array.size and array.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer indexes, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size and (array.min() < 0 or array.max() >= upper):
        raise ValueError(f"{name}: indexes must lie in [0, {upper - 1}], got [{array.min()}, {array.max()}]")
    return array


def _check_rule(rule: str) -> None:
    if rule not in SEQUENCE_RULES:
        raise ValueError(f"sequence rule {rule!r}: must be one of {', '.join(SEQUENCE_RULES)}")


def _check_calls(calls, name: str = "calls") -> np.ndarray:
    array = np.asarray(calls)
    if array.ndim < 2:
        raise ValueError(f"{name}: expected (..., patients, sequences), got shape {array.shape}")
    if array.dtype.kind not in "iu" or (array.size and not np.isin(array, (-1, 0, 1)).all()):
        raise ValueError(f"{name}: sequence calls must be integers in {{-1, 0, +1}}")
    return array.astype(np.int8, copy=False)


# ---------------------------------------------------------------------------------------------------------
# Which slice belongs to which patient and sequence.

@dataclass(frozen=True)
class SliceIndex:
    """Slice → (patient, sequence) index of a cohort's tumour slices.

    ``patient`` and ``sequence`` are ``(N,)`` int64 arrays; ``patient_labels`` optionally names the P
    patients (e.g. case pseudonyms) in index order. Build with :meth:`build` or :meth:`from_labels`.
    """

    patient: np.ndarray
    sequence: np.ndarray
    n_patients: int
    n_sequences: int = N_SEQUENCES
    patient_labels: tuple = field(default=())

    @classmethod
    def build(cls, patient, sequence, *, n_patients: int | None = None,
              n_sequences: int = N_SEQUENCES, patient_labels: Sequence = ()) -> SliceIndex:
        """Validate and build; ``n_patients`` defaults to ``max(patient) + 1``."""
        patient_arr = np.asarray(patient)
        if n_patients is None:
            n_patients = int(patient_arr.max()) + 1 if patient_arr.size else 0
        patient_arr = _index_array(patient_arr, "slice patient index", n_patients)
        sequence_arr = _index_array(sequence, "slice sequence index", n_sequences)
        if patient_arr.shape != sequence_arr.shape:
            raise ValueError(f"slice index: {patient_arr.size} patient entries but {sequence_arr.size} "
                             "sequence entries; need one of each per slice")
        if patient_labels and len(patient_labels) != n_patients:
            raise ValueError(f"slice index: {len(patient_labels)} patient labels for {n_patients} patients")
        return cls(patient_arr, sequence_arr, int(n_patients), int(n_sequences), tuple(patient_labels))

    @classmethod
    def from_labels(cls, patient_labels: Sequence, sequence_codes: Sequence[str], *,
                    patients: Sequence | None = None, codes: Sequence[str] = SEQUENCE_CODES) -> SliceIndex:
        """Build from one patient label and one sequence code per slice.

        ``patients`` fixes the patient order (default: order of first appearance); a slice whose patient
        or code is not known raises ``ValueError`` naming the slice number and the value.
        """
        if len(patient_labels) != len(sequence_codes):
            raise ValueError(f"slice labels: {len(patient_labels)} patient labels but "
                             f"{len(sequence_codes)} sequence codes")
        order = list(dict.fromkeys(patient_labels)) if patients is None else list(patients)
        patient_pos = {label: i for i, label in enumerate(order)}
        code_pos = {code: i for i, code in enumerate(codes)}
        patient_idx = np.empty(len(patient_labels), dtype=np.int64)
        sequence_idx = np.empty(len(patient_labels), dtype=np.int64)
        for i, (label, code) in enumerate(zip(patient_labels, sequence_codes, strict=True)):
            if label not in patient_pos:
                raise ValueError(f"slice {i}: patient {label!r} is not in the patient list")
            if code not in code_pos:
                raise ValueError(f"slice {i}: unknown sequence code {code!r}")
            patient_idx[i] = patient_pos[label]
            sequence_idx[i] = code_pos[code]
        return cls.build(patient_idx, sequence_idx, n_patients=len(order), n_sequences=len(codes),
                         patient_labels=order)

    @property
    def n_slices(self) -> int:
        return int(self.patient.size)

    def available(self) -> np.ndarray:
        """``(P, S)`` bool: True where the patient has at least one slice of the sequence."""
        out = np.zeros((self.n_patients, self.n_sequences), dtype=bool)
        out[self.patient, self.sequence] = True
        return out


# ---------------------------------------------------------------------------------------------------------
# Out-of-fold slice probabilities, single models and ensembles (METHOD §6).

def out_of_fold_probs(held_out: Mapping[tuple[int, int], np.ndarray], slice_fold, *,
                      n_repeats: int, n_folds: int) -> np.ndarray:
    """Assemble ``(R, N)`` out-of-fold slice probabilities from the models' held-out predictions.

    ``held_out[(r, f)]`` holds model (repeat r, fold f)'s P(sarcoma) for the slices whose patient is in
    fold f, in slice order (``slice_fold == f``). Row r is then repeat r's single-model prediction.
    Raises ``ValueError`` naming a missing model or a length mismatch.
    """
    folds = _index_array(slice_fold, "slice fold", n_folds)
    out = np.full((n_repeats, folds.size), np.nan)
    for r in range(n_repeats):
        for f in range(n_folds):
            if (r, f) not in held_out:
                raise ValueError(f"out-of-fold predictions: model of repeat {r}, fold {f} is missing")
            where = folds == f
            probs = _probabilities(held_out[(r, f)], f"predictions of repeat {r}, fold {f}", 1)
            if probs.size != where.sum():
                raise ValueError(f"predictions of repeat {r}, fold {f}: {probs.size} values for "
                                 f"{int(where.sum())} held-out slices")
            out[r, where] = probs
    return out


def select_out_of_fold(fold_probs, slice_fold) -> np.ndarray:
    """From ``(R, F, N)`` predictions of every model on every slice, keep each slice's held-out model.

    Returns ``(R, N)``: entry ``[r, i] = fold_probs[r, slice_fold[i], i]``.
    """
    probs = _probabilities(fold_probs, "fold predictions (repeats, folds, slices)", 3)
    folds = _index_array(slice_fold, "slice fold", probs.shape[1])
    if folds.size != probs.shape[2]:
        raise ValueError(f"slice fold: {folds.size} entries for {probs.shape[2]} slices")
    return probs[:, folds, np.arange(folds.size)]


def deployment_repeat_probs(fold_probs) -> np.ndarray:
    """Repeat predictions for slices of a new patient (METHOD §9): the mean of each repeat's fold models.

    ``fold_probs`` ``(R, F, N)`` → ``(R, N)``.
    """
    return _probabilities(fold_probs, "fold predictions (repeats, folds, slices)", 3).mean(axis=1)


def leave_one_out_ensembles(repeat_probs) -> np.ndarray:
    """The R leave-one-repeat-out ensembles: row j = mean of the slice probabilities of the other repeats.

    ``repeat_probs`` ``(R, N)`` → ``(R, N)``; needs R >= 2. Each mean is taken directly over the R-1
    rows (not total minus row) so a probability exactly on the cutoff is not moved by rounding.
    """
    probs = _probabilities(repeat_probs, "repeat predictions (repeats, slices)", 2)
    n_repeats = probs.shape[0]
    if n_repeats < 2:
        raise ValueError(f"leave-one-out ensembles need at least 2 repeats, got {n_repeats}")
    out = np.empty_like(probs)
    for j in range(n_repeats):
        out[j] = np.delete(probs, j, axis=0).mean(axis=0)
    return out


# ---------------------------------------------------------------------------------------------------------
# Slice → sequence (METHOD §7.2).

def _per_sequence_mean(values: np.ndarray, index: SliceIndex) -> np.ndarray:
    """Mean of ``(M, N)`` slice values per (patient, sequence) → ``(M, P, S)``, NaN where no slice."""
    if values.shape[1] != index.n_slices:
        raise ValueError(f"slice predictions have {values.shape[1]} slices, the slice index has "
                         f"{index.n_slices}")
    n_members = values.shape[0]
    cells = index.n_patients * index.n_sequences
    cell = index.patient * index.n_sequences + index.sequence
    counts = np.bincount(cell, minlength=cells).astype(np.float64)
    flat = (np.arange(n_members)[:, None] * cells + cell[None, :]).ravel()
    sums = np.bincount(flat, weights=values.ravel(), minlength=n_members * cells).reshape(n_members, cells)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = sums / counts
    means[:, counts == 0] = np.nan
    return means.reshape(n_members, index.n_patients, index.n_sequences)


def sequence_probabilities(member_probs, index: SliceIndex) -> np.ndarray:
    """Mean slice probability per (member, patient, sequence): ``(M, N)`` → ``(M, P, S)``, NaN if missing."""
    return _per_sequence_mean(_probabilities(member_probs, "slice predictions (members, slices)", 2), index)


def sarcoma_vote_shares(member_probs, index: SliceIndex, *, cutoff: float = DEFAULT_CUTOFF) -> np.ndarray:
    """Share of a sequence's slices called sarcoma (probability >= ``cutoff``).

    ``(M, N)`` → ``(M, P, S)``, NaN where the patient lacks the sequence.
    """
    probs = _probabilities(member_probs, "slice predictions (members, slices)", 2)
    return _per_sequence_mean((probs >= cutoff).astype(np.float64), index)


def calls_from_values(values, *, cutoff: float) -> np.ndarray:
    """Sequence values ``(..., P, S)`` (NaN = missing) → calls int8: +1 if >= cutoff, -1 below, 0 if NaN."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    calls = np.where(values >= cutoff, 1, -1).astype(np.int8)
    calls[missing] = 0
    return calls


def sequence_calls(member_probs, index: SliceIndex, *, rule: str = "mean",
                   cutoff: float = DEFAULT_CUTOFF) -> np.ndarray:
    """Sequence-level calls ``(M, P, S)`` int8 in {-1, 0, +1} from ``(M, N)`` slice probabilities.

    ``rule="mean"``: sarcoma when the mean slice probability >= ``cutoff``.
    ``rule="majority"``: slices are called at ``cutoff``; sarcoma when at least half of them say so.
    """
    _check_rule(rule)
    if rule == "mean":
        return calls_from_values(sequence_probabilities(member_probs, index), cutoff=cutoff)
    return calls_from_values(sarcoma_vote_shares(member_probs, index, cutoff=cutoff), cutoff=0.5)


def evaluation_calls(repeat_probs, index: SliceIndex, *, rule: str = "mean",
                     cutoff: float = DEFAULT_CUTOFF) -> tuple[np.ndarray, np.ndarray]:
    """Sequence calls of the cross-validation: ``(ensemble_calls, single_model_calls)``, each ``(R, P, S)``.

    ``repeat_probs`` ``(R, N)`` out-of-fold slice probabilities (``out_of_fold_probs``). Row j of the first
    is Ens_j (leave repeat j out), row r of the second is repeat r's single models. Both feed
    ``inference.combinations.search_combinations``.
    """
    ensembles = leave_one_out_ensembles(repeat_probs)
    return (sequence_calls(ensembles, index, rule=rule, cutoff=cutoff),
            sequence_calls(repeat_probs, index, rule=rule, cutoff=cutoff))


# ---------------------------------------------------------------------------------------------------------
# Sequence → patient (METHOD §7.3) and the sarcoma likelihood (METHOD §9).

def patient_scores(calls, subset: SubsetLike, codes: Sequence[str] = SEQUENCE_CODES) -> np.ndarray:
    """±1 score of each patient for a set of sequences: ``(..., P, S)`` calls → ``(..., P)`` int.

    A sequence of the set that the patient has adds its call (+1 sarcoma, -1 leiomyoma); a missing
    sequence adds 0, so a patient with none of the set scores 0.
    """
    array = _check_calls(calls)
    if array.shape[-1] != len(codes):
        raise ValueError(f"calls have {array.shape[-1]} sequences but {len(codes)} codes were given")
    members = mask_vector(as_mask(subset, codes), len(codes))
    return array[..., members].astype(np.int64).sum(axis=-1)


def subset_coverage(calls, subset: SubsetLike, codes: Sequence[str] = SEQUENCE_CODES) -> int:
    """Number of patients with at least one sequence of the set (the set's *coverage*).

    ``calls`` ``(P, S)`` or ``(M, P, S)``; availability is read from the first member (it is the same for
    every member: it depends on the slices, not on the model). Patients outside the coverage still count in
    every metric, with score 0.
    """
    array = _check_calls(calls)
    available = (array.reshape(-1, *array.shape[-2:])[0] != 0)
    members = mask_vector(as_mask(subset, codes), len(codes))
    return int(available[:, members].any(axis=1).sum())


def patient_calls(scores, thresholds) -> np.ndarray:
    """Patient-level calls ``(M, P)`` bool: sarcoma where the score >= its member's threshold ``(M,)``."""
    scores = np.asarray(scores)
    thresholds = np.asarray(thresholds)
    if scores.ndim != 2 or thresholds.shape != (scores.shape[0],):
        raise ValueError(f"patient calls: scores {scores.shape} need (members, patients) and thresholds "
                         f"one per member, got {thresholds.shape}")
    return scores >= thresholds[:, None]


@dataclass(frozen=True)
class LikelihoodFigures:
    """What a reader sees in the aided read (METHOD §9), for P patients and M members (ensembles).

    likelihood_percent  ``(P,)``    % of members whose patient-level call is sarcoma.
    sequence_percent    ``(P, S)``  % of members whose sequence call is sarcoma; NaN where missing.
    scores              ``(M, P)``  the patients' ±1 scores for the chosen set.
    calls               ``(M, P)``  bool patient-level calls (score >= the member's threshold).
    """

    mask: int
    codes: tuple[str, ...]
    thresholds: np.ndarray
    scores: np.ndarray
    calls: np.ndarray
    likelihood_percent: np.ndarray
    sequence_percent: np.ndarray

    def for_patient(self, patient: int) -> dict:
        """JSON-ready figures of one patient: likelihood and the per-sequence % of the sequences it has."""
        per_sequence = {code: float(self.sequence_percent[patient, i])
                        for i, code in enumerate(self.codes)
                        if not np.isnan(self.sequence_percent[patient, i])}
        return {"sarcoma_likelihood_percent": float(self.likelihood_percent[patient]),
                "sequence_percent": per_sequence}


def sequence_percentages(calls) -> np.ndarray:
    """% of members calling sarcoma per (patient, sequence): ``(M, P, S)`` → ``(P, S)``, NaN if missing."""
    array = _check_calls(calls)
    if array.ndim != 3:
        raise ValueError(f"calls: expected (members, patients, sequences), got shape {array.shape}")
    available = array != 0
    if np.any(available != available[0]):
        raise ValueError("calls: members disagree on which sequences a patient has")
    percent = 100.0 * (array == 1).mean(axis=0)
    percent[~available[0]] = np.nan
    return percent


def likelihood_figures(calls, subset: SubsetLike, thresholds,
                       codes: Sequence[str] = SEQUENCE_CODES) -> LikelihoodFigures:
    """Sarcoma likelihood and per-sequence % from member calls ``(M, P, S)`` (METHOD §9).

    ``thresholds`` ``(M,)``: each member's patient-score threshold for the set, normally the one the
    combination search chose for that ensemble (``CombinationSearch.thresholds_for``).
    """
    array = _check_calls(calls)
    if array.ndim != 3:
        raise ValueError(f"calls: expected (members, patients, sequences), got shape {array.shape}")
    mask = as_mask(subset, codes)
    scores = patient_scores(array, mask, codes)
    thresholds = np.asarray(thresholds, dtype=np.int64)
    decided = patient_calls(scores, thresholds)
    return LikelihoodFigures(mask=mask, codes=tuple(codes), thresholds=thresholds, scores=scores,
                             calls=decided, likelihood_percent=100.0 * decided.mean(axis=0),
                             sequence_percent=sequence_percentages(array))


def sarcoma_likelihood(calls, subset: SubsetLike, thresholds,
                       codes: Sequence[str] = SEQUENCE_CODES) -> np.ndarray:
    """``(P,)`` % of members whose patient-level call for the set is sarcoma (METHOD §9)."""
    return likelihood_figures(calls, subset, thresholds, codes).likelihood_percent


def deployment_figures(fold_probs, index: SliceIndex, *, subset: SubsetLike, thresholds,
                       rule: str = "mean", cutoff: float = DEFAULT_CUTOFF,
                       codes: Sequence[str] = SEQUENCE_CODES) -> LikelihoodFigures:
    """Figures for new patients outside the cross-validation (METHOD §9).

    ``fold_probs`` ``(R, F, N)``: every model's P(sarcoma) for the new patients' N slices (``index`` maps
    them to patients and sequences). Each repeat is the mean of its F fold models; the R leave-one-out
    ensembles, sequence calls, scores and thresholds then work exactly as in the cross-validation.
    """
    repeat = deployment_repeat_probs(fold_probs)
    ensembles = leave_one_out_ensembles(repeat)
    calls = sequence_calls(ensembles, index, rule=rule, cutoff=cutoff)
    return likelihood_figures(calls, subset, thresholds, codes)
