"""Coordinator pages and the imaging API: who may see what, the volume's transfer and caching, the
upload page streaming to disk, box drawing, rules editing, overrides, ground truth and the admin."""

import gzip
import html
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from imaging import importer_store, services
from imaging.models import Case, SequenceRuleSet, Series, TumourBox
from imaging.phantoms import write_phantom_cohort
from jobs.models import Job, JobStatus
from jobs.services import job_create, job_run
from testsupport import CHROMIUM, CHROMIUM_MISSING, chromium_page

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("role_groups")]


@pytest.fixture(autouse=True)
def run_jobs_here(request, monkeypatch):
    """Jobs are run in the test (job_run) rather than sent to a broker, except in worker tests."""
    if request.node.get_closest_marker("worker") is None:
        monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)



@pytest.fixture(scope="module")
def phantom_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms") / "cohort"
    write_phantom_cohort(out, patients=1, sarcoma_fraction=1.0, seed=11, slice_size=32, slices_per_series=3)
    return out


@pytest.fixture
def imported(settings, tmp_path, phantom_dir):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    settings.IMAGING_IMPORT_WORKERS = 1
    params = services.import_params(
        source=phantom_dir / "dicom", manifest=phantom_dir / "manifest.csv", boxes=phantom_dir / "boxes.csv"
    )
    job = job_run(job_pk=job_create(kind="import_dicom", params=params, enqueue=False).pk, worker="t")
    assert job.status == JobStatus.SUCCEEDED, job.error
    return Case.objects.get()


def test_pages_are_for_coordinators(client, imported, reader, coordinator):
    series = imported.series.first()
    pages = [
        "/imaging/cases/",
        f"/imaging/cases/{imported.pk}/",
        f"/imaging/series/{series.pk}/",
        "/imaging/mapping/",
        "/imaging/import/",
        "/imaging/imports/",
        "/imaging/cohorts/",
    ]
    for url in pages:
        assert client.get(url).status_code == 302  # to the login page
    client.force_login(reader)
    for url in pages:
        assert client.get(url).status_code == 403, url
    client.force_login(coordinator)
    for url in pages:
        assert client.get(url).status_code == 200, url
    landing = client.get("/coordinator/").content.decode()  # the links imaging registers on the role page
    assert all(link in landing for link in ("/imaging/import/", "/imaging/cases/", "/imaging/mapping/"))


def test_case_list_searches_and_filters(client, imported, coordinator):
    client.force_login(coordinator)
    assert imported.pseudonym in client.get("/imaging/cases/?truth=sarcoma").content.decode()
    assert imported.pseudonym not in client.get("/imaging/cases/?truth=leiomyoma").content.decode()
    code = imported.series.exclude(mapped_code="unused").first().mapped_code
    assert imported.pseudonym in client.get(f"/imaging/cases/?sequence={code}").content.decode()
    assert imported.pseudonym in client.get(f"/imaging/cases/?q={imported.pseudonym[2:6]}").content.decode()
    assert imported.pseudonym not in client.get("/imaging/cases/?institution=NOWHERE").content.decode()


def test_volume_and_meta_go_only_to_users_who_may_see_the_series(
    client, imported, reader, coordinator
):
    series = imported.series.exclude(mapped_code="unused").first()
    urls = [f"/api/series/{series.pk}/volume", f"/api/series/{series.pk}/meta"]
    for url in urls:
        assert client.get(url).status_code == 403  # not logged in
    client.force_login(reader)
    for url in urls:
        assert client.get(url).status_code == 404  # readers get images from reader_study, never from here
    client.force_login(coordinator)
    meta = client.get(urls[1]).json()
    assert meta["case"]["pseudonym"] == imported.pseudonym and meta["boxes"]


def test_the_volume_is_served_precompressed_with_caching_headers(client, imported, coordinator):
    client.force_login(coordinator)
    series = imported.series.exclude(mapped_code="unused").first()
    url = f"/api/series/{series.pk}/volume"
    response = client.get(url, HTTP_ACCEPT_ENCODING="gzip, deflate")
    assert response.status_code == 200
    assert response["Content-Encoding"] == "gzip" and response["Content-Type"] == "application/octet-stream"
    assert response["Cache-Control"].startswith("private") and response["ETag"]
    body = b"".join(response.streaming_content)
    assert body == importer_store.volume_file(series).read_bytes()  # the file written at import, as is
    values = np.frombuffer(gzip.decompress(body), "<u2").reshape(series.n_slices, series.rows, series.cols)
    assert np.array_equal(values, importer_store.read_stored(series))
    again = client.get(url, HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304
    plain = client.get(url, HTTP_ACCEPT_ENCODING="identity")
    assert "Content-Encoding" not in plain and b"".join(plain.streaming_content) == values.tobytes()


def test_upload_page_streams_a_zip_to_disk_and_the_job_deletes_it(
    client, settings, tmp_path, phantom_dir, coordinator
):
    settings.MEDIA_ROOT, settings.UPLOAD_ROOT = tmp_path / "media", tmp_path / "uploads"
    settings.IMAGING_IMPORT_WORKERS = 1
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted((phantom_dir / "dicom").rglob("*.dcm")):
            archive.write(path, path.relative_to(phantom_dir).as_posix())
    buffer.name = "export.zip"
    buffer.seek(0)
    client.force_login(coordinator)
    with open(phantom_dir / "manifest.csv", "rb") as manifest:
        response = client.post(
            "/imaging/import/", {"files": buffer, "manifest": manifest, "label": "site test"}
        )
    job = Job.objects.get(kind="import_dicom")
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    upload = Path(job.params["upload_dir"])
    assert (upload / "files" / "000001").exists() and (upload / "manifest.csv").exists()
    assert job.params["source"].endswith("/files/000001")  # the zip itself, extracted by the job
    job = job_run(job_pk=job.pk, worker="t")
    assert job.status == JobStatus.SUCCEEDED and job.result["files_rejected"] == 0
    assert job.result["source_kind"] == "zip" and Case.objects.get().truth == "sarcoma"
    assert not upload.exists()  # raw upload deleted after a successful import
    assert job.params["source"] == "(removed after import)"


def _upload_three(client, phantom_dir, coordinator) -> Job:
    files = sorted((phantom_dir / "dicom").rglob("*.dcm"))[:3]
    client.force_login(coordinator)
    handles = [open(p, "rb") for p in files]
    try:
        client.post("/imaging/import/", {"files": handles})
    finally:
        for h in handles:
            h.close()
    return Job.objects.get(kind="import_dicom")


def test_a_cancelled_upload_keeps_its_files_and_resumes(client, settings, tmp_path, phantom_dir, coordinator,
                                                        monkeypatch):
    from jobs.services import JobCancelled, job_resume

    settings.MEDIA_ROOT, settings.UPLOAD_ROOT = tmp_path / "media", tmp_path / "uploads"
    job = _upload_three(client, phantom_dir, coordinator)
    upload = Path(job.params["upload_dir"])

    def cancelled(*args, **kwargs):
        raise JobCancelled()

    with monkeypatch.context() as patch:
        patch.setattr("imaging.importer._read_files", cancelled)
        job = job_run(job_pk=job.pk, worker="t")
    assert job.status == JobStatus.CANCELLED and job.can_resume and upload.exists()
    page = client.get(f"/imaging/imports/{job.import_batch.pk}/").content.decode()
    assert 'id="upload-kept"' in page and "Discard the upload" in page
    job = job_run(job_pk=job_resume(job=job).pk, worker="t")
    assert job.status == JobStatus.SUCCEEDED and job.result["files_imported"] == 3 and not upload.exists()


def test_a_failed_uploads_files_are_discarded_on_request_and_it_cannot_be_resumed(
        client, settings, tmp_path, phantom_dir, coordinator, reader, monkeypatch):
    from jobs.services import JobError, job_resume

    settings.MEDIA_ROOT, settings.UPLOAD_ROOT = tmp_path / "media", tmp_path / "uploads"
    job = _upload_three(client, phantom_dir, coordinator)
    upload = Path(job.params["upload_dir"])

    def broken(*args, **kwargs):
        raise JobError("disk trouble (test)")

    monkeypatch.setattr("imaging.importer._read_files", broken)
    job = job_run(job_pk=job.pk, worker="t")
    assert job.status == JobStatus.FAILED and upload.exists()
    url = f"/imaging/imports/{job.import_batch.pk}/discard-upload/"
    with pytest.raises(Exception, match="coordinator"):
        services.import_upload_discard(job=job, by=reader)
    page = client.post(url, follow=True).content.decode()   # not confirmed: nothing happens
    assert "I will not resume" in page and upload.exists()
    page = client.post(url, {"confirm": "yes"}, follow=True).content.decode()
    assert "the upload was discarded" in page and not upload.exists()
    job.refresh_from_db()
    assert not job.can_resume and job.params["upload_dir"] == "(removed after import)"
    with pytest.raises(JobError, match="its upload was discarded"):
        job_resume(job=job)
    assert 'id="upload-kept"' not in client.get(f"/imaging/imports/{job.import_batch.pk}/").content.decode()


def test_raw_uploads_are_kept_when_the_setting_says_so(client, settings, tmp_path, phantom_dir, coordinator):
    settings.MEDIA_ROOT, settings.UPLOAD_ROOT = tmp_path / "media", tmp_path / "uploads"
    settings.KEEP_RAW_UPLOADS = True
    job = _upload_three(client, phantom_dir, coordinator)
    upload = Path(job.params["upload_dir"])
    assert sorted(p.name for p in (upload / "files").iterdir()) == ["000001", "000002", "000003"]
    assert json.loads((upload / "names.json").read_text())["000001"] == "I0001.dcm"
    assert job_run(job_pk=job.pk, worker="t").status == JobStatus.SUCCEEDED
    assert upload.exists()


def test_an_upload_without_files_is_refused(client, settings, tmp_path, coordinator):
    settings.UPLOAD_ROOT = tmp_path / "uploads"
    client.force_login(coordinator)
    response = client.post("/imaging/import/", {"label": "nothing"})
    assert response.status_code == 400 and b"choose a zip archive or DICOM files" in response.content
    assert not Job.objects.exists() and list((tmp_path / "uploads").rglob("*")) == []  # no folder made


def test_coordinators_draw_and_delete_boxes_readers_cannot(client, imported, coordinator, reader):
    series = imported.series.exclude(mapped_code="unused").first()
    url = f"/api/series/{series.pk}/boxes/"
    client.force_login(reader)
    assert (
        client.post(
            url, {"slice_index": 0, "x0": 1, "y0": 1, "x1": 5, "y1": 5}, content_type="application/json"
        ).status_code
        == 403
    )
    client.force_login(coordinator)
    response = client.post(
        url, {"slice_index": 0, "x0": 1, "y0": 2, "x1": 9, "y1": 12}, content_type="application/json"
    )
    assert response.status_code == 201 and response.json()["source"] == "drawn"
    box = TumourBox.objects.get(series=series, slice_index=0)
    assert (box.x0, box.y0, box.x1, box.y1, box.drawn_by) == (1, 2, 9, 12, coordinator)
    bad = client.post(
        url, {"slice_index": 0, "x0": 5, "y0": 2, "x1": 999, "y1": 12}, content_type="application/json"
    )
    assert bad.status_code == 400 and "x" in bad.json()
    assert client.delete(f"{url}?slice_index=0").status_code == 204
    assert not TumourBox.objects.filter(series=series, slice_index=0).exists()


def test_the_series_page_runs_the_shared_viewer_with_no_inline_code(client, imported, coordinator):
    """The coordinator's series page and the readers' reading page load one viewer, static/js/viewer.js;
    the page's own data travels in data-* attributes (a Content-Security-Policy allows no inline code)."""
    from django.contrib.staticfiles import finders

    series = imported.series.exclude(mapped_code="unused").first()
    client.force_login(coordinator)
    text = client.get(f"/imaging/series/{series.pk}/").content.decode()
    scripts = re.findall(r"<script\b[^>]*>", text)
    assert [re.search(r'src="([^"]+)"', tag).group(1) for tag in scripts][-2:] == [
        "/static/js/viewer.js", "/static/imaging/series_view.js"]
    assert all("src=" in tag for tag in scripts) and " style=" not in text
    assert f'data-meta="/api/series/{series.pk}/meta"' in text and 'class="viewports"' in text
    assert finders.find("js/viewer.js") and finders.find("css/viewer.css")
    assert not finders.find("reader_study/viewer.js")          # one viewer, shared
    templates = Path(__file__).resolve().parents[2] / "templates"
    loaded = {m for f in templates.rglob("*.html") for m in re.findall(r"static '([^']*viewer\.js)'", f.read_text())}
    assert loaded == {"js/viewer.js"}


@pytest.fixture
def page(monkeypatch):
    """A Chromium page (testsupport.chromium_page); script errors and failed requests are in page.problems."""
    with chromium_page(monkeypatch, viewport=(1400, 1000)) as tab:
        yield tab


CANVAS_PIXELS = """() => { const c = document.querySelector('.viewport canvas');
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let grey = 0, red = 0;
  for (let i = 0; i < d.length; i += 4) {
    grey = Math.max(grey, Math.min(d[i], d[i + 1])); red += d[i] - d[i + 1] > 100;
  }
  return { grey, red }; }"""  # the brightest grey, and how many pixels are red (a saved box's outline)


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING)
def test_the_series_page_draws_with_the_shared_viewer_and_edits_boxes(live_server, page, imported, coordinator):
    """The shared viewer draws and scrolls the coordinator's series; shift-drag changes window/level; a drag
    draws a box that is saved, copied to the next slice and deleted there; the box list moves the viewer."""
    series = imported.series.exclude(mapped_code="unused").order_by("pk").first()
    TumourBox.objects.filter(series=series).delete()            # no box: the page opens on the middle slice
    middle, base, scripts = series.n_slices // 2, live_server.url, []
    page.on("request", lambda r: r.resource_type == "script" and scripts.append(r.url))
    page.goto(base + "/login/")
    page.fill("#id_username", coordinator.username)
    page.fill("#id_password", "pw-Test-1234")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/coordinator/")
    page.goto(f"{base}/imaging/series/{series.pk}/")
    page.wait_for_selector("#series-viewer[data-first-image='1'] .viewport[data-ready='1']")
    assert f"{base}/static/js/viewer.js" in scripts
    assert page.evaluate("window.seriesPage.viewer instanceof window.ReaderViewer.Viewer")
    viewport = page.locator(".viewport")
    assert viewport.count() == 1 and viewport.get_attribute("data-series-code") == series.sequence_code
    assert int(viewport.get_attribute("data-slice")) == middle
    pixels = page.evaluate(CANVAS_PIXELS)
    assert pixels["grey"] > 0 and pixels["red"] == 0              # the slice is drawn, no box on it
    slice_is = "document.querySelector('.viewport').dataset.slice === '{}'".format

    canvas = page.locator(".viewport canvas").bounding_box()
    page.mouse.move(canvas["x"] + canvas["width"] / 2, canvas["y"] + canvas["height"] / 2)
    page.mouse.wheel(0, 120)
    page.wait_for_function(slice_is(middle + 1))
    assert page.inner_text("#slice-number") == str(middle + 2)
    page.keyboard.press("ArrowUp")
    page.wait_for_function(slice_is(middle))

    window = viewport.get_attribute("data-window")
    page.keyboard.down("Shift")
    page.mouse.down()
    page.mouse.move(canvas["x"] + canvas["width"] / 2 + 80, canvas["y"] + canvas["height"] / 2 + 40, steps=6)
    page.mouse.up()
    page.keyboard.up("Shift")
    page.wait_for_function(f"document.querySelector('.viewport').dataset.window !== '{window}'")
    assert page.locator("#save-box").is_disabled()               # a window/level drag draws no box

    # A drag from 26 % to 76 % of the slice (fitted and centred by its physical size) draws a box there.
    row_mm, col_mm = (series.meta or {}).get("pixel_spacing") or (1.0, 1.0)
    width_mm, height_mm = series.cols * col_mm, series.rows * row_mm
    scale = min(canvas["width"] / width_mm, canvas["height"] / height_mm)
    left = canvas["x"] + (canvas["width"] - width_mm * scale) / 2
    top = canvas["y"] + (canvas["height"] - height_mm * scale) / 2

    def at(fraction):
        return left + fraction * width_mm * scale, top + fraction * height_mm * scale

    page.mouse.move(*at(0.26))
    page.mouse.down()
    page.mouse.move(*at(0.76), steps=8)
    page.mouse.up()
    page.wait_for_function("document.getElementById('box-info').textContent === 'new box (not saved)'")
    page.click("#save-box")
    page.wait_for_function("document.querySelectorAll('#box-list li[data-slice]').length === 1")
    box = TumourBox.objects.get(series=series)
    expected = (int(0.26 * series.cols), int(0.26 * series.rows), int(0.76 * series.cols), int(0.76 * series.rows))
    assert box.slice_index == middle and box.source == "drawn"
    assert all(abs(got - want) <= 1 for got, want in zip((box.x0, box.y0, box.x1, box.y1), expected, strict=True))
    assert page.evaluate(CANVAS_PIXELS)["red"] > 0                 # the saved box, outlined in red

    page.keyboard.press("ArrowDown")
    page.wait_for_function(slice_is(middle + 1))
    page.wait_for_function("!document.getElementById('copy-box').disabled")
    page.click("#copy-box")
    page.click("#save-box")
    page.wait_for_function("document.querySelectorAll('#box-list li[data-slice]').length === 2")
    copied = TumourBox.objects.get(series=series, slice_index=middle + 1)
    assert (copied.x0, copied.y0, copied.x1, copied.y1) == (box.x0, box.y0, box.x1, box.y1)
    page.click("#delete-box")
    page.wait_for_function("document.querySelectorAll('#box-list li[data-slice]').length === 1")
    assert not TumourBox.objects.filter(series=series, slice_index=middle + 1).exists()

    page.click(f"#box-list li[data-slice='{middle}']")
    page.wait_for_function(slice_is(middle))
    page.wait_for_function("document.getElementById('box-info').textContent.startsWith('box drawn')")
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    page.screenshot(path=str(artifacts / "imaging_series_view.png"), full_page=True)
    assert page.problems == []


def test_rules_editor_shows_every_validation_error_and_saves_valid_rules(client, imported, coordinator):
    client.force_login(coordinator)
    bad = json.dumps(
        {"version": 1, "rules": [{"id": "x", "priority": "high", "code": "T9", "when": {"plane": "axil"}}]}
    )
    response = client.post("/imaging/mapping/rules/", {"name": "site", "rules": bad})
    text = html.unescape(response.content.decode())
    assert response.status_code == 400
    assert "rules[0] (x).priority: must be an integer" in text and "'T9' is not a sequence code" in text
    assert "'axil' is not one of axial" in text
    good = json.dumps([{"id": "all-t2axi", "priority": 1, "code": "T2axi", "when": {}}])
    assert client.post("/imaging/mapping/rules/", {"name": "site", "rules": good}).status_code == 302
    assert SequenceRuleSet.objects.get(name="site").is_active
    client.post("/imaging/mapping/remap/")
    assert set(Series.objects.values_list("mapped_code", flat=True)) == {"T2axi"}
    assert set(Series.objects.values_list("mapped_rule", flat=True)) == {"all-t2axi"}


def test_overrides_and_the_mapping_report(client, imported, coordinator):
    client.force_login(coordinator)
    series = imported.series.exclude(mapped_code="unused").first()
    response = client.post(f"/imaging/series/{series.pk}/override/", {"override_code": "T1sag"})
    assert response.status_code == 302
    series.refresh_from_db()
    assert series.sequence_code == "T1sag" and series.mapped_code != "T1sag"
    report = client.get("/imaging/mapping/?overridden=yes").content.decode()
    assert series.mapped_rule in report and "T1sag" in report
    client.post(f"/imaging/series/{series.pk}/override/", {"override_code": ""})
    series.refresh_from_db()
    assert series.sequence_code == series.mapped_code


def test_ground_truth_is_edited_on_the_case_page(client, imported, coordinator):
    client.force_login(coordinator)
    response = client.post(
        f"/imaging/cases/{imported.pk}/",
        {
            "truth": "leiomyoma",
            "subtype": "cellular",
            "institution": "SITE-Q",
            "length_mm": "40",
            "width_mm": "30",
            "height_mm": "20",
            "degeneration": "true",
            "irregular_margin": "false",
        },
    )
    assert response.status_code == 302
    imported.refresh_from_db()
    assert (imported.truth, imported.degeneration, imported.irregular_margin) == ("leiomyoma", True, False)
    assert imported.volume_ml == pytest.approx(3.14159 / 6 * 40 * 30 * 20 / 1000, rel=1e-4)
    bad = client.post(f"/imaging/cases/{imported.pk}/", {"truth": "carcinoma"})
    assert bad.status_code == 200 and b"not one of the available choices" in bad.content


def test_coordinators_use_the_imaging_admin(client, imported, coordinator, reader):
    client.force_login(coordinator)
    series = imported.series.first()
    for url in (
        "/admin/imaging/case/",
        f"/admin/imaging/case/{imported.pk}/change/",
        "/admin/imaging/series/",
        f"/admin/imaging/series/{series.pk}/change/",
        "/admin/imaging/sequenceruleset/add/",
        "/admin/imaging/tumourbox/",
        "/admin/imaging/importbatch/",
    ):
        assert client.get(url).status_code == 200, url
    bad_rules = client.post(
        "/admin/imaging/sequenceruleset/add/", {"name": "x", "rules": '[{"id": "a"}]', "is_active": "on"}
    )
    assert bad_rules.status_code == 200 and b"must be an integer" in bad_rules.content
    client.force_login(reader)
    assert client.get("/admin/imaging/case/").status_code == 302
