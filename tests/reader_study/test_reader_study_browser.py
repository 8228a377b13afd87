"""Browser test (Playwright + Debian's Chromium): a reader reads exam 1, waits out the washout, reads exam 2.

Three SYNTHETIC phantom cases. The reader logs in, reads each case of exam 1 using the wheel, the keys and a
window/level drag, answers with the keyboard, finishes exam 1 and finds exam 2 locked; the test then moves
the washout (the exam-1 reads are dated 29 days back); exam 2 opens and shows the AI panel; after exam 2 the
reader scores the descriptors, and the coordinator sees both exams finished. Screenshots of each exam and
of the coordinator's progress page are saved under test-artifacts/.
"""

from pathlib import Path

import pytest

from factories_reader_study import EvaluationFactory, ai_result, answer_all, move_washout, open_study, phantom_case
from reader_study import services
from reader_study.models import DescriptorScore, Read
from testsupport import CHROMIUM, CHROMIUM_MISSING, chromium_page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("role_groups"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]


@pytest.fixture
def page(monkeypatch):
    """A Chromium page (testsupport.chromium_page); script errors and failed requests are in page.problems."""
    with chromium_page(monkeypatch) as tab:
        yield tab


@pytest.fixture
def study_in_browser(transactional_db, coordinator, reader):
    cases = [phantom_case(i) for i in range(3)]
    evaluation = EvaluationFactory()
    for case, likelihood in zip(cases, (81.2, 9.4, 37.5), strict=True):
        ai_result(evaluation, case, likelihood)
    return open_study(coordinator=coordinator, readers=[reader], cases=cases, evaluation=evaluation,
                      name="Browser study (synthetic)")


def _log_in(page, base, user, landing="/reader/"):
    page.goto(base + "/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", "pw-Test-1234")
    page.click("button[type=submit]")
    page.wait_for_url(base + landing)


def _wait_for_images(page):
    page.wait_for_selector("#reading[data-first-image='1']")
    page.wait_for_function("document.querySelectorAll('.viewport[data-ready=\"1\"]').length >= 2")


def _scroll_and_window(page):
    """Wheel and keys scroll the active viewport; a drag changes window/level; R resets it."""
    viewport = page.locator(".viewport").first
    box = viewport.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(cx, cy)
    before = int(viewport.get_attribute("data-slice"))
    page.mouse.wheel(0, 120)
    page.wait_for_function(f"document.querySelector('.viewport').dataset.slice !== '{before}'")
    after_wheel = int(viewport.get_attribute("data-slice"))
    assert after_wheel == before + 1
    page.keyboard.press("ArrowDown")
    page.wait_for_function(f"document.querySelector('.viewport').dataset.slice === '{after_wheel + 1}'")
    window = viewport.get_attribute("data-window")
    page.mouse.down()
    page.mouse.move(cx + 80, cy + 40, steps=6)
    page.mouse.up()
    page.wait_for_function(f"document.querySelector('.viewport').dataset.window !== '{window}'")
    assert viewport.get_attribute("data-window") != window
    return window


def _answer(page, key: str, confidence: int):
    page.keyboard.press(key)
    page.fill("#confidence", str(confidence))
    page.locator(".viewport").first.hover()
    url = page.url
    page.keyboard.press("Control+Enter")
    page.wait_for_function(f"location.href !== {url!r}")


def test_reader_reads_exam1_waits_out_the_washout_and_reads_exam2_with_the_ai(
        live_server, page, study_in_browser, reader, coordinator):
    study, base = study_in_browser, live_server.url
    ARTIFACTS.mkdir(exist_ok=True)
    _log_in(page, base, reader)
    page.click("a[href='/studies/']")
    page.click(f"a[href='/studies/{study.pk}/']")
    page.click("#exam-1-continue")
    for index, (key, confidence) in enumerate((("s", 80), ("l", 20), ("l", 35))):
        _wait_for_images(page)
        assert page.locator("#ai-panel").count() == 0 and "likelihood" not in page.content()
        _scroll_and_window(page)
        if index == 1:
            series = page.locator(".viewport").first.get_attribute("data-series-code")
            page.keyboard.press("PageDown")
            page.wait_for_function(f"document.querySelector('.viewport').dataset.seriesCode !== '{series}'"
                                   " && document.querySelector('.viewport').dataset.ready === '1'")
            page.keyboard.press("r")
            page.screenshot(path=str(ARTIFACTS / "reader_study_exam1.png"))
        page.mouse.move(700, 400)
        page.wait_for_timeout(1200)                           # a little active reading time
        _answer(page, key, confidence)
    page.wait_for_url(f"{base}/studies/{study.pk}/exam/1/")
    page.click("#finish-exam")
    page.click("#finish-confirm-button")                     # finishing asks first
    page.wait_for_selector("#exam-2-opens")                  # exam 2 locked: the washout
    reads = Read.objects.filter(assignment__study=study, assignment__exam=1)
    assert sorted(reads.values_list("call", "confidence")) == [
        ("leiomyoma", 20), ("leiomyoma", 35), ("sarcoma", 80)]
    assert all(r.active_seconds > 0 for r in reads)

    move_washout(study, reader, days=29)
    page.reload()
    page.click("#exam-2-continue")
    for index in range(3):
        _wait_for_images(page)
        panel = page.locator("#ai-panel")
        assert panel.is_visible() and "% sarcoma likelihood" in panel.inner_text()
        if index == 0:
            page.screenshot(path=str(ARTIFACTS / "reader_study_exam2.png"))
        _answer(page, "s", 70)
    page.wait_for_url(f"{base}/studies/{study.pk}/exam/2/")
    shown = Read.objects.filter(assignment__study=study, assignment__exam=2).values_list(
        "assignment__case__ai_results__likelihood", "ai_likelihood_shown")
    assert len(shown) == 3 and all(a == b for a, b in shown)
    page.click("#finish-exam")
    page.click("#finish-confirm-button")
    page.wait_for_selector("#descriptors .badge-open")        # exam 2 done: the descriptor task opens
    _score_descriptors(page, base, study, reader)
    assert page.problems == []
    assert (ARTIFACTS / "reader_study_exam1.png").stat().st_size > 10000
    assert (ARTIFACTS / "reader_study_exam2.png").stat().st_size > 10000
    _coordinator_sees_both_exams(page, base, study, coordinator, reader)


def _score_descriptors(page, base, study, reader):
    """The leiomyoma cases (2 of the 3), scored with the keys D / M and Ctrl+Enter."""
    page.click(f"a[href='/studies/{study.pk}/descriptors/']")
    page.click("table.worklist a >> nth=0")
    for _ in range(2):
        _wait_for_images(page)
        assert page.locator("#ai-panel").count() == 0
        page.keyboard.press("d")          # degeneration: yes
        page.keyboard.press("m")          # irregular margin: yes
        page.keyboard.press("m")          # ... no
        url = page.url
        page.keyboard.press("Control+Enter")
        page.wait_for_function(f"location.href !== {url!r}")
    page.wait_for_url(f"{base}/studies/{study.pk}/descriptors/")
    scores = DescriptorScore.objects.filter(assignment__study=study, assignment__reader=reader)
    assert sorted(scores.values_list("degeneration", "irregular_margin")) == [(True, False), (True, False)]


def _coordinator_sees_both_exams(page, base, study, coordinator, reader):
    page.context.clear_cookies()
    _log_in(page, base, coordinator, landing="/coordinator/")
    page.click("a[href='/coordination/studies/']")
    page.click(f"a[href='/coordination/studies/{study.pk}/']")
    row = page.locator(f"tr[data-reader='{reader.username}']")
    assert row.locator("td[data-exam='1']").get_attribute("data-state") == "finished"
    assert row.locator("td[data-exam='2']").get_attribute("data-state") == "finished"
    assert "3 / 3" in row.locator("td[data-exam='2']").inner_text()
    page.screenshot(path=str(ARTIFACTS / "reader_study_progress.png"), full_page=True)


def test_viewer_layouts_help_zoom_and_sync(live_server, page, study_in_browser, reader, coordinator):
    """1-3 viewports, the help overlay, zoom/fit, and parallel viewports following by position."""
    base = live_server.url
    services.study_hanging_set(study=study_in_browser, protocol="T2axi | T2sag | DWI", by=coordinator)
    _log_in(page, base, reader)
    page.goto(f"{base}/studies/{study_in_browser.pk}/exam/1/resume/")
    _wait_for_images(page)
    page.wait_for_function("document.querySelectorAll('.viewport[data-ready=\"1\"]').length === 3")
    codes = page.eval_on_selector_all(".viewport", "els => els.map(e => e.dataset.seriesCode)")
    assert codes == ["T2axi", "T2sag", "DWI"]          # the study's hanging protocol, set below the fixture
    # T2axi and DWI are parallel: scrolling one moves the other to the same position
    page.keyboard.press("End")
    page.wait_for_function("document.querySelectorAll('.viewport')[0].dataset.slice === String("
                           "window.readingPage.payload.series.find(s => s.code === 'T2axi').n_slices - 1)")
    page.wait_for_function("document.querySelectorAll('.viewport')[2].dataset.slice === "
                           "document.querySelectorAll('.viewport')[0].dataset.slice")
    page.keyboard.press("?")
    assert page.locator("#viewer-help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#viewer-help").is_visible()
    page.keyboard.press("v")
    page.wait_for_function("document.querySelectorAll('.viewport').length === 1")
    viewport = page.locator(".viewport").first
    viewport.hover()
    page.keyboard.down("Control")
    page.mouse.wheel(0, -120)
    page.keyboard.up("Control")
    page.wait_for_function("Number(document.querySelector('.viewport').dataset.zoom) > 1")
    page.keyboard.press("z")
    page.wait_for_function("Number(document.querySelector('.viewport').dataset.zoom) === 1")
    assert page.problems == []


def test_reading_page_runs_under_its_content_security_policy(live_server, page, study_in_browser, reader):
    """Exam 2 (the viewer, the AI panel's meter, the answer form) with the site's CSP: Chromium refuses
    nothing — no inline script or style, no image or request outside the site — and reports no header error."""
    study, base = study_in_browser, live_server.url
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    move_washout(study, reader, days=29)
    page.add_init_script("window.cspViolations = []; document.addEventListener('securitypolicyviolation', "
                         "(e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));")
    console = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    _log_in(page, base, reader)
    response = page.goto(f"{base}/studies/{study.pk}/exam/2/resume/")
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    _wait_for_images(page)
    assert page.locator("#ai-panel meter.bar").is_visible()
    _scroll_and_window(page)
    page.keyboard.press("?")                                   # the help overlay
    page.keyboard.press("Escape")
    assert page.evaluate("window.cspViolations") == []
    assert [m for m in console if "Content Security Policy" in m or "Permissions-Policy" in m] == []
    assert page.problems == []
