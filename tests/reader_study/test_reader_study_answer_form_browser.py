"""Browser tests of the answer form and the AI panel (issue 15, bug 3, items 11 and 13): Playwright + Debian's
Chromium at 1366×768 and 1920×1080.

The submit button of exam 2 stays on screen and clickable beside the tallest AI panel; the form and the panel
are read and answered with the keyboard alone, with a visible focus ring; every text of the answer panel meets
WCAG AA contrast (4.5:1) on the dark theme, and every text of the reader's light pages (their studies, a
study's home, the worklist, the finish confirmation, the read-only worklist) too; "Finish exam" asks first and
the finished exam's worklist shows the reader's calls read-only. SYNTHETIC phantom cases; screenshots go to
test-artifacts/.
"""

from pathlib import Path

import pytest
from test_reader_study_browser import _log_in, _wait_for_images

from core.constants import SARCOMA
from factories_reader_study import EvaluationFactory, answer_all, move_washout, open_study, phantom_case
from inference.models import CaseAIResult
from reader_study import selectors, services
from reader_study.models import Read
from testsupport import CHROMIUM, CHROMIUM_MISSING, chromium_page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
SIZES = {"1366x768": (1366, 768), "1920x1080": (1920, 1080)}
SET = ["ADC", "DWI", "dynamicaxi", "fsT1CEsag"]
FIGURES = {"sensitivity": {"estimate": 78.3, "ci_low": 61.2, "ci_high": 89.0},
           "specificity": {"estimate": 83.5, "ci_low": 70.1, "ci_high": 91.5}}

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("role_groups"),
    pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING),
]

# WCAG 2.1 contrast of every element under the selector `root` that holds text of its own, against the first
# opaque background behind it: [{text, ratio}].
CONTRAST_JS = """(root) => {
  const channel = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  const lum = (c) => 0.2126 * channel(c[0]) + 0.7152 * channel(c[1]) + 0.0722 * channel(c[2]);
  const parse = (s) => { const m = s.match(/rgba?\\(([^)]+)\\)/); if (!m) return null;
    const p = m[1].split(/[ ,\\/]+/).filter(Boolean).map(Number);
    return { rgb: p.slice(0, 3), a: p.length > 3 ? p[3] : 1 }; };
  const behind = (el) => { for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor); if (c && c.a > 0.5) return c.rgb; } return [255, 255, 255]; };
  const out = [];
  for (const el of document.querySelectorAll(root + ' *')) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.getClientRects().length || el.closest('meter, progress')) continue;   // fallback text: not shown
    const a = lum(parse(getComputedStyle(el).color).rgb), b = lum(behind(el));
    out.push({ text: el.textContent.trim().slice(0, 40), ratio: (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05) });
  }
  return out;
}"""

# The focused element, how its focus shows, and whether it lies inside the answer panel.
FOCUS_JS = """() => { const el = document.activeElement, s = getComputedStyle(el);
  return { id: el.id, name: el.getAttribute('name'), value: el.value, tag: el.tagName, cls: String(el.className),
           inPanel: Boolean(el.closest('.answer-panel')), outline: s.outlineStyle,
           width: parseFloat(s.outlineWidth) }; }"""


@pytest.fixture
def exam2_study(transactional_db, coordinator, reader):
    """Two SYNTHETIC phantom cases; exam 1 finished, the washout passed. Of the AI set (ADC, DWI, dynamicaxi,
    fsT1CEsag) the results have DWI only, so the panel lists three missing sequences and a note: as tall as
    it gets."""
    cases = [phantom_case(i) for i in range(2)]
    evaluation = EvaluationFactory(chosen_subset=SET, results={
        "chosen": {"codes": SET, "thresholds": [1] * 12 + [2] * 12}, "methods": {"nested": FIGURES}})
    # DWI alone of the set: +1 at most, so only the 12 ensembles whose threshold is +1 can call sarcoma
    for case, (likelihood, dwi) in zip(cases, ((50.0, 100.0), (45.8333, 91.6667)), strict=True):
        CaseAIResult.objects.create(evaluation=evaluation, case=case, likelihood=likelihood, subset=SET,
                                    n_ensembles=24, per_sequence={"DWI": dwi, "T2axi": 50.0})
    study = open_study(coordinator=coordinator, readers=[reader], cases=cases, evaluation=evaluation,
                       name="Answer form (synthetic)")
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    move_washout(study, reader, days=29)
    return study


@pytest.fixture
def tab(monkeypatch):
    with chromium_page(monkeypatch) as page:
        yield page


def _assert_aa_contrast(page, root: str) -> None:
    measured = page.evaluate(CONTRAST_JS, root)
    assert measured, f"no text under {root}"
    low = [c for c in measured if c["ratio"] < 4.5]
    assert low == [], f"{page.url}: text below WCAG AA contrast: {low}"


def _tab_until(page, predicate, limit: int = 80) -> list[dict]:
    """Press Tab until ``predicate(focus)`` holds; every focus passed on the way (the last one matches)."""
    seen = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        focus = page.evaluate(FOCUS_JS)
        seen.append(focus)
        if predicate(focus):
            return seen
    raise AssertionError(f"Tab never reached it; passed {[(f['tag'], f['id'] or f['name']) for f in seen]}")


@pytest.mark.parametrize("size", list(SIZES))
def test_exam2_submit_stays_on_screen_and_the_form_is_read_and_answered_by_keyboard(
        live_server, tab, exam2_study, reader, size):
    page, base = tab, live_server.url
    width, height = SIZES[size]
    page.set_viewport_size({"width": width, "height": height})
    _log_in(page, base, reader)
    page.goto(f"{base}/studies/{exam2_study.pk}/exam/2/resume/")
    _wait_for_images(page)
    assert page.locator("#ai-panel tr.missing").count() == 3 and page.locator("#ai-note").is_visible()
    button = page.locator("#submit-next").bounding_box()
    assert button["y"] >= 0 and button["y"] + button["height"] <= height, (size, button)
    hit = page.evaluate(f"document.elementFromPoint({button['x'] + button['width'] / 2}, "
                        f"{button['y'] + button['height'] / 2}).closest('#submit-next') !== null")
    assert hit, "the submit button is covered"
    assert page.evaluate("document.documentElement.scrollHeight <= window.innerHeight + 1"), "the page scrolls"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"reader_study_answer_form_{size}.png"))

    _assert_aa_contrast(page, ".answer-panel")

    # keyboard only: the panel's scrolling part (the AI panel with it), the call, the confidence, the submit
    page.evaluate("document.activeElement.blur()")          # from the top of the page, through the viewer
    seen = _tab_until(page, lambda f: f["name"] == "call", limit=120)
    scroller = next(f for f in seen if "answer-scroll" in f["cls"])    # the panel scrolls by keyboard too
    assert scroller["outline"] != "none" and scroller["width"] >= 2, scroller
    page.focus(".answer-scroll")
    slice_before = page.locator(".viewport").first.get_attribute("data-slice")
    page.keyboard.press("End")
    page.wait_for_function("(() => { const e = document.querySelector('.answer-scroll');"
                           " return e.scrollTop + e.clientHeight >= e.scrollHeight - 1; })()")
    assert page.locator(".viewport").first.get_attribute("data-slice") == slice_before   # not the viewer's key
    focus = _tab_until(page, lambda f: f["name"] == "call")[-1]                 # on: the call
    assert focus["outline"] != "none" and focus["width"] >= 2, focus            # a visible focus ring
    page.keyboard.press("Space")                                                # the first radio: sarcoma
    _tab_until(page, lambda f: f["id"] == "confidence")
    page.keyboard.type("72")
    focus = _tab_until(page, lambda f: f["id"] == "submit-next")[-1]
    assert focus["outline"] != "none" and focus["width"] >= 2, focus
    url = page.url
    page.keyboard.press("Enter")
    page.wait_for_function(f"location.href !== {url!r}")
    read = Read.objects.get(assignment__study=exam2_study, assignment__exam=2, assignment__reader=reader,
                            assignment__position=0)
    assert (read.call, read.confidence) == (SARCOMA, 72)
    assert page.problems == []


def test_finish_asks_first_and_the_finished_worklist_shows_the_calls_read_only(live_server, tab, coordinator,
                                                                               reader):
    page, base = tab, live_server.url
    page.set_viewport_size({"width": 1366, "height": 768})
    study = open_study(coordinator=coordinator, readers=[reader], cases=[phantom_case(i) for i in range(2)],
                       name="Finish (synthetic)")
    items = list(selectors.worklist(study, reader, 1))
    answer_all(reader, study, 1, call=SARCOMA, confidence=66)
    _log_in(page, base, reader)
    _assert_aa_contrast(page, "main")                                           # the reader's studies
    page.goto(f"{base}/studies/{study.pk}/")
    _assert_aa_contrast(page, "main")                                           # the study's home
    page.goto(f"{base}/studies/{study.pk}/exam/1/")
    _assert_aa_contrast(page, "main")                                           # the worklist (light theme)
    _tab_until(page, lambda f: f["id"] == "finish-exam")
    page.keyboard.press("Enter")                                                # opens the question, no more
    page.wait_for_selector("#finish-confirm")
    assert page.locator("#finish-count").get_attribute("data-unanswered") == "0"
    assert selectors.exam_status(study, reader, 1).state == "open"
    _assert_aa_contrast(page, "main")                                           # the confirmation
    page.screenshot(path=str(ARTIFACTS / "reader_study_finish_confirm_1366x768.png"))
    focus = _tab_until(page, lambda f: f["id"] == "finish-confirm-button")[-1]
    assert focus["outline"] != "none" and focus["width"] >= 2, focus
    page.keyboard.press("Enter")
    page.wait_for_selector("#exam-1-calls")
    assert selectors.exam_status(study, reader, 1).state == "finished"
    page.click("#exam-1-calls")
    page.wait_for_selector("#read-only-note")
    rows = page.locator("#worklist-table tbody tr")
    assert rows.count() == len(items)
    assert [rows.nth(i).locator("td.call").inner_text() for i in range(len(items))] == ["Sarcoma"] * len(items)
    assert page.locator("#worklist-table a").count() == 0 and page.locator("#ai-panel").count() == 0
    _assert_aa_contrast(page, "main")                                           # the read-only worklist
    page.screenshot(path=str(ARTIFACTS / "reader_study_finished_worklist_1366x768.png"))
    assert page.problems == []
