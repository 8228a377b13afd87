"""Search over every combination of MRI sequences (METHOD.md §8), vectorised. No Django import.

Input: ``calls`` ``(M, P, S)`` int8 sequence calls in {-1, 0, +1} (0 = the patient lacks the sequence) of
M members (the 24 leave-one-out ensembles, or the 24 single models), and ``truth`` ``(P,)`` (sarcoma
positive). For every non-empty set of the S sequences (2**15 - 1 = 32,767 sets) and every member:

- patient scores = the sum of the set's calls (a patient with none of the set scores 0 and still counts);
- the §7.4 threshold (``inference.thresholds``) and the confusion counts it gives;
- the ROC AUC of the scores (Mann–Whitney, ties one half);
- the set's coverage: patients with at least one sequence of the set (same for every member).

A set's figure is the mean over the members. Sets are ranked by mean SS-Avg, then mean sensitivity, then
fewer sequences, then the lower mask (canonical code order; see ``inference.subsets``). The comparisons
are exact integers: n1 · n0 · Σ_members 2·SS-Avg = Σ (TP · n0 + TN · n1).

How it is fast: each member's scores for all sets are one matrix product ``calls @ membership``; the
§7.4 rule and the AUC read per-(member, set) score histograms (at most 31 bins) through cumulative sums.
Histograms are counted with ``np.bincount``. The leave-one-out ensembles share 22 of their 23 repeats, so
almost every patient has the same calls in all of them: histograms are counted once for each patient's
most common call row, then corrected only for the (member, patient) pairs whose row differs. When
members disagree a lot (single models), every (member, patient) pair is counted directly instead. Sets are
processed in chunks, so peak memory stays at a few tens of MB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.constants import SEQUENCE_CODES
from inference.subsets import (
    SubsetLike,
    all_masks,
    as_mask,
    mask_codes,
    membership_matrix,
    subset_sizes,
)
from inference.thresholds import (
    best_thresholds,
    cross_validated_threshold,
    truth_mask,
    twice_mann_whitney,
)

MAX_SEQUENCES = 20          # 2**20 sets is already a million; beyond that the search is not the tool
DEFAULT_CHUNK = 4096        # sets per chunk
FLOAT32_EXACT = 1 << 24     # integers below this are exact in float32


def _validate_calls(calls, n_codes: int) -> np.ndarray:
    array = np.asarray(calls)
    if array.ndim != 3:
        raise ValueError(f"calls: expected (members, patients, sequences), got shape {array.shape}")
    if array.dtype.kind not in "iu" or (array.size and not np.isin(array, (-1, 0, 1)).all()):
        raise ValueError("calls: sequence calls must be integers in {-1, 0, +1}")
    if array.shape[2] != n_codes:
        raise ValueError(f"calls: {array.shape[2]} sequences but {n_codes} sequence codes")
    if not 1 <= n_codes <= MAX_SEQUENCES:
        raise ValueError(f"calls: the search handles 1 to {MAX_SEQUENCES} sequences, got {n_codes}")
    available = array != 0
    if np.any(available != available[:1]):
        raise ValueError("calls: members disagree on which sequences a patient has "
                         "(availability comes from the slices and must be the same for every member)")
    return array.astype(np.int8)


# ---------------------------------------------------------------------------------------------------------
# Histogram counting plan: which (member, patient) pairs are counted individually.

@dataclass(frozen=True)
class _CountPlan:
    """``base_rows`` ``(P, S)`` counted once for every member (or None), then per pair (member, patient):
    ``add_rows`` counted with +1 and, when there is a base, the base row of that patient with -1."""

    base_rows: np.ndarray | None
    pair_member: np.ndarray
    pair_patient: np.ndarray
    add_rows: np.ndarray


def _count_plan(calls: np.ndarray) -> _CountPlan:
    n_members, n_patients, n_seq = calls.shape
    keys = ((calls.astype(np.int64) + 1) * (3 ** np.arange(n_seq, dtype=np.int64))).sum(axis=2)  # (M, P)
    agreement = (keys[:, None, :] == keys[None, :, :]).sum(axis=1)       # (M, P): members sharing the row
    mode_member = np.argmax(agreement, axis=0)                            # (P,)
    base = calls[mode_member, np.arange(n_patients)]                      # (P, S)
    differs = keys != keys[mode_member, np.arange(n_patients)][None, :]
    n_pairs = int(differs.sum())
    if n_patients + 2 * n_pairs < n_members * n_patients:
        member, patient = np.nonzero(differs)
        return _CountPlan(base, member, patient, calls[member, patient])
    member, patient = np.divmod(np.arange(n_members * n_patients), n_patients)
    return _CountPlan(None, member, patient, calls.reshape(-1, n_seq))


def _bin_index(rows: np.ndarray, row_offset: np.ndarray, membership: np.ndarray,
               column_offset: np.ndarray, top: int) -> np.ndarray:
    """Flat histogram bin of every (row, set): ``rows @ membership + row_offset + column_offset``.

    Offsets ride along in the matrix product (two extra columns/rows), so the bin index comes out of one
    BLAS call; float32 when every index is exactly representable, else float64.
    """
    dtype = np.float32 if top < FLOAT32_EXACT else np.float64
    left = np.empty((rows.shape[0], rows.shape[1] + 2), dtype=dtype)
    left[:, :-2] = rows
    left[:, -2] = row_offset
    left[:, -1] = 1
    right = np.empty((membership.shape[0] + 2, membership.shape[1]), dtype=dtype)
    right[:-2] = membership
    right[-2] = 1
    right[-1] = column_offset
    return (left @ right).astype(np.intp).ravel()


def _chunk_histograms(calls: np.ndarray, positive: np.ndarray, plan: _CountPlan,
                      membership: np.ndarray) -> np.ndarray:
    """Score histograms ``(M, K_chunk, 2, B)`` int64 (class 1 = sarcoma; bin i = score i - S)."""
    n_members, _, n_seq = calls.shape
    n_sets = membership.shape[1]
    n_bins = 2 * n_seq + 1
    cls = positive.astype(np.int64)
    per_member = n_sets * 2 * n_bins
    columns = np.arange(n_sets, dtype=np.int64) * 2 * n_bins
    total = n_members * per_member

    pair_offset = plan.pair_member * per_member + cls[plan.pair_patient] * n_bins + n_seq
    idx = _bin_index(plan.add_rows, pair_offset, membership, columns, total)
    hist = np.bincount(idx, minlength=total)
    if plan.base_rows is not None:
        removed = _bin_index(plan.base_rows[plan.pair_patient], pair_offset, membership, columns, total)
        hist -= np.bincount(removed, minlength=total)
        base_idx = _bin_index(plan.base_rows, cls * n_bins + n_seq, membership, columns, per_member)
        base = np.bincount(base_idx, minlength=per_member)
        hist = hist.reshape(n_members, per_member) + base[None, :]
    return hist.reshape(n_members, n_sets, 2, n_bins)


# ---------------------------------------------------------------------------------------------------------
# Result.

@dataclass(frozen=True)
class HonestFigures:
    """Cross-validated thresholds (``inference.thresholds.cross_validated_threshold``) for some sets.

    masks ``(T,)``; tp, tn ``(M, T)`` pooled over folds; fold_threshold ``(M, T, F)``. The sets were
    picked by the optimistic ranking, so even these figures keep that selection's optimism.
    """

    masks: np.ndarray
    tp: np.ndarray
    tn: np.ndarray
    fold_threshold: np.ndarray


@dataclass(frozen=True)
class CombinationSearch:
    """Every evaluated set × every member. Per-member arrays are ``(M, K)``, per-set arrays ``(K,)``.

    ``order`` lists set positions best first (the ranking rule is in the module docstring). Metric
    properties are fractions in [0, 1]; :meth:`rows` gives percentages for tables and CSV.
    """

    codes: tuple[str, ...]
    masks: np.ndarray
    sizes: np.ndarray
    coverage: np.ndarray
    threshold: np.ndarray
    tp: np.ndarray
    tn: np.ndarray
    twice_u: np.ndarray
    n_positive: int
    n_negative: int
    order: np.ndarray
    honest: HonestFigures | None = None
    _position: dict = field(default_factory=dict, repr=False, compare=False)

    # -- per (member, set) -----------------------------------------------------------------------------
    @property
    def n_members(self) -> int:
        return int(self.tp.shape[0])

    @property
    def n_patients(self) -> int:
        return self.n_positive + self.n_negative

    @property
    def sensitivity(self) -> np.ndarray:
        return self.tp / self.n_positive

    @property
    def specificity(self) -> np.ndarray:
        return self.tn / self.n_negative

    @property
    def accuracy(self) -> np.ndarray:
        return (self.tp.astype(np.int64) + self.tn) / self.n_patients

    @property
    def ss_avg(self) -> np.ndarray:
        return self._twice_ss_numerator() / (2 * self.n_positive * self.n_negative)

    @property
    def auc(self) -> np.ndarray:
        return self.twice_u / (2 * self.n_positive * self.n_negative)

    def _twice_ss_numerator(self) -> np.ndarray:
        return self.tp.astype(np.int64) * self.n_negative + self.tn.astype(np.int64) * self.n_positive

    # -- per set: means over members (from integer sums, so equal sets compare equal) --------------------
    @property
    def mean_sensitivity(self) -> np.ndarray:
        return self.tp.sum(axis=0, dtype=np.int64) / (self.n_members * self.n_positive)

    @property
    def mean_specificity(self) -> np.ndarray:
        return self.tn.sum(axis=0, dtype=np.int64) / (self.n_members * self.n_negative)

    @property
    def mean_accuracy(self) -> np.ndarray:
        correct = self.tp.sum(axis=0, dtype=np.int64) + self.tn.sum(axis=0, dtype=np.int64)
        return correct / (self.n_members * self.n_patients)

    @property
    def mean_ss_avg(self) -> np.ndarray:
        return (self._twice_ss_numerator().sum(axis=0)
                / (2 * self.n_members * self.n_positive * self.n_negative))

    @property
    def mean_auc(self) -> np.ndarray:
        return (self.twice_u.sum(axis=0, dtype=np.int64)
                / (2 * self.n_members * self.n_positive * self.n_negative))

    # -- look-ups ---------------------------------------------------------------------------------------
    def position(self, subset: SubsetLike) -> int:
        """Column of a set (mask or codes); ``KeyError`` if the set was not evaluated."""
        mask = as_mask(subset, self.codes)
        if not self._position:
            self._position.update({int(m): i for i, m in enumerate(self.masks)})
        if mask not in self._position:
            raise KeyError(f"sequence set {mask_codes(mask, self.codes)} was not evaluated")
        return self._position[mask]

    def thresholds_for(self, subset: SubsetLike) -> np.ndarray:
        """``(M,)`` the members' thresholds for a set (feed to ``predictions.likelihood_figures``)."""
        return self.threshold[:, self.position(subset)].astype(np.int64)

    def rank_of(self, subset: SubsetLike) -> int:
        """1-based rank of a set."""
        return int(np.nonzero(self.order == self.position(subset))[0][0]) + 1

    def top(self, n: int = 10) -> np.ndarray:
        """Masks of the ``n`` best sets, best first."""
        return self.masks[self.order[:n]]

    def top_mean(self, n: int = 10) -> dict:
        """Mean of the top-``n`` sets' figures (the paper's headline DNN result, n = 10), as fractions."""
        best = self.order[:n]
        out = {"n_sets": int(best.size),
               "accuracy": float(self.mean_accuracy[best].mean()),
               "sensitivity": float(self.mean_sensitivity[best].mean()),
               "specificity": float(self.mean_specificity[best].mean()),
               "ss_avg": float(self.mean_ss_avg[best].mean()),
               "auc": float(self.mean_auc[best].mean())}
        if self.honest is not None:
            kept = [i for i, m in enumerate(self.honest.masks) if m in set(self.masks[best].tolist())]
            if len(kept) == best.size:
                tp = self.honest.tp[:, kept]
                tn = self.honest.tn[:, kept]
                out["honest_sensitivity"] = float(tp.mean() / self.n_positive)
                out["honest_specificity"] = float(tn.mean() / self.n_negative)
                out["honest_accuracy"] = float((tp + tn).mean() / self.n_patients)
                out["honest_ss_avg"] = (out["honest_sensitivity"] + out["honest_specificity"]) / 2
        return out

    def rows(self, limit: int | None = None) -> list[dict]:
        """Ranked table rows (best first) for CSV or display; metrics in % (mean over members)."""
        picked = self.order if limit is None else self.order[:limit]
        ss = self.ss_avg
        means = {"ss_avg": self.mean_ss_avg, "accuracy": self.mean_accuracy,
                 "sensitivity": self.mean_sensitivity, "specificity": self.mean_specificity,
                 "auc": self.mean_auc}
        honest_at = {} if self.honest is None else {int(m): i for i, m in enumerate(self.honest.masks)}
        out = []
        for rank, k in enumerate(picked, start=1):
            mask = int(self.masks[k])
            row = {"rank": rank, "mask": mask, "sequences": " ".join(mask_codes(mask, self.codes)),
                   "n_sequences": int(self.sizes[k]), "coverage": int(self.coverage[k]),
                   "coverage_percent": 100.0 * self.coverage[k] / self.n_patients}
            for name, values in means.items():
                row[f"{name}_percent"] = 100.0 * float(values[k])
            row["ss_avg_min_percent"] = 100.0 * float(ss[:, k].min())
            row["ss_avg_max_percent"] = 100.0 * float(ss[:, k].max())
            if mask in honest_at:
                i = honest_at[mask]
                sens = self.honest.tp[:, i].mean() / self.n_positive
                spec = self.honest.tn[:, i].mean() / self.n_negative
                row["honest_ss_avg_percent"] = 100.0 * float(sens + spec) / 2
            out.append(row)
        return out


# ---------------------------------------------------------------------------------------------------------
# Entry points.

def evaluate_subsets(calls, truth, masks=None, *, codes: Sequence[str] = SEQUENCE_CODES,
                     folds=None, honest_top: int = 10, chunk_size: int = DEFAULT_CHUNK) -> CombinationSearch:
    """Evaluate the given sets (masks, default: all non-empty sets) for every member.

    calls ``(M, P, S)`` in {-1, 0, +1}; truth ``(P,)`` (bool / 0-1 / ±1 / class names, sarcoma positive);
    masks ``(K,)`` ints; codes: the S sequence codes (canonical order). With ``folds`` ``(P,)`` (each
    patient's cross-validation fold), the ``honest_top`` best sets also get the cross-validated-threshold
    figures (``CombinationSearch.honest``).
    """
    codes = tuple(codes)
    array = _validate_calls(calls, len(codes))
    positive = truth_mask(truth)
    if positive.size != array.shape[1]:
        raise ValueError(f"truth: {positive.size} patients, calls have {array.shape[1]}")
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("truth: the search needs both sarcoma and leiomyoma patients")
    n_seq = len(codes)
    masks = all_masks(n_seq) if masks is None else np.asarray(masks, dtype=np.int64).ravel()
    if masks.size == 0 or masks.min() < 1 or masks.max() >= (1 << n_seq):
        raise ValueError(f"masks: each set mask must lie in [1, {(1 << n_seq) - 1}]")
    if chunk_size < 1:
        raise ValueError("chunk_size: must be at least 1")
    n_members, n_sets = array.shape[0], masks.size
    sizes = subset_sizes(masks)
    available = (array[0] != 0).astype(np.float32)
    plan = _count_plan(array)

    threshold = np.empty((n_members, n_sets), dtype=np.int8)
    tp = np.empty((n_members, n_sets), dtype=np.int32)
    tn = np.empty((n_members, n_sets), dtype=np.int32)
    twice_u = np.empty((n_members, n_sets), dtype=np.int64)
    coverage = np.empty(n_sets, dtype=np.int64)
    for start in range(0, n_sets, chunk_size):
        part = slice(start, min(start + chunk_size, n_sets))
        membership = membership_matrix(masks[part], n_seq)
        hist = _chunk_histograms(array, positive, plan, membership)
        pos, neg = hist[:, :, 1], hist[:, :, 0]
        threshold[:, part], tp[:, part], tn[:, part] = best_thresholds(
            pos, neg, max_score=n_seq, set_size=sizes[part][None, :])
        twice_u[:, part] = twice_mann_whitney(pos, neg)
        coverage[part] = ((available @ membership) > 0).sum(axis=0)

    twice_ss = (tp.astype(np.int64) * n_neg + tn.astype(np.int64) * n_pos).sum(axis=0)
    order = np.lexsort((masks, sizes, -tp.sum(axis=0, dtype=np.int64), -twice_ss))
    result = CombinationSearch(codes=codes, masks=masks, sizes=sizes, coverage=coverage,
                               threshold=threshold, tp=tp, tn=tn, twice_u=twice_u,
                               n_positive=n_pos, n_negative=n_neg, order=order)
    if folds is None or honest_top <= 0:
        return result
    chosen = result.top(honest_top)
    honest_tp = np.empty((n_members, chosen.size), dtype=np.int64)
    honest_tn = np.empty_like(honest_tp)
    fold_thresholds = []
    for i, mask in enumerate(chosen):
        member_of = membership_matrix(np.array([mask]), n_seq, dtype=np.int64)[:, 0].astype(bool)
        scores = array[:, :, member_of].astype(np.int64).sum(axis=2)
        cv = cross_validated_threshold(scores, positive, folds, max_score=int(member_of.sum()))
        honest_tp[:, i], honest_tn[:, i] = cv.tp, cv.tn
        fold_thresholds.append(cv.fold_threshold)
    honest = HonestFigures(masks=chosen, tp=honest_tp, tn=honest_tn,
                           fold_threshold=np.stack(fold_thresholds, axis=1))
    return CombinationSearch(codes=codes, masks=masks, sizes=sizes, coverage=coverage, threshold=threshold,
                             tp=tp, tn=tn, twice_u=twice_u, n_positive=n_pos, n_negative=n_neg,
                             order=order, honest=honest)


def search_combinations(calls, truth, *, codes: Sequence[str] = SEQUENCE_CODES, folds=None,
                        honest_top: int = 10, chunk_size: int = DEFAULT_CHUNK) -> CombinationSearch:
    """The full METHOD §8 search: all ``2**S - 1`` non-empty sets (32,767 for the 15 codes)."""
    return evaluate_subsets(calls, truth, None, codes=codes, folds=folds, honest_top=honest_top,
                            chunk_size=chunk_size)


def per_sequence_table(ensembles: CombinationSearch, singles: CombinationSearch | None = None) -> list[dict]:
    """Fig. 1 data: for each single sequence, SS-Avg mean / min / max (in %) over the ensembles and, when
    given, over the single models. Both searches must contain the single-sequence sets (a full search or
    ``evaluate_subsets(calls, truth, [1 << i for i in range(S)])``)."""
    rows = []
    for i, code in enumerate(ensembles.codes):
        mask = 1 << i
        k = ensembles.position(mask)
        ss = ensembles.ss_avg[:, k]
        row = {"sequence": code, "coverage": int(ensembles.coverage[k]),
               "ensemble_ss_avg_mean_percent": 100.0 * float(ensembles.mean_ss_avg[k]),
               "ensemble_ss_avg_min_percent": 100.0 * float(ss.min()),
               "ensemble_ss_avg_max_percent": 100.0 * float(ss.max())}
        if singles is not None:
            j = singles.position(mask)
            single_ss = singles.ss_avg[:, j]
            row.update({"single_ss_avg_mean_percent": 100.0 * float(singles.mean_ss_avg[j]),
                        "single_ss_avg_min_percent": 100.0 * float(single_ss.min()),
                        "single_ss_avg_max_percent": 100.0 * float(single_ss.max())})
        rows.append(row)
    return rows
