"""Issue 14, item 6: one definition of "DNN wrong" for the DNN row, the misdiagnosis maps and cases.csv,
and a misdiagnosis map of an exam that no reader has finished says so instead of plotting."""

import csv
import io

import pytest

from analysis import exports, figures, study_stats
from analysis.study_stats import CaseInfo, ReaderInfo, ReadRecord
from core import metrics


def test_a_tie_at_exactly_50_percent_is_a_sarcoma_call_so_a_leiomyoma_there_is_wrong():
    assert metrics.ai_call(50.0) == "sarcoma" and metrics.ai_call(49.99) == "leiomyoma"
    assert metrics.ai_wrong(50.0, "leiomyoma") is True
    assert metrics.ai_wrong(50.0, "sarcoma") is False
    assert metrics.ai_wrong(49.99, "sarcoma") is True and metrics.ai_wrong(50.01, "leiomyoma") is True
    assert metrics.ai_wrong(None, "sarcoma") is None and metrics.ai_wrong(70.0, "") is None
    with pytest.raises(ValueError, match="unknown class"):
        metrics.ai_wrong(70.0, "fibroid")


def _study_with_a_tie(*, exam2: bool):
    """Two readers; case 009 is a leiomyoma at exactly 50 % (12 of 24 ensembles call sarcoma)."""
    readers = [ReaderInfo("R01", "specialist", 10), ReaderInfo("R02", "practitioner", 3)]
    cases = [CaseInfo("case 001", "sarcoma", max_diameter_mm=40.0, degeneration=False, ai_likelihood=91.7),
             CaseInfo("case 002", "sarcoma", max_diameter_mm=55.0, degeneration=True, ai_likelihood=50.0),
             CaseInfo("case 003", "leiomyoma", max_diameter_mm=60.0, degeneration=True, ai_likelihood=8.3),
             CaseInfo("case 009", "leiomyoma", max_diameter_mm=70.0, degeneration=False, ai_likelihood=50.0)]
    exams = (1, 2) if exam2 else (1,)
    reads = [ReadRecord(reader=r.code, exam=exam, case=c.label, call=c.truth,
                        confidence=80 if c.truth == "sarcoma" else 20, active_seconds=5.0)
             for r in readers for exam in exams for c in cases]
    return study_stats.compute(readers, cases, reads)


def _csv_rows(table: exports.Table) -> dict[str, dict]:
    return {row["case"]: row for row in csv.DictReader(io.StringIO(table.csv()))}


def test_the_dnn_row_the_maps_and_cases_csv_agree_on_a_leiomyoma_at_50_percent():
    stats = _study_with_a_tie(exam2=True)
    counts = stats.dnn.counts
    assert (counts.tp, counts.fn, counts.tn, counts.fp) == (2, 0, 1, 1)   # case 009 is the false positive
    for analysis in stats.misdiagnosis:
        wrong = {c.case for c in analysis.cases if c.dnn_wrong}
        assert wrong == {"case 009"}                                        # = FN + FP of the DNN row
        assert {c.case: c.category for c in analysis.cases if c.category} == {"case 009": "dnn_only"}
    rows = _csv_rows(exports.cases_table(stats))
    assert {case: r["dnn_missed"] for case, r in rows.items()} == {
        "case 001": "no", "case 002": "no", "case 003": "no", "case 009": "yes"}
    assert rows["case 009"]["missed_by_exam2"] == "DNN only"


def test_the_map_of_an_exam_nobody_finished_says_so_instead_of_plotting_every_case_correct():
    stats = _study_with_a_tie(exam2=False)
    exam2 = next(m for m in stats.misdiagnosis if m.exam == 2)
    assert not exam2.analysed and exam2.readers == ()
    assert all(c.category == "" for c in exam2.cases)
    assert all(n == 0 for by_truth in exam2.counts.values() for n in by_truth.values())
    assert figures.misdiagnosis_unavailable(stats, 1) == ""
    assert "no reader has finished exam 2" in figures.misdiagnosis_unavailable(stats, 2)
    svg = figures.render(stats, "misdiagnosis_exam2", "svg").decode()
    assert "no reader has finished exam 2" in svg and "correct by both" not in svg
    assert "correct by both" in figures.render(stats, "misdiagnosis_exam1", "svg").decode()
    rows = _csv_rows(exports.cases_table(stats))
    assert {r["missed_by_exam2"] for r in rows.values()} == {exports.NOT_ANALYSED}
    assert rows["case 009"]["missed_by_exam1"] == "DNN only"


@pytest.mark.django_db
def test_the_page_states_the_definition_and_shows_no_exam2_map_before_anyone_finished_exam2(client, coordinator):
    from factories_analysis import CONFIDENCE, build_study

    study = build_study(confidence={k: v for k, v in CONFIDENCE.items() if k[1] == 1})["study"]
    client.force_login(coordinator)
    html = client.get(f"/analysis/studies/{study.pk}/").content.decode()
    assert html.count('id="ai-wrong-definition"') == 1 and "at exactly 50 %" in html
    assert 'data-figure="misdiagnosis_exam2"' in html and "no reader has finished exam 2 yet" in html
    assert 'data-figure="misdiagnosis_exam1"' not in html
