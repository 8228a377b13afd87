"""Inference pages (coordinators and admins): evaluations with their charts and tables, the CSV of every
sequence set, the choice of set, the heat-map gallery and its job, and a new patient's prediction."""

import csv

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from accounts.permissions import role_required
from accounts.roles import COORDINATOR, is_admin
from core.constants import SEQUENCE_CODES
from core.metrics import AI_WRONG_DEFINITION
from core.views import form_page, found_or_404
from inference import gallery, selectors, services
from inference.forms import CasePredictionForm, EvaluationStartForm, SubsetChoiceForm
from inference.models import Evaluation
from jobs import selectors as job_selectors

FIGURES = ("per-sequence", "roc", "coverage")


def _evaluation(request, pk: int) -> Evaluation:
    return found_or_404(selectors.evaluation_for_user, request.user, pk, message="no such evaluation")


@role_required(COORDINATOR, "evaluations are for coordinators and admins")
def evaluation_list(request):
    return render(request, "inference/evaluation_list.html", {
        "evaluations": selectors.evaluations_visible_to(request.user)[:200],
        "can_start": selectors.can_start_evaluation(request.user)})


@login_required
def evaluation_start(request):
    if not selectors.can_start_evaluation(request.user):
        raise PermissionDenied("starting an evaluation is for admins")
    form = EvaluationStartForm(request.POST or None, initial={"run": request.GET.get("run")})
    return form_page(request, form, "inference/evaluation_start.html", lambda data: services.evaluation_start(
        run=data["run"], rule=data["rule"], cutoff=data["cutoff"], repredict=data["repredict"], name=data["name"],
        user=request.user), then="inference_evaluation",
        message=lambda evaluation: f"evaluation {evaluation.name} queued on the gpu queue")


@login_required
def evaluation_detail(request, pk: int):
    evaluation = _evaluation(request, pk)
    results = evaluation.results or {}
    chosen = results.get("chosen") or {}
    job = evaluation.job
    case_table = selectors.case_result_table(evaluation)
    return render(request, "inference/evaluation_detail.html", {
        "evaluation": evaluation, "results": results, "chosen": chosen, "codes": SEQUENCE_CODES,
        "ensemble_top": selectors.top_table(evaluation, "ensemble"),
        "single_top": selectors.top_table(evaluation, "single"),
        "top_means": selectors.top_mean_table(evaluation),
        "methods": selectors.method_rows(evaluation),
        "per_sequence": selectors.per_sequence_rows(evaluation),
        "chosen_ci": selectors.chosen_intervals(evaluation),
        "case_table": case_table,
        "heat_maps": _heat_maps(request, evaluation, case_table["rows"]),
        "ai_wrong_definition": AI_WRONG_DEFINITION,
        "auc": selectors.auc_over_ensembles(evaluation) if chosen else None,
        "dropped": selectors.dropped_cases(evaluation) if chosen else [],
        "subset_form": SubsetChoiceForm(initial={"subset": evaluation.chosen_subset}),
        "can_choose": selectors.can_choose_subset(request.user) and evaluation.status == Evaluation.Status.DONE,
        "has_table": selectors.has_subset_table(evaluation),
        "show_job": job is not None and (is_admin(request.user) or job.created_by_id == request.user.pk),
    })


def _heat_maps(request, evaluation: Evaluation, case_rows: list[dict]) -> dict | None:
    """The "Heat-maps" section, for a finished evaluation only (the job needs one). Its running job is linked
    for whoever may open the job page (``jobs.selectors``: admins and its starter), named for the others."""
    if evaluation.status != Evaluation.Status.DONE:
        return None
    section = gallery.heat_map_gallery(evaluation, case_rows)
    job = section["job"]
    section["show_job"] = job is not None and job_selectors.jobs_visible_to(request.user).filter(pk=job.pk).exists()
    return section


@login_required
@require_POST
def evaluation_subset(request, pk: int):
    evaluation = _evaluation(request, pk)
    if not selectors.can_choose_subset(request.user):
        raise PermissionDenied("choosing the sequence set is for coordinators and admins")
    form = SubsetChoiceForm(request.POST)
    if not form.is_valid():
        messages.error(request, "choose at least one sequence")
        return redirect("inference_evaluation", pk=pk)
    try:
        services.evaluation_choose_subset(evaluation=evaluation, subset=form.cleaned_data["subset"],
                                          user=request.user)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"likelihoods now combine {' '.join(evaluation.chosen_subset)}")
    return redirect("inference_evaluation", pk=pk)


@login_required
@require_POST
def heat_maps_start(request, pk: int):
    """Start the heat-maps job for every case with a result (the job skips those that have their maps), then
    back to the page, whose "Heat-maps" section links the job's progress."""
    evaluation = _evaluation(request, pk)
    try:
        job = services.heat_maps_start(evaluation=evaluation, user=request.user)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, f"heat-maps queued on the gpu queue: job {job.pk} (cases that have theirs "
                                  "are skipped)")
    return redirect(reverse("inference_evaluation", args=[pk]) + "#heat-maps")


@login_required
def heat_map_png(request, pk: int, case_pk: int):
    """The gallery's image of one case: its strongest slice with the map over it (404 where it has none)."""
    evaluation = _evaluation(request, pk)
    image = gallery.heat_map_png(evaluation, case_pk)
    if image is None:
        raise Http404("this case has no heat-maps in this evaluation")
    response = HttpResponse(image, content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response


class _Echo:
    def write(self, value):
        return value


@login_required
def evaluation_csv(request, pk: int):
    """Every sequence set's figures (32,767 rows for the 15 codes), streamed; with ``?format=methods`` the
    three-method table (paper-style, training-fold threshold, nested) with 95 % CIs instead."""
    evaluation = _evaluation(request, pk)
    if request.GET.get("format") == "methods":
        return _methods_csv(evaluation)
    if not selectors.has_subset_table(evaluation):
        raise Http404("this evaluation has no subset table yet")
    writer = csv.writer(_Echo())
    response = StreamingHttpResponse((writer.writerow(row) for row in selectors.subset_csv_rows(evaluation)),
                                     content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="evaluation-{evaluation.pk}-subsets.csv"'
    return response


def _methods_csv(evaluation: Evaluation) -> HttpResponse:
    if not selectors.method_rows(evaluation):
        raise Http404("this evaluation has no three-method table (finished before it was added, or a fold "
                      "lacked a class: its page says why)")
    response = HttpResponse(content_type="text/csv")
    csv.writer(response).writerows(selectors.method_csv_rows(evaluation))
    response["Content-Disposition"] = f'attachment; filename="evaluation-{evaluation.pk}-methods.csv"'
    return response


@login_required
def evaluation_figure(request, pk: int, name: str):
    evaluation = _evaluation(request, pk)
    results = evaluation.results or {}
    if name not in FIGURES or not results.get("chosen"):
        raise Http404("no such figure")
    from inference import figures

    synthetic = bool(results.get("synthetic"))
    if name == "per-sequence":
        svg = figures.per_sequence_chart(results.get("per_sequence", []), synthetic=synthetic)
    elif name == "roc":
        svg = figures.roc_chart(results["chosen"]["roc"], synthetic=synthetic)
    else:
        svg = figures.coverage_chart(results.get("per_sequence", []), results.get("n_patients", 0),
                                     synthetic=synthetic)
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=60"
    return response


@login_required
def case_predict(request):
    """A new patient's sarcoma likelihood: pick an evaluation (its models and set) and start the job."""
    if not selectors.can_predict_case(request.user):
        raise PermissionDenied("predicting a case is for coordinators and admins")
    from imaging.models import Case

    try:
        case_pk = int(request.POST.get("case") or request.GET.get("case") or 0)
    except ValueError:
        raise Http404("case must be a case id") from None
    case = get_object_or_404(Case, pk=case_pk)
    evaluations = selectors.finished_evaluations(request.user)
    form = CasePredictionForm(request.POST or None, evaluations=evaluations)
    return form_page(request, form, "inference/predict.html", lambda data: services.case_prediction_start(
        case=case, evaluation=data["evaluation"], user=request.user), then="job_detail",
        message=lambda job: f"prediction of {case.pseudonym} queued on the gpu queue", context={
            "case": case,
            "results": selectors.case_results_visible_to(request.user).filter(case=case).order_by("-created_at")})
