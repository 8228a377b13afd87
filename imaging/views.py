"""Coordinator pages: cases, case detail with ground truth, series view (box drawing), sequence
mapping (report, overrides, rules editor), imports, cohorts. Thin: reads through selectors, writes
through services. The upload page is in views_upload.py."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.permissions import role_required
from accounts.roles import COORDINATOR
from core.constants import CLASS_CHOICES, SEQUENCE_CODES
from core.views import found_or_404
from imaging import frozen, selectors, services, services_cohorts, services_import
from imaging.forms import CaseCorrectionForm, CaseTruthForm, CohortForm, OverrideForm, RetrieveForm, RulesForm
from imaging.models import Case, Plane

coordinator_required = role_required(COORDINATOR, "this page is for coordinators")


def _errors(error: ValidationError) -> list[str]:
    if hasattr(error, "message_dict"):
        return [f"{field}: {message}" for field, msgs in error.message_dict.items() for message in msgs]
    return list(error.messages)


def _post_write(request, write, success) -> None:
    """Run a service's write for a POST: its ValidationError as error messages, else ``success(result)``."""
    try:
        result = write()
    except ValidationError as error:
        for message in _errors(error):
            messages.error(request, message)
    else:
        messages.success(request, success(result))


@coordinator_required
def case_list(request):
    filters = {k: request.GET.get(k, "").strip() for k in ("q", "truth", "sequence", "institution")}
    cases = selectors.case_list(request.user, **filters)
    page = Paginator(cases, 100).get_page(request.GET.get("page"))
    return render(
        request,
        "imaging/case_list.html",
        {
            "page": page,
            "filters": filters,
            "classes": CLASS_CHOICES,
            "codes": SEQUENCE_CODES,
            "institutions": selectors.institutions(request.user),
            "total": cases.count(),
            "duplicate_groups": len(selectors.possible_duplicates(request.user)),
        },
    )


@coordinator_required
def case_detail(request, pk: int):
    case = found_or_404(selectors.case_for_user, request.user, pk, message="no such case")
    frozen_by = frozen.frozen_labels(case)
    form = CaseTruthForm(request.POST or None, instance=Case.objects.get(pk=case.pk), frozen_by=frozen_by)
    if request.method == "POST" and form.is_valid():
        try:
            services.case_update(case=case, by=request.user,
                                 **{f: form.cleaned_data[f] for f in services.CASE_FIELDS})
        except ValidationError as error:
            for message in _errors(error):
                messages.error(request, message)
        else:
            messages.success(request, f"ground truth of {case.pseudonym} saved")
            return redirect("imaging_case_detail", pk=case.pk)
    return render(
        request,
        "imaging/case_detail.html",
        {"case": case, "form": form, "series": case.series.all(), "override_form": OverrideForm(),
         "frozen_by": frozen_by, "audit": selectors.case_audit(request.user, case)},
    )


@coordinator_required
def case_correct(request, pk: int):
    """The correction of a case (issue 13): truth, subtype or series, with a reason; marks what it affects
    stale and names it."""
    case = found_or_404(selectors.case_for_user, request.user, pk, message="no such case")
    form = CaseCorrectionForm(request.POST or None, case=case)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            result = services.case_correct(case=case, truth=data["truth"], subtype=data["subtype"],
                                           remove_series=data["remove_series"], reason=data["reason"],
                                           by=request.user)
        except ValidationError as error:
            for message in _errors(error):
                messages.error(request, message)
        else:
            stale = ", ".join(result.affected) or "nothing (the case was in no cohort, evaluation or study)"
            messages.success(request, f"{case.pseudonym} corrected; marked stale (rebuild needed): {stale}")
            return redirect("imaging_case_detail", pk=case.pk)
    return render(request, "imaging/case_correct.html",
                  {"case": case, "form": form, "frozen_by": frozen.frozen_labels(case)})


def _series(request, pk: int):
    return found_or_404(selectors.series_for_user, request.user, pk, message="no such series")


@coordinator_required
def series_detail(request, pk: int):
    series = _series(request, pk)
    return render(
        request,
        "imaging/series_detail.html",
        {
            "series": series,
            "case": series.case,
            "boxes": series.boxes.order_by("slice_index"),
            "override_form": OverrideForm(initial={"override_code": series.override_code}),
            "attributes": {k: v for k, v in (series.attributes or {}).items() if k != "flags"},
            "flags": (series.attributes or {}).get("flags", {}),
            "frozen_by": frozen.frozen_labels(series.case),
        },
    )


@coordinator_required
@require_POST
def series_override(request, pk: int):
    series = _series(request, pk)
    form = OverrideForm(request.POST)
    if form.is_valid():
        try:
            services.series_override_set(series=series, code=form.cleaned_data["override_code"],
                                         user=request.user)
        except ValidationError as error:
            for message in _errors(error):
                messages.error(request, message)
        else:
            messages.success(request, f"series {series.pk}: sequence code is now {series.sequence_code}")
    else:
        messages.error(request, "override: not a sequence code")
    next_url = request.POST.get("next")
    return redirect(_safe_next(next_url)) if next_url else redirect("imaging_series_detail", pk=series.pk)


def _safe_next(url: str) -> str:
    return url if url.startswith("/imaging/") and "//" not in url else "/imaging/mapping/"


MAPPING_FILTERS = ("q", "code", "overridden", "plane", "rule")
MAPPING_PAGE_SIZE = 50


@coordinator_required
def mapping(request):
    return _mapping_page(request)


def _mapping_page(request, *, rules_form=None, rule_errors=(), status: int = 200):
    """The mapping page: the rules editor at the top, then the report, filtered (``MAPPING_FILTERS`` from the query
    string) and paginated. ``rules_form``: a refused save's form, its text kept for correction; else the editor
    holds the active rule set."""
    filters = {name: request.GET.get(name, "").strip() for name in MAPPING_FILTERS}
    series = selectors.mapping_report(request.user, **filters)
    rules, record = selectors.active_rule_set()
    if rules_form is None:
        rules_form = RulesForm(initial={"name": record.name if record else "site rules",
                                        "rules": services.rules_as_text(record)})
    query = {name: value for name, value in filters.items() if value}
    return render(
        request,
        "imaging/mapping.html",
        {
            "page": Paginator(series, MAPPING_PAGE_SIZE).get_page(request.GET.get("page")),
            "filters": filters,
            "filtered": bool(query),
            "query": urlencode(query),
            "codes": SEQUENCE_CODES,
            "planes": Plane.values,
            "rule_ids": [r.id for r in rules.rules],
            "record": record,
            "rule_notes": {r.id: r.note for r in rules.rules},
            "override_form": OverrideForm(),
            "rules_form": rules_form,
            "rule_errors": rule_errors,
        },
        status=status,
    )


@coordinator_required
@require_POST
def mapping_rules(request):
    form = RulesForm(request.POST)
    errors = []
    if form.is_valid():
        try:
            record = services.ruleset_save(
                name=form.cleaned_data["name"], rules=form.cleaned_data["rules"], user=request.user
            )
        except ValidationError as error:
            errors = _errors(error)
        else:
            messages.success(
                request,
                f"rule set '{record.name}' saved and active; new imports use it. "
                "Apply it to stored series with the button below the editor.",
            )
            return redirect("imaging_mapping")
    else:
        errors = [f"{field}: {' '.join(msgs)}" for field, msgs in form.errors.items()]
    return _mapping_page(request, rules_form=form, rule_errors=errors, status=400)


@coordinator_required
@require_POST
def mapping_remap(request):
    report = services.series_remap()
    kept = f"; {report['kept_frozen']} of frozen cases kept their code" if report.get("kept_frozen") else ""
    messages.success(
        request,
        f"rules applied to {report['series']} stored series; {report['changed']} changed (overrides kept){kept}",
    )
    return redirect("imaging_mapping")


@coordinator_required
def import_list(request):
    batches = selectors.import_batches_visible_to(request.user)[:200]
    return render(request, "imaging/import_list.html", {"batches": batches})


@coordinator_required
def import_detail(request, pk: int):
    batch = found_or_404(selectors.import_batches_visible_to(request.user).get, pk=pk, message="no such import")
    return render(
        request,
        "imaging/import_detail.html",
        {
            "batch": batch,
            "summary": batch.summary or {},
            "rejections": batch.rejections or [],
            "series": batch.series.select_related("case").order_by("case__pseudonym", "series_number")[:500],
            "patients": (batch.summary or {}).get("patients") or [],
            "held": selectors.held_imports(request.user, batch),
            "duplicate_groups": len(selectors.possible_duplicates(request.user, batch)),
            "upload_kept": selectors.import_upload_kept(batch),
        },
    )


@coordinator_required
@require_POST
def import_upload_discard(request, pk: int):
    """Discard the raw upload a failed or cancelled import keeps for a resume (``services.import_upload_discard``)."""
    batch = found_or_404(selectors.import_batches_visible_to(request.user).get, pk=pk, message="no such import")

    def discard():
        if batch.job is None:
            raise ValidationError("this import has no job")
        if request.POST.get("confirm") != "yes":
            raise ValidationError("tick “I will not resume this import” to discard its upload")
        services.import_upload_discard(job=batch.job, by=request.user)

    _post_write(request, discard, lambda _: "the upload was discarded: its files are deleted and the job can no "
                                            "longer be resumed; what it imported is kept")
    return redirect("imaging_import_detail", pk=batch.pk)


@coordinator_required
@require_POST
def import_review_resolve(request, pk: int):
    """Resolve a study held for review: "same patient" (its series join the existing case) or "new patient"."""
    held = found_or_404(selectors.held_imports(request.user).get, pk=pk, message="no such held study")
    batch_id = held.import_batch_id
    _post_write(request, lambda: services_import.import_review_resolve(
        case=held, decision=request.POST.get("decision", ""), by=request.user, reason=request.POST.get("reason", "")),
        lambda case: f"resolved: the study is now in {case.pseudonym}")
    if batch_id:
        return redirect("imaging_import_detail", pk=batch_id)
    return redirect("imaging_import_list")


@coordinator_required
def case_duplicates(request):
    """Possible duplicate patients (issue 14, item 9): cases with the same keyed name + birth date + sex under
    different patient IDs. The coordinator merges them before folds are drawn, or says they are different people."""
    return render(request, "imaging/case_duplicates.html",
                  {"groups": selectors.possible_duplicates(request.user)})


def _pk(value) -> int | None:
    return int(value) if str(value or "").isdigit() else None


@coordinator_required
@require_POST
def case_duplicates_merge(request):
    """Merge one case of a group into another (``services_import.case_merge``)."""
    source, target = _pk(request.POST.get("case")), _pk(request.POST.get("into"))

    def merge():
        if source is None or target is None:
            raise ValidationError("choose the case to merge and the case to keep")
        usable = selectors.cases_visible_to(request.user)
        return services_import.case_merge(case=found_or_404(usable.get, pk=source, message="no such case"),
                                          into=found_or_404(usable.get, pk=target, message="no such case"),
                                          by=request.user, reason=request.POST.get("reason", ""))

    _post_write(request, merge, lambda case: f"merged: the series are now in {case.pseudonym}")
    return redirect("imaging_case_duplicates")


@coordinator_required
@require_POST
def case_duplicates_dismiss(request):
    """Say that a group's cases are different people (``services_import.case_duplicates_dismiss``)."""
    pks = [pk for pk in map(_pk, request.POST.getlist("cases")) if pk is not None]
    cases = list(selectors.cases_visible_to(request.user).filter(pk__in=pks))
    _post_write(request, lambda: services_import.case_duplicates_dismiss(
        cases=cases, by=request.user, reason=request.POST.get("reason", "")),
        lambda n: f"{n} cases marked as different people")
    return redirect("imaging_case_duplicates")


@coordinator_required
def cohort_list(request):
    form = CohortForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        cases = services_cohorts.cohort_candidates(selection=data["selection"], institution=data["institution"])
        try:
            cohort = services_cohorts.cohort_create(
                name=data["name"],
                description=data["description"],
                cases=cases,
                crop_margin=data["crop_margin"],
                input_size=data["input_size"],
                user=request.user,
            )
        except ValidationError as error:
            for message in _errors(error):
                messages.error(request, message)
        else:
            job = services_cohorts.cohort_build_start(cohort=cohort, user=request.user)
            messages.success(
                request,
                f"cohort {cohort.name} frozen with {cohort.members.count()} cases; building its array store",
            )
            return redirect("job_detail", pk=job.pk)
    return render(
        request,
        "imaging/cohort_list.html",
        {"cohorts": selectors.cohorts_visible_to(request.user), "form": form,
         "duplicate_groups": len(selectors.possible_duplicates(request.user))},
    )


@coordinator_required
@require_POST
def cohort_build(request, pk: int):
    cohort = selectors.cohorts_visible_to(request.user).filter(pk=pk).first()
    if cohort is None:
        raise Http404("no such cohort")
    job = services_cohorts.cohort_build_start(cohort=cohort, user=request.user)
    return redirect("job_detail", pk=job.pk)


RETRIEVE_MAX_BYTES = 1024 * 1024 + 64 * 1024     # the list (1 MB) and the rest of the form


@coordinator_required
def retrieve_new(request):
    """Coordinators pull studies from a registered PACS by accession number or patient ID (docs/pacs.md)."""
    from imaging.models import DicomNode
    from imaging.retrieve import retrieve_start, unfinished_retrievals

    if request.method == "POST" and int(request.META.get("CONTENT_LENGTH") or 0) > RETRIEVE_MAX_BYTES:
        # refused before Django parses it: a larger body would be spooled to a temporary file (a list of IDs)
        form = RetrieveForm(nodes=DicomNode.objects.all())
        form.add_error(None, "the list is larger than 1 MB: split it")
        return render(request, "imaging/retrieve.html", {"form": form, "has_nodes": True}, status=400)
    form = RetrieveForm(request.POST or None, request.FILES or None, nodes=DicomNode.objects.all())
    if request.method == "POST" and form.is_valid():
        try:
            job = retrieve_start(node=form.cleaned_data["node"], text=form.list_text(),
                                 method=form.cleaned_data["method"], default_kind=form.cleaned_data["kind"],
                                 user=request.user)
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, messages)
        else:
            return redirect("job_detail", pk=job.pk)
    return render(request, "imaging/retrieve.html", {"form": form, "has_nodes": DicomNode.objects.exists(),
                                                     "unfinished": unfinished_retrievals(request.user)})


@coordinator_required
@require_POST
def retrieve_discard(request, pk: int):
    """Forget the list of a failed or cancelled retrieval (it holds accession numbers or patient IDs)."""
    from imaging.retrieve import retrieve_list_discard

    try:
        retrieve_list_discard(job=pk, by=request.user)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"the list of retrieval job {pk} was discarded")
    return redirect("imaging_retrieve")
