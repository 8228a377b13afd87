"""Content-Security-Policy (django-csp), Permissions-Policy and X-Frame-Options on pages and the API; no inline
script or style in any template; the OpenAPI schema and docs only for signed-in users (docs/security.md,
*Content-Security-Policy and headers*)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client

from reader_study import services
from reader_study.models import Assignment
from testsupport import CHROMIUM, CHROMIUM_MISSING, chromium_page

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reader_study"))
from factories_reader_study import (  # noqa: E402
    EvaluationFactory,
    ai_result,
    answer_all,
    case_with_series,
    move_washout,
    open_study,
)

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'"],
    "connect-src": ["'self'"],
    "font-src": ["'self'"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "form-action": ["'self'"],
    "frame-ancestors": ["'none'"],
}
FEATURES_OFF = ("camera=()", "microphone=()", "geolocation=()", "payment=()", "usb=()")


def policy_of(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    directives = (part.split() for part in header.split(";") if part.strip())
    return {name: values for name, *values in directives}


def assert_security_headers(response, policy=POLICY) -> None:
    assert policy_of(response) == policy
    assert "Content-Security-Policy-Report-Only" not in response.headers
    features = response.headers["Permissions-Policy"].split(", ")
    assert set(FEATURES_OFF) <= set(features)
    assert response.headers["X-Frame-Options"] == "DENY"


# --- what the CSP would refuse, in template sources and rendered pages ---------------------------------------
COMMENT = re.compile(r"\{#.*?#\}|\{% comment %\}.*?\{% endcomment %\}", re.S)
TAG = re.compile(r"<[a-zA-Z][^>]*>")
STYLE_ATTRIBUTE = re.compile(r"""\sstyle\s*=""", re.I)
HANDLER_ATTRIBUTE = re.compile(r"""\son[a-z]+\s*=""", re.I)
SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.S | re.I)
DATA_TYPES = ('type="application/json"', "type='application/json'")


def inline_code(html: str) -> list[str]:
    """Every inline script (but JSON data blocks), <style> block, style attribute, on* handler attribute and
    javascript: URL in `html`: what `script-src 'self'; style-src 'self'` refuses."""
    html = COMMENT.sub("", html)
    found = [m.group(0)[:80] for m in re.finditer(r"<style\b", html, re.I)]
    found += [m.group(0)[:80] for m in re.finditer(r"javascript:", html, re.I)]
    for tag in TAG.findall(html):
        if STYLE_ATTRIBUTE.search(tag) or HANDLER_ATTRIBUTE.search(tag):
            found.append(tag[:120])
    for attributes, body in SCRIPT.findall(html):
        is_data = any(t in attributes for t in DATA_TYPES)
        is_file = re.search(r"\ssrc\s*=", attributes) and not body.strip()
        if not (is_data or is_file):
            found.append(f"<script{attributes}>{body.strip()[:60]}")
    return found


def test_the_checker_finds_each_kind_of_inline_code():
    bad = ['<div style="width: 3%">', '<select onchange="go()">', "<style>p {}</style>",
           "<script>alert(1)</script>", '<a href="javascript:go()">', '<script src="/x.js">go()</script>']
    assert all(inline_code(snippet) for snippet in bad)
    good = ['<script src="/static/js/viewer.js"></script>', '<script id="d" type="application/json">{"a": 1}</script>',
            '<progress class="bar" max="100" value="3">', "{# a style=\"\" in a comment #}", '<p data-onset="1">']
    assert not [found for snippet in good for found in inline_code(snippet)]


def test_no_template_has_inline_script_or_style():
    templates = sorted((ROOT / "templates").rglob("*.html"))
    assert len(templates) > 30
    found = {str(p.relative_to(ROOT)): inline_code(p.read_text()) for p in templates}
    assert {name: items for name, items in found.items() if items} == {}


def test_no_script_writes_style_attributes_or_evaluates_strings():
    """Scripts may set element.style (the CSSOM is not under style-src), but markup they build may not carry a
    style attribute or handler, and no string is evaluated (no 'unsafe-eval')."""
    pattern = re.compile(r"""style=|setAttribute\(\s*["']style|\son[a-z]+=["']|\beval\(|new Function\(""")
    scripts = sorted((ROOT / "static").rglob("*.js"))
    assert scripts
    found = {str(p.relative_to(ROOT)): pattern.findall(p.read_text()) for p in scripts}
    assert {name: items for name, items in found.items() if items} == {}


# --- the headers -------------------------------------------------------------------------------------------
def test_login_page_sends_the_policy_and_headers(client):
    response = client.get("/login/")
    assert response.status_code == 200
    assert_security_headers(response)
    assert inline_code(response.content.decode()) == []


def test_api_response_sends_the_policy_and_headers(client, coordinator):
    client.force_login(coordinator)
    response = client.get("/api/jobs/")
    assert response.status_code == 200
    assert_security_headers(response)


@pytest.fixture
def exam2_page(settings, tmp_path, coordinator, reader):
    """A reader's exam-2 reading page (with the AI panel) of a small open SYNTHETIC study."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    cases = [case_with_series(seed=3 + i, n_slices=4, size=16) for i in range(2)]
    evaluation = EvaluationFactory()
    for case in cases:
        ai_result(evaluation, case, 63.4)
    study = open_study(coordinator=coordinator, readers=[reader], cases=cases, evaluation=evaluation)
    answer_all(reader, study, 1)
    services.exam_finish(reader=reader, study=study, exam=1)
    move_washout(study, reader, days=29)
    return Assignment.objects.filter(study=study, reader=reader, exam=2).order_by("position").first()


def test_reading_page_sends_the_policy_and_has_no_inline_code(client, reader, exam2_page):
    client.force_login(reader)
    response = client.get(f"/reading/{exam2_page.pk}/")
    assert response.status_code == 200
    assert_security_headers(response)
    html = response.content.decode()
    assert 'id="ai-panel"' in html   # the likelihood as a whole percentage: no false decimals
    assert '<meter class="bar ai" min="0" max="100" value="63"' in html
    assert 'id="reading-data" type="application/json"' in html     # the payload: data, not code
    assert inline_code(html) == []


def test_frame_options_are_deny(client):
    assert django_settings.X_FRAME_OPTIONS == "DENY"
    assert client.get("/login/").headers["X-Frame-Options"] == "DENY"


# --- the OpenAPI schema and docs: signed-in users only, with DEBUG off as on ----------------------------------
@pytest.mark.parametrize("debug", [False, True])
def test_schema_and_docs_need_a_login(client, settings, debug):
    settings.DEBUG = debug
    assert client.get("/api/schema/").status_code in (401, 403)
    assert client.get("/api/schema/?format=json").status_code in (401, 403)
    for url in ("/api/docs/", "/api/docs/?script="):
        response = client.get(url)
        assert response.status_code == 302 and response.headers["Location"].startswith("/login/?next=")


def test_schema_and_docs_are_served_to_a_signed_in_user_under_the_policy(client, settings, reader):
    settings.DEBUG = False
    client.force_login(reader)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200 and schema.json()["openapi"]
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert inline_code(html) == [] and "swagger-ui-bundle.js" in html and "css/api_docs.css" in html
    # Swagger UI's stylesheet draws its icons as data: SVG images: the one addition for this page
    assert_security_headers(page, {**POLICY, "img-src": ["'self'", "data:"]})
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and script.headers["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle" in script.content.decode() and "/api/schema/" in script.content.decode()


def test_a_second_client_without_a_session_gets_nothing_of_the_schema(reader):
    signed_in, anonymous = Client(), Client()
    signed_in.force_login(reader)
    assert signed_in.get("/api/schema/").status_code == 200
    assert b"paths" not in anonymous.get("/api/schema/").content


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason=CHROMIUM_MISSING)
def test_api_docs_work_in_chromium_under_the_policy(transactional_db, live_server, monkeypatch,
                                                    django_user_model):
    """Swagger UI renders the schema's operations, and Chromium refuses nothing of the page."""
    user = django_user_model.objects.create_user("docs-reader")
    signed_in = Client()
    signed_in.force_login(user)
    with chromium_page(monkeypatch) as page:
        page.context.add_cookies([{"name": django_settings.SESSION_COOKIE_NAME, "url": live_server.url,
                                   "value": signed_in.cookies[django_settings.SESSION_COOKIE_NAME].value}])
        page.add_init_script("window.cspViolations = []; document.addEventListener('securitypolicyviolation', "
                             "(e) => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));")
        console = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        response = page.goto(live_server.url + "/api/docs/")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        page.wait_for_selector(".swagger-ui .information-container .title")
        page.wait_for_selector(".opblock-summary-path")        # the operations: the schema was fetched
        page.locator(".opblock-summary").first.click()          # an operation opens (React, no inline code)
        page.wait_for_selector(".opblock-body")
        assert page.evaluate("window.cspViolations") == []
        assert [m for m in console if "Content Security Policy" in m or "Permissions-Policy" in m] == []
        assert page.problems == []
