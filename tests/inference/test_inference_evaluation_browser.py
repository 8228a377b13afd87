"""Browser test (Playwright + Debian's Chromium) of the evaluation page's width (issue 15, bug 6: "the
evaluation page is wider than a 1600 px window"): at 1600 × 900 and 1366 × 768 nothing scrolls sideways.
A SYNTHETIC fake-trained run (no Keras); screenshots under test-artifacts/."""

from pathlib import Path

import pytest

from factories_inference import fake_trained_run, make_cohort
from inference import services
from jobs import services as jobs
from jobs.models import JobStatus
from testsupport import CHROMIUM, CHROMIUM_MISSING, chromium_page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("role_groups"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]


@pytest.fixture(autouse=True)
def media(tmp_path, settings, monkeypatch):
    settings.MEDIA_ROOT = tmp_path / "media"
    monkeypatch.setattr("jobs.services.job_enqueue", lambda *, job: None)


@pytest.fixture
def page(monkeypatch):
    with chromium_page(monkeypatch) as tab:
        yield tab


@pytest.mark.parametrize("size", [(1600, 900), (1366, 768)], ids=["1600x900", "1366x768"])
def test_the_evaluation_page_fits_the_window(transactional_db, live_server, page, coordinator, size):
    evaluation = services.evaluation_start(run=fake_trained_run(make_cohort(), repeats=3), enqueue=False)
    assert jobs.job_run(job_pk=evaluation.job.pk, worker="test").status == JobStatus.SUCCEEDED
    page.set_viewport_size({"width": size[0], "height": size[1]})
    page.goto(live_server.url + "/login/")
    page.fill("#id_username", coordinator.username)
    page.fill("#id_password", "pw-Test-1234")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{live_server.url}/inference/evaluations/{evaluation.pk}/")
    page.wait_for_selector("#methods-table")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"inference-evaluation-{size[0]}x{size[1]}.png"), full_page=True)
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    wide = page.evaluate("""[...document.querySelectorAll('main *')]
        .filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)
        .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)""")
    assert widths[0] <= widths[1], f"page {widths[0]} px wide in a {widths[1]} px window: {wide}"
    if size[0] >= 1600:     # the top-10 table fits whole; narrower windows scroll it inside its card
        scroll = page.evaluate("(e => [e.scrollWidth, e.clientWidth])(document.querySelector('.table-scroll'))")
        assert scroll[0] <= scroll[1], f"the top-10 table is {scroll[0]} px in {scroll[1]} px"
    assert page.problems == []
