"""Writes on reader studies: one function per use case, keyword-only, validate then save.

State rules live on the server (METHOD §11): a reader answers only in an open exam; exam 2 opens after
exam 1 is finished and the washout has passed (or a coordinator's audited override); finishing an exam
freezes its answers. A read is unique per reader × case × exam, so a double submit or two tabs update the
same row, and every change to an answer is written to `ReadAudit`.

The descriptor task (exam 3, after exam 2) is read the same way: opening a case, active time and the checks are
the functions below for every task; only its answer (`descriptor_score_submit`) is its own.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Least
from django.utils import timezone

from accounts.roles import is_coordinator, is_reader
from core.constants import CLASS_CHOICES, LEIOMYOMA
from imaging.models import Case, CaseAudit, Cohort
from imaging.services import case_audit_record
from inference.models import Evaluation
from reader_study import selectors, volume_grants
from reader_study.consensus import k_of_n
from reader_study.freezes import TruthDrift, freeze_truths, truth_drift
from reader_study.hanging import default_protocol, format_protocol, parse_protocol
from reader_study.models import (
    DESCRIPTORS,
    EXAMS,
    TASK_NAMES,
    TASKS,
    Assignment,
    DescriptorScore,
    Enrollment,
    ExamProgress,
    Read,
    ReadAudit,
    Study,
    StudyCaseTruth,
    StudyEvent,
)
from reader_study.worklists import draw_worklist, worklist_seed

# One report of active time covers at most this long: the page reports every few seconds, so a larger
# value is a bug or a forged request, not reading time.
MAX_ACTIVE_SECONDS_PER_REPORT = 300.0
MAX_NOTE_LENGTH = 2000
CALLS = {value for value, _ in CLASS_CHOICES}


def _event(study: Study, action: str, *, actor=None, reader=None, **detail) -> StudyEvent:
    return StudyEvent.objects.create(study=study, action=action, actor=actor, reader=reader, detail=detail)


def _require_coordinator(user) -> None:
    if not is_coordinator(user):
        raise PermissionDenied("only a coordinator or an admin can do this")


# --- studies ----------------------------------------------------------------------------------------
def _study_cases(cases: Iterable[Case] | None, cohort: Cohort | None) -> list[Case]:
    chosen = list(cases or [])
    if not chosen and cohort is not None:
        chosen = list(cohort.cases.all())
    if not chosen:
        raise ValidationError({"cases": "choose the study's cases, or a cohort that has cases"})
    held = [c.pseudonym for c in chosen if c.review_reason]
    if held:  # an imported study held for review is not a case yet (imaging, issue 13)
        raise ValidationError({"cases": f"held for review on their import's page: {', '.join(held[:10])}"})
    return chosen


def _check_readers(readers: Iterable) -> list:
    readers = list(readers)
    for user in readers:
        if not is_reader(user):
            raise ValidationError({"readers": f"user {user.username!r} is not in the Reader role"})
    return readers


@transaction.atomic
def _hanging_protocol(value) -> list[list[str]]:
    """A hanging protocol from its text or list form (``reader_study.hanging``), or the field's error."""
    try:
        return parse_protocol(value)
    except ValueError as exc:
        raise ValidationError({"hanging_protocol": str(exc)}) from None


def study_create(*, name: str, created_by, cases: Iterable[Case] | None = None, cohort: Cohort | None = None,
                 evaluation: Evaluation | None = None, washout_days: int = 28, instructions: str = "",
                 readers: Iterable = (), descriptor_k: int = 4, hanging_protocol=None,
                 heat_maps: str = Study.HeatMaps.OFF) -> Study:
    """A draft study: its cases (given, or the cohort's), the evaluation exam 2 shows, and its readers.
    ``hanging_protocol``: which sequences open in which viewport (text or lists, ``reader_study.hanging``);
    None or blank: the default. ``heat_maps``: whether exam 2 offers the AI's heat-maps (``Study.HeatMaps``)."""
    _require_coordinator(created_by)
    protocol = _hanging_protocol(hanging_protocol) if hanging_protocol else default_protocol()
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "a study needs a name"})
    if Study.objects.filter(name=name).exists():
        raise ValidationError({"name": f"a study named {name!r} already exists"})
    if not 0 <= int(washout_days) <= 365:
        raise ValidationError({"washout_days": "the washout must be between 0 and 365 days"})
    if int(descriptor_k) < 1:
        raise ValidationError({"descriptor_k": "k must be at least 1"})
    if heat_maps not in Study.HeatMaps.values:
        raise ValidationError({"heat_maps": f"heat-maps must be one of {', '.join(Study.HeatMaps.values)}"})
    chosen, readers = _study_cases(cases, cohort), _check_readers(readers)
    study = Study.objects.create(name=name, cohort=cohort, evaluation=evaluation, washout_days=washout_days,
                                 instructions=instructions, descriptor_k=descriptor_k, created_by=created_by,
                                 hanging_protocol=protocol, heat_maps=heat_maps)
    study.cases.set(chosen)
    _event(study, "created", actor=created_by, cases=len(chosen), heat_maps=heat_maps)
    for reader in readers:
        reader_enrol(study=study, reader=reader, by=created_by)
    return study


@transaction.atomic
def study_hanging_set(*, study: Study, protocol, by) -> Study:
    """Set the study's hanging protocol; it applies to every case of every reader from their next page on.
    Allowed until the study closes (it changes what opens where, never what a reader may see); audited.
    Setting the protocol the study has already is a no-op."""
    _require_coordinator(by)
    parsed = _hanging_protocol(protocol)
    locked = Study.objects.select_for_update().get(pk=study.pk)
    if locked.status == Study.Status.CLOSED:
        raise ValidationError({"hanging_protocol": f"study {study.name!r} is closed"})
    if locked.hanging_protocol != parsed:
        before = locked.hanging_protocol
        locked.hanging_protocol = parsed
        locked.save(update_fields=["hanging_protocol"])
        _event(locked, "hanging_protocol_set", actor=by, before=format_protocol(before or []),
               after=format_protocol(parsed))
    study.hanging_protocol = locked.hanging_protocol
    return study


@transaction.atomic
def reader_enrol(*, study: Study, reader, by) -> Enrollment:
    """Enrol a reader; in an open study their worklists are drawn at once. Enrolling twice is a no-op."""
    _require_coordinator(by)
    _check_readers([reader])
    if study.status == Study.Status.CLOSED:
        raise ValidationError({"reader": f"study {study.name!r} is closed: no new readers"})
    enrollment, created = Enrollment.objects.get_or_create(study=study, reader=reader,
                                                           defaults={"enrolled_by": by})
    if created:
        _event(study, "enrolled", actor=by, reader=reader)
    if study.status == Study.Status.OPEN:
        _draw_worklists(study, reader)
    return enrollment


@transaction.atomic
def reader_unenrol(*, study: Study, reader, by) -> None:
    """Take a reader off a draft study (once it is open their worklists and reads are kept)."""
    _require_coordinator(by)
    if study.status != Study.Status.DRAFT:
        raise ValidationError({"reader": "readers can be removed only while the study is a draft"})
    if Enrollment.objects.filter(study=study, reader=reader).delete()[0]:
        _event(study, "unenrolled", actor=by, reader=reader)


def _check_openable(study: Study) -> None:
    summary = selectors.study_case_summary(study)
    if summary["cases"] == 0:
        raise ValidationError({"cases": "the study has no cases"})
    held = list(study.cases.exclude(review_reason="").order_by("pseudonym").values_list("pseudonym", flat=True))
    if held:   # held for import review (issue 13): maybe two patients in one case; not readable until resolved
        raise ValidationError({"cases": f"{len(held)} case(s) are held for review on their import's page: "
                                        f"{', '.join(held[:10])}{' …' if len(held) > 10 else ''}; resolve them "
                                        "or take them out of the study"})
    if not study.enrollments.exists():
        raise ValidationError({"readers": "enrol at least one reader before opening the study"})
    if summary["without_images"]:
        missing = study.cases.exclude(series__n_slices__gt=0).values_list("pseudonym", flat=True)[:10]
        raise ValidationError({"cases": f"{summary['without_images']} case(s) have no viewable series: "
                                        f"{', '.join(missing)}"})
    if study.evaluation_id:
        _check_evaluation_done(study.evaluation)


def _check_evaluation_done(evaluation: Evaluation) -> None:
    if evaluation.status != Evaluation.Status.DONE:
        raise ValidationError({"evaluation": f"evaluation {evaluation.name!r} is {evaluation.status}, "
                                             "not done"})


def _locked_in(study: Study, status: str, refusal: str) -> Study:
    """The study's row, locked until the transaction ends, when it is (still) in ``status``; else ``refusal``."""
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.status != status:
        raise ValidationError({"status": f"{refusal}; this one is {study.status}"})
    return study


def _moved(study: Study, *, to: str, stamp: str, action: str, by) -> Study:
    """The locked study moved to status ``to`` now (the time in its field ``stamp``), with its event."""
    study.status = to
    setattr(study, stamp, timezone.now())
    study.save(update_fields=["status", stamp])
    _event(study, action, actor=by)
    return study


@transaction.atomic
def study_open(*, study: Study, by) -> Study:
    """Open a draft study: every enrolled reader's worklists are drawn and stored now."""
    _require_coordinator(by)
    study = _locked_in(study, Study.Status.DRAFT, "only a draft study can be opened")
    _check_openable(study)
    freeze_truths(study)   # the statistics use the truth frozen now, not the live Case.truth (issue 13)
    for enrollment in study.enrollments.select_related("reader"):
        _draw_worklists(study, enrollment.reader)
    return _moved(study, to=Study.Status.OPEN, stamp="opened_at", action="opened", by=by)


@transaction.atomic
def study_close(*, study: Study, by) -> Study:
    """Close an open study: nothing more can be answered; reads stay for the analysis."""
    _require_coordinator(by)
    study = _locked_in(study, Study.Status.OPEN, "only an open study can be closed")
    volume_grants.revoke_on_commit(Assignment.objects.filter(study=study))
    return _moved(study, to=Study.Status.CLOSED, stamp="closed_at", action="closed", by=by)


@transaction.atomic
def study_evaluation_set(*, study: Study, evaluation: Evaluation, by) -> Study:
    """Choose the evaluation exam 2 shows; possible until the first exam-2 answer (then it was shown)."""
    _require_coordinator(by)
    _check_evaluation_done(evaluation)
    if Read.objects.filter(assignment__study=study, assignment__exam=2).exists():
        raise ValidationError({"evaluation": "exam 2 has answers already: its AI results cannot change"})
    study.evaluation = evaluation
    study.save(update_fields=["evaluation"])
    _event(study, "evaluation_set", actor=by, evaluation=evaluation.pk)
    return study


@transaction.atomic
def study_truth_adopt(*, study: Study, by, reason: str) -> list[TruthDrift]:
    """Adopt the corrected ground truth into a stale study (issue 13), the way back from "stale".

    A correction (``imaging.services.case_correct``) changes the live truth only and marks the study stale;
    its statistics keep the truth frozen when it opened. When the coordinator decides that the corrected
    truth is the reference standard the readers should be scored against (a revised pathology report), this
    re-freezes ``StudyCaseTruth`` to each case's live truth and subtype, clears ``stale_since``/``stale_reason``
    and records, per changed case, a ``corrected`` CaseAudit line (exported with the study as case_audit.csv)
    and one study event. Needs a reason. Returns the cases it changed (possibly none: a correction that only
    took series off, whose staleness the coordinator acknowledges with the reason)."""
    _require_coordinator(by)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "say why the corrected truth is adopted (it is kept in the audit trail)"})
    study = Study.objects.select_for_update().get(pk=study.pk)
    if study.stale_since is None:
        raise ValidationError({"status": f"study {study.name!r} is not stale: its frozen truth needs no update"})
    freeze_truths(study)   # a case never frozen (rows made outside study_open) gets its row, then is compared
    drift = truth_drift(study)
    cases = Case.objects.in_bulk([d.case_id for d in drift])
    for d in drift:
        StudyCaseTruth.objects.filter(study=study, case_id=d.case_id).update(truth=d.truth, subtype=d.subtype)
        before, after = {"study": study.name, "truth": d.frozen_truth}, {"study": study.name, "truth": d.truth}
        if d.frozen_subtype != d.subtype:
            before["subtype"], after["subtype"] = d.frozen_subtype, d.subtype
        case_audit_record(case=cases[d.case_id], action=CaseAudit.Action.CORRECTED, by=by, reason=reason,
                          before=before, after=after)
    _event(study, "truth_adopted", actor=by, cases=len(drift), reason=reason, stale_reason=study.stale_reason)
    study.stale_since, study.stale_reason = None, ""
    study.save(update_fields=["stale_since", "stale_reason"])
    return drift


# --- worklists --------------------------------------------------------------------------------------
def _leiomyomas(study: Study) -> list[int]:
    """The study's leiomyoma cases by the truth frozen with the study (``selectors.study_truths``)."""
    return [pk for pk, truth in selectors.study_truths(study).items() if truth == LEIOMYOMA]


def _draw_worklists(study: Study, reader) -> None:
    """Draw and store the reader's exam-1, exam-2 and descriptor worklists (skipped where already drawn).

    An exam is drawn once its progress row exists (it holds the seed); the descriptor task, which has no
    progress row, once it has a case. Its worklist holds the leiomyoma cases only.
    """
    drawn = set(ExamProgress.objects.filter(study=study, reader=reader).values_list("exam", flat=True))
    if Assignment.objects.filter(study=study, reader=reader, exam=DESCRIPTORS).exists():
        drawn.add(DESCRIPTORS)
    for exam in TASKS:
        if exam in drawn:
            continue
        cases = study.cases.all() if exam in EXAMS else study.cases.filter(pk__in=_leiomyomas(study))
        seed = worklist_seed(study.seed, reader.pk, exam)
        Assignment.objects.bulk_create([
            Assignment(study=study, reader=reader, exam=exam, case_id=item.case_id, position=item.position,
                       display_code=item.display_code)
            for item in draw_worklist(list(cases.values_list("pk", flat=True)), seed, exam)])
        if exam in EXAMS:
            ExamProgress.objects.create(study=study, reader=reader, exam=exam, seed=seed)


# --- reading ----------------------------------------------------------------------------------------
def _assert_can_answer(reader, assignment: Assignment,
                       status: selectors.ExamStatus | None = None) -> selectors.ExamStatus:
    """The reader may answer this case now, or PermissionDenied with the reason; returns the task's status.

    ``status``: the task's status the caller computed already for this request (``selectors.exam_status``
    of the same study, reader and exam), so it is not asked twice; without it only the state is fetched.
    """
    if assignment.reader_id != reader.pk:
        raise PermissionDenied("this case is not in your worklist")
    if status is None or status.exam != assignment.exam:
        status = selectors.exam_status(assignment.study, reader, assignment.exam, counts=False)
    if not status.is_open:
        raise PermissionDenied(f"{TASK_NAMES[assignment.exam]}: {status.reason}")
    return status


def _clean_answer(call: str, confidence, note: str) -> tuple[str, int, str]:
    if call not in CALLS:
        raise ValidationError({"call": f"choose {' or '.join(sorted(CALLS))}, not {call!r}"})
    try:
        confidence = int(confidence)
    except (TypeError, ValueError):
        raise ValidationError({"confidence": "confidence must be a whole number from 0 to 100"}) from None
    if not 0 <= confidence <= 100:
        raise ValidationError({"confidence": f"confidence must lie between 0 and 100, not {confidence}"})
    note = (note or "").strip()
    if len(note) > MAX_NOTE_LENGTH:
        raise ValidationError({"note": f"the note is longer than {MAX_NOTE_LENGTH} characters"})
    return call, confidence, note


def _clean_seconds(seconds) -> float:
    try:
        seconds = float(seconds or 0.0)
    except (TypeError, ValueError):
        raise ValidationError({"active_seconds": "active time must be a number of seconds"}) from None
    if seconds != seconds or seconds < 0:  # NaN or negative
        raise ValidationError({"active_seconds": "active time must be 0 or more seconds"})
    return min(seconds, MAX_ACTIVE_SECONDS_PER_REPORT)


def _mark_opened(assignment: Assignment, status: selectors.ExamStatus) -> None:
    """Note when the case and the exam were first opened (no write once both are noted; the descriptor task
    has no progress row to note its start on)."""
    now = timezone.now()
    if assignment.first_opened_at is None:
        Assignment.objects.filter(pk=assignment.pk, first_opened_at__isnull=True).update(first_opened_at=now)
        assignment.first_opened_at = now
    if status.started_at is None and assignment.exam in EXAMS:
        ExamProgress.objects.filter(study_id=assignment.study_id, reader_id=assignment.reader_id,
                                    exam=assignment.exam, started_at__isnull=True).update(started_at=now)
        status.started_at = now


def assignment_open(*, reader, assignment: Assignment, status: selectors.ExamStatus | None = None) -> Assignment:
    """The reader opened a case of any task: check the task is open to them, note when the case and exam began.

    ``status``: the exam's status as the page computed it for this request (``selectors.reading_state``),
    so that it is not fetched again.
    """
    _mark_opened(assignment, _assert_can_answer(reader, assignment, status))
    return assignment


def active_time_add(*, reader, assignment: Assignment, seconds) -> float:
    """Add active reading time (page visible and in use) to a case of any task; returns the case's total (s)."""
    seconds = _clean_seconds(seconds)
    _mark_opened(assignment, _assert_can_answer(reader, assignment))
    Assignment.objects.filter(pk=assignment.pk).update(
        active_seconds=Least(F("active_seconds") + seconds, _wall_clock_seconds(assignment)))
    assignment.refresh_from_db(fields=["active_seconds"])
    return assignment.active_seconds


def _wall_clock_seconds(assignment: Assignment) -> float:
    """The most active time a case can have had: the wall-clock time since it was first opened. Each report
    is capped at ``MAX_ACTIVE_SECONDS_PER_REPORT``, but a browser (or a forger) can send many: the total never
    exceeds the time the case has been open, whatever is sent."""
    return max(0.0, (timezone.now() - assignment.first_opened_at).total_seconds())


def _lock_for_answer(reader, assignment_pk: int, seconds: float, exams) -> Assignment:
    """The case locked for an answer (call inside a transaction): the reader may answer it now, its opening is
    noted and ``seconds`` of active time are added. ``exams``: the tasks whose answer the caller stores.

    PostgreSQL locks the row (SELECT ... FOR UPDATE); SQLite's write transaction starts IMMEDIATE. So two tabs or
    a double click are served one after the other and find the same answer.
    """
    assignment = (Assignment.objects.select_for_update(of=("self",)).select_related("study")
                  .get(pk=assignment_pk))
    status = _assert_can_answer(reader, assignment)
    if assignment.exam not in exams:
        raise ValidationError({"exam": f"this case belongs to the {TASK_NAMES[assignment.exam]}: "
                                       "it takes that task's answer"})
    _mark_opened(assignment, status)
    # the row is locked: nobody else changed it since we read it
    assignment.active_seconds = min(assignment.active_seconds + seconds, _wall_clock_seconds(assignment))
    Assignment.objects.filter(pk=assignment.pk).update(active_seconds=assignment.active_seconds)
    return assignment


def _answer(read: Read) -> dict:
    return {"call": read.call, "confidence": read.confidence, "note": read.note,
            "ai_likelihood_shown": read.ai_likelihood_shown}


def read_submit(*, reader, assignment: Assignment, call: str, confidence, note: str = "",
                active_seconds=0.0) -> Read:
    """Store a reader's answer for one case of one exam; submitting the same answer again changes nothing.

    The assignment row is locked first (``_lock_for_answer``), so two tabs or a double click find the same read.
    """
    call, confidence, note = _clean_answer(call, confidence, note)
    seconds = _clean_seconds(active_seconds)
    try:
        return _read_submit_locked(reader, assignment.pk, call, confidence, note, seconds)
    except IntegrityError:  # a concurrent first submit won the insert: ours becomes a change to it
        return _read_submit_locked(reader, assignment.pk, call, confidence, note, seconds)


@transaction.atomic
def _read_submit_locked(reader, assignment_pk: int, call: str, confidence: int, note: str,
                        seconds: float) -> Read:
    assignment = _lock_for_answer(reader, assignment_pk, seconds, EXAMS)
    ai = selectors.ai_result_for(assignment)
    values = {"call": call, "confidence": confidence, "note": note,
              "ai_likelihood_shown": ai.likelihood if ai is not None else None}
    read = Read.objects.filter(assignment=assignment).first()
    if read is None:
        read = Read.objects.create(assignment=assignment, active_seconds=assignment.active_seconds, **values)
        ReadAudit.objects.create(read=read, actor=reader, action=ReadAudit.Action.CREATED,
                                 after=_answer(read))
        return read
    before = _answer(read)
    for key, value in values.items():
        setattr(read, key, value)
    read.active_seconds = assignment.active_seconds
    if _answer(read) == before:
        read.save(update_fields=["active_seconds"])
        return read
    read.revision += 1
    read.save()
    ReadAudit.objects.create(read=read, actor=reader, action=ReadAudit.Action.CHANGED, before=before,
                             after=_answer(read))
    return read


@transaction.atomic
def exam_finish(*, reader, study: Study, exam: int) -> ExamProgress:
    """Finish an exam once every case has an answer: its answers are frozen from now on."""
    progress = ExamProgress.objects.select_for_update().filter(study=study, reader=reader, exam=exam).first()
    if progress is None:
        raise PermissionDenied(f"exam {exam} of {study.name!r} is not in your worklists")
    status = selectors.exam_status(study, reader, exam)
    if not status.is_open:
        raise PermissionDenied(f"exam {exam}: {status.reason}")
    unread = selectors.unanswered(study, reader, exam)
    if unread.exists():
        codes = ", ".join(unread.values_list("display_code", flat=True)[:10])
        raise ValidationError({"exam": f"{unread.count()} case(s) still have no answer: {codes}"})
    progress.finished_at = timezone.now()
    progress.save(update_fields=["finished_at"])
    volume_grants.revoke_on_commit(Assignment.objects.filter(study=study, reader=reader, exam=exam))
    _event(study, "exam_finished", actor=reader, reader=reader, exam=exam)
    return progress


@transaction.atomic
def washout_override(*, study: Study, reader, by, reason: str) -> ExamProgress:
    """Let a reader into exam 2 before the washout has passed; who, when and why are kept."""
    _require_coordinator(by)
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"reason": "give the reason for overriding the washout (it is audited)"})
    if study.status != Study.Status.OPEN:
        raise ValidationError({"status": "the washout can be overridden only in an open study"})
    progress = ExamProgress.objects.select_for_update().filter(study=study, reader=reader, exam=2).first()
    if progress is None:
        raise ValidationError({"reader": f"{reader.username} has no exam 2 in {study.name!r}"})
    progress.washout_override_by, progress.washout_override_at = by, timezone.now()
    progress.washout_override_reason = reason
    progress.save(update_fields=["washout_override_by", "washout_override_at", "washout_override_reason"])
    _event(study, "washout_override", actor=by, reader=reader, reason=reason)
    return progress


# --- descriptors ------------------------------------------------------------------------------------
@transaction.atomic
def descriptor_score_submit(*, reader, assignment: Assignment, degeneration: bool, irregular_margin: bool,
                            active_seconds=0.0) -> DescriptorScore:
    """A reader's degeneration / irregular-margin call for one case of their descriptor task; changes are
    logged. The case is locked, checked and timed as an exam case is (``_lock_for_answer``)."""
    if not isinstance(degeneration, bool) or not isinstance(irregular_margin, bool):
        raise ValidationError({"degeneration": "answer yes or no for degeneration and for irregular margin"})
    seconds = _clean_seconds(active_seconds)
    assignment = _lock_for_answer(reader, assignment.pk, seconds, (DESCRIPTORS,))
    values = {"degeneration": degeneration, "irregular_margin": irregular_margin}
    score, created = DescriptorScore.objects.get_or_create(assignment=assignment, defaults=values)
    before = {"degeneration": score.degeneration, "irregular_margin": score.irregular_margin}
    if created or before != values:
        if not created:
            DescriptorScore.objects.filter(pk=score.pk).update(**values, updated_at=timezone.now())
            score.refresh_from_db()
        _event(assignment.study, "descriptor_scored", actor=reader, reader=reader, assignment=assignment.pk,
               before=None if created else before, after=values)
    return score


@transaction.atomic
def descriptor_consensus_apply(*, study: Study, by) -> dict:
    """Write the k-of-n consensus of the readers' scores onto each leiomyoma case of the study.

    n is the number of enrolled readers and k the study's ``descriptor_k`` (default 4 of 6). A descriptor
    is written only once it is decided (k yeses, or too many noes for k); undecided ones are counted.
    """
    _require_coordinator(by)
    n, k = study.enrollments.count(), study.descriptor_k
    if not 1 <= k <= n:
        raise ValidationError({"descriptor_k": f"k = {k} needs at least {k} enrolled readers; "
                                               f"the study has {n}"})
    summary = {"k": k, "n": n, "cases": 0, "written": 0, "undecided": 0}
    for case in study.cases.filter(pk__in=_leiomyomas(study)).select_for_update(of=("self",)):
        summary["cases"] += 1
        scores = list(DescriptorScore.objects.filter(assignment__study=study, assignment__case=case)
                      .values_list("degeneration", "irregular_margin"))
        changed, before = [], {"degeneration": case.degeneration, "irregular_margin": case.irregular_margin}
        for index, name in enumerate(("degeneration", "irregular_margin")):
            yes = sum(1 for s in scores if s[index])
            decided = k_of_n(yes, len(scores) - yes, k=k, n=n)
            if decided is None:
                summary["undecided"] += 1
            elif getattr(case, name) is not decided:
                setattr(case, name, decided)
                changed.append(name)
            summary["written"] += decided is not None
        if changed:
            case.save(update_fields=changed)
            case_audit_record(case=case, action=CaseAudit.Action.DETAILS, by=by,
                              before={n: before[n] for n in changed}, after={n: getattr(case, n) for n in changed},
                              reason=f"descriptor consensus of study {study.name} ({k} of {n} readers)")
    _event(study, "descriptor_consensus", actor=by, **summary)
    return summary
