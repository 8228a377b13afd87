"""Section-10 metrics on small hand-computed examples (sarcoma positive)."""

from __future__ import annotations

import numpy as np
import pytest

from core import metrics
from core.constants import LEIOMYOMA, SARCOMA

# 4 sarcomas, 6 leiomyomas. Calls: 3 of 4 sarcomas caught (TP 3, FN 1); 5 of 6 leiomyomas right (TN 5, FP 1).
TRUTH = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
CALLS = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 1])


def test_confusion_counts_by_hand():
    counts = metrics.confusion_counts(TRUTH, CALLS)
    assert (counts.tp, counts.fn, counts.tn, counts.fp) == (3, 1, 5, 1)
    assert (counts.n_positive, counts.n_negative, counts.n) == (4, 6, 10)


def test_binary_metrics_by_hand():
    m = metrics.binary_metrics(TRUTH, CALLS)
    assert m.accuracy == pytest.approx(8 / 10)
    assert m.sensitivity == pytest.approx(3 / 4)
    assert m.specificity == pytest.approx(5 / 6)
    assert m.ss_avg == pytest.approx((3 / 4 + 5 / 6) / 2)


@pytest.mark.parametrize(("sens", "spec", "ss_avg"),
                         [(71.0, 93.8, 82.4), (47.6, 91.5, 69.55), (89.8, 91.7, 90.75)])
def test_ss_avg_reproduces_paper_table2(sens, spec, ss_avg):
    counts = metrics.ConfusionCounts(tp=round(sens * 10), fn=1000 - round(sens * 10), tn=round(spec * 10),
                                     fp=1000 - round(spec * 10))
    assert 100 * metrics.ss_avg(counts) == pytest.approx(ss_avg, abs=1e-9)


def test_class_names_bool_and_plus_minus_one_encodings_agree():
    names = np.where(TRUTH == 1, SARCOMA, LEIOMYOMA)
    plus_minus = np.where(CALLS == 1, 1, -1)
    expected = metrics.confusion_counts(TRUTH, CALLS)
    assert metrics.confusion_counts(names, plus_minus) == expected
    assert metrics.confusion_counts(TRUTH.astype(bool), CALLS.astype(bool)) == expected


@pytest.mark.parametrize(("truth", "message"), [
    ([0, 0, 0], "no sarcoma"),
    ([1, 1, 1], "no leiomyoma"),
])
def test_a_missing_class_is_a_clear_error(truth, message):
    with pytest.raises(metrics.EmptyClassError, match=message):
        metrics.binary_metrics(truth, [1, 0, 1])
    with pytest.raises(metrics.EmptyClassError, match=message):
        metrics.roc_auc(truth, [0.2, 0.5, 0.9])


def test_no_cases_is_a_clear_error():
    with pytest.raises(metrics.EmptyClassError, match="no cases"):
        metrics.accuracy(metrics.confusion_counts([], []))


@pytest.mark.parametrize(("values", "message"), [
    ([0, 1, 2], "not a binary encoding"),
    (["sarcoma", "fibroid"], "unknown class label"),
    ([[0, 1]], "1-D"),
])
def test_bad_labels_are_rejected(values, message):
    with pytest.raises(ValueError, match=message):
        metrics.positive_mask(values, name="truth")


def test_mismatched_lengths_are_rejected():
    with pytest.raises(ValueError, match="truth has 10 cases but calls has 3"):
        metrics.confusion_counts(TRUTH, [1, 0, 1])


def test_roc_auc_by_hand_with_a_tie():
    # sarcomas score 0.9, 0.6, 0.4; leiomyomas 0.6, 0.3. Pairs: (0.9>0.6) 1, (0.9>0.3) 1, (0.6=0.6) 1/2,
    # (0.6>0.3) 1, (0.4<0.6) 0, (0.4>0.3) 1 -> 4.5 / 6.
    truth = [1, 1, 1, 0, 0]
    scores = [0.9, 0.6, 0.4, 0.6, 0.3]
    assert metrics.roc_auc(truth, scores) == pytest.approx(4.5 / 6)
    curve = metrics.roc_curve(truth, scores)
    assert curve.auc == pytest.approx(4.5 / 6)
    assert np.trapezoid(curve.tpr, curve.fpr) == pytest.approx(4.5 / 6)
    assert (curve.fpr[0], curve.tpr[0], curve.fpr[-1], curve.tpr[-1]) == (0, 0, 1, 1)


def test_roc_rejects_non_finite_scores():
    with pytest.raises(ValueError, match="NaN or infinite"):
        metrics.roc_auc([1, 0], [0.5, np.nan])


# --- the vectorised rates (inference's threshold choice and combination search) ------------------------
class _Counts(metrics.ConfusionRates):
    def __init__(self, tp, tn, n_positive, n_negative):
        self.tp, self.tn, self.n_positive, self.n_negative = tp, tn, n_positive, n_negative


def test_vectorised_rates_equal_the_scalar_functions_for_every_entry():
    rng = np.random.default_rng(3)
    n_pos, n_neg = 7, 19
    tp, tn = rng.integers(0, n_pos + 1, size=(4, 5)), rng.integers(0, n_neg + 1, size=(4, 5))
    rates = _Counts(tp, tn, n_pos, n_neg)
    for i, j in np.ndindex(tp.shape):
        counts = metrics.ConfusionCounts(tp=int(tp[i, j]), fn=n_pos - int(tp[i, j]), tn=int(tn[i, j]),
                                         fp=n_neg - int(tn[i, j]))
        assert rates.sensitivity[i, j] == metrics.sensitivity(counts)
        assert rates.specificity[i, j] == metrics.specificity(counts)
        assert rates.accuracy[i, j] == metrics.accuracy(counts)
        assert rates.ss_avg[i, j] == pytest.approx(metrics.ss_avg(counts), abs=1e-15)


def test_int16_counts_do_not_overflow():
    n = 30_000                                   # tp * n_negative is far beyond int16
    rates = _Counts(np.array([n], dtype=np.int16), np.array([n], dtype=np.int16), n, n)
    assert rates.ss_avg.tolist() == [1.0] and rates.accuracy.tolist() == [1.0]
