"""Browser test (Playwright + Debian's Chromium) of the coordinator's series page: METHOD §3's copy of one
slice's box to the series' other tumour slices (issue 14, item 8), end to end through the button. A SYNTHETIC
phantom case; a screenshot is saved under test-artifacts/."""

from pathlib import Path

import pytest

from imaging import services
from imaging.models import TumourBox
from tests.reader_study.factories_reader_study import phantom_case
from testsupport import CHROMIUM, CHROMIUM_MISSING, chromium_page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("role_groups"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def page(monkeypatch):
    with chromium_page(monkeypatch) as tab:
        yield tab


def test_the_copy_button_boxes_every_tumour_slice_between_the_first_and_last_box(transactional_db, live_server,
                                                                                  page, coordinator):
    case = phantom_case(0)
    series = case.series.exclude(n_slices__lt=6).order_by("pk").first()
    for k in (1, 4):
        services.box_save(series=series, slice_index=k, x0=10, y0=12, x1=40 + k, y1=44, user=coordinator)
    page.goto(live_server.url + "/login/")
    page.fill("#id_username", coordinator.username)
    page.fill("#id_password", "pw-Test-1234")
    page.click("button[type=submit]")
    page.wait_for_load_state()
    page.goto(f"{live_server.url}/imaging/series/{series.pk}/")
    page.wait_for_selector(".viewport[data-ready='1']")
    viewport = page.locator(".viewport").first
    viewport.hover()
    page.keyboard.press("Home")
    page.keyboard.press("ArrowDown")
    page.wait_for_function("document.querySelector('.viewport').dataset.slice === '1'")
    assert page.locator("#copy-box-all").is_enabled()
    page.click("#copy-box-all")
    page.wait_for_function("window.seriesPage.boxes.size === 4")
    boxes = {b.slice_index: (b.x0, b.y0, b.x1, b.y1) for b in TumourBox.objects.filter(series=series)}
    assert sorted(boxes) == [1, 2, 3, 4]
    assert boxes[2] == boxes[3] == boxes[1] == (10, 12, 41, 44) and boxes[4] == (10, 12, 44, 44)
    page.keyboard.press("ArrowDown")
    page.wait_for_function("document.querySelector('.viewport').dataset.slice === '2'")
    assert "box" in page.locator("#box-info").inner_text() and "no box" not in page.locator("#box-info").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "imaging-series-box-copy.png"))
    assert page.problems == []
