"""Reads on reader studies, with the permission filter built in (DESIGN: enforced here, not in templates).

A reader gets only the studies they are enrolled in (never drafts), only their own assignments and answers,
and nothing of the AI outside exam 2: `ai_result_for` is the one path by which AI values reach a reader.

Every reading task (exam 1, exam 2, the descriptor task = exam 3) is served by the same selectors: its state
(`exam_status`), worklist, resume point, neighbours and next unanswered case; only the answer relation
(`models.ANSWER_RELATION`) and the rule that opens the task differ.
"""

from __future__ import annotations

import functools
import json
import statistics
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Count, F, Max, OuterRef, QuerySet, Subquery, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from accounts.roles import READER, is_coordinator, is_reader
from core.compiled_queries import CompiledQuery
from core.constants import LEIOMYOMA, SEQUENCE_CODES, UNUSED_SEQUENCE
from imaging.models import Series
from inference import selectors as inference_selectors
from inference.models import CaseAIResult
from reader_study.hanging import DEFAULT_PROTOCOL, choose_viewports
from reader_study.models import (
    ANSWER_RELATION,
    DESCRIPTORS,
    EXAMS,
    Assignment,
    Enrollment,
    ExamProgress,
    Read,
    Study,
)
from reader_study.washout import exam2_gate

# The id of the sequence rule that marks a scout (imaging/default_sequence_rules.json): never shown to readers.
LOCALIZER_RULE = "localizer"


# --- cases and studies ------------------------------------------------------------------------------
def studies_for_reader(user) -> QuerySet[Study]:
    """The open or closed studies ``user`` is enrolled in (drafts stay invisible to readers)."""
    if not is_reader(user):
        return Study.objects.none()
    return Study.objects.filter(enrollments__reader=user).exclude(status=Study.Status.DRAFT).distinct()


def study_for_reader(user, pk: int) -> Study:
    """One of the reader's studies; raises Study.DoesNotExist for any other (not 403: do not confirm it)."""
    return studies_for_reader(user).get(pk=pk)


def studies_for_coordinator(user) -> QuerySet[Study]:
    if not is_coordinator(user):
        return Study.objects.none()
    return Study.objects.select_related("cohort", "evaluation", "created_by").annotate(
        n_cases=Count("cases", distinct=True), n_readers=Count("enrollments", distinct=True))


def study_for_coordinator(user, pk: int) -> Study:
    return studies_for_coordinator(user).get(pk=pk)


def readers_enrollable(study: Study):
    """Users in the Reader role not yet enrolled in ``study``, for the coordinator's enrol form."""
    from django.contrib.auth import get_user_model

    from accounts.roles import READER

    return (get_user_model().objects.filter(groups__name=READER).exclude(enrollments__study=study)
            .select_related("reader_profile").order_by("reader_profile__code", "username"))


# --- task state -------------------------------------------------------------------------------------
@dataclass
class ExamStatus:
    """Where one reader stands in one task (exam 1, exam 2 or the descriptor task, ``exam`` 3).

    ``state``: open, locked, finished or closed for an exam; none (no case), locked, open, done or closed for
    the descriptor task, which has no finishing (a reader may change a score until the study closes).
    """

    exam: int
    state: str
    reason: str = ""
    total: int = 0
    done: int = 0
    active_seconds: float = 0.0
    finished_at: datetime | None = None
    opens_at: datetime | None = None
    overridden: bool = False
    seconds_per_case: list[float] = field(default_factory=list)
    started_at: datetime | None = None

    @property
    def is_open(self) -> bool:
        return self.state in ("open", "done")

    @property
    def can_finish(self) -> bool:
        return self.state == "open" and self.exam in EXAMS and self.total > 0 and self.done == self.total

    @property
    def median_seconds(self) -> float | None:
        return statistics.median(self.seconds_per_case) if self.seconds_per_case else None


def _exam1_reads(study_id, reader_id) -> QuerySet[Read]:
    return Read.objects.filter(assignment__study_id=study_id, assignment__reader_id=reader_id,
                               assignment__exam=1)


def last_exam1_read_at(study: Study, reader) -> datetime | None:
    """When the reader last created or changed an exam-1 answer: the washout runs from here."""
    return _exam1_reads(study.pk, reader.pk).aggregate(at=Max("updated_at"))["at"]


# The read path's queries run on every reading request: their SQL is built once per process
# (core.compiled_queries; tests/reader_study/test_reader_study_queries.py holds them equal to the ORM's).
@functools.cache
def _progress_query(with_last_exam1: bool) -> CompiledQuery:
    def build(study, reader):
        rows = ExamProgress.objects.filter(study_id=study, reader_id=reader).order_by()
        if with_last_exam1:
            latest = (_exam1_reads(OuterRef("study_id"), OuterRef("reader_id")).order_by("-updated_at")
                      .values("updated_at")[:1])
            rows = rows.annotate(last_exam1_read_at=Subquery(latest))
        return rows
    return CompiledQuery(build)


def _progress_rows(study: Study, reader, *, with_last_exam1: bool = False) -> dict[int, ExamProgress]:
    """The reader's ExamProgress rows by exam, in one query; ``with_last_exam1`` adds ``last_exam1_read_at``
    (the washout's start) as a subquery, so exam 2's gate costs no query of its own."""
    rows = _progress_query(with_last_exam1)(study=study.pk, reader=getattr(reader, "pk", reader))
    return {p.exam: p for p in rows}


@functools.cache
def _worklist_query(exam: int) -> CompiledQuery:
    return CompiledQuery(lambda study, reader: Assignment.objects.filter(study_id=study, reader_id=reader, exam=exam)
                         .order_by("position").values("pk", "position", "case_id", "active_seconds",
                                                      answer=F(f"{ANSWER_RELATION[exam]}__pk")))


def _worklist_rows(study: Study, reader, exam: int) -> list[dict]:
    """The reader's worklist for a task as plain rows, in order: one query, a few fields per case; ``answer``
    is the pk of the case's answer (read or descriptor score) or None."""
    return _worklist_query(exam)(study=study.pk, reader=getattr(reader, "pk", reader))


def exam_status(study: Study, reader, exam: int, *, now: datetime | None = None, counts: bool = True,
                rows: list[dict] | None = None, for_coordinator: bool = False) -> ExamStatus:
    """The server's single answer to "may this reader answer in this task now?" (and the counts).

    ``exam``: 1, 2 or ``DESCRIPTORS``. ``counts=False`` skips the worklist (total, done and times stay 0)
    where only the state matters; ``rows`` (from ``_worklist_rows``) spares the query where the caller has
    fetched the worklist already. ``for_coordinator``: show the descriptor task's size even while it is locked.
    """
    progress = _progress_rows(study, reader, with_last_exam1=exam == 2)
    mine = progress.get(exam)
    if rows is None:
        rows = _worklist_rows(study, reader, exam) if counts else []
    answered = [r["active_seconds"] for r in rows if r["answer"] is not None]
    status = ExamStatus(exam=exam, state="locked", total=len(rows), done=len(answered),
                        active_seconds=sum(r["active_seconds"] for r in rows), seconds_per_case=answered)
    if exam == DESCRIPTORS:
        _apply_descriptor_gate(status, study, progress.get(2), counts=counts, for_coordinator=for_coordinator)
        return status
    if mine is None:
        status.reason = "the study has not been opened to you yet"
        return status
    status.finished_at = mine.finished_at
    status.started_at = mine.started_at
    status.overridden = mine.washout_override_at is not None
    if mine.finished_at is not None:
        status.state, status.reason = "finished", "finished: answers are frozen"
    elif study.status == Study.Status.CLOSED:
        status.state, status.reason = "closed", "the study is closed"
    elif study.status != Study.Status.OPEN:
        status.reason = "the study is not open"
    elif exam == 1:
        status.state = "open"
    else:
        _apply_washout(status, study, mine, progress.get(1), now or timezone.now())
    return status


def _apply_washout(status: ExamStatus, study: Study, exam2: ExamProgress, exam1: ExamProgress | None,
                   now: datetime) -> None:
    gate = exam2_gate(exam1_finished_at=exam1.finished_at if exam1 else None,
                      last_exam1_read_at=exam2.last_exam1_read_at, washout_days=study.washout_days,
                      now=now, overridden=status.overridden)
    status.state = "open" if gate.is_open else "locked"
    status.reason, status.opens_at = gate.reason, gate.opens_at


def _apply_descriptor_gate(status: ExamStatus, study: Study, exam2: ExamProgress | None, *, counts: bool,
                           for_coordinator: bool) -> None:
    """The descriptor task opens once the reader has finished exam 2.

    Why: its worklist holds only the leiomyoma cases, which would tell a reader the answer to exam cases.
    Until then a reader is not even told how many cases it holds (that is the prevalence); a coordinator is.
    Without ``counts`` an open task stays "open" (whether it is "done" or has no case is not known).
    """
    if exam2 is None or exam2.finished_at is None:
        status.state, status.reason = "locked", "the descriptor task opens after you have finished exam 2"
        if not for_coordinator:
            status.total = status.done = 0
            status.active_seconds, status.seconds_per_case = 0.0, []
    elif counts and status.total == 0:
        status.state, status.reason = "none", "no case to score"
    elif study.status == Study.Status.CLOSED:
        status.state, status.reason = "closed", "the study is closed"
    elif counts and status.done == status.total:
        status.state = "done"
    else:
        status.state = "open"


# --- worklists and reading ------------------------------------------------------------------------
@functools.cache
def _assignment_query(answers: tuple[str, ...], in_reader_role: bool) -> CompiledQuery:
    role = {"reader__groups__name": READER} if in_reader_role else {}
    return CompiledQuery(lambda pk, reader, exams: Assignment.objects.select_related("study", *answers)
                         .filter(pk=pk, reader_id=reader, exam__in=exams, **role).order_by())


def assignment_for_reader(user, pk: int, *, exams=EXAMS, in_reader_role: bool = False) -> Assignment:
    """The reader's own assignment of one of ``exams`` (the tasks the asking page serves) in a non-draft study;
    Assignment.DoesNotExist for anyone else's, and for the reader's own items of the descriptor task while
    that task is locked to them (exactly as if they did not exist: see below).

    Its study and answer (if any) come in the same query, and its reader is ``user`` itself (no query).
    ``in_reader_role``: also require the Reader role, in the same query (the API checks the role this way
    instead of asking for the user's groups first).
    """
    if not 0 < pk < 2**63:      # no such key (the ORM folded such a value away; SQLite would overflow on it)
        raise Assignment.DoesNotExist(f"no assignment {pk}")
    answers = tuple(sorted({ANSWER_RELATION[exam] for exam in exams}))
    found = _assignment_query(answers, in_reader_role)(pk=pk, reader=user.pk, exams=tuple(exams))
    if not found:
        raise Assignment.DoesNotExist(f"no assignment {pk} of the reader")
    assignment = found[0]
    if assignment.study.status == Study.Status.DRAFT:
        raise Assignment.DoesNotExist(f"no assignment {pk} in the reader's non-draft studies")
    if assignment.exam == DESCRIPTORS and exam_status(assignment.study, user, DESCRIPTORS,
                                                      counts=False).state == "locked":
        # the locked descriptor task holds the leiomyomas only: answering "locked" (403) for one's own items and
        # "not found" for the others would count them, so a locked item does not exist for its reader yet
        raise Assignment.DoesNotExist(f"no assignment {pk} open to the reader")
    assignment.reader = user
    return assignment


def worklist(study: Study, reader, exam: int) -> QuerySet[Assignment]:
    """The reader's worklist for a task in their stored order, each case with its answer (``.answer``)."""
    return (Assignment.objects.filter(study=study, reader=reader, exam=exam)
            .select_related(ANSWER_RELATION[exam]).order_by("position"))


def unanswered(study: Study, reader, exam: int) -> QuerySet[Assignment]:
    """The cases of the reader's worklist for a task that have no answer yet, in order."""
    return worklist(study, reader, exam).filter(**{f"{ANSWER_RELATION[exam]}__isnull": True})


def resume_assignment(study: Study, reader, exam: int) -> Assignment | None:
    """Where the reader left off: the first unanswered case in their stored order."""
    return unanswered(study, reader, exam).first()


def next_assignment(assignment: Assignment) -> Assignment | None:
    """The next unanswered case after this one in the reader's order, wrapping round to earlier ones."""
    unread = unanswered(assignment.study, assignment.reader_id, assignment.exam).exclude(pk=assignment.pk)
    return unread.filter(position__gt=assignment.position).first() or unread.first()


def neighbours(assignment: Assignment) -> tuple[Assignment | None, Assignment | None]:
    """The previous and next case by position, for the reader's arrows."""
    items = worklist(assignment.study, assignment.reader_id, assignment.exam)
    previous = items.filter(position__lt=assignment.position).order_by("-position").first()
    return previous, items.filter(position__gt=assignment.position).first()


@dataclass
class ReadingState:
    """Everything the reading page needs from the reader's worklist, from two queries whatever its length:
    the exam's status and counts, the neighbours by position and the next unanswered case (pk, case)."""

    status: ExamStatus
    previous: int | None = None
    following: int | None = None
    next_unread: int | None = None
    next_unread_case: int | None = None


def reading_state(assignment: Assignment, *, now: datetime | None = None) -> ReadingState:
    """One case's place in its worklist (same answers as exam_status, neighbours and next_assignment)."""
    rows = _worklist_rows(assignment.study, assignment.reader_id, assignment.exam)
    state = ReadingState(status=exam_status(assignment.study, assignment.reader_id, assignment.exam, now=now,
                                            rows=rows))
    before, after = _around(rows, assignment)
    state.previous = before[-1]["pk"] if before else None
    state.following = after[0]["pk"] if after else None
    upcoming = _next_unread_row(before, after, assignment)
    if upcoming:
        state.next_unread, state.next_unread_case = upcoming["pk"], upcoming["case_id"]
    return state


def _around(rows: list[dict], assignment: Assignment) -> tuple[list[dict], list[dict]]:
    """The worklist's rows before and after ``assignment``, by position."""
    return ([r for r in rows if r["position"] < assignment.position],
            [r for r in rows if r["position"] > assignment.position])


def _next_unread_row(before: list[dict], after: list[dict], assignment: Assignment) -> dict | None:
    """``next_assignment``'s answer among the worklist's rows: the first unanswered case after this one by
    position, wrapping round to earlier ones."""
    return next((r for r in after + before if r["answer"] is None and r["pk"] != assignment.pk), None)


def next_unread(assignment: Assignment) -> int | None:
    """The pk of ``next_assignment`` (where the reader goes after answering), from the worklist's rows: one
    query whose SQL is built once (the answer endpoint runs this after every answer)."""
    rows = _worklist_rows(assignment.study, assignment.reader_id, assignment.exam)
    upcoming = _next_unread_row(*_around(rows, assignment), assignment)
    return upcoming["pk"] if upcoming else None


def ai_result_for(assignment: Assignment) -> CaseAIResult | None:
    """The AI result beside a case: in exam 2 only, from the study's evaluation. In exam 1 always None."""
    evaluation_id = assignment.study.evaluation_id
    if assignment.exam != 2 or evaluation_id is None:
        return None
    return CaseAIResult.objects.filter(evaluation_id=evaluation_id, case_id=assignment.case_id).first()


@dataclass(frozen=True)
class AIPanel:
    """What the exam-2 AI panel reads: the case's result and, of its evaluation, the operating point
    (``thresholds``: each ensemble's patient-score threshold for the chosen set) and the figures of the honest
    evaluation (``nested``: {metric: {estimate, ci_low, ci_high}} in %, None where the evaluation has none) or,
    failing that, the chosen set's own figures (``in_sample``, chosen on the evaluated patients)."""

    result: CaseAIResult
    thresholds: list[int] | None
    nested: dict | None
    in_sample: dict | None


def ai_panel_for(assignment: Assignment) -> AIPanel | None:
    """``ai_result_for`` with what the panel needs of the evaluation, in the same single query (the evaluation's
    results are large: only these three keys are read). None in exam 1, as ``ai_result_for``."""
    evaluation_id = assignment.study.evaluation_id
    if assignment.exam != 2 or evaluation_id is None:
        return None
    result = (CaseAIResult.objects.filter(evaluation_id=evaluation_id, case_id=assignment.case_id)
              .annotate(ai_thresholds=F("evaluation__results__chosen__thresholds"),
                        ai_nested=F("evaluation__results__methods__nested"),
                        ai_in_sample=F("evaluation__results__chosen__intervals__ensemble")).first())
    if result is None:
        return None
    return AIPanel(result=result, thresholds=_json(result.ai_thresholds), nested=_json(result.ai_nested),
                   in_sample=_json(result.ai_in_sample))


def _json(value):
    """A JSON key read through the ORM: decoded already on some backends, text on others."""
    return json.loads(value) if isinstance(value, str) else value


def _series_sort_key(series) -> tuple[int, int, int]:
    code = series.sequence_code
    rank = SEQUENCE_CODES.index(code) if code in SEQUENCE_CODES else len(SEQUENCE_CODES)
    return rank, series.series_number or 0, series.pk


@dataclass(frozen=True)
class ViewerSeries:
    """What the viewer and the reading payload read of a series: a read-only row, never a UID.

    ``meta`` (shape, geometry per slice, rescale, window) is None where it was not asked for. ``volume_path``
    stays on the server: the volume grant (``volume_grants``) is built from these rows, so opening a case costs
    no query of its own for it; payloads copy the client's fields one by one and never this one."""

    pk: int
    case_id: int
    series_number: int | None
    mapped_code: str
    override_code: str
    plane: str
    n_slices: int
    rows: int
    cols: int
    volume_sha256: str
    volume_path: str = field(repr=False)
    meta: dict | None = None

    @property
    def sequence_code(self) -> str:
        return self.override_code or self.mapped_code


_VIEWER_FIELDS = ("pk", "case_id", "series_number", "mapped_code", "override_code", "plane", "n_slices", "rows",
                  "cols", "volume_sha256", "volume_path")


def _readers_series() -> QuerySet[Series]:
    """The series a reader may see: those with a stored volume, less the localizer (a scout of the whole pelvis
    in three planes: no use for the reading and not one of the 15 sequences), unless a coordinator gave it a
    sequence code of its own."""
    return (Series.objects.filter(n_slices__gt=0).exclude(volume_path="")
            .exclude(mapped_rule=LOCALIZER_RULE, override_code__in=("", UNUSED_SEQUENCE)))


def case_series(case_id: int) -> list[ViewerSeries]:
    """The viewable series of a case (a stored volume), listed by sequence code in the paper's order."""
    return cases_series([case_id]).get(case_id, [])


_META_KEPT_CHARS = 16_384      # a series of some hundred slices; a longer (dynamic) one is decoded each time


def _parsed_meta(text: str) -> dict:
    """A series' ``meta`` decoded, kept per text: decoding it (per-slice positions and geometry) was about a
    seventh of the case API's own time, for a value that changes only when the series is imported again.
    Shared between requests, so read-only, as ``ViewerSeries`` is (payloads copy what they need from it).
    Bounded: at most 512 texts of up to ``_META_KEPT_CHARS`` each, some tens of MB per process at worst."""
    return _kept_meta(text) if len(text) <= _META_KEPT_CHARS else json.loads(text)


@functools.lru_cache(maxsize=512)
def _kept_meta(text: str) -> dict:
    return json.loads(text)


_series_query = CompiledQuery(lambda cases: _readers_series().filter(case_id__in=cases).order_by().annotate(
    meta_text=Cast("meta", output_field=TextField())).values(*_VIEWER_FIELDS, "meta_text"))


def cases_series(case_ids, *, meta_for=None) -> dict[int, list[ViewerSeries]]:
    """``case_series`` for several cases in one query: {case id: its viewable series in order}.

    ``meta_for``: the cases whose series ``meta`` is wanted (default: all); for the others it stays None, e.g.
    the next case, whose volume URLs alone the payload needs. Plain rows, and ``meta`` comes as text parsed
    only where wanted: building model instances and decoding every JSON cost more than the query itself.
    """
    by_case: dict[int, list[ViewerSeries]] = {}
    ids = [pk for pk in case_ids if pk is not None]
    if not ids:
        return by_case
    meta_for = set(ids if meta_for is None else meta_for)
    for row in _series_query(cases=tuple(ids)):
        text = row.pop("meta_text")
        meta = (_parsed_meta(text) if text else {}) if row["case_id"] in meta_for else None
        by_case.setdefault(row["case_id"], []).append(ViewerSeries(**row, meta=meta))
    return {pk: sorted(items, key=_series_sort_key) for pk, items in by_case.items()}


def default_viewports(series: list[ViewerSeries], protocol=DEFAULT_PROTOCOL) -> list[int]:
    """Series pks for the first viewports, by the study's hanging protocol (``reader_study.hanging``)."""
    return choose_viewports([(s.pk, s.sequence_code) for s in series], protocol)


# --- progress for coordinators ----------------------------------------------------------------------
@dataclass
class ReaderProgress:
    enrollment: Enrollment
    exams: dict[int, ExamStatus]
    descriptors: ExamStatus

    @property
    def reader(self):
        return self.enrollment.reader


def study_progress(study: Study, *, now: datetime | None = None) -> list[ReaderProgress]:
    """Every enrolled reader's progress per exam with time spent: the coordinator's view."""
    enrollments = study.enrollments.select_related("reader", "reader__reader_profile").order_by(
        "reader__reader_profile__code", "reader__username")
    return [ReaderProgress(enrollment=e, exams={x: exam_status(study, e.reader, x, now=now) for x in EXAMS},
                           descriptors=exam_status(study, e.reader, DESCRIPTORS, now=now, for_coordinator=True))
            for e in enrollments]


def study_case_summary(study: Study) -> dict[str, int]:
    """Counts the coordinator needs before opening: cases, leiomyomas, cases without images or AI result, and
    ``ai_in_sample``: cases whose exam-2 likelihood is in-sample because they were in the evaluation's
    training cohort (a cross-validated result: the sequence set and threshold were chosen on them too);
    ``with_heat_maps``: cases with the evaluation's heat-maps (None without an evaluation)."""
    cases = study.cases.all()
    with_series = cases.filter(series__n_slices__gt=0).exclude(series__volume_path="").distinct()
    results = (CaseAIResult.objects.filter(evaluation_id=study.evaluation_id, case__in=cases)
               if study.evaluation_id else CaseAIResult.objects.none())
    ai = results.count()
    total = cases.count()
    leiomyomas = sum(1 for truth in study_truths(study).values() if truth == LEIOMYOMA)
    return {"cases": total, "leiomyomas": leiomyomas,
            "without_images": total - with_series.count(),
            "without_ai": total - ai if study.evaluation_id else total,
            "ai_in_sample": results.filter(is_deployment=False).count(),
            "with_heat_maps": (len(set(cases.values_list("pk", flat=True))
                                   & inference_selectors.cases_with_maps(study.evaluation))
                               if study.evaluation_id else None)}


def reads_of_study(study: Study) -> QuerySet[Read]:
    """Every read of a study, for coordinators and the analysis (never exposed to readers)."""
    return Read.objects.filter(assignment__study=study).select_related("assignment", "assignment__reader",
                                                                      "assignment__case")



def study_truths(study) -> dict[int, str]:
    """Case pk -> the ground truth the study's statistics use (issue 13): the truth frozen when the study
    opened (``StudyCaseTruth``); for a case without one (a draft study, or rows made outside study_open), the
    truth the study's cohort froze (``CohortCase.truth``), else the case's live truth."""
    from imaging.models import CohortCase
    from reader_study.models import StudyCaseTruth

    truths = dict(study.cases.values_list("pk", "truth"))
    if study.cohort_id:
        truths.update({pk: t for pk, t in CohortCase.objects.filter(cohort_id=study.cohort_id, case_id__in=truths)
                       .values_list("case_id", "truth")})
    truths.update(dict(StudyCaseTruth.objects.filter(study=study).values_list("case_id", "truth")))
    return truths


# --- heat-maps in exam 2 (issue 18) ----------------------------------------------------------------------

def heat_maps_shown(assignment: Assignment) -> bool:
    """Whether the assignment's reader may see the AI's heat-maps: exam 2 only, and only where the study offers
    them and names an evaluation. Exam 1 never (nothing is even read from disk for it)."""
    study = assignment.study
    return (assignment.exam == 2 and study.evaluation_id is not None
            and study.heat_maps != Study.HeatMaps.HIDDEN)


def heat_map_series(assignment: Assignment, subset=None) -> set[int]:
    """The series of the assignment's case that have heat-maps its reader may see: those of the sequences the
    AI's likelihood used (``subset``, the case result's chosen set; read here when not given), since a map on
    a sequence the call never used would suggest evidence it did not weigh. Empty in exam 1."""
    if not heat_maps_shown(assignment):
        return set()
    if subset is None:
        subset = (CaseAIResult.objects.filter(evaluation_id=assignment.study.evaluation_id,
                                              case_id=assignment.case_id).values_list("subset", flat=True).first())
    if not subset:
        return set()
    return inference_selectors.series_with_maps(assignment.study.evaluation_id, assignment.case_id, codes=subset)


def heat_maps_of_series(assignment: Assignment, series_pk: int):
    """One series' heat-maps (``inference.saliency_store.SeriesMaps``) of the assignment's case; the caller took
    ``series_pk`` from ``heat_map_series`` (what the reader may see)."""
    return inference_selectors.series_maps(assignment.study.evaluation_id, assignment.case_id, series_pk)
