"""Diagnostic-accuracy metrics of sarcoma calls (METHOD.md §10). No Django import.

Sarcoma is the positive class everywhere. Truth and calls are 1-D arrays of one value per case (patient);
see :func:`positive_mask` for the encodings accepted. Results are plain fractions in [0, 1] (not %).

    Accuracy    = (TP + TN) / (TP + TN + FP + FN)
    Sensitivity = TP / (TP + FN)
    Specificity = TN / (TN + FP)
    SS-Avg      = (Sensitivity + Specificity) / 2

A metric whose denominator is empty (e.g. sensitivity of a set without any sarcoma) is undefined; it raises
:class:`EmptyClassError` rather than returning NaN, so a missing class cannot slip silently into a table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.constants import LEIOMYOMA, SARCOMA


class EmptyClassError(ValueError):
    """A metric needs cases of a class (sarcoma or leiomyoma) that the input does not contain."""


def positive_mask(values, *, name: str = "values") -> np.ndarray:
    """Return a bool array, True where ``values`` means sarcoma (positive).

    Accepted encodings, one per array: bool; numbers in {0, 1} (1 = sarcoma); numbers in {-1, +1}
    (+1 = sarcoma); the class names ``"sarcoma"`` / ``"leiomyoma"`` of ``core.constants``.
    ``name`` (e.g. "truth", "calls") is used in error messages.
    """
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of one value per case, got shape {array.shape}")
    if array.dtype == bool:
        return array.copy()
    if array.dtype.kind in "USO":
        labels = set(array.tolist())
        unknown = labels - {SARCOMA, LEIOMYOMA}
        if unknown:
            raise ValueError(f"{name}: unknown class label(s) {sorted(map(str, unknown))}; "
                             f"expected {SARCOMA!r} or {LEIOMYOMA!r}")
        return array == SARCOMA
    if array.dtype.kind in "iuf":
        present = set(np.unique(array).tolist())
        if present <= {0, 1}:
            return array == 1
        if present <= {-1, 1}:
            return array == 1
        raise ValueError(f"{name}: values {sorted(present)[:6]} are not a binary encoding "
                         "(use bool, 0/1, -1/+1 or class names)")
    raise ValueError(f"{name}: unsupported dtype {array.dtype}")


@dataclass(frozen=True)
class ConfusionCounts:
    """Case counts of a 2 x 2 table, sarcoma positive."""

    tp: int
    fn: int
    tn: int
    fp: int

    @property
    def n_positive(self) -> int:
        return self.tp + self.fn

    @property
    def n_negative(self) -> int:
        return self.tn + self.fp

    @property
    def n(self) -> int:
        return self.n_positive + self.n_negative


def confusion_counts(truth, calls) -> ConfusionCounts:
    """Count TP, FN, TN, FP of ``calls`` against ``truth`` (both 1-D, one value per case)."""
    truth_pos = positive_mask(truth, name="truth")
    call_pos = positive_mask(calls, name="calls")
    if truth_pos.shape != call_pos.shape:
        raise ValueError(f"truth has {truth_pos.size} cases but calls has {call_pos.size}")
    return ConfusionCounts(
        tp=int(np.sum(truth_pos & call_pos)),
        fn=int(np.sum(truth_pos & ~call_pos)),
        tn=int(np.sum(~truth_pos & ~call_pos)),
        fp=int(np.sum(~truth_pos & call_pos)),
    )


def accuracy(counts: ConfusionCounts) -> float:
    """(TP + TN) / all cases."""
    if counts.n == 0:
        raise EmptyClassError("accuracy is undefined: there are no cases")
    return (counts.tp + counts.tn) / counts.n


def sensitivity(counts: ConfusionCounts) -> float:
    """TP / (TP + FN): the fraction of sarcomas called sarcoma."""
    if counts.n_positive == 0:
        raise EmptyClassError("sensitivity is undefined: there are no sarcoma (positive) cases")
    return counts.tp / counts.n_positive


def specificity(counts: ConfusionCounts) -> float:
    """TN / (TN + FP): the fraction of leiomyomas called leiomyoma."""
    if counts.n_negative == 0:
        raise EmptyClassError("specificity is undefined: there are no leiomyoma (negative) cases")
    return counts.tn / counts.n_negative


def ss_avg(counts: ConfusionCounts) -> float:
    """(Sensitivity + Specificity) / 2, the paper's SS-Avg."""
    return (sensitivity(counts) + specificity(counts)) / 2


class ConfusionRates:
    """The section-10 fractions, vectorised: for any object with ``tp`` and ``tn`` (ints, or integer arrays of any
    shape — one per threshold, member or sequence set) and the class sizes ``n_positive`` and ``n_negative``.
    Counts are widened to int64 first, so int16 count arrays never overflow. Used by the threshold choice and
    the combination search (inference); the scalar functions above serve single sets of calls."""

    def _counts(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.tp, dtype=np.int64), np.asarray(self.tn, dtype=np.int64)

    @property
    def sensitivity(self) -> np.ndarray:
        return self._counts()[0] / self.n_positive

    @property
    def specificity(self) -> np.ndarray:
        return self._counts()[1] / self.n_negative

    def _twice_ss_numerator(self) -> np.ndarray:
        """2 · n+ · n- · SS-Avg as an integer (summed over members by the combination search)."""
        tp, tn = self._counts()
        return tp * self.n_negative + tn * self.n_positive

    @property
    def ss_avg(self) -> np.ndarray:
        """(sensitivity + specificity) / 2 from integers: equal counts give bit-equal figures."""
        return self._twice_ss_numerator() / (2 * self.n_positive * self.n_negative)

    @property
    def accuracy(self) -> np.ndarray:
        tp, tn = self._counts()
        return (tp + tn) / (self.n_positive + self.n_negative)


@dataclass(frozen=True)
class BinaryMetrics:
    """The section-10 metrics of one set of calls; fractions in [0, 1]."""

    counts: ConfusionCounts
    accuracy: float
    sensitivity: float
    specificity: float
    ss_avg: float


def binary_metrics(truth, calls) -> BinaryMetrics:
    """All section-10 metrics of ``calls`` (1-D, one per case) against ``truth``; both classes must occur."""
    counts = confusion_counts(truth, calls)
    sens, spec = sensitivity(counts), specificity(counts)
    return BinaryMetrics(counts=counts, accuracy=accuracy(counts), sensitivity=sens, specificity=spec,
                         ss_avg=(sens + spec) / 2)


@dataclass(frozen=True)
class RocCurve:
    """Empirical ROC curve: ``fpr``, ``tpr`` and ``thresholds`` have one entry per operating point."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auc: float


def _scores_and_truth(truth, scores) -> tuple[np.ndarray, np.ndarray]:
    truth_pos = positive_mask(truth, name="truth")
    score = np.asarray(scores, dtype=float)
    if score.shape != truth_pos.shape:
        raise ValueError(f"truth has {truth_pos.size} cases but scores has shape {score.shape}")
    if not np.all(np.isfinite(score)):
        raise ValueError("scores: contains NaN or infinite values")
    if not truth_pos.any():
        raise EmptyClassError("ROC/AUC is undefined: there are no sarcoma (positive) cases")
    if truth_pos.all():
        raise EmptyClassError("ROC/AUC is undefined: there are no leiomyoma (negative) cases")
    return truth_pos, score


def roc_auc(truth, scores) -> float:
    """Empirical (trapezoidal) AUC; ``scores`` are higher for more sarcoma-like cases (e.g. likelihood %).

    Ties between a sarcoma and a leiomyoma count 1/2 (the Wilcoxon-Mann-Whitney statistic).
    """
    from sklearn.metrics import roc_auc_score

    truth_pos, score = _scores_and_truth(truth, scores)
    return float(roc_auc_score(truth_pos, score))


def roc_curve(truth, scores) -> RocCurve:
    """Empirical ROC curve and its AUC (scikit-learn), sarcoma positive; all operating points kept."""
    from sklearn.metrics import roc_auc_score
    from sklearn.metrics import roc_curve as sk_roc_curve

    truth_pos, score = _scores_and_truth(truth, scores)
    fpr, tpr, thresholds = sk_roc_curve(truth_pos, score, drop_intermediate=False)
    return RocCurve(fpr=fpr, tpr=tpr, thresholds=thresholds, auc=float(roc_auc_score(truth_pos, score)))


# --------------------------------------------------------------------------------------------------
# The DNN's call on one case and when it is wrong: ONE definition for every table, map and export
# --------------------------------------------------------------------------------------------------

AI_CALL_PERCENT = 50.0   # the DNN calls sarcoma when at least this % of the ensembles call sarcoma

AI_WRONG_DEFINITION = (
    "The DNN calls a case sarcoma when its sarcoma likelihood is ≥ 50 % (at least half of the ensembles call "
    "sarcoma), otherwise leiomyoma; the DNN is wrong on a case when that call differs from the truth. "
    "For every likelihood but exactly 50 % this is “more than half of the ensembles wrong” (METHOD §12); "
    "at exactly 50 % the tie goes to sarcoma, as for a sequence's call (METHOD §7), so a leiomyoma at 50 % "
    "is wrong and a sarcoma at 50 % is right."
)


def ai_call(likelihood_percent: float) -> str:
    """The DNN's call on a case from its sarcoma likelihood (% of the ensembles calling sarcoma, 0-100)."""
    return SARCOMA if likelihood_percent >= AI_CALL_PERCENT else LEIOMYOMA


def ai_wrong(likelihood_percent: float | None, truth: str | None) -> bool | None:
    """True when the DNN's call (:func:`ai_call`) differs from ``truth`` (``"sarcoma"`` / ``"leiomyoma"``).

    None without a likelihood or without a truth. See :data:`AI_WRONG_DEFINITION` for why a tie at 50 %
    is a sarcoma call: the same rule then gives the confusion table, the misdiagnosis maps and the exports.
    """
    if likelihood_percent is None or not truth:
        return None
    if truth not in (SARCOMA, LEIOMYOMA):
        raise ValueError(f"truth: unknown class label {truth!r}; expected {SARCOMA!r} or {LEIOMYOMA!r}")
    return ai_call(likelihood_percent) != truth
