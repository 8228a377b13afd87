"""The study-planning page (issue 19): power and sample size of the next reader study from a pilot — a study of
ours (exam 1 vs exam 2) or an uploaded long CSV — with the J × K curve, the table and their exports. Coordinators
and admins only. An uploaded pilot is read once; only its variance components (numbers that identify no one) are
kept, in the session, so the page's figure and exports can be asked for by GET."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

from django.http import HttpResponse
from django.shortcuts import redirect, render

from accounts.permissions import role_required
from accounts.roles import COORDINATOR
from analysis import planning, planning_figure, selectors, services
from analysis.mrmc_io import MRMCInputError

SESSION_KEY = "planning_pilot"
MAX_UPLOAD_BYTES = 20 * 1024 * 1024


def _float(value, default):
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def _options(query) -> dict:
    analysis = query.get("analysis", "RRRC")
    return {"effect_size": _float(query.get("effect"), None), "target_power": _float(query.get("power"), 0.8),
            "alpha": _float(query.get("alpha"), 0.05),
            "analysis": analysis if analysis in planning.ANALYSES else "RRRC",
            "readers": int(_float(query.get("readers"), 0)) or None}


def _pilot(request, query):
    """The chosen pilot's components and its label, or (None, reason)."""
    covariance = query.get("covariance", "jackknife")
    if query.get("source") == "upload":
        stored = request.session.get(SESSION_KEY)
        if not stored:
            return None, "upload a pilot CSV first"
        return planning.PilotComponents(**{**stored, "fom": tuple(stored["fom"]),
                                           "modalities": tuple(stored["modalities"])}), "the uploaded pilot"
    if query.get("study"):
        study = selectors.studies_for_analysis(request.user).filter(pk=query.get("study")).first()
        if study is None:
            return None, "no such study"
        summary = services.study_report(study=study).stats.mrmc_for("auc")
        if summary.analysis is None:
            return None, f"{study.name}: {summary.note or 'no reader has finished both exams yet'}"
        return planning.pilot_components(summary.analysis.components, covariance=covariance,
                                         modality_ids=("exam 1", "exam 2")), study.name
    return None, ""


@role_required(COORDINATOR, "study planning is for coordinators")
def planning_page(request):
    if request.method == "POST":
        return _upload(request)
    query = request.GET
    studies = selectors.studies_for_analysis(request.user).order_by("-created_at")
    options = _options(query)
    pilot, label = _pilot(request, query)
    context = {"studies": studies, "query": query, "options": options, "label": label, "error": "",
               "analyses": planning.ANALYSES}
    if pilot is not None:
        try:
            result = planning.plan(pilot, readers=options["readers"] or pilot.pilot_readers, table=True,
                                   **{k: options[k] for k in ("effect_size", "target_power", "alpha", "analysis")})
        except planning.PlanningError as exc:
            context["error"] = str(exc)
        else:
            fmt = query.get("format")
            if fmt == "csv":
                return _csv(result)
            if fmt in ("png", "svg"):
                return HttpResponse(planning_figure.render(result, fmt),
                                    content_type="image/png" if fmt == "png" else "image/svg+xml")
            context["result"] = result
            context["query_string"] = query.urlencode()
    elif label:
        context["error"] = label
    elif query.get("error") == "upload":
        context["error"] = f"choose a pilot CSV of at most {MAX_UPLOAD_BYTES // (1024 * 1024)} MB"
    return render(request, "analysis/planning.html", context)


def _upload(request):
    upload = request.FILES.get("pilot")
    if upload is None or upload.size > MAX_UPLOAD_BYTES:
        return redirect(f"{request.path}?error=upload")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pilot.csv"
        path.write_bytes(upload.read())
        try:
            pilot = planning.pilot_from_csv(path, covariance=request.POST.get("covariance", "jackknife"))
        except (MRMCInputError, planning.PlanningError) as exc:
            studies = selectors.studies_for_analysis(request.user).order_by("-created_at")
            return render(request, "analysis/planning.html",
                          {"studies": studies, "query": {}, "options": _options({}), "analyses": planning.ANALYSES,
                           "error": f"{upload.name}: {str(exc).replace(str(path), 'the file')}"}, status=400)
    request.session[SESSION_KEY] = pilot.to_dict()
    return redirect(f"{request.path}?source=upload&covariance={pilot.covariance}")


def _csv(result: dict) -> HttpResponse:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["readers", "cases", "power", "analysis", "effect_size", "alpha", "target_power"])
    for row in result["table"]:
        writer.writerow([row["readers"], row["cases"] if row["cases"] else "",
                         f"{row['power']:.6f}" if row["power"] is not None else "", result["analysis"],
                         f"{result['effect_size']:.6f}", result["alpha"], result["target_power"]])
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="study_planning.csv"'
    return response
