"""Reader-study pages. Thin: selectors decide what a user may see (404 otherwise), services write.

Readers: their studies, worklists and the reading page (viewer + answer form), for the exams and the
descriptor task alike (its URLs pass ``tasks``, see ``urls.py``).
Coordinators: the study list, creating a study, and a study's page (enrol, open/close, progress, override).
"""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import role_required
from accounts.roles import COORDINATOR, READER
from core.views import form_page, found_or_404
from reader_study import forms, payloads, selectors, services, volume_grants
from reader_study.freezes import truth_drift
from reader_study.hanging import DEFAULT_PROTOCOL, format_protocol
from reader_study.models import DESCRIPTORS, EXAMS, TASK_NAMES, Study


def _message(exc: ValidationError) -> str:
    return "; ".join(exc.messages)


# --- reader -----------------------------------------------------------------------------------------
reader_page = role_required(READER, "these pages are for readers")


def _my_study(request, pk: int) -> Study:
    return found_or_404(selectors.study_for_reader, request.user, pk, message="no such study in your studies")


def _exam_or_404(exam: int, tasks=EXAMS) -> int:
    """``exam`` if the URL may name it (an exam's URLs the exams, the descriptor task's its own), else 404."""
    if exam not in tasks:
        raise Http404("no such exam")
    return exam


def _not_open(request, study: Study, status: selectors.ExamStatus):
    """Back to the study page, saying why the task is not open to the reader."""
    messages.info(request, f"{TASK_NAMES[status.exam].capitalize()}: {status.reason}")
    return redirect("reader_study:study_home", pk=study.pk)


@reader_page
def my_studies(request):
    rows = [{"study": s, "exams": [selectors.exam_status(s, request.user, x) for x in EXAMS],
             "descriptors": selectors.exam_status(s, request.user, DESCRIPTORS)}
            for s in selectors.studies_for_reader(request.user)]
    return render(request, "reader_study/my_studies.html", {"rows": rows})


@reader_page
def study_home(request, pk: int):
    study = _my_study(request, pk)
    exams = [selectors.exam_status(study, request.user, x) for x in EXAMS]
    current = next((x for x in exams if x.is_open and x.done < x.total), None)
    return render(request, "reader_study/study_home.html", {
        "study": study, "exams": exams, "descriptors": selectors.exam_status(study, request.user, DESCRIPTORS),
        "warm_up": _warm_up(study, request.user, current)})


def _warm_up(study, reader, status) -> list[str]:
    """What the page prefetches in idle time for the reading page its main button opens (where the reader left
    off): that case's opening slices (templates/reader_study/_warm_up.html adds the reading page's scripts)."""
    if status is None or not status.is_open:
        return []
    return payloads.opening_slice_urls(selectors.resume_assignment(study, reader, status.exam))


# An exam's states in which its worklist still shows, read-only: the reader's own calls, nothing else.
READ_ONLY_STATES = ("finished", "closed")


@reader_page
def worklist(request, pk: int, exam: int, tasks=EXAMS):
    """A task's worklist: its cases in the reader's order, answered or not (and, for an exam, finishing).
    A finished exam's (or a closed study's) worklist stays in view, read-only, with the reader's own calls."""
    study, exam = _my_study(request, pk), _exam_or_404(exam, tasks)
    status = selectors.exam_status(study, request.user, exam)
    read_only = exam in EXAMS and status.state in READ_ONLY_STATES
    if not status.is_open and not read_only:
        return _not_open(request, study, status)
    return render(request, "reader_study/worklist.html", {
        "study": study, "status": status, "items": selectors.worklist(study, request.user, exam),
        "routes": payloads.routes(exam), "is_descriptors": exam == DESCRIPTORS, "read_only": read_only,
        "warm_up": [] if read_only or exam not in EXAMS else _warm_up(study, request.user, status)})


@reader_page
def resume(request, pk: int, exam: int):
    """Open the first unanswered case of the exam (where the reader left off), or the worklist when done."""
    study, exam = _my_study(request, pk), _exam_or_404(exam)
    status = selectors.exam_status(study, request.user, exam)
    if not status.is_open:
        return _not_open(request, study, status)
    target = selectors.resume_assignment(study, request.user, exam)
    if target is None:
        return redirect("reader_study:worklist", pk=study.pk, exam=exam)
    return redirect("reader_study:reading", pk=target.pk)


@reader_page
def exam_finish(request, pk: int, exam: int):
    """Finishing an exam asks first (GET: a page with the count of unanswered cases); only a POST that says
    ``confirm`` finishes it, so one stray click freezes nothing."""
    study, exam = _my_study(request, pk), _exam_or_404(exam)
    if request.method != "POST" or request.POST.get("confirm") != "yes":
        status = selectors.exam_status(study, request.user, exam)
        if not status.is_open:
            return _not_open(request, study, status)
        return render(request, "reader_study/exam_finish.html", {
            "study": study, "status": status, "unanswered": selectors.unanswered(study, request.user, exam),
            "routes": payloads.routes(exam)})
    try:
        services.exam_finish(reader=request.user, study=study, exam=exam)
        messages.success(request, f"Exam {exam} finished. Thank you.")
    except ValidationError as exc:
        messages.error(request, _message(exc))
        return redirect("reader_study:worklist", pk=study.pk, exam=exam)
    return redirect("reader_study:study_home", pk=study.pk)


@reader_page
def reading(request, pk: int, tasks=EXAMS):
    """The reading page of a case of any task: the viewer, the task's answer form and (exam 2 only) the AI
    panel. ``tasks``: those the URL serves (a case of another task is not found there)."""
    try:
        assignment = selectors.assignment_for_reader(request.user, pk, exams=tasks)
    except ObjectDoesNotExist:
        raise Http404("no such case in your worklists") from None
    state = selectors.reading_state(assignment)      # the exam's status once, for the check and the payload
    try:
        services.assignment_open(reader=request.user, assignment=assignment, status=state.status)
    except PermissionDenied as exc:
        messages.info(request, str(exc))
        return redirect("reader_study:study_home", pk=assignment.study_id)
    series = payloads.reading_series(assignment, state)
    volume_grants.grant_opened_case(request.user.pk, assignment, series.get(assignment.case_id, []))
    payload = payloads.reading_payload(assignment, state, series)
    return render(request, "reader_study/reading.html", {
        "assignment": assignment, "study": assignment.study, "payload": payload, "ai": payload.get("ai"),
        "is_exam2": assignment.exam == 2, "is_descriptors": assignment.exam == DESCRIPTORS,
        "routes": payloads.routes(assignment.exam)})


# --- coordinator ------------------------------------------------------------------------------------
coordinator_page = role_required(COORDINATOR, "these pages are for coordinators")


def _coordinated_study(request, pk: int) -> Study:
    return found_or_404(selectors.study_for_coordinator, request.user, pk, message="no such study")


@coordinator_page
def study_list(request):
    return render(request, "reader_study/study_list.html", {
        "studies": selectors.studies_for_coordinator(request.user)})


@coordinator_page
def study_create(request):
    form = forms.StudyCreateForm(request.POST or None)
    return form_page(request, form, "reader_study/study_form.html",
                     lambda data: services.study_create(created_by=request.user, **data),
                     then="reader_study:study_detail",
                     message=lambda study: f"Study {study.name!r} created as a draft.")


def _enrolled(study: Study):
    return get_user_model().objects.filter(enrollments__study=study).select_related("reader_profile")


@coordinator_page
def study_detail(request, pk: int):
    """A study for its coordinator: cases, readers and their progress per exam, actions, the audit log."""
    study = _coordinated_study(request, pk)
    progress = selectors.study_progress(study)
    return render(request, "reader_study/study_detail.html", {
        "study": study, "progress": progress, "summary": selectors.study_case_summary(study),
        "enrol_form": forms.EnrolForm(queryset=selectors.readers_enrollable(study)),
        "override_form": forms.OverrideForm(queryset=_enrolled(study)),
        "hanging_form": forms.HangingProtocolForm(initial={
            "hanging_protocol": format_protocol(study.hanging_protocol or DEFAULT_PROTOCOL)}),
        "events": study.events.select_related("actor", "reader")[:50]})


def _posted(form, problem: str) -> dict:
    """The cleaned data of a coordinator's posted form, or ``problem`` as the action's ValidationError."""
    if not form.is_valid():
        raise ValidationError(problem)
    return form.cleaned_data


def coordinator_action(action):
    """A coordinator's POST on a study's page as a view: ``action(request, study)`` runs on the coordinator's
    study and says what it did (shown as a success), or raises the ValidationError shown as the reason it was
    refused; back to the study's page either way."""

    @coordinator_page
    @require_POST
    @wraps(action)
    def view(request, pk: int):
        study = _coordinated_study(request, pk)
        try:
            done = action(request, study)
            if done:
                messages.success(request, done)
        except ValidationError as exc:
            messages.error(request, _message(exc))
        return redirect("reader_study:study_detail", pk=study.pk)

    return view


@coordinator_action
def study_open(request, study: Study) -> str:
    services.study_open(study=study, by=request.user)
    return "Study opened: every reader's worklists are drawn."


@coordinator_action
def study_close(request, study: Study) -> str:
    services.study_close(study=study, by=request.user)
    return "Study closed."


@coordinator_action
def study_enrol(request, study: Study) -> str:
    form = forms.EnrolForm(request.POST, queryset=selectors.readers_enrollable(study))
    reader = _posted(form, "choose a reader to enrol")["reader"]
    services.reader_enrol(study=study, reader=reader, by=request.user)
    return f"{reader.username} enrolled."


@coordinator_action
def washout_override(request, study: Study) -> str:
    form = forms.OverrideForm(request.POST, queryset=_enrolled(study))
    data = _posted(form, "choose an enrolled reader and give a reason")
    services.washout_override(study=study, reader=data["reader"], by=request.user, reason=data["reason"])
    return f"Washout overridden for {data['reader'].username} (audited)."


@coordinator_action
def study_hanging(request, study: Study) -> str:
    form = forms.HangingProtocolForm(request.POST)
    protocol = _posted(form, "give the hanging protocol, e.g. “T2sag | T2axi | ADC or DWI”")["hanging_protocol"]
    study = services.study_hanging_set(study=study, protocol=protocol, by=request.user)
    return f"Hanging protocol: {format_protocol(study.hanging_protocol)}."


@coordinator_action
def descriptor_consensus(request, study: Study) -> str:
    s = services.descriptor_consensus_apply(study=study, by=request.user)
    return (f"Consensus ({s['k']} of {s['n']}): {s['written']} descriptor(s) written on {s['cases']} "
            f"leiomyoma case(s), {s['undecided']} still undecided.")


@coordinator_page
def study_truth_adopt(request, pk: int):
    """A stale study's way back (issue 13): GET lists the cases whose frozen truth differs from their corrected
    truth; POST, with a reason, adopts it (``services.study_truth_adopt``) and returns to the study's page."""
    study = _coordinated_study(request, pk)
    reason, error = request.POST.get("reason", ""), ""
    if request.method == "POST":
        try:
            changed = services.study_truth_adopt(study=study, by=request.user, reason=reason)
        except ValidationError as exc:
            error = _message(exc)
        else:
            messages.success(request, f"Adopted the corrected ground truth of {len(changed)} case(s); the study is "
                                      "no longer stale (audited).")
            return redirect("reader_study:study_detail", pk=study.pk)
    return render(request, "reader_study/study_truth_adopt.html", {
        "study": study, "drift": truth_drift(study), "reason": reason, "error": error})
