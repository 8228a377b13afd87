"""Confidence intervals of the statistics (issue 14, item 3) and the DNN row's likelihood source (item 4), on
the GENERATED study of factories_analysis as plain records (SYNTHETIC; no database)."""

from dataclasses import replace

import numpy as np
import pytest
from scipy import stats as sp_stats

from analysis import mrmc, study_stats
from core import intervals
from core.constants import LEIOMYOMA, SARCOMA
from factories_analysis import AI_LIKELIHOOD, CONFIDENCE, TRUTH, plain_records

# nested (out-of-sample) likelihoods for the six cases: case 2 drops below 50 %, case 5 too (see the comments)
NESTED = (91.67, 45.83, 41.67, 8.33, 33.33, 12.5)    # DNN calls S L L L L L -> TP1 FN2 TN3 FP0


def _with_nested(cases, nested=NESTED, only=None):
    return [replace(c, nested_likelihood=x) if only is None or i in only else c
            for i, (c, x) in enumerate(zip(cases, nested, strict=True))]


@pytest.fixture(scope="module")
def stats():
    return study_stats.compute(*plain_records())


def test_each_reader_exam_carries_the_core_intervals_of_its_answers(stats):
    truth = np.array([t == SARCOMA for t in TRUTH])
    for code, exam in (("R01", 1), ("R02", 2), ("R04", 1)):
        conf = np.array(CONFIDENCE[(code, exam)], dtype=float)
        correct = (conf >= 50) == truth
        got = stats.reader_exam(code, exam).intervals
        assert got["sensitivity"] == intervals.wilson(int(correct[truth].sum()), int(truth.sum()))
        assert got["specificity"] == intervals.wilson(int(correct[~truth].sum()), int((~truth).sum()))
        assert got["accuracy"] == intervals.wilson(int(correct.sum()), truth.size)
        assert got["auc"] == intervals.delong_auc(conf, truth)
        ss_avg = got["ss_avg"]
        assert (ss_avg.resamples, ss_avg.seed) == (study_stats.BOOTSTRAP_RESAMPLES, study_stats.BOOTSTRAP_SEED)
        assert ss_avg.resamples >= 2000
        assert ss_avg.estimate == pytest.approx(stats.reader_exam(code, exam).values["ss_avg"])
        assert ss_avg.low <= ss_avg.estimate <= ss_avg.high and ss_avg.low < ss_avg.high


def test_the_ss_avg_bootstrap_resamples_patients_within_each_class_with_a_fixed_seed():
    truth = np.array([t == SARCOMA for t in TRUTH])
    conf = np.array(CONFIDENCE[("R01", 1)], dtype=float)
    correct = (conf >= 50) == truth
    weight = np.where(truth, 0.5 / truth.sum(), 0.5 / (~truth).sum())
    expected = intervals.bootstrap(lambda idx: (weight[idx] * correct[idx]).sum(axis=1), truth.size,
                                   resamples=2000, seed=study_stats.BOOTSTRAP_SEED, strata=truth)
    first = study_stats.compute(*plain_records()).reader_exam("R01", 1).intervals["ss_avg"]
    again = study_stats.compute(*plain_records()).reader_exam("R01", 1).intervals["ss_avg"]
    assert first == again == expected


def test_an_incomplete_reader_gets_intervals_for_what_was_read_and_none_where_a_class_is_missing(stats):
    r05 = stats.reader_exam("R05", 1)                  # read cases 1-3: sarcomas only
    assert r05.intervals["sensitivity"] == intervals.wilson(2, 3)        # 70 S, 20 L, 90 S
    assert r05.intervals["specificity"] is None and r05.intervals["auc"] is None
    assert r05.intervals["ss_avg"] is None
    assert all(v is None for v in stats.reader_exam("R05", 2).intervals.values())


def test_a_group_interval_is_the_random_readers_random_cases_interval_of_mrmc_for_that_exam(stats):
    codes = ["R01", "R02", "R03", "R04"]
    truth = np.array([t == SARCOMA for t in TRUTH])
    conf = np.array([[CONFIDENCE[(c, e)] for c in codes] for e in (1, 2)], dtype=float)
    calls = (conf >= 50).astype(float)
    for metric, ratings in (("auc", conf), ("sensitivity", calls), ("specificity", calls)):
        direct = mrmc.analyse(ratings, truth, metric=metric, covariance="delong").obuchowski_rockette
        for i, exam in enumerate((1, 2)):
            single = direct.rrrc.modalities[i]
            got = stats.group(study_stats.ALL_READERS, exam).intervals[metric]
            assert got.estimate == pytest.approx(single.estimate)
            assert got.low == pytest.approx(max(0.0, single.ci_lo))
            assert got.high == pytest.approx(min(1.0, single.ci_hi))


def test_ss_avg_and_accuracy_group_intervals_combine_the_class_covariances():
    """By hand: each reader's SS-Avg is the mean of per-case terms over disjoint classes, so its DeLong
    covariance is (S_sens / n1 + S_spec / n0) / 4; accuracy weights the classes by n1/n and n0/n."""
    codes = ["R01", "R02", "R03", "R04"]
    truth = np.array([t == SARCOMA for t in TRUTH])
    calls = np.array([[c >= 50 for c in CONFIDENCE[(code, 2)]] for code in codes], dtype=float)
    n1, n0, r = int(truth.sum()), int((~truth).sum()), len(codes)
    s_sens = np.cov(calls[:, truth], ddof=1) / n1
    s_spec = np.cov(1 - calls[:, ~truth], ddof=1) / n0
    for metric, w1, w0 in (("ss_avg", 0.5, 0.5), ("accuracy", n1 / (n1 + n0), n0 / (n1 + n0))):
        fom = w1 * calls[:, truth].mean(axis=1) + w0 * (1 - calls[:, ~truth]).mean(axis=1)
        cov = w1 ** 2 * s_sens + w0 ** 2 * s_spec
        cov2 = cov[~np.eye(r, dtype=bool)].mean()
        msr = fom.var(ddof=1)
        den = msr + r * max(cov2, 0.0)
        df = den ** 2 / (msr ** 2 / (r - 1))
        half = sp_stats.t.ppf(0.975, df) * np.sqrt(den / r)
        got = study_stats.group_interval(calls, truth, metric)
        assert got.estimate == pytest.approx(fom.mean())
        assert (got.low, got.high) == pytest.approx((max(0.0, fom.mean() - half), min(1.0, fom.mean() + half)))


def test_a_group_mean_of_one_reader_has_no_interval():
    truth = np.array([t == SARCOMA for t in TRUTH])
    one = np.array([CONFIDENCE[("R01", 1)]], dtype=float)
    assert study_stats.group_interval(one, truth, "auc") is None


def test_the_dnn_row_without_nested_likelihoods_uses_the_in_sample_ones_and_says_so(stats):
    assert stats.dnn.source == "in-sample" and stats.dnn.sources == {study_stats.IN_SAMPLE: 6}
    truth = np.array([t == SARCOMA for t in TRUTH])
    likelihood = np.array(AI_LIKELIHOOD)
    assert stats.dnn.intervals["auc"] == intervals.delong_auc(likelihood, truth)
    assert stats.dnn.intervals["sensitivity"] == intervals.wilson(2, 3)


def test_the_dnn_row_uses_the_nested_likelihoods_and_says_so():
    readers, cases, reads = plain_records()
    stats = study_stats.compute(readers, _with_nested(cases), reads)
    dnn = stats.dnn
    assert dnn.source == "nested (out-of-sample)"
    assert (dnn.counts.tp, dnn.counts.fn, dnn.counts.tn, dnn.counts.fp) == (1, 2, 3, 0)
    truth = np.array([t == SARCOMA for t in TRUTH])
    assert dnn.values["auc"] == pytest.approx(intervals.delong_auc(np.array(NESTED), truth).estimate)
    assert dnn.intervals["auc"] == intervals.delong_auc(np.array(NESTED), truth)
    assert dnn.intervals["sensitivity"] == intervals.wilson(1, 3)
    assert dnn.intervals["specificity"] == intervals.wilson(3, 3)
    # case 2 (sarcoma at 45.83 % nested) is now missed by the DNN; case 5 (leiomyoma at 33.33 %) no longer is
    assert study_stats.dnn_wrong(stats.cases[1]) is True and study_stats.dnn_wrong(stats.cases[4]) is False
    exam1 = {c.case: c for c in stats.misdiagnosis[0].cases}
    assert exam1["case 002"].dnn_wrong and not exam1["case 005"].dnn_wrong
    assert exam1["case 002"].ai_likelihood == 45.83


def test_the_readers_vs_dnn_t_tests_use_the_same_dnn_row():
    readers, cases, reads = plain_records()
    stats = study_stats.compute(readers, _with_nested(cases), reads)
    for c in stats.comparisons:
        if c.kind == "vs_dnn" and c.tests:
            (test,) = c.tests
            assert test.test == study_stats.ONE_SAMPLE
            assert test.mean_b == pytest.approx(stats.dnn.values[c.metric])
            assert "nested (out-of-sample)" in c.note
    (spec_sens,) = next(c for c in stats.comparisons if (c.kind, c.metric, c.exam, c.group)
                        == ("vs_dnn", "sensitivity", 1, "specialist")).tests
    expected = sp_stats.ttest_1samp([2 / 3, 1 / 3], popmean=1 / 3)     # nested DNN sensitivity 1/3
    assert spec_sens.p == pytest.approx(expected.pvalue)


def test_a_partly_nested_row_says_how_many_of_each_and_new_cases_are_out_of_sample():
    readers, cases, reads = plain_records()
    mixed = _with_nested(cases, only={0, 1, 2, 3})
    assert study_stats.compute(readers, mixed, reads).dnn.source == "mixed: 4 nested, 2 in-sample"
    new = [replace(c, in_training_cohort=False, nested_likelihood=None) if i == 5 else c
           for i, c in enumerate(mixed)]
    dnn = study_stats.compute(readers, new, reads).dnn
    assert dnn.source == "mixed: 4 nested, 1 in-sample, 1 new (not in the training cohort)"
    assert new[5].dnn_source == study_stats.NEW_CASE and new[5].dnn_likelihood == AI_LIKELIHOOD[5]
    # a new case's likelihood is out-of-sample already: a nested value for it would be ignored
    assert replace(new[5], nested_likelihood=99.0).dnn_likelihood == AI_LIKELIHOOD[5]


def test_a_case_without_an_ai_result_has_no_source_and_stays_out_of_the_dnn_row():
    case = study_stats.CaseInfo("case 001", LEIOMYOMA)
    assert case.dnn_source is None and case.dnn_likelihood is None
    readers, cases, reads = plain_records()
    cases[0] = replace(cases[0], ai_likelihood=None)
    dnn = study_stats.compute(readers, cases, reads).dnn
    assert (dnn.n_cases, dnn.n_without_ai) == (5, 1)


def test_a_nested_likelihood_outside_0_to_100_is_refused_by_name():
    readers, cases, reads = plain_records()
    cases[2] = replace(cases[2], nested_likelihood=104.2)
    with pytest.raises(ValueError, match="case 003.*nested likelihood 104.2 is not in 0-100"):
        study_stats.compute(readers, cases, reads)
