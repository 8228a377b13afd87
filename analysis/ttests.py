"""Two-sided t-tests of reader metrics (METHOD.md §12). No Django import.

The paper writes "Welch's t-test for equal variance and Student's t-test for unequal variance"; that is
inverted. Here, as in every textbook and in SciPy:

* **Student's t-test** (:func:`student_t_test`) pools the two groups' variances: it *assumes equal
  variances* (``scipy.stats.ttest_ind(equal_var=True)``), df = n_a + n_b - 2.
* **Welch's t-test** (:func:`welch_t_test`) does *not* assume equal variances
  (``equal_var=False``), Welch-Satterthwaite df.
* **Paired t-test** (:func:`paired_t_test`) compares two measurements of the same readers (exam 1 vs
  exam 2), ``scipy.stats.ttest_rel``, df = n - 1.

Every result names the test that produced it, so a table can never mislabel them again.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

STUDENT = "student"
WELCH = "welch"
PAIRED = "paired"

TEST_NAMES = {
    STUDENT: "Student's t-test (pooled variance, assumes equal variances)",
    WELCH: "Welch's t-test (unequal variances, Welch-Satterthwaite df)",
    PAIRED: "Paired t-test (same readers measured twice)",
}


@dataclass(frozen=True)
class TTestResult:
    """One two-sided t-test of mean(a) - mean(b); the CI is for that difference at ``confidence``."""

    test: str            # STUDENT, WELCH or PAIRED
    name: str            # human-readable, from TEST_NAMES
    statistic: float     # t
    df: float
    p: float             # two-sided
    mean_a: float
    mean_b: float
    mean_difference: float  # mean(a) - mean(b); for paired tests the mean of a - b
    ci_lo: float
    ci_hi: float
    confidence: float
    n_a: int
    n_b: int


def _sample(values, name: str, minimum: int = 2) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array of one value per reader, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: contains NaN or infinite values")
    if array.size < minimum:
        raise ValueError(f"{name}: a t-test needs at least {minimum} values, got {array.size}")
    return array


def _result(test: str, res, a: np.ndarray, b: np.ndarray, confidence: float) -> TTestResult:
    ci = res.confidence_interval(confidence_level=confidence)
    if test == PAIRED:
        difference = float(np.mean(a - b))
    else:
        difference = float(np.mean(a) - np.mean(b))
    return TTestResult(
        test=test, name=TEST_NAMES[test], statistic=float(res.statistic), df=float(res.df),
        p=float(res.pvalue), mean_a=float(np.mean(a)), mean_b=float(np.mean(b)),
        mean_difference=difference, ci_lo=float(ci.low), ci_hi=float(ci.high), confidence=confidence,
        n_a=int(a.size), n_b=int(b.size),
    )


def student_t_test(a, b, *, confidence: float = 0.95) -> TTestResult:
    """Student's two-sample t-test, pooled variance (equal variances assumed); a, b: one value per reader."""
    a, b = _sample(a, "group a"), _sample(b, "group b")
    return _result(STUDENT, stats.ttest_ind(a, b, equal_var=True), a, b, confidence)


def welch_t_test(a, b, *, confidence: float = 0.95) -> TTestResult:
    """Welch's two-sample t-test (unequal variances allowed); a, b: one value per reader."""
    a, b = _sample(a, "group a"), _sample(b, "group b")
    return _result(WELCH, stats.ttest_ind(a, b, equal_var=False), a, b, confidence)


def paired_t_test(a, b, *, confidence: float = 0.95) -> TTestResult:
    """Paired t-test of a[i] - b[i] (e.g. exam 1 vs exam 2 of reader i); a and b in the same reader order."""
    a, b = _sample(a, "first measurement"), _sample(b, "second measurement")
    if a.shape != b.shape:
        raise ValueError(f"paired t-test: {a.size} first and {b.size} second measurements; "
                         "each reader needs both")
    return _result(PAIRED, stats.ttest_rel(a, b), a, b, confidence)


def compare_groups(a, b, *, confidence: float = 0.95) -> tuple[TTestResult, TTestResult]:
    """Both independent-group tests METHOD §12 reports: (Student's, Welch's)."""
    return student_t_test(a, b, confidence=confidence), welch_t_test(a, b, confidence=confidence)
