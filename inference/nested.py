"""Honest evaluation of the sequence-set search: nested selection and confidence intervals (METHOD §8; issue 14).

No Django import: NumPy in, NumPy out. Input as for ``inference.combinations``: ``calls`` ``(M, P, S)`` int8
sequence calls in {-1, 0, +1} of the M members (the 24 leave-one-repeat-out ensembles), ``truth`` ``(P,)``
(sarcoma positive), ``folds`` ``(P,)`` each patient's cross-validation fold. Three methods, one per row:

``paper_style``               the top-k sets and each member's §7.4 threshold are chosen on all patients and
                              scored on the same patients (what the search reports; optimistic).
``training_fold_threshold``   the same top-k sets; each fold's patients are called with the threshold chosen
                              on the other folds (``CombinationSearch.honest``). The sets are still chosen
                              on the evaluated patients.
``nested``                    for each outer fold f, the full 2**S - 1 search runs on the patients not in f;
                              its top-k sets, with each member's threshold chosen on those patients, call
                              fold f's patients. Pooled over folds. This nests the *selection*, not the
                              training: the other folds' models saw fold f in training (METHOD §8).

Each method keeps its patient calls ``(k, M, P)`` bool (set rank, member, patient): a method's figures are
means over the k sets and the M members, exactly like the paper's top-k mean, and the per-patient calls
feed the confidence intervals (:func:`metrics_with_intervals`). AUC: per member, of the top-1 set's
patient scores (for ``nested`` the scores of each fold's own top-1 set, pooled over folds); mean and median
over members (the paper used the median).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.constants import SEQUENCE_CODES
from core.intervals import BootstrapInterval, Interval, auc_components, bootstrap, delong_auc, wilson
from inference.combinations import search_combinations
from inference.subsets import mask_codes, membership_matrix
from inference.thresholds import roc_auc, truth_mask

METHODS: tuple[str, ...] = ("paper_style", "training_fold_threshold", "nested")
METHOD_LABELS: dict[str, str] = {
    "paper_style": "chosen on the evaluated patients",
    "training_fold_threshold": "threshold on training folds, sets chosen on the evaluated patients",
    "nested": "nested: chosen without the scored patients",
}
NESTED_CAVEAT = ("nests the choice of sequence set and threshold, not the training: the other folds' models "
                 "saw the scored fold in training")


@dataclass(frozen=True)
class MethodResult:
    """One method's out-of-sample (or, for ``paper_style``, in-sample) calls and figures.

    calls      ``(k, M, P)`` bool: patient call (sarcoma) per set rank, member and patient.
    scores     ``(M, P)`` int: the top-1 set's patient scores (for ``nested``: each fold's own top-1 set).
    masks      ``(F, k)`` int: the sets used for each fold's patients, best first (rows equal unless nested).
    thresholds ``(F, M, k)`` int: the threshold each member used for each fold's patients.
    fold_ids   ``(F,)``: the fold values, in the order of the rows above.
    """

    method: str
    label: str
    calls: np.ndarray
    scores: np.ndarray
    masks: np.ndarray
    thresholds: np.ndarray
    fold_ids: np.ndarray
    truth: np.ndarray
    codes: tuple[str, ...]

    @property
    def tp(self) -> np.ndarray:
        """``(M, k)`` true positives pooled over folds."""
        return (self.calls & self.truth).sum(axis=-1).T

    @property
    def tn(self) -> np.ndarray:
        """``(M, k)`` true negatives pooled over folds."""
        return (~self.calls & ~self.truth).sum(axis=-1).T

    @property
    def n_positive(self) -> int:
        return int(self.truth.sum())

    @property
    def n_negative(self) -> int:
        return int((~self.truth).sum())

    def _correct_share(self) -> np.ndarray:
        """``(P,)`` share of (set, member) pairs that call the patient right."""
        return (self.calls == self.truth).mean(axis=(0, 1))

    @property
    def sensitivity(self) -> float:
        return float(self._correct_share()[self.truth].mean())

    @property
    def specificity(self) -> float:
        return float(self._correct_share()[~self.truth].mean())

    @property
    def ss_avg(self) -> float:
        return (self.sensitivity + self.specificity) / 2

    @property
    def accuracy(self) -> float:
        return float(self._correct_share().mean())

    @property
    def member_auc(self) -> np.ndarray:
        """``(M,)`` AUC of the top-1 scores per member (Mann–Whitney, ties one half)."""
        return roc_auc(self.scores, self.truth, max_score=len(self.codes))

    @property
    def vote_share(self) -> np.ndarray:
        """``(P,)`` fraction of members calling sarcoma with the top-1 set (the METHOD §9 likelihood / 100)."""
        return self.calls[0].mean(axis=0)

    @property
    def top1_calls(self) -> np.ndarray:
        """``(M, P)`` bool: each member's call of each patient with the top-1 set."""
        return self.calls[0]

    def summary(self) -> dict:
        """JSON-ready point figures as fractions; ``sets`` lists the codes of the sets used (per fold if nested)."""
        auc = self.member_auc
        return {"method": self.method, "label": self.label, "n_sets": int(self.calls.shape[0]),
                "ss_avg": self.ss_avg, "sensitivity": self.sensitivity, "specificity": self.specificity,
                "accuracy": self.accuracy, "auc_mean": float(auc.mean()), "auc_median": float(np.median(auc))}


@dataclass(frozen=True)
class NestedResult:
    """The three methods side by side; ``optimism_points`` = paper-style − nested SS-Avg in points (%)."""

    paper_style: MethodResult
    training_fold_threshold: MethodResult
    nested: MethodResult | None

    @property
    def methods(self) -> tuple[MethodResult, ...]:
        return tuple(m for m in (self.paper_style, self.training_fold_threshold, self.nested) if m is not None)

    @property
    def optimism_points(self) -> float | None:
        if self.nested is None:
            return None
        return 100.0 * (self.paper_style.ss_avg - self.nested.ss_avg)


# ---------------------------------------------------------------------------------------------------------

def _check_folds(folds, n_patients: int) -> tuple[np.ndarray, np.ndarray]:
    array = np.asarray(folds)
    if array.shape != (n_patients,) or array.dtype.kind not in "iu":
        raise ValueError(f"folds: expected one integer fold per patient ({n_patients}), got shape "
                         f"{array.shape} dtype {array.dtype}")
    fold_ids = np.unique(array)
    if fold_ids.size < 2:
        raise ValueError("folds: need at least 2 folds")
    return array, fold_ids


def _set_scores(calls: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """``(M, P, S)`` calls, ``(k,)`` masks → ``(k, M, P)`` int patient scores."""
    membership = membership_matrix(masks, calls.shape[2], dtype=np.int64)
    return np.moveaxis(calls.astype(np.int64) @ membership, -1, 0)


def _in_sample(calls, positive, fold_arr, fold_ids, codes, top: int) -> tuple[MethodResult, MethodResult]:
    search = search_combinations(calls, positive, codes=codes, folds=fold_arr, honest_top=top)
    best = search.order[:top]
    masks = search.masks[best]
    scores = _set_scores(calls, masks)                                          # (k, M, P)
    threshold = search.threshold[:, best].astype(np.int64)                      # (M, k)
    paper_calls = scores >= threshold.T[:, :, None]
    n_folds = fold_ids.size
    paper = MethodResult("paper_style", METHOD_LABELS["paper_style"], paper_calls, scores[0],
                         np.tile(masks, (n_folds, 1)), np.broadcast_to(threshold, (n_folds, *threshold.shape)).copy(),
                         fold_ids, positive, codes)
    fold_threshold = np.moveaxis(search.honest.fold_threshold, -1, 0)           # (F, M, k)
    patient_fold = np.searchsorted(fold_ids, fold_arr)                          # (P,) row of each patient
    per_patient = fold_threshold[patient_fold]                                  # (P, M, k)
    honest_calls = scores >= np.transpose(per_patient, (2, 1, 0))
    honest = MethodResult("training_fold_threshold", METHOD_LABELS["training_fold_threshold"], honest_calls,
                          scores[0], np.tile(masks, (n_folds, 1)), fold_threshold, fold_ids, positive, codes)
    return paper, honest


def _nested(calls, positive, fold_arr, fold_ids, codes, top: int) -> MethodResult:
    n_members, n_patients, _ = calls.shape
    out_calls = np.zeros((top, n_members, n_patients), dtype=bool)
    out_scores = np.zeros((n_members, n_patients), dtype=np.int64)
    masks = np.zeros((fold_ids.size, top), dtype=np.int64)
    thresholds = np.zeros((fold_ids.size, n_members, top), dtype=np.int64)
    for i, fold in enumerate(fold_ids):
        held = fold_arr == fold
        train = ~held
        if positive[train].all() or not positive[train].any():
            raise ValueError(f"fold {fold}: the other folds lack sarcoma or leiomyoma patients; "
                             "cannot choose sets and thresholds on them")
        inner = search_combinations(calls[:, train], positive[train], codes=codes, folds=None)
        best = inner.order[:top]
        if best.size < top:
            raise ValueError(f"top: {top} sets asked for but only {best.size} exist")
        masks[i] = inner.masks[best]
        thresholds[i] = inner.threshold[:, best]
        scores = _set_scores(calls[:, held], masks[i])                          # (k, M, P_f)
        out_calls[:, :, held] = scores >= thresholds[i].T[:, :, None]
        out_scores[:, held] = scores[0]
    return MethodResult("nested", METHOD_LABELS["nested"], out_calls, out_scores, masks, thresholds, fold_ids,
                        positive, codes)


def nested_evaluation(calls, truth, folds, *, top: int = 10, codes: Sequence[str] = SEQUENCE_CODES,
                      nested: bool = True) -> NestedResult:
    """The three methods of the module docstring for the ``top`` best sets (10 = the paper's top-10 mean).

    ``calls`` ``(M, P, S)`` in {-1, 0, +1}; ``truth`` ``(P,)`` (bool / 0-1 / ±1 / class names);
    ``folds`` ``(P,)`` int. ``nested=False`` skips the F inner searches (``NestedResult.nested`` is None).
    Cost: one full search per outer fold plus one (~1 s each at 263 patients × 24 members).
    Raises ``ValueError`` when a fold's complement lacks a class.
    """
    codes = tuple(codes)
    array = np.asarray(calls)
    if array.ndim != 3:
        raise ValueError(f"calls: expected (members, patients, sequences), got shape {array.shape}")
    positive = truth_mask(truth)
    if positive.size != array.shape[1]:
        raise ValueError(f"truth: {positive.size} patients, calls have {array.shape[1]}")
    fold_arr, fold_ids = _check_folds(folds, positive.size)
    if int(top) != top or not 1 <= top <= (1 << len(codes)) - 1:
        raise ValueError(f"top: must be a whole number from 1 to {(1 << len(codes)) - 1}, got {top}")
    top = int(top)
    paper, honest = _in_sample(array, positive, fold_arr, fold_ids, codes, top)
    inner = _nested(array.astype(np.int8), positive, fold_arr, fold_ids, codes, top) if nested else None
    return NestedResult(paper, honest, inner)


# ---------------------------------------------------------------------------------------------------------
# Confidence intervals from per-patient calls.

@dataclass(frozen=True)
class MetricsWithIntervals:
    """Section-10 metrics with 1 - alpha intervals: Wilson (proportions), DeLong (AUC), bootstrap (SS-Avg)."""

    sensitivity: Interval
    specificity: Interval
    accuracy: Interval
    ss_avg: BootstrapInterval
    auc: Interval | None
    auc_median: float | None

    def as_dict(self) -> dict:
        out = {name: getattr(self, name).as_dict() for name in ("ss_avg", "sensitivity", "specificity",
                                                                 "accuracy")}
        out["auc"] = None if self.auc is None else {**self.auc.as_dict(), "median": self.auc_median}
        out["ss_avg"]["resamples"] = self.ss_avg.resamples
        out["ss_avg"]["seed"] = self.ss_avg.seed
        return out


def metrics_with_intervals(calls, truth, *, scores=None, alpha: float = 0.05, resamples: int = 2000,
                           seed: int = 0) -> MetricsWithIntervals:
    """Metrics and CIs of patient calls ``(..., P)`` bool (leading axes: sets, members; averaged).

    The point figures are means over the leading axes (the top-k mean). Each patient contributes the share
    of (set, member) pairs that call it right, so sensitivity = Σ over sarcomas of that share / n1, and the
    Wilson interval is that of a proportion on n1 patients (the members are not independent evidence).
    SS-Avg: patient-level percentile bootstrap stratified by class (``resamples`` ≥ 2,000 recommended,
    seeded). ``scores`` ``(M, P)`` or ``(P,)``: DeLong interval of the (mean over members) AUC; the median
    over members is reported beside it.
    """
    positive = truth_mask(truth)
    array = np.asarray(calls)
    if array.dtype != bool or array.ndim < 1 or array.shape[-1] != positive.size:
        raise ValueError(f"calls: expected bool (..., {positive.size}) patient calls, got shape {array.shape} "
                         f"dtype {array.dtype}")
    n1, n0 = int(positive.sum()), int((~positive).sum())
    if n1 == 0 or n0 == 0:
        raise ValueError("truth: metrics need both sarcoma and leiomyoma patients")
    correct = (array.reshape(-1, positive.size) == positive).mean(axis=0)       # (P,)
    weight = np.where(positive, 0.5 / n1, 0.5 / n0)                            # SS-Avg = Σ weight · correct

    def ss_avg(indexes: np.ndarray) -> np.ndarray:
        return (weight[indexes] * correct[indexes]).sum(axis=1)

    auc, auc_median = None, None
    if scores is not None:
        score_arr = np.asarray(scores)
        auc = delong_auc(score_arr, positive, alpha)
        per_member = auc_components(score_arr.reshape(-1, positive.size), positive)[0].mean(axis=-1)
        auc_median = float(np.median(per_member))
    return MetricsWithIntervals(
        sensitivity=wilson(float(correct[positive].sum()), n1, alpha),
        specificity=wilson(float(correct[~positive].sum()), n0, alpha),
        accuracy=wilson(float(correct.sum()), positive.size, alpha),
        ss_avg=bootstrap(ss_avg, positive.size, resamples=resamples, seed=seed, alpha=alpha, strata=positive),
        auc=auc, auc_median=auc_median)


def method_intervals(result: MethodResult, *, alpha: float = 0.05, resamples: int = 2000,
                     seed: int = 0) -> MetricsWithIntervals:
    """:func:`metrics_with_intervals` of one method: its top-k calls and its top-1 scores."""
    return metrics_with_intervals(result.calls, result.truth, scores=result.scores, alpha=alpha,
                                  resamples=resamples, seed=seed)


def describe_sets(result: MethodResult) -> list[list[str]]:
    """The top-1 set used for each fold's patients as sequence codes (one row per fold)."""
    return [list(mask_codes(int(m), result.codes)) for m in result.masks[:, 0]]
