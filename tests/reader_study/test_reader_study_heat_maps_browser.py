"""Browser tests of exam 2's heat-map overlay (issue 18; static/js/heat_maps.js, static/js/viewer.js).

One SYNTHETIC case (3 series of 8 slices, 64 × 64) and an evaluation with maps for it: on every series, slices 4
and 5 (the viewport opens on 4, the middle) have a map that is 0 but for a disk of 255 in the image's top-left
part (the map's window covers the whole slice). Pixels are read from the viewport's canvas where slice pixels
land (vp.imageRect()); the expected colour follows the rule of inference/saliency_figure.py: colormap[v] at
alpha opacity × v / 255 over the grey. One Chromium for the module; each test makes its own study and logs in.
Screenshots go to test-artifacts/.
"""

from pathlib import Path

import numpy as np
import pytest
from test_reader_study_browser import _log_in, _wait_for_images

from core.constants import SEQUENCE_CODES
from factories_reader_study import EvaluationFactory, ai_result, answer_all, case_with_series, move_washout, open_study
from inference import saliency_figure
from inference import selectors as inference_selectors
from inference.saliency_store import HELD_OUT, CaseMaps, write_case_maps
from reader_study import selectors, services
from testsupport import CHROMIUM, CHROMIUM_MISSING, chromium_page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
N_SLICES, COLS, MAP_SIZE = 8, 64, 32
MAPPED = (N_SLICES // 2, N_SLICES // 2 + 1)        # the opening slice and the next; the others have no map
HOT, COLD = (19, 19), (52, 52)                      # slice pixels inside the map's disk, and far from it

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("role_groups"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]

# The RGBA of the canvas pixel where slice pixel (x, y) of viewport `index` is drawn.
PIXEL_JS = """([index, x, y]) => {
  const vp = window.readingPage.viewer.viewports[index], r = vp.imageRect();
  const cx = Math.floor(r.x + (x + 0.5) * r.w / vp.series.cols);
  const cy = Math.floor(r.y + (y + 0.5) * r.h / vp.series.rows);
  return Array.from(vp.ctx.getImageData(cx, cy, 1, 1).data);
}"""

# How many rows the toolbar's items take (a row starts where an item lies below the one before it).
ROWS_JS = """(els) => els.map((e) => e.getBoundingClientRect()).reduce(
  (acc, r, i, all) => acc + (i > 0 && r.top > all[i - 1].bottom - 4 ? 1 : 0), 1)"""


def _disk_map() -> np.ndarray:
    """(S, S) uint8: 255 inside a disk around HOT (in map cells: the window spans the slice), 0 elsewhere."""
    yy, xx = np.mgrid[0:MAP_SIZE, 0:MAP_SIZE]
    cx, cy = (c * MAP_SIZE / COLS for c in HOT)
    return (((xx + 0.5 - cx) ** 2 + (yy + 0.5 - cy) ** 2 < (0.2 * MAP_SIZE) ** 2) * 255).astype(np.uint8)


@pytest.fixture
def make_study(transactional_db, coordinator, reader):
    """A study of one case with its heat-maps stored for the study's evaluation; exam 2 open when `exam2`."""
    def make(heat_maps: str, exam2: bool = True):
        case = case_with_series(n_slices=N_SLICES, size=COLS, seed=3)
        evaluation = EvaluationFactory()
        ai_result(evaluation, case, 71.25)
        series = list(case.series.order_by("pk"))
        rows = [(s.pk, k, SEQUENCE_CODES.index(s.sequence_code)) for s in series for k in MAPPED]
        n = len(rows)
        maps = np.stack([_disk_map()] * n)
        write_case_maps(inference_selectors.case_maps_path(evaluation.pk, case.pk), CaseMaps(
            maps=maps, crops=np.full_like(maps, 90), series_id=np.array([r[0] for r in rows]),
            slice_no=np.array([r[1] for r in rows]), sequence_idx=np.array([r[2] for r in rows]),
            window=np.array([[0, 0, COLS]] * n), scale=1.0, models=("r0f0",), kind=HELD_OUT, crops_sha256="x"))
        study = open_study(coordinator=coordinator, readers=[reader], cases=[case], evaluation=evaluation,
                           name=f"Heat-maps {heat_maps} (synthetic)", heat_maps=heat_maps)
        if exam2:
            answer_all(reader, study, 1)
            services.exam_finish(reader=reader, study=study, exam=1)
            move_washout(study, reader, days=29)
        return study
    return make


@pytest.fixture(scope="module")
def browser_tab():
    patch = pytest.MonkeyPatch()
    with chromium_page(patch) as tab:
        yield tab
    patch.undo()


@pytest.fixture
def page(browser_tab):
    """The module's page, its requests recorded in page.requested (URLs) for the test."""
    browser_tab.goto("about:blank")
    browser_tab.problems.clear()
    browser_tab.context.clear_cookies()
    browser_tab.set_viewport_size({"width": 1500, "height": 880})
    browser_tab.requested = []
    record = lambda request: browser_tab.requested.append(request.url)   # noqa: E731
    browser_tab.on("request", record)
    yield browser_tab
    browser_tab.remove_listener("request", record)


def _open(page, base, reader, study, exam):
    _log_in(page, base, reader)
    assignment = selectors.worklist(study, reader, exam).get()
    page.goto(f"{base}/reading/{assignment.pk}/")
    _wait_for_images(page)
    page.wait_for_function("document.querySelector('.viewport').dataset.sliceLoaded === '1'")
    return assignment


def _pixel(page, at, index=0):
    return page.evaluate(PIXEL_JS, [index, *at])


def _heat(page, index=0):
    return page.evaluate(f"document.querySelectorAll('.viewport')[{index}].dataset.heatMap ?? null")


def _wait_heat(page, state, index=0):
    page.wait_for_function(f"document.querySelectorAll('.viewport')[{index}].dataset.heatMap === {state!r}")


def _heat_requests(page):
    """The maps asked for (the API's /heat-maps URLs; not the script static/js/heat_maps.js)."""
    return [url for url in page.requested if "heat-maps" in url]


def _blend(grey, opacity):
    """The rule: colormap[255] at alpha opacity over the grey pixel (RGB)."""
    colour = saliency_figure.lut()[255].astype(float)
    return [round(g * (1 - opacity) + c * opacity) for g, c in zip(grey[:3], colour, strict=True)]


def _close(a, b, tolerance=3):
    return all(abs(x - y) <= tolerance for x, y in zip(a[:3], b[:3], strict=True))


def test_exam2_heat_map_turns_on_and_off_with_h_follows_the_slice_and_the_opacity(
        live_server, page, make_study, reader):
    study, base = make_study("off"), live_server.url
    _open(page, base, reader, study, 2)
    button, legend = page.locator("[data-action='heat-maps']"), page.locator("#heat-map-legend")
    assert int(page.locator(".viewport").first.get_attribute("data-slice")) == MAPPED[0]
    assert _heat(page) == "off" and button.get_attribute("aria-pressed") == "false"
    assert not legend.is_visible() and _heat_requests(page) == []        # fetched only when first needed
    grey_hot, grey_cold = _pixel(page, HOT), _pixel(page, COLD)

    page.keyboard.press("h")
    _wait_heat(page, "shown")
    assert button.get_attribute("aria-pressed") == "true" and legend.is_visible()
    assert "none" in legend.inner_text() and "strong" in legend.inner_text()
    assert "Grad-CAM" in legend.get_attribute("title")
    hot = _pixel(page, HOT)
    assert hot != grey_hot and _close(hot, _blend(grey_hot, 0.5)), (hot, grey_hot)
    assert _pixel(page, COLD) == grey_cold                                  # value 0: transparent
    shown = len(_heat_requests(page))
    assert shown >= 1 and page.get_attribute("#reading", "data-heat-maps") == "on"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "reader_study_heat_map_on.png"))

    # a slice without a map shows nothing; back on a mapped slice the overlay is there again
    page.keyboard.press("ArrowUp")
    _wait_heat(page, "none")
    assert _pixel(page, HOT) != hot
    page.keyboard.press("ArrowDown")
    _wait_heat(page, "shown")
    assert _pixel(page, HOT) == hot

    # the opacity slider (keyboard: End = 100 %); H still toggles while the slider has the focus
    page.focus("[data-action='heat-map-opacity']")
    page.keyboard.press("End")
    page.wait_for_function("document.getElementById('reading').dataset.heatMapOpacity === '100'")
    page.wait_for_function(f"() => {{ const p = ({PIXEL_JS})([0, {HOT[0]}, {HOT[1]}]);"
                           f" return p[0] !== {hot[0]} || p[1] !== {hot[1]} || p[2] !== {hot[2]}; }}")
    assert _close(_pixel(page, HOT), _blend(grey_hot, 1.0))
    assert page.get_attribute("[data-action='heat-map-opacity']", "aria-valuetext") == "100 %"

    # zoomed and panned, the map stays on the same slice pixels
    page.locator(".viewport").first.hover()
    page.keyboard.down("Control")
    page.mouse.wheel(0, -120)
    page.keyboard.up("Control")
    page.wait_for_function("Number(document.querySelector('.viewport').dataset.zoom) > 1")
    page.wait_for_timeout(100)                                              # the next frame is drawn
    assert _close(_pixel(page, HOT), _blend(grey_hot, 1.0), tolerance=6)

    page.keyboard.press("h")
    _wait_heat(page, "off")
    assert button.get_attribute("aria-pressed") == "false" and not legend.is_visible()
    page.keyboard.press("z")
    page.wait_for_function("Number(document.querySelector('.viewport').dataset.zoom) === 1")
    page.wait_for_timeout(100)
    assert _pixel(page, HOT) == grey_hot and _pixel(page, COLD) == grey_cold
    page.click("[data-action='heat-maps']")                                 # the button does what H does
    _wait_heat(page, "shown")
    assert len(_heat_requests(page)) == shown                               # fetched once per series
    assert "heat-map" in page.locator("#viewer-help").inner_text()         # H is in the help overlay
    assert page.problems == []


def test_heat_map_is_on_when_the_case_opens_where_the_study_says_on(live_server, page, make_study, reader):
    study, base = make_study("on"), live_server.url
    page.set_viewport_size({"width": 1366, "height": 768})                 # the smallest screen supported
    _open(page, base, reader, study, 2)
    _wait_heat(page, "shown")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "reader_study_heat_map_default_on_1366x768.png"))
    # the controls fit beside the others: the toolbar keeps its two rows
    rows = page.eval_on_selector_all(".viewer-toolbar > *", ROWS_JS)
    assert rows <= 2, rows
    assert page.locator("[data-action='heat-maps']").get_attribute("aria-pressed") == "true"
    assert page.locator("#heat-map-legend").is_visible()
    hot = _pixel(page, HOT)
    page.keyboard.press("h")
    _wait_heat(page, "off")
    assert _pixel(page, HOT) != hot
    assert page.problems == []


def test_heat_map_that_cannot_be_loaded_says_so_and_is_asked_for_again(live_server, page, make_study, reader):
    study, base = make_study("off"), live_server.url
    page.route("**/heat-maps", lambda route: route.fulfill(status=503, body="{}"))
    _open(page, base, reader, study, 2)
    before = _pixel(page, HOT)
    page.keyboard.press("h")
    _wait_heat(page, "failed")
    button = page.locator("[data-action='heat-maps']")
    assert "failed" in button.get_attribute("class") and "could not be loaded" in button.get_attribute("title")
    assert _pixel(page, HOT) == before
    page.unroute("**/heat-maps")
    asked = len(_heat_requests(page))
    page.keyboard.press("h")
    page.keyboard.press("h")                                                # off and on: a second try
    _wait_heat(page, "shown")
    assert len(_heat_requests(page)) > asked and "failed" not in button.get_attribute("class")
    assert [p for p in page.problems if not p.startswith("503 ")] == []


def test_exam1_has_no_heat_map_control_and_asks_for_none(live_server, page, make_study, reader):
    study, base = make_study("on", exam2=False), live_server.url
    _open(page, base, reader, study, 1)
    assert page.evaluate("'heat_maps' in window.readingPage.payload") is False
    assert page.locator("[data-action='heat-maps']").count() == 0
    assert page.locator("#heat-map-legend, [data-action='heat-map-opacity']").count() == 0
    assert _heat(page) is None
    before = _pixel(page, HOT)
    page.keyboard.press("h")
    page.wait_for_timeout(300)
    assert _pixel(page, HOT) == before and _heat(page) is None
    assert not page.locator("#viewer-help").is_visible()                   # H is no longer the help key
    assert "heat-map" not in page.locator("#viewer-help").inner_text().lower()
    page.keyboard.press("ArrowDown")
    page.wait_for_function(f"document.querySelector('.viewport').dataset.slice === '{MAPPED[1]}'")
    assert _heat_requests(page) == [] and not [url for url in page.requested if "heat_maps" in url]
    assert page.problems == []
