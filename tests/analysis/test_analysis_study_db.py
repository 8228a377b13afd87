"""End to end from the database: the GENERATED study (factories_analysis) gives the known statistics, and a
study read through the reader-study services (as in the demo) is analysed from what the readers stored."""

import pytest

from analysis import selectors, services
from core.constants import LEIOMYOMA, SARCOMA
from factories_analysis import (
    AI_LIKELIHOOD,
    EXPECTED_DNN,
    EXPECTED_MISSED,
    EXPECTED_READERS,
    TRUTH,
    build_study,
    make_case,
    make_evaluation,
    make_reader,
)

pytestmark = pytest.mark.django_db


def _units(values):
    return tuple(values[m] if m == "auc" else 100 * values[m]
                 for m in ("accuracy", "sensitivity", "specificity", "ss_avg", "auc"))


def test_generated_study_gives_the_hand_computed_statistics():
    built = build_study()
    report = services.study_report(study=built["study"])
    stats = report.stats
    assert [c.label for c in stats.cases] == [f"case {i:03d}" for i in range(1, 7)]
    assert [c.truth for c in stats.cases] == list(TRUTH)
    for (code, exam), expected in EXPECTED_READERS.items():
        assert _units(stats.reader_exam(code, exam).values) == pytest.approx(expected), (code, exam)
    assert _units(stats.dnn.values) == pytest.approx(EXPECTED_DNN)
    for exam, expected in EXPECTED_MISSED.items():
        analysis = next(m for m in stats.misdiagnosis if m.exam == exam)
        assert {c.case: c.category for c in analysis.cases if c.category} == expected
    assert stats.readers_complete_both == ("R01", "R02", "R03", "R04")
    assert report.synthetic and report.title_note == "SYNTHETIC data"
    assert report.dnn_reported["top10"]["sensitivity"] == pytest.approx(0.898)
    assert report.dnn_reported["top10_honest"]["ss_avg"] == pytest.approx(0.865)
    assert report.dnn_reported["chosen_subset"]["auc"] == pytest.approx(0.938)
    assert report.dnn_reported["chosen_codes"] == ["DWI", "T2axi", "T2sag"]


def test_case_labels_are_stable_study_numbers_not_pseudonyms():
    built = build_study()
    labels = selectors.case_labels(built["study"])
    assert list(labels.values()) == [f"case {i:03d}" for i in range(1, 7)]
    assert [labels[c.pk] for c in built["cases"]] == list(labels.values())      # numbered by primary key
    assert not any(c.pseudonym in label for c in built["cases"] for label in labels.values())


def test_cases_without_ground_truth_are_left_out_and_counted():
    built = build_study(extra_cases=("",))
    report = services.study_report(study=built["study"])
    assert report.cases_without_truth == 1
    assert len(report.stats.cases) == 6
    assert report.stats.reader_exam("R01", 1).complete       # complete over the cases with truth


def test_a_changed_read_gives_fresh_statistics_not_a_cached_one():
    from reader_study.models import Read

    built = build_study()
    before = services.study_report(study=built["study"]).stats.reader_exam("R01", 2).values["accuracy"]
    read = Read.objects.get(assignment__reader=built["readers"]["R01"], assignment__exam=2,
                            assignment__case=built["cases"][0])
    read.call, read.confidence = LEIOMYOMA, 10
    read.save()
    after = services.study_report(study=built["study"]).stats.reader_exam("R01", 2).values["accuracy"]
    assert before == pytest.approx(1.0) and after == pytest.approx(5 / 6)


def test_a_study_read_through_the_reader_study_services_is_analysed_from_the_stored_reads(coordinator):
    """As in the demo: create and open a study, two readers answer exam 1, the washout is overridden,
    they answer exam 2 (which stores the AI likelihood shown) and finish; then the statistics."""
    from reader_study import selectors as rs_selectors
    from reader_study import services as rs

    cases = [make_case(t, i, with_series=True) for i, t in enumerate(TRUTH, start=1)]
    evaluation = make_evaluation(cases)
    readers = [make_reader("R11", "specialist", 12), make_reader("R12", "practitioner", 3)]
    study = rs.study_create(name="Service-flow study (synthetic)", created_by=coordinator, cases=cases,
                            evaluation=evaluation, readers=readers)
    study = rs.study_open(study=study, by=coordinator)
    confidence = {SARCOMA: {1: 60, 2: 80}, LEIOMYOMA: {1: 60, 2: 20}}    # exam 1: all sarcoma, all tied
    for exam in (1, 2):
        for reader in readers:
            if exam == 2:
                rs.washout_override(study=study, reader=reader, by=coordinator, reason="test")
            for assignment in rs_selectors.worklist(study, reader, exam):
                conf = confidence[assignment.case.truth][exam]
                call = SARCOMA if conf >= 50 else LEIOMYOMA
                rs.read_submit(reader=reader, assignment=assignment, call=call, confidence=conf,
                               active_seconds=12)
            rs.exam_finish(reader=reader, study=study, exam=exam)
    stats = services.study_report(study=study).stats
    assert stats.readers_complete_both == ("R11", "R12")
    for code in ("R11", "R12"):
        assert _units(stats.reader_exam(code, 1).values) == pytest.approx((50, 100, 0, 50, 0.5))
        assert _units(stats.reader_exam(code, 2).values) == pytest.approx((100, 100, 100, 100, 1.0))
    rows = list(selectors.reads_for_export(study))
    assert len(rows) == 24
    shown = {(r["case"], r["exam"]): r["ai_likelihood_shown"] for r in rows}
    assert shown[("case 001", 1)] is None
    assert shown[("case 003", 2)] == pytest.approx(AI_LIKELIHOOD[2])
    assert stats.mrmc_for("auc").analysis is not None


def test_the_readers_descriptor_scores_are_the_degeneration_votes_of_the_cases_table(coordinator):
    """Two readers finish both exams and score the leiomyomas' descriptors through the reader-study services
    (the first says degeneration on every other case, the second never); the statistics and cases.csv count
    their degeneration votes per case."""
    from analysis import exports
    from reader_study import selectors as rs_selectors
    from reader_study import services as rs
    from reader_study.models import DESCRIPTORS

    cases = [make_case(t, i, with_series=True) for i, t in enumerate(TRUTH, start=1)]
    readers = [make_reader("R21", "specialist", 10), make_reader("R22", "practitioner", 2)]
    study = rs.study_create(name="Descriptor-vote study (synthetic)", created_by=coordinator, cases=cases,
                            evaluation=make_evaluation(cases), readers=readers)
    study = rs.study_open(study=study, by=coordinator)
    for reader in readers:
        for exam in (1, 2):
            if exam == 2:
                rs.washout_override(study=study, reader=reader, by=coordinator, reason="test")
            for assignment in rs_selectors.worklist(study, reader, exam):
                rs.read_submit(reader=reader, assignment=assignment, call=SARCOMA, confidence=60)
            rs.exam_finish(reader=reader, study=study, exam=exam)
        for index, assignment in enumerate(rs_selectors.worklist(study, reader, DESCRIPTORS)):
            rs.descriptor_score_submit(reader=reader, assignment=assignment, irregular_margin=False,
                                       degeneration=index % 2 == 0 and reader == readers[0])
    stats = services.study_report(study=study).stats
    leiomyomas = [c for c in stats.cases if c.truth == LEIOMYOMA]
    scored = rs_selectors.worklist(study, readers[0], DESCRIPTORS)
    yes = {a.case_id for a in scored if a.answer.degeneration}
    labels = selectors.case_labels(study)
    assert {c.label: c.degeneration_votes for c in leiomyomas} == {
        labels[a.case_id]: (int(a.case_id in yes), 2) for a in scored}
    assert all(c.degeneration_votes is None for c in stats.cases if c.truth == SARCOMA)
    table = exports.cases_table(stats)
    votes = {row[0]: row[table.columns.index("degeneration_votes")] for row in table.rows}
    assert {votes[c.label] for c in leiomyomas} == {"1/2", "0/2"}
