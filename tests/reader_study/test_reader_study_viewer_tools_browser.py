"""Browser tests of the viewer's reading tools (static/js/viewer.js, docs/viewer.md), on one SYNTHETIC phantom case.

The case is the phantom cohort's patient 1 (imaging.phantom_render): T2sag, T2axi, T1axi, DWI, ADC and a dynamic
axial series of 4 phases. One Chromium for the module (a page per size would cost a second each); every test
makes its own study (the database is emptied after each) and logs in again. State is read from the viewports'
data-* attributes; expected values are computed here from the stored volumes and the series geometry, not
taken from the viewer. Screenshots go to test-artifacts/.
"""

import functools
import math
from pathlib import Path

import numpy as np
import pytest

from factories_reader_study import CaseFactory, open_study, write_series
from imaging.importer_store import write_volume
from imaging.models import Series
from imaging.volumes import Window, encode_volume
from reader_study.models import Assignment
from reader_study.payloads import series_handle
from testsupport import CHROMIUM, CHROMIUM_MISSING, chromium_page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SIZES = {"1366x768": (1366, 768), "1920x1080": (1920, 1080)}
ALL_READY = ("document.querySelectorAll('.viewport').length"
             " === document.querySelectorAll('.viewport[data-ready=\"1\"]').length")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("role_groups"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]


@functools.cache
def _rendered():
    from imaging.phantom_plan import plan_cohort
    from imaging.phantom_render import render_patient

    plan = plan_cohort(patients=6, sarcoma_fraction=0.34, seed=7)[1]
    return render_patient(plan, seed=7)


def _write_dynamic(case, rendered, number):
    """The dynamic series with its phases (write_series stores single-phase series only)."""
    geometry = rendered.geometries[0]
    n = rendered.stored.shape[0] // max(rendered.temporal_positions)
    positions = np.concatenate([geometry.positions[:n]] * max(rendered.temporal_positions))
    encoded = encode_volume(rendered.stored, pixel_spacing=geometry.pixel_spacing, slice_positions=positions,
                            orientation=geometry.orientation, slice_thickness=geometry.thickness,
                            rescale_slope=rendered.rescale_slope,
                            voi=Window(center=rendered.window[0], width=rendered.window[1], source="voi")
                            if rendered.window else None, temporal_positions=rendered.temporal_positions)
    uid = f"2.25.{case.pk}{number:03d}"
    path, sha256 = write_volume(uid, encoded)
    Series.objects.create(case=case, series_uid=uid, series_number=number, mapped_code=rendered.code,
                          plane=geometry.plane, n_slices=rendered.stored.shape[0], rows=geometry.rows,
                          cols=geometry.cols, meta=encoded.meta, volume_path=path, volume_sha256=sha256)


@pytest.fixture
def make_study(coordinator, reader):
    """A study of the one case, opened with a hanging protocol (None: the study's default)."""
    def make(protocol):
        case = CaseFactory()
        for number, series in enumerate(_rendered().series, start=1):
            geometry = series.geometries[0]
            if series.code.startswith("dynamic"):
                _write_dynamic(case, series, number)
            elif series.code in ("T2axi", "T2sag", "DWI", "ADC", "T1axi"):
                write_series(case, series.code, series.stored, plane=geometry.plane, positions=geometry.positions,
                             pixel_mm=geometry.pixel_spacing[0], spacing=geometry.spacing, window=series.window,
                             slope=series.rescale_slope, number=number)
        return open_study(coordinator=coordinator, readers=[reader], cases=[case], hanging_protocol=protocol,
                          name="Viewer tools (synthetic)")
    return make


@pytest.fixture
def study(make_study):
    """Viewports T2axi, T2sag, DWI: the tests below address them by index."""
    return make_study("T2axi | T2sag | DWI")


@pytest.fixture(scope="module")
def browser_tab():
    patch = pytest.MonkeyPatch()
    with chromium_page(patch, viewport=SIZES["1366x768"]) as tab:
        yield tab
    patch.undo()


@pytest.fixture
def page(browser_tab):
    browser_tab.goto("about:blank")          # the last test's page and its requests end here
    browser_tab.problems.clear()
    browser_tab.context.clear_cookies()
    browser_tab.set_viewport_size({"width": 1366, "height": 768})
    yield browser_tab
    browser_tab.unroute("**/*")


def _open(page, base, study, reader, size="1366x768"):
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    page.goto(base + "/login/")
    page.fill("#id_username", reader.username)
    page.fill("#id_password", "pw-Test-1234")
    page.click("button[type=submit]")
    page.wait_for_url(base + "/reader/")
    page.goto(f"{base}/studies/{study.pk}/exam/1/resume/")
    page.wait_for_function("document.querySelectorAll('.viewport[data-ready=\"1\"]').length >= 3")


def _viewports(page, key):
    return page.eval_on_selector_all(".viewport", f"els => els.map(e => e.dataset.{key})")


def _series(page, code):
    return page.evaluate(f"window.readingPage.payload.series.find(s => s.code === {code!r})")


def _stored(series_code):
    """(frames, rows, cols) stored values of a series as rendered (uint16: stored losslessly)."""
    return next(s for s in _rendered().series if s.code == series_code).stored


def _show_in(page, index, code):
    """Make viewport `index` active and show the series `code` there from the series list."""
    page.locator(".viewport").nth(index).click(position={"x": 5, "y": 5})
    series_id = _series(page, code)["id"]
    page.click(f".series-list button[data-series-id='{series_id}']")
    page.wait_for_function(f"document.querySelectorAll('.viewport')[{index}].dataset.seriesCode === {code!r}"
                           f" && document.querySelectorAll('.viewport')[{index}].dataset.ready === '1'")


def _drag(page, index, start, end):
    """A left drag in viewport `index` between two points given as fractions of its box."""
    box = page.locator(".viewport").nth(index).bounding_box()
    page.mouse.move(box["x"] + start[0] * box["width"], box["y"] + start[1] * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + end[0] * box["width"], box["y"] + end[1] * box["height"], steps=5)
    page.mouse.up()


def _set_layout(page, n, codes=None):
    page.click(f"[data-action='layout-{n}']")
    page.wait_for_function(f"document.querySelectorAll('.viewport').length === {n} && ({ALL_READY})")
    if codes is not None:
        assert _viewports(page, "seriesCode") == codes


@pytest.mark.parametrize(("size", "protocol"), [("1366x768", None), ("1920x1080", "T2sag | T2axi | DWI | T1axi")])
def test_a_layout_change_brings_back_the_default_viewports_and_the_readers_choice(
        live_server, page, make_study, reader, size, protocol):
    """Bug 2: (4 ->) 3 -> 1 -> 2 -> 3 gives the hanging protocol's series again; a series the reader put in a
    viewport comes back with it; the 2x2 layout's 4th viewport shows the protocol's 4th series, or without one
    the first series no other viewport shows."""
    study = make_study(protocol)
    _open(page, live_server.url, study, reader, size)
    defaults = page.evaluate("(() => { const p = window.readingPage.payload;"
                             " return p.default_series.map(id => p.series.find(s => s.id === id).code); })()")
    assert len(defaults) == (4 if protocol else 3)
    assert _viewports(page, "seriesCode") == defaults                       # a protocol of 4 opens the 2x2 grid
    assert page.get_attribute("#reading", "data-layout") == str(len(defaults))
    _set_layout(page, 3, defaults[:3])
    _set_layout(page, 1, defaults[:1])
    _set_layout(page, 2, defaults[:2])
    _set_layout(page, 3, defaults[:3])
    mine = "dynamicaxi"
    _show_in(page, 1, mine)                                     # the reader's own choice for viewport 2
    page.keyboard.press("v")                                    # V: 3 -> 1 viewport
    page.wait_for_function("document.querySelectorAll('.viewport').length === 1")
    shown = [defaults[0], mine, defaults[2]]
    _set_layout(page, 3, shown)
    page.keyboard.press("Shift+V")                              # the 2x2 grid
    page.wait_for_function(f"document.querySelectorAll('.viewport').length === 4 && ({ALL_READY})")
    codes = page.evaluate("window.readingPage.payload.series.map(s => s.code)")
    fourth = defaults[3] if protocol else next(c for c in codes if c not in shown)
    assert _viewports(page, "seriesCode") == [*shown, fourth]
    assert page.get_attribute("#reading", "data-layout") == "4"
    boxes = [page.locator(".viewport").nth(i).bounding_box() for i in range(4)]
    assert boxes[0]["y"] == boxes[1]["y"] < boxes[2]["y"] == boxes[3]["y"]      # two rows of two
    assert boxes[0]["x"] == boxes[2]["x"] < boxes[1]["x"] == boxes[3]["x"]
    assert all(b["width"] > 150 and b["height"] > 120 for b in boxes)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"viewer_tools_2x2_{size}.png"))
    assert page.problems == []


def _percentile(stored, q):
    """The viewer's percentile rule, on the non-zero stored values: the smallest value reaching q % of them."""
    values = np.sort(stored[stored > 0].ravel())
    return int(values[max(1, math.ceil(q / 100 * values.size)) - 1])


def _centre_grey(page, index):
    return page.evaluate(f"""() => {{
        const c = document.querySelectorAll('.viewport canvas')[{index}];
        return c.getContext('2d').getImageData(c.width >> 1, c.height >> 1, 1, 1).data[0]; }}""")


@pytest.mark.parametrize("size", SIZES)
def test_window_presets_per_sequence_and_invert(live_server, page, study, reader, size):
    """Keys 1-5 pick the sequence's presets (T2: percentiles of the series, ADC: absolute in 10^-3 mm²/s); 1 is
    the series' own window; I inverts the grey scale; the help overlay lists the presets."""
    _open(page, live_server.url, study, reader, size)
    first = page.locator(".viewport").first
    default = first.get_attribute("data-window")
    first.click(position={"x": 5, "y": 5})
    page.wait_for_function("document.querySelector('.viewport').dataset.loadedSlices === '16'")  # every slice in
    page.keyboard.press("2")                                   # T2: soft tissue, p5-p95
    page.wait_for_function("document.querySelector('.viewport').dataset.preset === '2'")
    t2 = _series(page, "T2axi")
    stored, slope = _stored("T2axi"), t2["rescale"]["slope"]
    low, high = _percentile(stored, 5) * slope, _percentile(stored, 95) * slope
    js_round = lambda v: math.floor(v + 0.5)  # noqa: E731  (Math.round: halves up)
    assert first.get_attribute("data-window") == f"{js_round((low + high) / 2)}/{js_round(high - low)}"
    assert "soft tissue" in first.locator(".ov-tl").inner_text()
    page.keyboard.press("1")
    page.wait_for_function("document.querySelector('.viewport').dataset.preset === '1'")
    assert first.get_attribute("data-window") == default
    grey = _centre_grey(page, 0)
    page.keyboard.press("i")
    page.wait_for_function("document.querySelector('.viewport').dataset.inverted === '1'")
    page.wait_for_timeout(100)
    assert abs(_centre_grey(page, 0) - (255 - grey)) <= 1          # (canvas scaling rounds)
    page.keyboard.press("i")
    page.wait_for_function("document.querySelector('.viewport').dataset.inverted === '0'")

    _show_in(page, 2, "ADC")                                   # ADC values are stored in 10^-6 mm²/s
    page.keyboard.press("2")                                   # ADC 0-3 (10^-3 mm²/s)
    page.wait_for_function("document.querySelectorAll('.viewport')[2].dataset.preset === '2'")
    assert page.locator(".viewport").nth(2).get_attribute("data-window") == "1500/3000"
    page.keyboard.press("4")                                   # ADC 0.5-1.5
    page.wait_for_function("document.querySelectorAll('.viewport')[2].dataset.window === '1000/1000'")
    page.keyboard.press("?")
    help_text = page.locator("#preset-help").inner_text()
    assert "soft tissue" in help_text and "ADC 0-3" in help_text and "enhancement" in help_text
    page.screenshot(path=str(ARTIFACTS / f"viewer_tools_presets_help_{size}.png"))
    page.keyboard.press("Escape")
    assert page.problems == []


def _letters(vector):
    """The dominant LPS axis letter of a direction (independent of the viewer's oblique rule)."""
    axis = int(np.argmax(np.abs(vector)))
    return ("LR", "PA", "HF")[axis][0 if vector[axis] > 0 else 1]


@pytest.mark.parametrize("size", SIZES)
def test_orientation_letters_and_slice_position_in_the_overlay(live_server, page, study, reader, size):
    _open(page, live_server.url, study, reader, size)
    for index, code in enumerate(("T2axi", "T2sag")):
        series = _series(page, code)
        row, col = np.array(series["orientation"][:3]), np.array(series["orientation"][3:])
        expected = [_letters(-row), _letters(row), _letters(-col), _letters(col)]
        assert page.locator(".viewport").nth(index).get_attribute("data-orientation-labels") == ",".join(expected)
    # radiological convention: the patient's right on the image's left, anterior up; sagittal: head up
    assert _viewports(page, "orientationLabels")[:2] == ["R,L,A,P", "A,P,H,F"]
    vp = page.locator(".viewport").first
    series = _series(page, "T2axi")
    normal = np.cross(series["orientation"][:3], series["orientation"][3:])
    slice_index = int(vp.get_attribute("data-slice"))
    location = float(np.dot(series["slice_positions"][slice_index], normal))
    assert float(vp.get_attribute("data-position")) == pytest.approx(location, abs=0.01)
    spacing = _rendered().series[[s.code for s in _rendered().series].index("T2axi")].geometries[0].spacing
    assert float(vp.get_attribute("data-slice-spacing")) == pytest.approx(spacing, abs=0.01)
    text = vp.locator(".ov-bl").inner_text()
    assert series["slice_thickness"] > 0      # stored with the series: the overlay shows it, not the spacing
    assert f"pos {location:.1f} mm" in text and f"thickness {series['slice_thickness']:.1f} mm" in text
    page.keyboard.press("ArrowDown")
    page.wait_for_function(f"document.querySelector('.viewport').dataset.slice === '{slice_index + 1}'")
    assert abs(float(vp.get_attribute("data-position")) - location) == pytest.approx(spacing, abs=0.01)
    assert [page.locator(f".viewport >> nth=0 >> .ov-{e}").inner_text() for e in ("left", "right", "top", "bottom")] \
        == ["R", "L", "A", "P"]
    assert page.problems == []


def _point(series, frame, x, y):
    """The patient position (mm) of a point of a slice given in the viewer's pixel units (pixel centres at i + .5)."""
    o = np.array(series["orientation"], dtype=float)
    row_spacing, col_spacing = series["pixel_spacing"]
    return (np.array(series["slice_positions"][frame]) + (x - 0.5) * col_spacing * o[:3]
            + (y - 0.5) * row_spacing * o[3:])


@pytest.mark.parametrize("size", SIZES)
def test_reference_lines_of_the_active_slice(live_server, page, study, reader, size):
    """The sagittal viewport shows where the active axial slice cuts it (a segment on the axial plane, edge to
    edge of the image); the parallel DWI viewport shows none; scrolling the axial slice moves the line."""
    _open(page, live_server.url, study, reader, size)
    page.locator(".viewport").first.click(position={"x": 5, "y": 5})
    axial, sagittal = _series(page, "T2axi"), _series(page, "T2sag")
    normal = np.cross(axial["orientation"][:3], axial["orientation"][3:])

    def state():
        """The axial frame, the sagittal line and frame, read together (keys move them a frame apart)."""
        axial_frame, raw, sag_frame = page.evaluate(
            "() => { const v = document.querySelectorAll('.viewport');"
            " return [v[0].dataset.slice, v[1].dataset.referenceLine, v[1].dataset.slice]; }")
        return int(axial_frame), raw, int(sag_frame)

    def off_plane(frame, raw, sag_frame):
        """For each end of the line: its distance to the axial slice's plane (mm) and to the image's edge."""
        line = [float(v) for v in raw.split(",")]
        return [(float(np.dot(_point(sagittal, sag_frame, x, y) - np.array(axial["slice_positions"][frame]),
                              normal)),
                 min(abs(x), abs(x - sagittal["cols"]), abs(y), abs(y - sagittal["rows"])))
                for x, y in (line[:2], line[2:])]

    def check(moved_from=None):
        """Wait (5 s at most) until the line is drawn for the axial frame shown (two frames from
        ``moved_from`` where given), then check it: on the axial plane, edge to edge of the image."""
        for _ in range(100):
            frame, raw, sag_frame = state()
            ready = raw and (moved_from is None or abs(frame - moved_from) == 2)
            if ready and all(abs(d) <= 0.02 for d, _ in off_plane(frame, raw, sag_frame)):
                break
            page.wait_for_timeout(50)
        assert raw, "no reference line on the sagittal viewport"
        for distance, edge in off_plane(frame, raw, sag_frame):
            assert distance == pytest.approx(0, abs=0.02)
            assert edge == pytest.approx(0, abs=0.01)
        return frame, [float(v) for v in raw.split(",")]

    start, before = check()
    assert page.locator(".viewport").nth(2).get_attribute("data-reference-line") == ""    # DWI: parallel
    page.keyboard.press("ArrowUp")
    page.keyboard.press("ArrowUp")
    _, after = check(moved_from=start)
    spacing = abs(np.dot(np.array(axial["slice_positions"][1]) - axial["slice_positions"][0], normal))
    assert abs(after[1] - before[1]) * sagittal["pixel_spacing"][0] == pytest.approx(2 * spacing, abs=0.05)
    # the sagittal viewport active (key A: the next viewport): the axial viewports show its line, it shows none
    page.keyboard.press("a")
    assert page.locator(".viewport").nth(1).get_attribute("class") == "viewport active"
    page.wait_for_function("document.querySelectorAll('.viewport')[0].dataset.referenceLine !== ''"
                           " && document.querySelectorAll('.viewport')[1].dataset.referenceLine === ''")
    page.screenshot(path=str(ARTIFACTS / f"viewer_tools_reference_lines_{size}.png"))
    assert page.problems == []


@pytest.mark.parametrize("size", SIZES)
def test_length_tool_measures_mm_and_keeps_nothing(live_server, page, study, reader, size):
    """G then a drag: the length in mm (from the screen distance and the pixel spacing); it stays on its slice,
    Delete clears it, and no request carries it."""
    _open(page, live_server.url, study, reader, size)
    posted = []   # from the reading page on (the login form's random CSRF token could hold "mm" by chance)
    page.on("request", lambda r: r.method != "GET" and posted.append(r.post_data or ""))
    vp = page.locator(".viewport").first
    vp.click(position={"x": 5, "y": 5})
    page.keyboard.press("g")
    assert page.get_attribute("#reading", "data-tool") == "length"
    window = vp.get_attribute("data-window")
    _drag(page, 0, (0.3, 0.5), (0.7, 0.5))
    page.wait_for_function("document.querySelector('.viewport').dataset.measurements === '1'")
    assert vp.get_attribute("data-window") == window               # the drag measured, it did not window
    series = _series(page, "T2axi")
    box = vp.bounding_box()
    inner_w, inner_h = page.evaluate("() => { const c = document.querySelector('.viewport canvas');"
                                     " return [c.clientWidth, c.clientHeight]; }")
    width_mm, height_mm = series["cols"] * series["pixel_spacing"][1], series["rows"] * series["pixel_spacing"][0]
    css_px_per_mm = min(inner_w / width_mm, inner_h / height_mm)
    expected = 0.4 * box["width"] / css_px_per_mm
    measured = vp.get_attribute("data-measurement")
    assert measured.endswith(" mm") and float(measured[:-3]) == pytest.approx(expected, rel=0.02)
    page.screenshot(path=str(ARTIFACTS / f"viewer_tools_length_{size}.png"))
    page.keyboard.press("ArrowDown")                                 # another slice: its own (none)
    page.wait_for_function("document.querySelector('.viewport').dataset.measurements === '0'")
    page.keyboard.press("ArrowUp")
    page.wait_for_function("document.querySelector('.viewport').dataset.measurements === '1'")
    page.keyboard.press("Delete")
    page.wait_for_function("document.querySelector('.viewport').dataset.measurements === '0'")
    page.keyboard.press("w")
    assert page.get_attribute("#reading", "data-tool") == "window"
    assert not any("mm" in body or "measure" in body for body in posted)
    assert page.problems == []


@pytest.mark.parametrize("size", SIZES)
def test_ellipse_roi_gives_mean_and_sd_in_adc_units_and_the_pixel_value(live_server, page, study, reader, size):
    """E then a drag on the ADC map: mean ± SD of the pixels inside the ellipse, in 10^-3 mm²/s (stored x slope,
    stored values in 10^-6 mm²/s); the pointer's pixel value in the same units."""
    _open(page, live_server.url, study, reader, size)
    _show_in(page, 0, "ADC")
    page.keyboard.press("e")
    _drag(page, 0, (0.4, 0.4), (0.6, 0.55))
    page.wait_for_function("document.querySelector('.viewport').dataset.roiMean !== undefined"
                           " && document.querySelector('.viewport').dataset.roiMean !== ''")
    vp = page.locator(".viewport").first
    roi = page.evaluate("() => { const m = window.readingPage.viewer.viewports[0].measurements()[0];"
                        " return {a: m.a, b: m.b}; }")
    frame = int(vp.get_attribute("data-slice"))
    adc = _series(page, "ADC")
    image = _stored("ADC")[frame].astype(float) * adc["rescale"]["slope"] / 1000
    (ax, ay), (bx, by) = (roi["a"]["x"], roi["a"]["y"]), (roi["b"]["x"], roi["b"]["y"])
    cx, cy, rx, ry = (ax + bx) / 2, (ay + by) / 2, abs(bx - ax) / 2, abs(by - ay) / 2
    yy, xx = np.mgrid[0:image.shape[0], 0:image.shape[1]] + 0.5
    inside = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    assert int(vp.get_attribute("data-roi-pixels")) == int(inside.sum()) > 20
    assert float(vp.get_attribute("data-roi-mean")) == pytest.approx(image[inside].mean(), rel=1e-6)
    assert float(vp.get_attribute("data-roi-sd")) == pytest.approx(image[inside].std(ddof=1), rel=1e-6)
    assert "10⁻³ mm²/s" in vp.get_attribute("data-measurement")
    assert 0.1 < image[inside].mean() < 4                            # an ADC, not a raw stored value
    box = vp.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_function("document.querySelector('.viewport').dataset.pixelValue !== ''")
    at = page.evaluate("window.readingPage.viewer.viewports[0].readout")
    assert float(vp.get_attribute("data-pixel-value")) == pytest.approx(image[at["y"], at["x"]], rel=1e-6)
    assert "mm²/s" in vp.locator(".ov-tr").inner_text()
    page.screenshot(path=str(ARTIFACTS / f"viewer_tools_ellipse_roi_{size}.png"))
    assert page.problems == []


@pytest.mark.parametrize("size", SIZES)
def test_dynamic_series_has_slices_and_phases_as_two_axes_and_cine(live_server, page, study, reader, size):
    """← / → step phases at the same slice position, ↑ / ↓ slices within the phase, C plays the phases."""
    _open(page, live_server.url, study, reader, size)
    _show_in(page, 0, "dynamicaxi")
    vp = page.locator(".viewport").first
    state = lambda: {k: vp.get_attribute(f"data-{k}") for k in ("phase", "slice-in-phase", "position", "slice")}  # noqa: E731
    assert vp.get_attribute("data-phases") == "4"
    start = state()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"document.querySelector('.viewport').dataset.phase === '{int(start['phase']) + 1}'")
    moved = state()
    assert moved["slice-in-phase"] == start["slice-in-phase"] and moved["position"] == start["position"]
    assert int(moved["slice"]) == int(start["slice"]) + 16            # phase-major frames, 16 slices a phase
    page.keyboard.press("ArrowDown")
    following = int(start["slice-in-phase"]) + 1
    page.wait_for_function(f"document.querySelector('.viewport').dataset.sliceInPhase === '{following}'")
    assert state()["phase"] == moved["phase"]
    page.keyboard.press("End")
    page.wait_for_function("document.querySelector('.viewport').dataset.sliceInPhase === '15'")
    assert state()["phase"] == moved["phase"]
    page.keyboard.press("c")
    page.wait_for_function("document.querySelector('.viewport').dataset.cine === '1'")
    seen = set()
    for _ in range(30):
        seen.add(vp.get_attribute("data-phase"))
        assert vp.get_attribute("data-slice-in-phase") == "15"
        if len(seen) == 4:
            break
        page.wait_for_timeout(100)
    assert seen == {"1", "2", "3", "4"}
    page.keyboard.press("c")
    page.wait_for_function("document.querySelector('.viewport').dataset.cine === '0'")
    phase = vp.get_attribute("data-phase")
    page.wait_for_timeout(600)
    assert vp.get_attribute("data-phase") == phase
    assert vp.locator(".ov-bl").inner_text().splitlines()[:2] == ["Slice 16 / 16", f"phase {phase} / 4"]
    assert page.problems == []


@pytest.mark.parametrize("size", SIZES)
def test_series_thumbnails_are_drawn_once_their_volume_is_here(live_server, page, study, reader, size):
    """Each series' button gets a thumbnail when its volume has come (viewports, then preloading); a series
    whose volume does not come keeps the placeholder: nothing is downloaded just for a thumbnail."""
    assignment = Assignment.objects.get(study=study, exam=1)
    handle = series_handle(assignment.pk, Series.objects.get(mapped_code="T1axi").pk)
    page.route(f"**/series/{handle}/volume*", lambda route: route.abort())
    _open(page, live_server.url, study, reader, size)
    codes = page.evaluate("window.readingPage.payload.series.map(s => s.code)")
    others = [c for c in codes if c != "T1axi"]
    page.wait_for_function("document.querySelectorAll('.series-list .thumb[data-drawn=\"1\"]').length"
                           f" === {len(others)}", timeout=30000)
    blocked_button = page.locator(f".series-list button[data-series-id='{handle}']")
    assert blocked_button.locator(".thumb").inner_text() == "not loaded yet"
    lit = page.evaluate("""() => [...document.querySelectorAll('.series-list .thumb canvas')].map(c => {
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0; for (let i = 0; i < d.length; i += 4) if (d[i] > 40) n++; return n / (d.length / 4); })""")
    assert len(lit) == len(others) and all(f > 0.05 for f in lit)  # an image, not a black box
    page.screenshot(path=str(ARTIFACTS / f"viewer_tools_thumbnails_{size}.png"))
    page.problems[:] = [p for p in page.problems if handle not in p]
    assert page.problems == []


def _luminance(rgb):
    channel = [c / 255 for c in rgb]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channel]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


@pytest.mark.parametrize("size", SIZES)
def test_overlay_text_keeps_aa_contrast_over_a_white_image(live_server, page, study, reader, size):
    """Issue 15, item 13: the overlay's yellow text over the brightest pixels (white) under its backing."""
    _open(page, live_server.url, study, reader, size)
    styles = page.eval_on_selector_all(
        ".viewport:first-child .ov:not(:empty)",
        "els => els.map(e => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor])")
    assert styles
    for color, backing in styles:
        text = [float(v) for v in color[color.index("(") + 1:-1].split(",")[:3]]
        parts = [float(v) for v in backing[backing.index("(") + 1:-1].split(",")]
        alpha = parts[3] if len(parts) == 4 else 1.0
        over_white = [alpha * c + (1 - alpha) * 255 for c in parts[:3]]      # the backing over a white pixel
        lighter, darker = sorted((_luminance(text), _luminance(over_white)), reverse=True)
        assert (lighter + 0.05) / (darker + 0.05) >= 4.5, (color, backing)
