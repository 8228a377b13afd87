"""Studies, worklists, reads, exams and the washout, through the services (server-side rules)."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from core.constants import LEIOMYOMA, SARCOMA
from factories_reader_study import (
    CaseFactory,
    EvaluationFactory,
    answer_all,
    case_with_series,
    move_washout,
    open_study,
    opened_ago,
)
from reader_study import selectors, services
from reader_study.models import EXAMS, Assignment, ExamProgress, Read, ReadAudit, Study, StudyEvent
from reader_study.worklists import draw_worklist, worklist_seed

pytestmark = pytest.mark.django_db


# --- creating and opening --------------------------------------------------------------------------------
def test_a_study_starts_as_a_draft_and_readers_see_no_draft(coordinator, reader):
    study = services.study_create(name="Draft", created_by=coordinator, cases=[case_with_series()],
                                  readers=[reader])
    assert study.status == Study.Status.DRAFT and study.washout_days == 28 and study.descriptor_k == 4
    assert not selectors.studies_for_reader(reader).exists()
    assert not Assignment.objects.filter(study=study).exists()


def test_study_create_refuses_bad_input_naming_the_field(coordinator, reader, make_user):
    case = case_with_series()
    with pytest.raises(ValidationError) as exc:
        services.study_create(name="", created_by=coordinator, cases=[case])
    assert "name" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        services.study_create(name="No cases", created_by=coordinator)
    assert "cases" in exc.value.message_dict
    with pytest.raises(ValidationError) as exc:
        services.study_create(name="Bad reader", created_by=coordinator, cases=[case], readers=[coordinator])
    assert "not in the Reader role" in str(exc.value)
    with pytest.raises(PermissionDenied):
        services.study_create(name="By a reader", created_by=reader, cases=[case])


def test_a_cohort_gives_its_cases(coordinator):
    from imaging.models import Cohort, CohortCase

    cohort = Cohort.objects.create(name="c1")
    cases = [case_with_series(), case_with_series(truth=SARCOMA)]
    for case in cases:
        CohortCase.objects.create(cohort=cohort, case=case, truth=case.truth)
    study = services.study_create(name="From cohort", created_by=coordinator, cohort=cohort)
    assert set(study.cases.all()) == set(cases) and study.cohort == cohort


def test_opening_needs_readers_images_and_a_finished_evaluation(coordinator, reader):
    no_images = CaseFactory()
    study = services.study_create(name="S", created_by=coordinator, cases=[no_images])
    with pytest.raises(ValidationError, match="enrol at least one reader"):
        services.study_open(study=study, by=coordinator)
    services.reader_enrol(study=study, reader=reader, by=coordinator)
    with pytest.raises(ValidationError, match="no viewable series"):
        services.study_open(study=study, by=coordinator)
    running = EvaluationFactory(status="running")
    study2 = services.study_create(name="S2", created_by=coordinator, cases=[case_with_series()],
                                   readers=[reader], evaluation=running)
    with pytest.raises(ValidationError, match="not done"):
        services.study_open(study=study2, by=coordinator)


def test_opening_draws_and_stores_each_readers_worklists_from_the_seed(study_setup, reader, other_reader):
    study = study_setup["study"]
    case_ids = [c.pk for c in study_setup["cases"]]
    for user in (reader, other_reader):
        for exam in (1, 2):
            progress = ExamProgress.objects.get(study=study, reader=user, exam=exam)
            assert progress.seed == worklist_seed(study.seed, user.pk, exam)
            stored = [(a.case_id, a.display_code) for a in selectors.worklist(study, user, exam)]
            expected = [(i.case_id, i.display_code) for i in draw_worklist(case_ids, progress.seed, exam)]
            assert stored == expected
    assert StudyEvent.objects.filter(study=study, action="opened").exists()


def test_enrolling_into_an_open_study_draws_at_once_and_twice_is_a_noop(study_setup, make_user, coordinator):
    late = make_user("reader")
    services.reader_enrol(study=study_setup["study"], reader=late, by=coordinator)
    services.reader_enrol(study=study_setup["study"], reader=late, by=coordinator)
    assert Assignment.objects.filter(study=study_setup["study"], reader=late, exam__in=EXAMS).count() == 2 * 4


def test_closed_study_takes_no_answers_and_no_readers(study_setup, reader, coordinator, make_user):
    study = services.study_close(study=study_setup["study"], by=coordinator)
    a = selectors.worklist(study, reader, 1).first()
    with pytest.raises(PermissionDenied, match="closed"):
        services.read_submit(reader=reader, assignment=a, call=SARCOMA, confidence=90)
    with pytest.raises(ValidationError, match="closed"):
        services.reader_enrol(study=study, reader=make_user("reader"), by=coordinator)


# --- reads ---------------------------------------------------------------------------------------------
def test_a_read_is_stored_changed_and_every_change_audited(study_setup, reader):
    opened_ago(selectors.worklist(study_setup["study"], reader, 1))
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    read = services.read_submit(reader=reader, assignment=a, call=SARCOMA, confidence=80, note=" firm ",
                                active_seconds=20)
    assert (read.call, read.confidence, read.note, read.active_seconds) == (SARCOMA, 80, "firm", 20)
    assert read.ai_likelihood_shown is None                       # exam 1: no AI on screen
    same = services.read_submit(reader=reader, assignment=a, call=SARCOMA, confidence=80, note="firm",
                                active_seconds=5)
    assert same.pk == read.pk and same.revision == 1 and same.active_seconds == 25
    changed = services.read_submit(reader=reader, assignment=a, call=LEIOMYOMA, confidence=35)
    assert changed.revision == 2
    audit = list(ReadAudit.objects.filter(read=read).order_by("pk"))
    assert [x.action for x in audit] == ["created", "changed"]
    assert audit[1].before["call"] == SARCOMA and audit[1].after == {
        "call": LEIOMYOMA, "confidence": 35, "note": "", "ai_likelihood_shown": None}
    same_case = Read.objects.filter(assignment__case=a.case, assignment__reader=reader, assignment__exam=1)
    assert same_case.count() == 1


@pytest.mark.parametrize(("field", "kwargs"), [
    ("call", {"call": "maybe", "confidence": 50}),
    ("confidence", {"call": SARCOMA, "confidence": 101}),
    ("confidence", {"call": SARCOMA, "confidence": "high"}),
    ("note", {"call": SARCOMA, "confidence": 5, "note": "x" * 2001}),
    ("active_seconds", {"call": SARCOMA, "confidence": 5, "active_seconds": -3}),
])
def test_bad_answers_are_refused_naming_the_field(study_setup, reader, field, kwargs):
    a = selectors.worklist(study_setup["study"], reader, 1).first()
    with pytest.raises(ValidationError) as exc:
        services.read_submit(reader=reader, assignment=a, **kwargs)
    assert field in exc.value.message_dict
    assert not Read.objects.filter(assignment=a).exists()


def test_a_reader_cannot_answer_in_someone_elses_worklist(study_setup, reader, other_reader):
    theirs = selectors.worklist(study_setup["study"], other_reader, 1).first()
    with pytest.raises(PermissionDenied):
        services.read_submit(reader=reader, assignment=theirs, call=SARCOMA, confidence=50)


def test_active_time_adds_up_and_absurd_reports_are_capped(study_setup, reader):
    worklist = selectors.worklist(study_setup["study"], reader, 1)
    opened_ago(worklist, hours=1)
    a = worklist.first()
    assert services.active_time_add(reader=reader, assignment=a, seconds=14.5) == 14.5
    assert services.active_time_add(reader=reader, assignment=a, seconds=10 ** 6) == 14.5 + 300


def test_active_time_never_exceeds_the_wall_clock_time_since_the_case_was_opened(study_setup, reader):
    """Issue 12 item 4: many reports of 300 s each cannot forge more time than the case has been open."""
    worklist = selectors.worklist(study_setup["study"], reader, 1)
    a, b = worklist[0], worklist[1]
    Assignment.objects.filter(pk=a.pk).update(first_opened_at=timezone.now() - timedelta(seconds=100))
    a.refresh_from_db()
    for _ in range(20):
        total = services.active_time_add(reader=reader, assignment=a, seconds=300)
    assert 100 <= total < 110                                   # the wall clock since opening, not 20 x 300
    read = services.read_submit(reader=reader, assignment=a, call=SARCOMA, confidence=60, active_seconds=300)
    assert 100 <= read.active_seconds < 110
    # a case never opened before is opened by the report itself: it has been open for no time yet
    assert services.active_time_add(reader=reader, assignment=b, seconds=300) < 5
    b.refresh_from_db()
    assert b.first_opened_at is not None


def test_resume_opens_the_first_unanswered_case_in_the_stored_order(study_setup, reader):
    study = study_setup["study"]
    items = list(selectors.worklist(study, reader, 1))
    services.read_submit(reader=reader, assignment=items[0], call=SARCOMA, confidence=70)
    services.read_submit(reader=reader, assignment=items[2], call=SARCOMA, confidence=70)
    assert selectors.resume_assignment(study, reader, 1) == items[1]
    assert selectors.next_assignment(items[1]) == items[3]
    assert selectors.next_assignment(items[3]) == items[1]         # wraps round to earlier unanswered ones
    assert [selectors.next_unread(items[i]) for i in (1, 3)] == [items[3].pk, items[1].pk]   # the answer API's


# --- exams and washout -------------------------------------------------------------------------------
def test_finishing_needs_every_answer_then_freezes_exam1(study_setup, reader):
    study = study_setup["study"]
    first = selectors.worklist(study, reader, 1).first()
    services.read_submit(reader=reader, assignment=first, call=SARCOMA, confidence=70)
    with pytest.raises(ValidationError, match="3 case"):
        services.exam_finish(reader=reader, study=study, exam=1)
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    with pytest.raises(PermissionDenied, match="frozen"):
        services.read_submit(reader=reader, assignment=first, call=SARCOMA, confidence=99)
    assert Read.objects.get(assignment=first).call == LEIOMYOMA


def test_exam2_opens_only_after_exam1_and_the_washout(study_setup, reader):
    study = study_setup["study"]
    exam2_case = selectors.worklist(study, reader, 2).first()
    with pytest.raises(PermissionDenied, match="finished exam 1"):
        services.read_submit(reader=reader, assignment=exam2_case, call=SARCOMA, confidence=60)
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    status = selectors.exam_status(study, reader, 2)
    assert status.state == "locked" and status.opens_at > timezone.now() + timedelta(days=27)
    with pytest.raises(PermissionDenied, match="washout"):
        services.read_submit(reader=reader, assignment=exam2_case, call=SARCOMA, confidence=60)
    move_washout(study, reader, days=28)
    assert selectors.exam_status(study, reader, 2).is_open
    read = services.read_submit(reader=reader, assignment=exam2_case, call=SARCOMA, confidence=60)
    shown = study_setup["evaluation"].case_results.get(case=exam2_case.case).likelihood
    assert read.ai_likelihood_shown == shown


def test_the_evaluation_can_change_only_until_the_first_exam2_answer(study_setup, reader, coordinator):
    study = study_setup["study"]
    other = EvaluationFactory()
    services.study_evaluation_set(study=study, evaluation=other, by=coordinator)
    assert Study.objects.get(pk=study.pk).evaluation == other
    with pytest.raises(ValidationError, match="not done"):
        services.study_evaluation_set(study=study, evaluation=EvaluationFactory(status="running"),
                                      by=coordinator)
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    services.washout_override(study=study, reader=reader, by=coordinator, reason="test")
    a = selectors.worklist(study, reader, 2).first()
    services.read_submit(reader=reader, assignment=a, call=SARCOMA, confidence=50)
    with pytest.raises(ValidationError, match="exam 2 has answers"):
        services.study_evaluation_set(study=study, evaluation=study_setup["evaluation"], by=coordinator)


def test_the_washout_is_per_reader(study_setup, reader, other_reader):
    study = study_setup["study"]
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    move_washout(study, reader, days=30)
    assert selectors.exam_status(study, reader, 2).is_open
    assert selectors.exam_status(study, other_reader, 2).state == "locked"


def test_a_coordinator_override_opens_exam2_early_and_is_audited(study_setup, reader, coordinator):
    study = study_setup["study"]
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    with pytest.raises(ValidationError, match="reason"):
        services.washout_override(study=study, reader=reader, by=coordinator, reason=" ")
    with pytest.raises(PermissionDenied):
        services.washout_override(study=study, reader=reader, by=reader, reason="I am in a hurry")
    services.washout_override(study=study, reader=reader, by=coordinator, reason="demo session")
    assert selectors.exam_status(study, reader, 2).is_open
    event = StudyEvent.objects.get(study=study, action="washout_override")
    assert event.actor == coordinator and event.reader == reader and event.detail["reason"] == "demo session"
    progress = ExamProgress.objects.get(study=study, reader=reader, exam=2)
    assert progress.washout_override_by == coordinator and progress.washout_override_reason == "demo session"


def test_exam2_is_frozen_after_finishing_it_too(study_setup, reader, coordinator):
    study = study_setup["study"]
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    services.washout_override(study=study, reader=reader, by=coordinator, reason="test")
    answer_all(reader, study, 2, call=SARCOMA)
    services.exam_finish(reader=reader, study=study, exam=2)
    a = selectors.worklist(study, reader, 2).first()
    with pytest.raises(PermissionDenied):
        services.read_submit(reader=reader, assignment=a, call=LEIOMYOMA, confidence=1)


def test_progress_counts_answers_and_time_per_reader_and_exam(study_setup, reader, other_reader):
    study = study_setup["study"]
    answer_all(reader, study, 1)
    rows = {p.reader: p for p in selectors.study_progress(study)}
    mine, theirs = rows[reader].exams[1], rows[other_reader].exams[1]
    assert (mine.done, mine.total, mine.active_seconds, mine.median_seconds) == (4, 4, 48, 12)
    assert (theirs.done, theirs.active_seconds) == (0, 0)
    assert rows[reader].exams[2].state == "locked"


def test_default_viewports_follow_the_default_hanging_protocol_t2sag_t2axi_adc_or_dwi(coordinator, reader):
    case = case_with_series(codes=("ADC", "DWI", "T1axi", "T2sag", "T2axi"))
    series = selectors.case_series(case.pk)
    assert [s.sequence_code for s in series] == ["ADC", "DWI", "T1axi", "T2axi", "T2sag"]  # the paper's order
    chosen = selectors.default_viewports(series)
    assert [next(s.sequence_code for s in series if s.pk == pk) for pk in chosen] == ["T2sag", "T2axi", "ADC"]


def test_the_study_seed_makes_studies_differ(coordinator, reader):
    cases = [case_with_series() for _ in range(5)]
    one = open_study(coordinator=coordinator, readers=[reader], cases=cases, name="one")
    two = open_study(coordinator=coordinator, readers=[reader], cases=cases, name="two")
    lists = [[(a.case_id, a.display_code) for a in selectors.worklist(s, reader, 1)] for s in (one, two)]
    assert one.seed != two.seed and lists[0] != lists[1]
    assert sorted(c for c, _ in lists[0]) == sorted(c for c, _ in lists[1])
