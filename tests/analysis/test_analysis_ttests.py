"""t-tests: SciPy agreement, hand computation, and the test names METHOD §12 insists on."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis import ttests

# SS-Avg (%) of specialists and practitioners (synthetic values, for the arithmetic only).
SPECIALISTS = np.array([84.0, 80.5, 82.7])
PRACTITIONERS = np.array([72.1, 65.0, 71.4, 69.9])


def test_student_is_the_pooled_equal_variance_test():
    res = ttests.student_t_test(SPECIALISTS, PRACTITIONERS)
    ref = stats.ttest_ind(SPECIALISTS, PRACTITIONERS, equal_var=True)
    assert res.test == ttests.STUDENT and "equal variances" in res.name
    assert (res.statistic, res.p) == pytest.approx((ref.statistic, ref.pvalue))
    assert res.df == 3 + 4 - 2
    # by hand: pooled variance and t
    a, b = SPECIALISTS, PRACTITIONERS
    sp2 = ((a.size - 1) * a.var(ddof=1) + (b.size - 1) * b.var(ddof=1)) / (a.size + b.size - 2)
    t = (a.mean() - b.mean()) / np.sqrt(sp2 * (1 / a.size + 1 / b.size))
    assert res.statistic == pytest.approx(t)
    half = stats.t.ppf(0.975, 5) * np.sqrt(sp2 * (1 / a.size + 1 / b.size))
    assert (res.ci_lo, res.ci_hi) == pytest.approx((a.mean() - b.mean() - half, a.mean() - b.mean() + half))


def test_welch_does_not_assume_equal_variances():
    res = ttests.welch_t_test(SPECIALISTS, PRACTITIONERS)
    ref = stats.ttest_ind(SPECIALISTS, PRACTITIONERS, equal_var=False)
    assert res.test == ttests.WELCH and "unequal variances" in res.name
    assert (res.statistic, res.p) == pytest.approx((ref.statistic, ref.pvalue))
    va, vb = SPECIALISTS.var(ddof=1) / 3, PRACTITIONERS.var(ddof=1) / 4
    assert res.df == pytest.approx((va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 3))   # Welch-Satterthwaite
    assert res.df != pytest.approx(5.0)


def test_paired_test_uses_the_differences_of_the_same_readers():
    exam1 = np.array([70.0, 65.5, 80.1, 60.2, 75.0, 68.8])
    exam2 = np.array([78.2, 70.0, 83.3, 72.5, 79.9, 70.1])
    res = ttests.paired_t_test(exam1, exam2)
    ref = stats.ttest_rel(exam1, exam2)
    d = exam1 - exam2
    assert res.test == ttests.PAIRED
    assert (res.statistic, res.p, res.df) == pytest.approx((ref.statistic, ref.pvalue, 5))
    assert res.statistic == pytest.approx(d.mean() / (d.std(ddof=1) / np.sqrt(d.size)))
    assert res.mean_difference == pytest.approx(d.mean())
    assert res.ci_lo < res.mean_difference < res.ci_hi < 0


def test_compare_groups_reports_both_tests_in_a_fixed_order():
    student, welch = ttests.compare_groups(SPECIALISTS, PRACTITIONERS)
    assert (student.test, welch.test) == (ttests.STUDENT, ttests.WELCH)
    assert student.mean_difference == pytest.approx(welch.mean_difference)
    assert student.p != pytest.approx(welch.p)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: ttests.student_t_test([1.0], [2.0, 3.0]), "at least 2"),
    (lambda: ttests.welch_t_test([1.0, np.nan], [2.0, 3.0]), "NaN"),
    (lambda: ttests.paired_t_test([1.0, 2.0, 3.0], [2.0, 3.0]), "each reader needs both"),
])
def test_bad_samples_are_rejected_with_a_reason(call, message):
    with pytest.raises(ValueError, match=message):
        call()
