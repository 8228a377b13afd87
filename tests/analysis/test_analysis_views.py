"""Statistics page, figures, downloads and API: coordinators only, and the page, the figures and the exports
show the same numbers (GENERATED study of factories_analysis, SYNTHETIC)."""

import csv
import io
import json
import re
import zipfile

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils.html import escape

from analysis import exports, figures, services
from core import navigation
from factories_analysis import build_study

pytestmark = pytest.mark.django_db


@pytest.fixture
def study():
    return build_study()["study"]


def _urls(pk):
    return [reverse("analysis_study", args=[pk]), reverse("analysis_figure", args=[pk, "groups", "png"]),
            reverse("analysis_export", args=[pk, "reads.csv"]),
            reverse("analysis_export", args=[pk, "mrmc.json"]),
            reverse("analysis_api_study", args=[pk])]


def _csv(content: bytes | str):
    text = content.decode() if isinstance(content, bytes) else content
    return list(csv.DictReader(io.StringIO(text)))


def test_readers_get_403_and_anonymous_users_the_login_page(client, study, reader):
    pages, api = _urls(study.pk)[:-1], _urls(study.pk)[-1]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"], url
    assert client.get(api).status_code in (401, 403)
    client.force_login(reader)
    for url in [reverse("analysis_study_list"), *_urls(study.pk)]:
        assert client.get(url).status_code == 403, url


def test_an_unknown_study_figure_or_export_is_404(client, study, coordinator):
    client.force_login(coordinator)
    assert client.get(reverse("analysis_study", args=[study.pk + 999])).status_code == 404
    assert client.get(reverse("analysis_figure", args=[study.pk, "nope", "png"])).status_code == 404
    assert client.get(reverse("analysis_figure", args=[study.pk, "groups", "gif"])).status_code == 404
    assert client.get(reverse("analysis_export", args=[study.pk, "secrets.csv"])).status_code == 404
    assert client.get(reverse("analysis_api_study", args=[study.pk + 999])).status_code == 404


def test_study_list_links_every_study_for_coordinators_and_admins(client, study, coordinator, admin_user):
    for user in (coordinator, admin_user):
        client.force_login(user)
        page = client.get(reverse("analysis_study_list")).content.decode()
        assert reverse("analysis_study", args=[study.pk]) in page and study.name in page
    titles = [link["title"] for link in navigation.links_for("Coordinator")]
    assert "Study statistics" in titles


def test_statistics_page_shows_the_numbers_of_the_exports(client, study, coordinator):
    client.force_login(coordinator)
    page = client.get(reverse("analysis_study", args=[study.pk])).content.decode()
    files = exports.report_files(services.study_report(study=study))
    for row in _csv(files["reader_statistics.csv"]):
        for metric in ("sensitivity", "ss_avg", "auc"):
            value, low, high = (row[c] for c in exports.metric_columns(metric))
            if value:
                assert low and high, (row["reader"], metric)              # every figure has its CI
                assert f"<td>{value} ({low}–{high})</td>" in page
    for row in _csv(files["group_statistics.csv"]):
        mean, sd = row["ss_avg_percent_mean"], row["ss_avg_percent_sd"]
        low, high = row["ss_avg_ci_low_percent"], row["ss_avg_ci_high_percent"]
        if mean and sd:
            assert f"{mean} ± {sd} ({low}–{high})" in page, row["group"]
    for row in _csv(files["comparisons.csv"]):
        if row["p"]:
            assert f'<td class="num">{row["p"]}' in page
    document = json.loads(files["mrmc.json"])
    for metric in ("auc", "sensitivity", "specificity"):
        assert escape(document["metrics"][metric]["conclusion"]) in page
    assert "Student&#x27;s" in page and "Welch&#x27;s" in page and "paired" in page
    assert "R05 (incomplete (3 of 6))" in page                      # the reader who has not finished
    assert 'id="synthetic-banner"' in page
    for name in figures.FIGURES:
        assert reverse("analysis_figure", args=[study.pk, name, "svg"]) + "?download=1" in page
    for filename, _ in (("reads.csv", ""), ("mrmc.json", ""), ("all.zip", "")):
        assert reverse("analysis_export", args=[study.pk, filename]) in page
    for case in study.cases.all():
        assert case.pseudonym not in page


def test_figures_are_png_and_svg_and_downloadable(client, study, coordinator):
    client.force_login(coordinator)
    png = client.get(reverse("analysis_figure", args=[study.pk, "roc_exam1", "png"]))
    assert png["Content-Type"] == "image/png" and png.content[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Content-Disposition" not in png
    svg = client.get(reverse("analysis_figure", args=[study.pk, "misdiagnosis_exam2", "svg"]) + "?download=1")
    assert svg["Content-Type"] == "image/svg+xml" and b"<svg" in svg.content
    assert svg["Content-Disposition"].startswith("attachment;")
    assert 'misdiagnosis_exam2.svg"' in svg["Content-Disposition"]
    assert b"SYNTHETIC data" in svg.content


def test_group_bars_show_the_group_statistics_csv_values(client, study, coordinator):
    client.force_login(coordinator)
    report = services.study_report(study=study)
    svg = client.get(reverse("analysis_figure", args=[study.pk, "groups", "svg"])).content.decode()
    labels = re.findall(r">([0-9]+\.[0-9]+)<", svg)
    rows = {(r["group"], r["exam"]): r for r in _csv(exports.report_files(report)["group_statistics.csv"])}
    for bar in figures.group_bars(report.stats):
        group = {"specialist": "Specialists", "practitioner": "Practitioners"}[bar["group"]]
        expected = rows[(group, str(bar["exam"]))][f"{exports.metric_column(bar['metric'])}_mean"]
        assert bar["label"] == expected
        assert expected in labels, (bar["metric"], group, bar["exam"])


def test_roc_points_and_misdiagnosis_points_match_the_exports(study):
    report = services.study_report(study=study)
    files = exports.report_files(report)
    readers = {(r["reader"], r["exam"]): r for r in _csv(files["reader_statistics.csv"])}
    for exam in (1, 2):
        points = figures.roc_points(report.stats, exam)
        assert [p["reader"] for p in points] == ["R01", "R02", "R03", "R04"]
        for p in points:
            row = readers[(p["reader"], str(exam))]
            assert f"{100 * p['tpr']:.2f}" == row["sensitivity_percent"]
            assert f"{100 * (1 - p['fpr']):.2f}" == row["specificity_percent"]
        cases = {r["case"]: r for r in _csv(files["cases.csv"])}
        for p in figures.misdiagnosis_points(report.stats, exam):
            label = figures.ss.MISSED_LABELS.get(p["category"], "")
            assert cases[p["case"]][f"missed_by_exam{exam}"] == label
            assert f"{p['x']:.1f}" == cases[p["case"]]["max_diameter_mm"]


def test_reads_download_is_streamed_and_the_zip_holds_everything(client, study, coordinator):
    client.force_login(coordinator)
    response = client.get(reverse("analysis_export", args=[study.pk, "reads.csv"]))
    assert isinstance(response, StreamingHttpResponse)
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="generated-study-synthetic_reads.csv"'
    rows = _csv(b"".join(response.streaming_content))
    assert len(rows) == 51 and tuple(rows[0]) == exports.READS_COLUMNS
    zipped = client.get(reverse("analysis_export", args=[study.pk, "all.zip"]))
    assert zipped["Content-Type"] == "application/zip"
    archive = zipfile.ZipFile(io.BytesIO(zipped.content))
    names = set(archive.namelist())
    assert {"reads.csv", "mrmc.json", "mrmc.csv", "comparisons.csv", "figures/groups.png",
            "figures/roc_exam2.svg"} <= names
    assert archive.read("reads.csv").decode() == b"".join(
        client.get(reverse("analysis_export", args=[study.pk, "reads.csv"])).streaming_content).decode()


def test_api_gives_the_same_tables_as_the_exports(client, study, coordinator):
    client.force_login(coordinator)
    data = client.get(reverse("analysis_api_study", args=[study.pk])).json()
    files = exports.report_files(services.study_report(study=study))
    assert data["reader_statistics"] == _csv(files["reader_statistics.csv"])
    assert data["comparisons"] == _csv(files["comparisons.csv"])
    assert data["mrmc"] == json.loads(files["mrmc.json"])
    assert data["complete_readers"] == {"1": ["R01", "R02", "R03", "R04"], "2": ["R01", "R02", "R03", "R04"]}
    assert data["study"]["synthetic"] is True and data["n_sarcoma"] == 3


def test_a_study_without_reads_or_evaluation_shows_what_is_missing(client, coordinator):
    from reader_study.models import Study

    empty = Study.objects.create(name="Empty study (synthetic)")
    client.force_login(coordinator)
    page = client.get(reverse("analysis_study", args=[empty.pk])).content.decode()
    assert "No AI results for this study" in page
    assert page.count("Not computed: needs at least 2 readers who completed both exams") == 3
    for name in figures.FIGURES:
        assert client.get(reverse("analysis_figure", args=[empty.pk, name, "png"])).status_code == 200
