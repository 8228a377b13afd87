"""analysis.study_stats on the GENERATED study of factories_analysis (no database): hand-computed answers."""

import math

import numpy as np
import pytest
from scipy import stats as sp_stats

from analysis import mrmc, study_stats
from analysis.study_stats import CaseInfo, ReaderInfo, ReadRecord
from factories_analysis import (
    CONFIDENCE,
    EXPECTED_DNN,
    EXPECTED_MISSED,
    EXPECTED_READERS,
    TRUTH,
    call_of,
    plain_records,
)

METRICS = study_stats.METRICS


@pytest.fixture(scope="module")
def stats():
    return study_stats.compute(*plain_records())


def _as_table_units(values: dict) -> tuple:
    return tuple(values[m] if m == "auc" else 100 * values[m] for m in METRICS)


def test_each_complete_reader_exam_has_the_hand_computed_metrics(stats):
    for (code, exam), expected in EXPECTED_READERS.items():
        row = stats.reader_exam(code, exam)
        assert row.complete and row.n_read == 6
        assert _as_table_units(row.values) == pytest.approx(expected, abs=1e-12), (code, exam)


def test_hand_counts_of_one_reader(stats):
    counts = stats.reader_exam("R01", 1).counts
    assert (counts.tp, counts.fn, counts.tn, counts.fp) == (2, 1, 1, 2)


def test_the_incomplete_reader_is_flagged_and_left_out_of_groups_paired_tests_and_mrmc(stats):
    r05 = stats.reader_exam("R05", 1)
    assert not r05.complete and r05.n_read == 3 and r05.state == "incomplete (3 of 6)"
    assert stats.reader_exam("R05", 2).state == "not started"
    assert "R05" not in stats.complete_readers[1]
    assert stats.readers_complete_both == ("R01", "R02", "R03", "R04")
    assert stats.group("practitioner", 1).readers == ("R03", "R04")
    assert all(m.readers == ("R01", "R02", "R03", "R04") for m in stats.mrmc)
    assert any("R05 (incomplete (3 of 6))" in note for note in stats.notes)
    assert any("MRMC use the 4 reader(s)" in note for note in stats.notes)
    # R05's partial metrics exist (3 sarcomas read: R05 called S, L, S) but stay out of the group means
    assert r05.values["sensitivity"] == pytest.approx(2 / 3)
    assert r05.values["specificity"] is None


def test_group_means_and_sample_sd_by_hand(stats):
    spec1 = stats.group("specialist", 1)
    # specialists exam 1: accuracy 50 and 66.67 -> mean 58.33, SD |diff| / sqrt(2) = 11.785
    assert 100 * spec1.mean["accuracy"] == pytest.approx(175 / 3)
    assert 100 * spec1.sd["accuracy"] == pytest.approx((50 / 3) / math.sqrt(2))
    # specificity 33.33 and 100 -> mean 66.67, SD 47.14
    assert 100 * spec1.sd["specificity"] == pytest.approx((200 / 3) / math.sqrt(2))
    prac2 = stats.group("practitioner", 2)
    assert 100 * prac2.mean["ss_avg"] == pytest.approx(75.0)
    assert 100 * prac2.sd["ss_avg"] == pytest.approx((50 / 3) / math.sqrt(2))
    assert stats.group("practitioner", 2).sd["auc"] == pytest.approx(0)
    everyone1 = stats.group("all", 1)
    assert everyone1.readers == ("R01", "R02", "R03", "R04")
    assert everyone1.mean["auc"] == pytest.approx((7 / 9 + 8.5 / 9 + 4 / 9 + 3 / 9) / 4)


def test_dnn_calls_sarcoma_at_50_percent_and_ranks_by_likelihood(stats):
    assert stats.dnn.n_cases == 6 and stats.dnn.n_without_ai == 0
    assert _as_table_units(stats.dnn.values) == pytest.approx(EXPECTED_DNN)
    counts = stats.dnn.counts
    assert (counts.tp, counts.fn, counts.tn, counts.fp) == (2, 1, 2, 1)


def _comparison(stats, kind, metric, exam=None, group=None):
    return next(c for c in stats.comparisons
                if c.kind == kind and c.metric == metric and c.exam == exam and c.group == group)


def test_paired_exam_test_of_all_readers_by_hand(stats):
    # SS-Avg exam 1 (50, 66.67, 50, 33.33) vs exam 2 (100, 66.67, 66.67, 83.33): differences
    # (-1/2, 0, -1/6, -1/2), mean -7/24, deviations (-5, 7, 3, -5)/24, SD sqrt(108/576/3) = 1/4,
    # t = (-7/24) / (1/4 / sqrt(4)) = -7/3 on 3 df
    (test,) = _comparison(stats, "exams", "ss_avg", group="all").tests
    assert test.test == "paired" and "Paired" in test.name
    assert test.mean_difference == pytest.approx(-7 / 24)
    assert test.df == 3
    assert test.statistic == pytest.approx(-7 / 3)
    assert test.p == pytest.approx(2 * sp_stats.t.sf(7 / 3, 3))


def test_group_comparison_reports_student_and_welch_by_name_and_agrees_with_scipy(stats):
    comparison = _comparison(stats, "groups", "auc", exam=1)
    student, welch = comparison.tests
    assert (student.test, welch.test) == ("student", "welch")
    assert "equal variances" in student.name and "unequal" in welch.name
    spec, prac = [7 / 9, 8.5 / 9], [4 / 9, 3 / 9]
    assert student.p == pytest.approx(sp_stats.ttest_ind(spec, prac, equal_var=True).pvalue)
    assert welch.p == pytest.approx(sp_stats.ttest_ind(spec, prac, equal_var=False).pvalue)
    assert student.df == 2


def test_groups_against_the_dnn_value_use_a_one_sample_test(stats):
    (test,) = _comparison(stats, "vs_dnn", "auc", exam=2, group="specialist").tests
    assert test.test == study_stats.ONE_SAMPLE and test.mean_b == pytest.approx(8 / 9)
    expected = sp_stats.ttest_1samp([1.0, 8 / 9], popmean=8 / 9)
    assert test.statistic == pytest.approx(expected.statistic) and test.p == pytest.approx(expected.pvalue)
    assert test.mean_difference == pytest.approx((1 + 8 / 9) / 2 - 8 / 9)


def test_mrmc_is_the_direct_analysis_of_confidence_and_calls():
    readers, cases, reads = plain_records()
    stats = study_stats.compute(readers, cases, reads)
    codes = ["R01", "R02", "R03", "R04"]
    conf = np.array([[CONFIDENCE[(c, e)] for c in codes] for e in (1, 2)], dtype=float)
    truth = np.array([t == "sarcoma" for t in TRUTH])
    direct = mrmc.analyse(conf, truth, metric="auc", covariance="delong")
    got = stats.mrmc_for("auc").analysis.obuchowski_rockette
    assert got.rrrc.statistic == pytest.approx(direct.obuchowski_rockette.rrrc.statistic)
    assert got.rrrc.p == pytest.approx(direct.obuchowski_rockette.rrrc.p)
    assert got.fom_mean == pytest.approx([(7 / 9 + 8.5 / 9 + 4 / 9 + 3 / 9) / 4, (1 + 8 / 9 * 3) / 4])
    calls = (conf >= 50).astype(float)
    sens = mrmc.analyse(calls, truth, metric="sensitivity")
    assert stats.mrmc_for("sensitivity").analysis.obuchowski_rockette.rrrc.p == pytest.approx(
        sens.obuchowski_rockette.rrrc.p)
    assert np.isfinite(sens.obuchowski_rockette.rrrc.p)
    assert stats.mrmc_for("sensitivity").analysis.obuchowski_rockette.fom_mean == pytest.approx(
        [(2 / 3 + 1 / 3 + 1 / 3 + 1 / 3) / 4, (1 + 2 / 3 + 2 / 3 + 1) / 4])
    assert stats.mrmc_for("specificity").analysis.obuchowski_rockette.fom_mean == pytest.approx(
        [(1 / 3 + 1 + 2 / 3 + 1 / 3) / 4, (1 + 2 / 3 * 3) / 4])


def test_mrmc_conclusions_are_plain_words_about_exam_2_relative_to_exam_1(stats):
    auc = stats.mrmc_for("auc")
    first, second = auc.analysis.obuchowski_rockette.fom_mean
    assert f"{first:.3f} unaided (exam 1)" in auc.conclusion
    assert f"{second:.3f} with the AI (exam 2)" in auc.conclusion
    p = auc.analysis.obuchowski_rockette.rrrc.p
    if p < 0.05:
        assert "significantly higher with the AI" in auc.conclusion
    else:
        assert "not significant" in auc.conclusion
        assert "readers like these on cases like these" in auc.conclusion


def test_conclusion_says_significant_for_a_large_consistent_gain():
    truth = np.array([1] * 8 + [0] * 8, dtype=bool)
    rng = np.random.default_rng(3)
    base = rng.uniform(0, 100, size=(5, 16))
    aided = np.where(truth, 60 + 0.4 * base, 0.4 * base)          # every reader separates perfectly
    ratings = np.stack([base, aided])
    result = mrmc.analyse(ratings, truth, metric="auc")
    text = study_stats.mrmc_conclusion("auc", result)
    assert result.obuchowski_rockette.rrrc.p < 0.05
    assert "significantly higher with the AI" in text and "other readers like these" in text


def test_conclusion_says_when_no_test_is_possible():
    truth = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    exam1 = np.array([[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]], dtype=float)
    exam2 = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=float)
    result = mrmc.analyse(np.stack([exam1, exam2]), truth, metric="sensitivity")   # every reader +1/3
    assert not np.isfinite(result.obuchowski_rockette.rrrc.p)
    text = study_stats.mrmc_conclusion("sensitivity", result)
    assert "change +33.3 points" in text and "No test is possible" in text


def test_misdiagnosis_by_hand(stats):
    for exam, expected in EXPECTED_MISSED.items():
        analysis = next(m for m in stats.misdiagnosis if m.exam == exam)
        got = {c.case: c.category for c in analysis.cases if c.category}
        assert got == expected
        assert analysis.readers == ("R01", "R02", "R03", "R04")
    exam1 = next(m for m in stats.misdiagnosis if m.exam == 1)
    assert exam1.counts["sarcoma"] == {"dnn_only": 0, "readers_only": 0, "both": 1}
    assert exam1.counts["leiomyoma"] == {"dnn_only": 1, "readers_only": 1, "both": 0}
    case4 = next(c for c in exam1.cases if c.case == "case 004")
    assert (case4.readers_wrong, case4.readers_total) == (3, 4)


def test_too_few_readers_gives_reasons_instead_of_tests():
    readers, cases, reads = plain_records()
    keep = {"R01", "R03"}
    stats = study_stats.compute([r for r in readers if r.code in keep], cases,
                                [r for r in reads if r.reader in keep])
    groups = _comparison(stats, "groups", "accuracy", exam=1)
    assert not groups.tests and "at least 2 complete readers per group" in groups.note
    paired = _comparison(stats, "exams", "accuracy", group="specialist")
    assert not paired.tests and "have 1" in paired.note
    assert _comparison(stats, "exams", "accuracy", group="all").tests      # R01 + R03 together
    assert stats.mrmc_for("auc").analysis is not None


def test_a_study_nobody_has_finished_computes_without_errors():
    readers, cases, reads = plain_records()
    stats = study_stats.compute(readers, cases, [r for r in reads if r.reader == "R05"])
    assert stats.complete_readers == {1: (), 2: ()}
    assert all(m.analysis is None and "at least 2 readers" in m.note for m in stats.mrmc)
    assert stats.group("all", 1).mean["accuracy"] is None


@pytest.mark.parametrize(("change", "message"), [
    (lambda rd, cs, rs: rs + [ReadRecord("R09", 1, "case 001", "sarcoma", 50)], "unknown reader"),
    (lambda rd, cs, rs: rs + [ReadRecord("R01", 1, "case 099", "sarcoma", 50)], "unknown case"),
    (lambda rd, cs, rs: rs + [rs[0]], "read twice"),
    (lambda rd, cs, rs: rs + [ReadRecord("R05", 1, "case 006", "maybe", 50)], "call 'maybe'"),
    (lambda rd, cs, rs: rs + [ReadRecord("R05", 1, "case 006", "sarcoma", 150)], "confidence 150"),
    (lambda rd, cs, rs: rs + [ReadRecord("R05", 3, "case 006", "sarcoma", 50)], "exam must be 1 or 2"),
])
def test_bad_records_are_named_in_the_error(change, message):
    readers, cases, reads = plain_records()
    with pytest.raises(ValueError, match=message):
        study_stats.compute(readers, cases, change(readers, cases, reads))


def test_bad_truth_and_duplicate_codes_are_named():
    readers, cases, reads = plain_records()
    with pytest.raises(ValueError, match="case 'x': truth 'benign'"):
        study_stats.compute(readers, [*cases, CaseInfo("x", "benign")], reads)
    with pytest.raises(ValueError, match="reader code 'R01' appears twice"):
        study_stats.compute([*readers, ReaderInfo("R01", "specialist")], cases, reads)


def test_calls_in_the_generated_data_follow_confidence():
    assert call_of(50) == "sarcoma" and call_of(49) == "leiomyoma"
