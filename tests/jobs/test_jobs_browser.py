"""Browser test (Playwright + Debian's Chromium) of issue 15's coordinator pages, at 1366×768 and 1920×1080: the job
page of a non-DICOM upload (it turns from queued into a warning with "0 imported, 1 rejected", the reason and a link
to the import, without a manual reload) and a model card (labelled tables, no raw dict, no sideways scrolling).
Files and values are SYNTHETIC. Screenshots are saved under test-artifacts/."""

from pathlib import Path

import pytest

from imaging.models import ImportBatch
from jobs.models import Job
from jobs.services import job_run
from tests.training.factories_training import make_trained_model_with_card
from testsupport import CHROMIUM, CHROMIUM_MISSING, chromium_page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SIZES = ((1366, 768), (1920, 1080))

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("role_groups"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]


@pytest.fixture(autouse=True)
def roots(settings, tmp_path, monkeypatch):
    settings.MEDIA_ROOT, settings.UPLOAD_ROOT = tmp_path / "media", tmp_path / "uploads"
    settings.IMAGING_IMPORT_WORKERS = 1
    monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)  # the test runs the job itself


@pytest.fixture
def page(monkeypatch):
    with chromium_page(monkeypatch) as tab:
        yield tab


def _log_in(page, base, user):
    page.goto(base + "/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw-Test-1234")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/coordinator/")


def _fits_the_width(page) -> bool:
    return page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def _screenshots(page, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        assert _fits_the_width(page), (f"{name} scrolls sideways at {width}×{height}: " + page.evaluate(
            "() => [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > "
            "window.innerWidth).slice(-3).map(e => e.tagName + '.' + e.className + ' ' + "
            "Math.round(e.getBoundingClientRect().right) + ' ' + e.textContent.slice(0, 60)).join(' | ')"))
        page.screenshot(path=str(ARTIFACTS / f"{name}-{width}x{height}.png"), full_page=True)


def test_a_non_dicom_upload_ends_as_a_warning_with_its_reason_and_import_on_the_job_page(
        transactional_db, live_server, page, coordinator, tmp_path):
    base = live_server.url
    note = tmp_path / "notes.dcm"
    note.write_text("SYNTHETIC test note: plain text, not a DICOM file")
    _log_in(page, base, coordinator)
    page.goto(base + "/imaging/import/")
    page.set_input_files("#id_files", str(note))
    page.click("#upload-form button[type=submit]")
    page.wait_for_url(f"{base}/jobs/*/")
    assert page.locator("#job-status").inner_text() == "queued"

    job_run(job_pk=Job.objects.get(kind="import_dicom").pk, worker="browser-test")
    page.wait_for_selector("#job-outcome")  # job.js reloads the page once the job has ended
    assert page.locator("#job-status").inner_text() == "warning"
    assert "Finished with a warning" in page.locator("#job-warning").inner_text()
    assert page.locator("#job-counts").inner_text() == "0 imported, 1 rejected"
    assert page.locator("table.reasons td").nth(1).inner_text() == "not a DICOM file (no DICM preamble)"
    _screenshots(page, "job-non-dicom-upload")

    page.click("text=Open the import")
    page.wait_for_url(f"{base}/imaging/imports/{ImportBatch.objects.get().pk}/")
    assert page.problems == []


def test_the_model_card_reads_as_tables_at_both_screen_sizes(transactional_db, live_server, page, coordinator):
    model = make_trained_model_with_card()
    base = live_server.url
    _log_in(page, base, coordinator)
    page.goto(f"{base}/training/models/{model.pk}/")
    assert page.locator("h1").inner_text() == "Model card: repeat 1, fold 1"
    assert "{'" not in page.content()
    assert "seeded sample of 64 of the 480" in page.locator("#auc-note").inner_text()
    _screenshots(page, "model-card")
    assert page.problems == []


def test_favicon_and_error_pages_in_the_browser(transactional_db, live_server, page, coordinator):
    base = live_server.url
    assert page.goto(base + "/favicon.ico").status == 200
    _log_in(page, base, coordinator)
    response = page.goto(base + "/jobs/")  # the job list is for admins
    assert response.status == 403
    _screenshots(page, "error-403")
    page.click("#error-page >> text=Coordination")
    page.wait_for_url(base + "/coordinator/")
