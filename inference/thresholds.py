"""The patient-score threshold (METHOD.md §7.4) and the ROC AUC of integer scores. No Django import.

A set of n sequences gives every patient an integer score in [-n, n] (the sum of its ±1 sequence calls).
A patient is called sarcoma when ``score >= t``. The candidate thresholds are every integer
``t = -n … n + 1`` (``-n`` calls everybody sarcoma, ``n + 1`` nobody: the two ends of the ROC curve).

Rule (METHOD §7.4): take the threshold with the highest SS-Avg (= (sensitivity + specificity) / 2, which
ranks thresholds exactly as Youden's J); among equals the higher sensitivity; among those the lower value.
Thresholds that classify the evaluated patients identically tie on everything, so the last rule picks
the lowest of them: the one just above the next lower observed score. That matters only for a score the
evaluated patients did not have (a held-out fold, a new patient), which it calls sarcoma, the same side
as the sensitivity rule.

Comparisons are exact: with n1 sarcoma and n0 leiomyoma patients, ``2 · n1 · n0 · SS-Avg =
TP · n0 + TN · n1`` is an integer, and that is what is maximised.

Everything works on score *histograms* ``(..., B)`` with ``B = 2 · max_score + 1`` bins (bin i counts
score ``i - max_score``), so many sets, members and folds are decided at once without Python loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.metrics import ConfusionRates, positive_mask


def truth_mask(truth) -> np.ndarray:
    """``(P,)`` bool, True = sarcoma; accepts the encodings of ``analysis.metrics.positive_mask``."""
    return positive_mask(truth, name="truth")


def _check_scores(scores, max_score: int, n_patients: int) -> np.ndarray:
    array = np.asarray(scores)
    if array.dtype.kind not in "iu":
        raise ValueError(f"patient scores: expected integers, got dtype {array.dtype}")
    if array.ndim < 1 or array.shape[-1] != n_patients:
        raise ValueError(f"patient scores: last axis must hold the {n_patients} patients, got shape "
                         f"{array.shape}")
    if array.size and (array.min() < -max_score or array.max() > max_score):
        raise ValueError(f"patient scores: must lie in [-{max_score}, {max_score}], got "
                         f"[{array.min()}, {array.max()}]")
    return array.astype(np.int64)


def score_histograms(scores, truth, *, max_score: int,
                     include=None) -> tuple[np.ndarray, np.ndarray]:
    """Counts of sarcoma and of leiomyoma patients per score: ``(..., P)`` → two ``(..., B)`` int64.

    ``include`` ``(P,)`` bool optionally restricts the patients counted (e.g. the training folds).
    """
    positive = truth_mask(truth)
    array = _check_scores(scores, max_score, positive.size)
    n_bins = 2 * max_score + 1
    if include is None:
        include = np.ones(positive.size, dtype=bool)
    lead = array.shape[:-1]
    flat = array.reshape(-1, positive.size) + max_score
    rows = np.arange(flat.shape[0])[:, None] * n_bins
    out = []
    for cls in (positive & include, ~positive & include):
        idx = (rows + flat[:, cls]).ravel()
        out.append(np.bincount(idx, minlength=flat.shape[0] * n_bins).reshape(*lead, n_bins))
    return out[0], out[1]


def _count_dtype(bound: int):
    return np.int32 if bound < 2**31 - 1 else np.int64


def best_thresholds(pos_hist, neg_hist, *, max_score: int, set_size=None,
                    n_positive: int | None = None, n_negative: int | None = None):
    """Apply the §7.4 rule to score histograms ``(..., B)``.

    Returns ``(threshold, tp, tn)``, each ``(...)`` int64: the chosen threshold (sarcoma when
    ``score >= threshold``) and the true positives / true negatives it gives on the histogram's patients.
    ``set_size`` (scalar or broadcastable to ``(...)``) is the number of sequences of each set when the
    histograms span a wider range than the set can reach; the threshold is then reported within the set's
    own range ``[-set_size, set_size + 1]``, exactly what a histogram of width ``2 · set_size + 1`` gives.
    ``n_positive`` / ``n_negative``: the class sizes when every histogram holds the same patients
    (saves two passes); by default they are summed per histogram.

    How: candidate c = 0 … B is the threshold ``c - max_score``. With n1 sarcoma and n0 leiomyoma
    patients, rank the candidates by ``key = (TP·n0 + TN·n1)·(n1 + 1) + TP`` (SS-Avg first, then
    sensitivity: TP ≤ n1 < n1 + 1). Raising the threshold past bin v changes the key by
    ``neg[v]·n1·(n1+1) - pos[v]·(n0·(n1+1) + 1)``, so one cumulative sum gives every candidate's key, the
    first maximum is the lowest threshold among equals, and TP and TN are read back from the key.
    """
    pos = np.asarray(pos_hist)
    neg = np.asarray(neg_hist)
    if pos.shape != neg.shape or pos.shape[-1] != 2 * max_score + 1:
        raise ValueError(f"score histograms: shapes {pos.shape} and {neg.shape} must match and have "
                         f"{2 * max_score + 1} bins")
    if pos.dtype.kind not in "iu" or neg.dtype.kind not in "iu":
        raise ValueError("score histograms: expected integer counts")
    n1 = pos.sum(axis=-1, dtype=np.int64) if n_positive is None else np.int64(n_positive)
    n0 = neg.sum(axis=-1, dtype=np.int64) if n_negative is None else np.int64(n_negative)
    if np.any(n1 == 0) or np.any(n0 == 0):
        raise ValueError("threshold: needs both sarcoma and leiomyoma patients to choose a threshold")
    dtype = _count_dtype(int(np.max(2 * n1 * n0 * (n1 + 1) + n1)))
    n1k = np.asarray(n1)[..., None] if np.ndim(n1) else n1
    n0k = np.asarray(n0)[..., None] if np.ndim(n0) else n0
    steps = np.multiply(neg, (n1k * (n1k + 1)).astype(dtype), dtype=dtype)
    steps -= np.multiply(pos, (n0k * (n1k + 1) + 1).astype(dtype), dtype=dtype)
    np.cumsum(steps, axis=-1, out=steps)           # steps[..., c - 1] = key(c) - key(0), c = 1 … B
    best = np.argmax(steps, axis=-1)
    gain = np.take_along_axis(steps, best[..., None], axis=-1)[..., 0].astype(np.int64)
    above = gain > 0                               # otherwise candidate 0 wins (it is the lowest)
    candidate = np.where(above, best + 1, 0)
    key = n1 * n0 * (n1 + 1) + n1 + np.where(above, gain, 0)
    tp = key % (n1 + 1)
    tn = (key // (n1 + 1) - tp * n0) // n1
    threshold = candidate - max_score
    if set_size is not None:
        threshold = np.maximum(threshold, -np.asarray(set_size, dtype=np.int64))
    return threshold, tp, tn


def twice_mann_whitney(pos_hist, neg_hist, *, n_negative: int | None = None) -> np.ndarray:
    """``2 · U`` from score histograms ``(..., B)`` → ``(...)`` int64; AUC = 2U / (2 · n1 · n0).

    U counts (sarcoma, leiomyoma) pairs where the sarcoma patient scores higher, ties counting one half:
    the area under the empirical ROC curve with ties joined by straight lines.
    ``2U = Σ_v pos[v] · (2 · #leiomyoma below v + #leiomyoma at v)``. ``n_negative``: the number of
    leiomyoma patients when all histograms hold the same patients (saves a pass).
    """
    pos = np.asarray(pos_hist)
    neg = np.asarray(neg_hist)
    if n_negative is not None:
        n_neg = int(n_negative)
    else:
        n_neg = int(neg.sum(axis=-1).max()) if neg.size else 0
    dtype = np.int16 if 2 * n_neg + 1 < 2**15 else _count_dtype(2 * n_neg + 1)   # less memory traffic
    weight = np.cumsum(neg, axis=-1, dtype=dtype)
    weight *= 2
    weight -= neg                                  # 2 · below + at
    return np.einsum("...v,...v->...", pos, weight, dtype=np.int64, casting="safe")


@dataclass(frozen=True)
class ThresholdChoice(ConfusionRates):
    """Confusion counts at chosen thresholds; arrays share the leading shape of the scores (``(...)``)."""

    threshold: np.ndarray
    tp: np.ndarray
    tn: np.ndarray
    n_positive: int
    n_negative: int


def choose_threshold(scores, truth, *, max_score: int) -> ThresholdChoice:
    """The §7.4 threshold chosen on the scored patients themselves (the paper's, optimistic, figure).

    ``scores`` ``(..., P)`` integers in ``[-max_score, max_score]`` (``max_score`` = number of sequences
    of the set); one threshold per leading index.
    """
    positive = truth_mask(truth)
    pos, neg = score_histograms(scores, positive, max_score=max_score)
    threshold, tp, tn = best_thresholds(pos, neg, max_score=max_score)
    return ThresholdChoice(threshold, tp, tn, int(positive.sum()), int((~positive).sum()))


def roc_auc(scores, truth, *, max_score: int) -> np.ndarray:
    """ROC AUC of integer scores ``(..., P)`` → ``(...)`` float (Mann–Whitney, ties count one half)."""
    positive = truth_mask(truth)
    pos, neg = score_histograms(scores, positive, max_score=max_score)
    return twice_mann_whitney(pos, neg) / (2 * positive.sum() * (~positive).sum())


@dataclass(frozen=True)
class CrossValidatedThreshold(ConfusionRates):
    """The honest figure: thresholds chosen on the training folds, confusion counts pooled over folds.

    fold_threshold ``(..., F)``: threshold used for fold f's patients; tp, tn ``(...)``: pooled counts.
    """

    fold_threshold: np.ndarray
    tp: np.ndarray
    tn: np.ndarray
    n_positive: int
    n_negative: int



def cross_validated_threshold(scores, truth, folds, *, max_score: int) -> CrossValidatedThreshold:
    """Honest threshold (METHOD §7.4): for each fold, choose on the other folds' patients, apply to it.

    ``scores`` ``(..., P)`` are out-of-fold scores (every patient scored by models that did not train on
    it); ``folds`` ``(P,)`` int gives each patient's cross-validation fold. For fold f the §7.4 rule runs
    on the scores of the patients *not* in f (the patients fold f's models trained on), and the threshold
    it picks calls the patients of f. The counts of the F folds are added up. A held-out patient's label
    never influences its own threshold. Raises ``ValueError`` when some fold's complement lacks a class.
    """
    positive = truth_mask(truth)
    fold_arr = np.asarray(folds)
    if fold_arr.shape != positive.shape or fold_arr.dtype.kind not in "iu":
        raise ValueError(f"folds: expected one integer fold per patient ({positive.size}), got "
                         f"shape {fold_arr.shape} dtype {fold_arr.dtype}")
    array = _check_scores(scores, max_score, positive.size)
    fold_ids = np.unique(fold_arr)
    if fold_ids.size < 2:
        raise ValueError("folds: need at least 2 folds to choose thresholds on training folds")
    lead = array.shape[:-1]
    fold_threshold = np.empty((*lead, fold_ids.size), dtype=np.int64)
    tp = np.zeros(lead, dtype=np.int64)
    tn = np.zeros(lead, dtype=np.int64)
    for i, fold in enumerate(fold_ids):
        held = fold_arr == fold
        pos, neg = score_histograms(array, positive, max_score=max_score, include=~held)
        if np.any(pos.sum(axis=-1) == 0) or np.any(neg.sum(axis=-1) == 0):
            raise ValueError(f"fold {fold}: the other folds lack sarcoma or leiomyoma patients; "
                             "cannot choose a threshold on them")
        threshold, _, _ = best_thresholds(pos, neg, max_score=max_score)
        fold_threshold[..., i] = threshold
        called = array[..., held] >= threshold[..., None]
        tp += (called & positive[held]).sum(axis=-1)
        tn += (~called & ~positive[held]).sum(axis=-1)
    return CrossValidatedThreshold(fold_threshold, tp, tn, int(positive.sum()), int((~positive).sum()))
