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
§7.4 rule and the AUC read per-(member, set) score histograms (at most 31 bins) through one cumulative
sum each (``inference.thresholds.best_thresholds``). The leave-one-out ensembles share 22 of their 23
repeats, so almost every patient has the same calls in all of them: histograms are counted once from each
patient's most common call row and copied to every member, then corrected only for the (member, patient)
pairs whose row differs. When members disagree a lot (single models), every (member, patient) pair is
counted with one ``np.bincount``. Sets are processed in chunks sized to the work, so peak memory stays
near 30 MiB. Both ways give identical integers; the choice only changes the speed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from core.constants import SEQUENCE_CODES
from core.metrics import ConfusionRates
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
CHUNK_CELLS = 2_000_000     # work cells per chunk of sets: ~30 MiB peak, and fast (measured)
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
    """How a chunk's histograms are counted.

    Delta plan (``base_rows`` set): each patient's most common call row ``(P, S)`` is counted once and
    copied to every member; then each listed (member, patient) pair adds its own row and removes the base
    row. ``rounds`` splits the pairs so that no two pairs of a round share (member, class): their bins are
    then distinct and a plain fancy-index add is exact. Direct plan (``base_rows`` None): every pair is
    counted with one ``np.bincount``.
    """

    base_rows: np.ndarray | None
    pair_member: np.ndarray
    pair_patient: np.ndarray
    add_rows: np.ndarray
    rounds: tuple


def _count_plan(calls: np.ndarray, positive: np.ndarray) -> _CountPlan:
    n_members, n_patients, n_seq = calls.shape
    keys = ((calls.astype(np.int64) + 1) * (3 ** np.arange(n_seq, dtype=np.int64))).sum(axis=2)  # (M, P)
    agreement = (keys[:, None, :] == keys[None, :, :]).sum(axis=1)       # (M, P): members sharing the row
    mode_member = np.argmax(agreement, axis=0)                            # (P,)
    base = calls[mode_member, np.arange(n_patients)]                      # (P, S)
    differs = keys != keys[mode_member, np.arange(n_patients)][None, :]
    member, patient = np.nonzero(differs)
    # Delta costs ~P + 2·pairs rows per set, direct M·P; fancy-index rounds lose to bincount when long.
    if member.size and n_patients + 3 * member.size >= n_members * n_patients:
        member, patient = np.divmod(np.arange(n_members * n_patients), n_patients)
        return _CountPlan(None, member, patient, calls.reshape(-1, n_seq), ())
    group = member * 2 + positive[patient]
    order = np.argsort(group, kind="stable")
    member, patient, group = member[order], patient[order], group[order]
    first = np.searchsorted(group, group, side="left")
    rank = np.arange(group.size) - first                                  # position within its group
    rounds = tuple(np.nonzero(rank == r)[0] for r in range(int(rank.max()) + 1)) if rank.size else ()
    return _CountPlan(base, member, patient, calls[member, patient], rounds)


def _bin_index(rows: np.ndarray, row_offset: np.ndarray, membership: np.ndarray,
               column_offset: np.ndarray, top: int) -> np.ndarray:
    """Flat histogram bin of every (row, set), ``(rows, sets)`` intp:
    ``rows @ membership + row_offset + column_offset``.

    Offsets ride along in the matrix product (two extra columns/rows), so the bin index comes out of one
    BLAS call; float32 when every index is exactly representable (< 2**24), else float64.
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
    return (left @ right).astype(np.intp)


def _chunk_histograms(calls: np.ndarray, positive: np.ndarray, plan: _CountPlan,
                      membership: np.ndarray) -> np.ndarray:
    """Score histograms ``(2, M, K_chunk, B)`` (class 0 leiomyoma, 1 sarcoma; bin i = score i - S)."""
    n_members, n_patients, n_seq = calls.shape
    n_sets = membership.shape[1]
    n_bins = 2 * n_seq + 1
    dtype = np.int16 if n_patients < 2**15 else np.int32
    cls = positive.astype(np.int64)
    per_class = n_members * n_sets * n_bins
    total = 2 * per_class
    columns = np.arange(n_sets, dtype=np.int64) * n_bins
    pair_offset = cls[plan.pair_patient] * per_class + plan.pair_member * (n_sets * n_bins) + n_seq
    if plan.base_rows is None:
        idx = _bin_index(plan.add_rows, pair_offset, membership, columns, total)
        hist = np.bincount(idx.ravel(), minlength=total).astype(dtype)
        return hist.reshape(2, n_members, n_sets, n_bins)
    base_idx = _bin_index(plan.base_rows, cls * (n_sets * n_bins) + n_seq, membership, columns,
                          2 * n_sets * n_bins)
    base = np.bincount(base_idx.ravel(), minlength=2 * n_sets * n_bins).reshape(2, 1, n_sets, n_bins)
    hist = np.empty((2, n_members, n_sets, n_bins), dtype=dtype)
    hist[...] = base
    if plan.rounds:
        flat = hist.reshape(-1)
        added = _bin_index(plan.add_rows, pair_offset, membership, columns, total)
        removed = _bin_index(plan.base_rows[plan.pair_patient], pair_offset, membership, columns, total)
        for pairs in plan.rounds:               # within a round no two bins coincide
            flat[added[pairs]] += 1
            flat[removed[pairs]] -= 1
    return hist


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
class CombinationSearch(ConfusionRates):
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
    def auc(self) -> np.ndarray:
        return self.twice_u / (2 * self.n_positive * self.n_negative)

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

    def median_auc(self, positions=None) -> np.ndarray:
        """Median over the members of each set's AUC (the paper's summary; ``mean_auc`` is the mean), as
        fractions; ``positions``: the set columns (default every set)."""
        twice_u = self.twice_u if positions is None else self.twice_u[:, positions]
        return np.median(twice_u, axis=0) / (2 * self.n_positive * self.n_negative)

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
               "auc": float(self.mean_auc[best].mean()),
               "auc_median": float(self.median_auc(best).mean())}
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
                   "coverage_percent": 100.0 * float(self.coverage[k]) / self.n_patients}
            for name, values in means.items():
                row[f"{name}_percent"] = 100.0 * float(values[k])
            row["auc_median_percent"] = 100.0 * float(self.median_auc([k])[0])
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

def _chunk_size(plan: _CountPlan, n_members: int, n_patients: int, n_bins: int) -> int:
    """Sets per chunk: a power of two near CHUNK_CELLS / (rows counted + histogram cells) per set."""
    rows = n_members * n_patients if plan.base_rows is None else n_patients + 2 * plan.pair_member.size
    per_set = rows + 2 * n_members * n_bins
    return int(np.clip(2 ** round(np.log2(CHUNK_CELLS / per_set)), 64, 4096))


def evaluate_subsets(calls, truth, masks=None, *, codes: Sequence[str] = SEQUENCE_CODES,
                     folds=None, honest_top: int = 10, chunk_size: int | None = None) -> CombinationSearch:
    """Evaluate the given sets (masks, default: all non-empty sets) for every member.

    calls ``(M, P, S)`` in {-1, 0, +1}; truth ``(P,)`` (bool / 0-1 / ±1 / class names, sarcoma positive);
    masks ``(K,)`` ints; codes: the S sequence codes (canonical order). With ``folds`` ``(P,)`` (each
    patient's cross-validation fold), the ``honest_top`` best sets also get the cross-validated-threshold
    figures (``CombinationSearch.honest``). ``chunk_size``: sets per chunk (default: sized to the work,
    256 to 1,024 for the paper's size); it changes memory and speed, never the result.
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
    if chunk_size is not None and chunk_size < 1:
        raise ValueError("chunk_size: must be at least 1")
    n_members, n_sets = array.shape[0], masks.size
    sizes = subset_sizes(masks)
    available = (array[0] != 0).astype(np.float32)
    plan = _count_plan(array, positive)
    if chunk_size is None:
        chunk_size = _chunk_size(plan, n_members, array.shape[1], 2 * n_seq + 1)

    threshold = np.empty((n_members, n_sets), dtype=np.int8)
    tp = np.empty((n_members, n_sets), dtype=np.int32)
    tn = np.empty((n_members, n_sets), dtype=np.int32)
    twice_u = np.empty((n_members, n_sets), dtype=np.int64)
    coverage = np.empty(n_sets, dtype=np.int64)
    # The products are small (≤ M·P × 17 × chunk): BLAS threads cost more than they give, and on a busy
    # machine they spin; measured 2-5x slower with them. threadpoolctl comes with scikit-learn.
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        for start in range(0, n_sets, chunk_size):
            part = slice(start, min(start + chunk_size, n_sets))
            membership = membership_matrix(masks[part], n_seq)
            neg, pos = _chunk_histograms(array, positive, plan, membership)
            threshold[:, part], tp[:, part], tn[:, part] = best_thresholds(
                pos, neg, max_score=n_seq, set_size=sizes[part][None, :], n_positive=n_pos, n_negative=n_neg)
            twice_u[:, part] = twice_mann_whitney(pos, neg, n_negative=n_neg)
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
                        honest_top: int = 10, chunk_size: int | None = None) -> CombinationSearch:
    """The full METHOD §8 search: all ``2**S - 1`` non-empty sets (32,767 for the 15 codes)."""
    return evaluate_subsets(calls, truth, None, codes=codes, folds=folds, honest_top=honest_top,
                            chunk_size=chunk_size)


def set_calls(calls, search: CombinationSearch, masks) -> tuple[np.ndarray, np.ndarray]:
    """The patient calls behind some sets' figures in ``search``: each member's §7.4 threshold applied to
    the set's patient scores.

    ``calls`` ``(M, P, S)`` as given to the search; ``masks`` ``(k,)``. Returns ``(calls (k, M, P) bool,
    scores (k, M, P) int)``: a call is True (sarcoma) where the score reaches the member's threshold, so
    ``calls[i].sum(axis=-1)`` over sarcomas is ``search.tp`` of set i. Feed ``inference.nested.
    metrics_with_intervals`` for the sets' confidence intervals.
    """
    masks = np.asarray(masks, dtype=np.int64).ravel()
    array = np.asarray(calls).astype(np.int64)
    membership = membership_matrix(masks, array.shape[2], dtype=np.int64)
    scores = np.moveaxis(array @ membership, -1, 0)                              # (k, M, P)
    threshold = np.stack([search.thresholds_for(int(m)) for m in masks])         # (k, M)
    return scores >= threshold[:, :, None], scores


def honest_set_calls(calls, search: CombinationSearch, folds) -> tuple[np.ndarray, np.ndarray]:
    """The patient calls behind ``search.honest``: each patient called with the threshold its member chose on
    the other folds (``inference.thresholds.cross_validated_threshold``).

    ``calls`` ``(M, P, S)`` and ``folds`` ``(P,)`` as given to the search. Returns ``(masks (T,), calls
    (T, M, P) bool)`` for the T sets that have honest figures (none without ``search.honest``), so that
    ``calls[i][:, truth].sum(axis=-1)`` is ``search.honest.tp[:, i]``.
    """
    array = np.asarray(calls).astype(np.int64)
    if search.honest is None:
        return np.zeros(0, dtype=np.int64), np.zeros((0, *array.shape[:2]), dtype=bool)
    fold_arr = np.asarray(folds)
    row = np.searchsorted(np.unique(fold_arr), fold_arr)                        # (P,) fold axis of each patient
    masks = search.honest.masks
    scores = np.moveaxis(array @ membership_matrix(masks, array.shape[2], dtype=np.int64), -1, 0)   # (T, M, P)
    per_patient = search.honest.fold_threshold[:, :, row]                      # (M, T, P)
    return masks, scores >= np.moveaxis(per_patient, 1, 0)


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
