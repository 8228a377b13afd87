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

from analysis.metrics import positive_mask


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


def best_thresholds(pos_hist, neg_hist, *, max_score: int, set_size=None):
    """Apply the §7.4 rule to score histograms ``(..., B)``.

    Returns ``(threshold, tp, tn)``, each ``(...)`` int64: the chosen threshold (sarcoma when
    ``score >= threshold``) and the true positives / true negatives it gives on the histogram's patients.
    ``set_size`` (scalar or broadcastable to ``(...)``) is the number of sequences of each set when the
    histograms span a wider range than the set can reach; the threshold is then reported within the set's
    own range ``[-set_size, set_size + 1]``, exactly what a histogram of width ``2 · set_size + 1`` gives.
    """
    pos = np.asarray(pos_hist, dtype=np.int64)
    neg = np.asarray(neg_hist, dtype=np.int64)
    if pos.shape != neg.shape or pos.shape[-1] != 2 * max_score + 1:
        raise ValueError(f"score histograms: shapes {pos.shape} and {neg.shape} must match and have "
                         f"{2 * max_score + 1} bins")
    n_pos = pos.sum(axis=-1, keepdims=True)
    n_neg = neg.sum(axis=-1, keepdims=True)
    if np.any(n_pos == 0) or np.any(n_neg == 0):
        raise ValueError("threshold: needs both sarcoma and leiomyoma patients to choose a threshold")
    # Candidate c (0 … B) is the threshold t = c - max_score.
    zero = np.zeros((*pos.shape[:-1], 1), dtype=np.int64)
    tp = np.concatenate([np.cumsum(pos[..., ::-1], axis=-1)[..., ::-1], zero], axis=-1)   # score >= t
    tn = np.concatenate([zero, np.cumsum(neg, axis=-1)], axis=-1)                          # score < t
    key = (tp * n_neg + tn * n_pos) * (n_pos + 1) + tp       # SS-Avg first, then sensitivity
    best = np.argmax(key, axis=-1)[..., None]                # first maximum = lowest threshold
    threshold = best[..., 0] - max_score
    if set_size is not None:
        threshold = np.maximum(threshold, -np.asarray(set_size, dtype=np.int64))
    return (threshold, np.take_along_axis(tp, best, axis=-1)[..., 0],
            np.take_along_axis(tn, best, axis=-1)[..., 0])


def twice_mann_whitney(pos_hist, neg_hist) -> np.ndarray:
    """``2 · U`` from score histograms ``(..., B)`` → ``(...)`` int64; AUC = 2U / (2 · n1 · n0).

    U counts (sarcoma, leiomyoma) pairs where the sarcoma patient scores higher, ties counting one half:
    the area under the empirical ROC curve with ties joined by straight lines.
    """
    pos = np.asarray(pos_hist, dtype=np.int64)
    neg = np.asarray(neg_hist, dtype=np.int64)
    below = np.cumsum(neg, axis=-1) - neg
    return (pos * (2 * below + neg)).sum(axis=-1)


@dataclass(frozen=True)
class ThresholdChoice:
    """Confusion counts at chosen thresholds; arrays share the leading shape of the scores (``(...)``)."""

    threshold: np.ndarray
    tp: np.ndarray
    tn: np.ndarray
    n_positive: int
    n_negative: int

    @property
    def sensitivity(self) -> np.ndarray:
        return self.tp / self.n_positive

    @property
    def specificity(self) -> np.ndarray:
        return self.tn / self.n_negative

    @property
    def ss_avg(self) -> np.ndarray:
        return (self.tp * self.n_negative + self.tn * self.n_positive) / (2 * self.n_positive * self.n_negative)

    @property
    def accuracy(self) -> np.ndarray:
        return (self.tp + self.tn) / (self.n_positive + self.n_negative)


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
class CrossValidatedThreshold:
    """The honest figure: thresholds chosen on the training folds, confusion counts pooled over folds.

    fold_threshold ``(..., F)``: threshold used for fold f's patients; tp, tn ``(...)``: pooled counts.
    """

    fold_threshold: np.ndarray
    tp: np.ndarray
    tn: np.ndarray
    n_positive: int
    n_negative: int

    @property
    def sensitivity(self) -> np.ndarray:
        return self.tp / self.n_positive

    @property
    def specificity(self) -> np.ndarray:
        return self.tn / self.n_negative

    @property
    def ss_avg(self) -> np.ndarray:
        return (self.tp * self.n_negative + self.tn * self.n_positive) / (2 * self.n_positive * self.n_negative)

    @property
    def accuracy(self) -> np.ndarray:
        return (self.tp + self.tn) / (self.n_positive + self.n_negative)


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
