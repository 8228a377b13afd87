"""External-validation pages (coordinators see them, admins start them): the list, the start form (a finished
evaluation and a frozen cohort), a validation's page with its metrics, figures and per-case calls (pseudonyms
only), its two CSV exports and its two SVG figures."""

import csv

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import render

from accounts.permissions import role_required
from accounts.roles import COORDINATOR, is_admin
from core.metrics import AI_WRONG_DEFINITION
from core.views import form_page, found_or_404
from inference import selectors, selectors_external, services_external
from inference.forms import ExternalValidationStartForm
from inference.models import ExternalValidation

FIGURES = ("roc", "calibration")
EXPORTS = {"cases": selectors_external.case_csv_rows, "metrics": selectors_external.metrics_csv_rows}


def _validation(request, pk: int) -> ExternalValidation:
    return found_or_404(selectors_external.external_validation_for_user, request.user, pk,
                        message="no such external validation")


@role_required(COORDINATOR, "external validations are for coordinators and admins")
def external_validation_list(request):
    return render(request, "inference/external_list.html", {
        "validations": selectors_external.external_validations_visible_to(request.user).defer("results")[:200],
        "can_start": selectors_external.can_start_external_validation(request.user)})


@login_required
def external_validation_start(request):
    if not selectors_external.can_start_external_validation(request.user):
        raise PermissionDenied("starting an external validation is for admins")
    form = ExternalValidationStartForm(request.POST or None, evaluations=selectors.finished_evaluations(request.user),
                                       initial={"evaluation": request.GET.get("evaluation")})
    return form_page(request, form, "inference/external_start.html",
                     lambda data: services_external.external_validation_start(
                         evaluation=data["evaluation"], cohort=data["cohort"], by=request.user, name=data["name"]),
                     then="inference_external_validation",
                     message=lambda validation: f"external validation {validation.name} queued on the gpu queue")


@login_required
def external_validation_detail(request, pk: int):
    validation = _validation(request, pk)
    results = validation.results or {}
    job = validation.job
    return render(request, "inference/external_detail.html", {
        "validation": validation, "results": results, "metrics": results.get("metrics") or {},
        "frozen": validation.frozen, "metric_table": selectors_external.metric_table(validation),
        "case_table": selectors_external.case_table(validation), "ai_wrong_definition": AI_WRONG_DEFINITION,
        "show_job": job is not None and (is_admin(request.user) or job.created_by_id == request.user.pk),
    })


@login_required
def external_validation_csv(request, pk: int, name: str):
    validation = _validation(request, pk)
    if name not in EXPORTS or validation.status != ExternalValidation.Status.DONE:
        raise Http404("no such export")
    response = HttpResponse(content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="external-validation-{validation.pk}-{name}.csv"'
    writer = csv.writer(response)
    for row in EXPORTS[name](validation):
        writer.writerow(row)
    return response


@login_required
def external_validation_figure(request, pk: int, name: str):
    validation = _validation(request, pk)
    metrics = (validation.results or {}).get("metrics")
    if name not in FIGURES or not metrics:
        raise Http404("no such figure")
    from inference import external

    synthetic = bool(validation.results.get("synthetic"))
    title = f"{validation.cohort.name}: " + ("ROC of the likelihood" if name == "roc" else "calibration")
    if name == "roc":
        svg = external.roc_chart(metrics["roc"], auc=metrics["likelihood"].get("auc"), title=title,
                                 synthetic=synthetic)
    else:
        svg = external.calibration_chart(metrics["calibration"], title=title, synthetic=synthetic)
    response = HttpResponse(svg, content_type="image/svg+xml")
    response["Cache-Control"] = "private, max-age=60"
    return response
