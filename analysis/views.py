"""Statistics pages, figures and exports of reader studies. Coordinators and admins only: anyone else logged
in gets 403, an unknown study 404. Thin: selectors decide what a user may see, services compute."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils.text import slugify

from accounts.permissions import require_role, role_required
from accounts.roles import COORDINATOR
from analysis import exports, figures, selectors, services
from analysis import study_stats as ss
from core import metrics
from core.views import found_or_404

DOWNLOADS = (
    (exports.READS_FILE, "All reads (tidy CSV)"),
    ("reader_statistics.csv", "Per-reader statistics"),
    ("group_statistics.csv", "Group means ± SD"),
    ("comparisons.csv", "t-tests"),
    ("dnn.csv", "DNN figures"),
    ("cases.csv", "Cases and misdiagnoses"),
    ("mrmc.csv", "MRMC (CSV)"),
    ("mrmc.json", "MRMC (JSON)"),
    (exports.CASE_AUDIT_FILE, "Case audit trail"),
)
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json",
                 "txt": "text/plain; charset=utf-8", "zip": "application/zip"}


def _study(request, pk: int):
    require_role(request.user, COORDINATOR, "study statistics are for coordinators")
    return found_or_404(selectors.study_for_analysis, request.user, pk, message="no such study")


def _attachment(response, study, filename: str):
    response["Content-Disposition"] = f'attachment; filename="{slugify(study.name) or "study"}_{filename}"'
    return response


@role_required(COORDINATOR, "study statistics are for coordinators")
def study_list(request):
    studies = selectors.studies_for_analysis(request.user).order_by("-created_at")
    return render(request, "analysis/study_list.html", {"studies": studies})


def _comparison_sections(table: exports.Table) -> list[dict]:
    """The comparisons table split by kind for the page (the CSV keeps them in one table)."""
    titles = {"groups": "Specialists vs practitioners", "vs_dnn": "Each group vs the DNN",
              "exams": "Exam 1 vs exam 2 (same readers)"}
    rows = [{**row, "metric_label": ss.METRIC_LABELS[row["metric"]]} for row in table.as_dicts()]
    return [{"title": title, "rows": [r for r in rows if r["kind"] == kind]}
            for kind, title in titles.items()]


def _interval_text(value: str, low: str, high: str) -> str:
    """"72.50 (51.23–88.10)": a value with its 95 % CI, as the page shows it ("—" for no value)."""
    if not value:
        return "—"
    return f"{value} ({low}–{high})" if low and high else f"{value} (no CI)"


def _with_intervals(table: exports.Table) -> exports.Table:
    """The export table with each metric and its CI columns folded into one "value (low–high)" cell."""
    merged = {}
    for metric in ss.METRICS:
        value, low, high = exports.metric_columns(metric)
        if value in table.columns:
            merged[value] = (low, high)
    dropped = {c for pair in merged.values() for c in pair}
    keep = [c for c in table.columns if c not in dropped]
    rows = []
    for row in table.as_dicts():
        rows.append(tuple(_interval_text(row[c], *(row[x] for x in merged[c])) if c in merged else row[c]
                          for c in keep))
    return exports.Table(tuple(keep), tuple(rows))


def _group_rows(table: exports.Table) -> list[dict]:
    """Group means as "mean ± SD (CI low–high)" cells, from the same table as group_statistics.csv."""
    rows = []
    for row in table.as_dicts():
        cells = []
        for metric in ss.METRICS:
            column = exports.metric_column(metric)
            mean, sd = row[f"{column}_mean"], row[f"{column}_sd"]
            low, high = (row[c] for c in exports.ci_columns(metric))
            text = _interval_text(mean, low, high)
            cells.append(text if not (mean and sd) else text.replace(mean, f"{mean} ± {sd}", 1))
        rows.append({"group": row["group"], "exam": row["exam"], "readers": row["readers"], "cells": cells})
    return rows


def _unavailable(stats: ss.StudyStatistics, name: str) -> str:
    """Why a figure is not drawn on the page ("" when it is): a misdiagnosis map of an exam nobody finished."""
    if name.startswith("misdiagnosis_exam"):
        return figures.misdiagnosis_unavailable(stats, int(name[-1]))
    return ""


@login_required
def study_statistics(request, pk: int):
    study = _study(request, pk)
    report = services.study_report(study=study)
    stats = report.stats
    context = {
        "study": study, "report": report, "stats": stats,
        "readers_table": _with_intervals(exports.reader_statistics_table(stats)),
        "dnn_table": _with_intervals(exports.dnn_table(report)),
        "dnn_source": exports.dnn_source_text(stats),
        "intervals_note": exports.INTERVALS_NOTE, "group_interval_method": ss.GROUP_INTERVAL_METHOD,
        "comparison_sections": _comparison_sections(exports.comparisons_table(stats)),
        "mrmc_table": exports.mrmc_table(stats),
        "cases_table": exports.cases_table(stats),
        "figures": [{"name": name, "title": title, "unavailable": _unavailable(stats, name)}
                    for name, title in figures.FIGURES.items()],
        "ai_wrong_definition": metrics.AI_WRONG_DEFINITION,
        "downloads": DOWNLOADS, "metric_labels": ss.METRIC_LABELS,
        "mrmc": [{"label": ss.METRIC_LABELS[m.metric], "summary": m} for m in stats.mrmc],
        "group_metrics": [{"key": m, "label": ss.METRIC_LABELS[m] + ("" if m == "auc" else " %")}
                          for m in ss.METRICS],
        "group_rows": _group_rows(exports.group_statistics_table(stats)),
    }
    return render(request, "analysis/study_statistics.html", context)


@login_required
def figure(request, pk: int, name: str, fmt: str):
    study = _study(request, pk)
    if name not in figures.FIGURES or fmt not in figures.FORMATS:
        raise Http404("no such figure")
    response = HttpResponse(services.study_figure(study=study, name=name, fmt=fmt),
                            content_type=figures.CONTENT_TYPES[fmt])
    if request.GET.get("download"):
        _attachment(response, study, f"{name}.{fmt}")
    return response


@login_required
def export(request, pk: int, filename: str):
    """One export file; the reads CSV is streamed from the database, so large studies never sit in memory."""
    study = _study(request, pk)
    if filename == exports.READS_FILE:
        response = StreamingHttpResponse(exports.reads_csv_lines(study), content_type=CONTENT_TYPES["csv"])
        return _attachment(response, study, filename)
    if filename == exports.CASE_AUDIT_FILE:
        response = StreamingHttpResponse(exports.case_audit_csv_lines(study), content_type=CONTENT_TYPES["csv"])
        return _attachment(response, study, filename)
    if filename == "all.zip":
        archive = services.study_export_zip(study=study)
        return _attachment(HttpResponse(archive, content_type=CONTENT_TYPES["zip"]), study, filename)
    files = exports.report_files(services.study_report(study=study))
    if filename not in files:
        raise Http404("no such export")
    content_type = CONTENT_TYPES[filename.rsplit(".", 1)[-1]]
    return _attachment(HttpResponse(files[filename], content_type=content_type), study, filename)

