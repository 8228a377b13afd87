"""Browser test (Playwright + Debian's Chromium) of progressive loading on a throttled line: the viewport draws
the slice it opens on before the rest of the series has arrived, a slice scrolled to before its frame is in
shows "loading" and is drawn when it arrives, and the whole series fills in behind. Timings are in
benchmarks/progressive_loading.py, not here."""

import pytest
from test_reader_study_browser import _log_in

from factories_reader_study import CaseFactory, open_study, pattern_stack, write_series
from reader_study import selectors
from reader_study.models import Assignment
from testsupport import CHROMIUM, CHROMIUM_MISSING, chromium_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("role_groups"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]

N_SLICES = 24
SLOW_LINE = {"offline": False, "latency": 5, "downloadThroughput": 125_000, "uploadThroughput": 125_000}  # 1 Mbit/s
VIEWPORT = "document.querySelector('.viewport[data-index=\"0\"]')"


@pytest.fixture
def page(monkeypatch):
    with chromium_page(monkeypatch) as tab:
        yield tab


@pytest.fixture
def reading_url(transactional_db, coordinator, reader):
    case = CaseFactory()
    write_series(case, "T2axi", pattern_stack(N_SLICES, 128, seed=4))       # one series: one viewport
    study = open_study(coordinator=coordinator, readers=[reader], cases=[case], name="Loading (synthetic)")
    return f"/reading/{selectors.worklist(study, reader, 1).get().pk}/"


def test_the_opening_slice_is_drawn_before_the_series_has_arrived_and_the_rest_fills_in(
        live_server, page, reading_url, reader):
    base = live_server.url
    _log_in(page, base, reader)
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", SLOW_LINE)
    page.goto(base + reading_url)
    page.wait_for_function(f"{VIEWPORT} && {VIEWPORT}.dataset.ready === '1'", timeout=30000)
    first = page.evaluate(f"() => ({{ slice: {VIEWPORT}.dataset.slice, loaded: {VIEWPORT}.dataset.loadedAtFirstDraw,"
                          f" drawn: {VIEWPORT}.dataset.sliceLoaded }})")
    assert first["slice"] == str(N_SLICES // 2) and first["drawn"] == "1"
    assert 1 <= int(first["loaded"]) < N_SLICES                    # drawn with most of the series still on the way

    page.locator(".viewport").first.hover()
    page.keyboard.press("End")                                     # the last slice: the last to arrive
    page.wait_for_function(f"{VIEWPORT}.dataset.slice === '{N_SLICES - 1}'")
    assert page.evaluate(f"() => {VIEWPORT}.dataset.sliceLoaded") == "0"   # "loading", not the previous slice
    page.wait_for_function(f"{VIEWPORT}.dataset.sliceLoaded === '1'", timeout=30000)
    page.wait_for_function(f"{VIEWPORT}.dataset.loadedSlices === '{N_SLICES}'", timeout=30000)
    assert page.evaluate(f"() => {VIEWPORT}.dataset.slice") == str(N_SLICES - 1)
    assert not page.problems, page.problems


def test_from_the_worklist_the_opening_slice_comes_from_the_http_cache_and_is_asked_for_once(
        live_server, page, reading_url, reader):
    """The worklist prefetched the opening slice in idle time (static/reader_study/warm_up.js); on the reading
    page the preload and the loader's early fetch find it in the HTTP cache: no byte of it crosses the line again,
    and no second request for it is made."""
    base = live_server.url
    _log_in(page, base, reader)
    study = Assignment.objects.get(pk=int(reading_url.strip("/").rsplit("/", 1)[1])).study_id
    page.goto(f"{base}/studies/{study}/")              # the study's home: its button opens this case
    page.wait_for_load_state("networkidle")
    html = page.content()
    assert 'id="warm-up-urls"' in html
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "slices=" in r.url else None)
    page.goto(base + reading_url)
    page.wait_for_function(f"{VIEWPORT} && {VIEWPORT}.dataset.ready === '1'", timeout=30000)
    opening = page.evaluate("""() => performance.getEntriesByType("resource")
        .filter((e) => e.name.includes("slices=12-12")).map((e) => ({ bytes: e.transferSize, name: e.name }))""")
    assert opening and all(e["bytes"] == 0 for e in opening), opening     # from the cache
    assert len([u for u in sent if "slices=12-12" in u]) <= 1, sent       # the preload's; the loader reuses it
    assert page.evaluate(f"() => {VIEWPORT}.dataset.sliceLoaded") == "1"
    assert not page.problems, page.problems
