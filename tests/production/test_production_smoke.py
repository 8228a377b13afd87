"""Production smoke test: the whole workflow of the README, over HTTP only, against the real production stack.

`production_stack.ProductionStack` starts a private PostgreSQL and Redis, gunicorn (`scripts/serve.sh web`,
DEBUG=0, real secrets, collected and hashed static files) and a `default` and a `gpu` Celery worker. This
module then does what people do with a browser, with one `requests.Session` per user:

 1. users are created on the command line (`create_user`, as the README says) and log in through /login/;
    each lands on its role's page;
 2. the coordinator uploads a tiny SYNTHETIC phantom cohort (`make_phantoms`) with its manifest and boxes
    CSVs through the upload page; the import job runs on the `default` worker;
 3. the coordinator freezes and builds a cohort;
 4. the admin trains the smallest ensemble that can be evaluated (2 repeats × 2 folds, 32-pixel crops) on the
    `gpu` worker;
 5. the admin evaluates it;
 6. the coordinator creates a study with the evaluation, enrols two readers and opens it;
 7. the readers read exam 1 over the reading API (no AI anywhere) and finish it;
 8. the coordinator overrides the washout (API for one reader, the study page's form for the other);
 9. the readers read exam 2 with the AI panel;
10. the coordinator opens the statistics page and downloads every export.

Every HTML page's `/static/...` links (and same-origin images) must answer 200 with a body; at the end no
process log may show a 5xx or a traceback.
"""

from __future__ import annotations

import re
import time
from html import unescape
from html.parser import HTMLParser
from urllib.parse import urljoin, urlparse

import pytest
import requests
from production_stack import ProductionStack, log_problems, missing

pytestmark = [pytest.mark.production, pytest.mark.slow]

_why_not = missing()
if _why_not:
    pytest.skip(f"production stack unavailable: {_why_not}", allow_module_level=True)

PASSWORD = "smoke-pass-2026"
PATIENTS = 12  # 6 of each class: a cohort of the size the paper's 6 folds would need
INPUT_SIZE = 32  # the cohort's crops and the network's input: tiny, for a quick trial run
JOB_TIMEOUT_S = {"import": 180, "cohort": 180, "training": 1200, "evaluation": 300}
ROLE_PAGES = {"admin": "/console/", "coordinator": "/coordinator/", "reader1": "/reader/", "reader2": "/reader/"}

CHECKED_ASSETS: dict[str, int] = {}  # asset URL -> body length, each fetched once for the whole module


# --- HTML helpers --------------------------------------------------------------------------------------
class FormParser(HTMLParser):
    """Every <form> of a page: its action and method, default values as a browser would send them, and the
    choices (value, label) of each select, checkbox and radio field."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: str | None = None
        self._option: list | None = None
        self._textarea: str | None = None
        self._choice: list | None = None  # [name, value, label] of a checkbox or radio awaiting its label

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self._choice = None  # a checkbox's label is the text right after it
        if tag == "form":
            self._form = {"action": a.get("action") or "", "method": (a.get("method") or "get").lower(),
                          "values": [], "choices": {}, "names": set()}
            self.forms.append(self._form)
        elif tag == "option" and self._select:
            self._option = [a.get("value", ""), "", "selected" in a]
        elif self._form is not None and a.get("name") and tag in ("input", "select", "textarea"):
            self._field(tag, a["name"], a)

    def _field(self, tag: str, name: str, a: dict) -> None:
        form = self._form
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind in ("submit", "button", "file", "image", "reset"):
                return
            form["names"].add(name)
            if kind in ("checkbox", "radio"):
                self._choice = [name, a.get("value", "on"), ""]
                form["choices"].setdefault(name, []).append(self._choice)
                if "checked" in a:
                    form["values"].append((name, a.get("value", "on")))
            else:
                form["values"].append((name, a.get("value", "")))
        elif tag == "select":
            self._select = name
            form["names"].add(name)
            form["choices"].setdefault(name, [])
        else:  # textarea
            self._textarea = name
            form["names"].add(name)
            form["values"].append((name, ""))

    def handle_data(self, data):
        if self._option is not None:
            self._option[1] += data
        elif self._choice is not None:
            self._choice[2] += data
        elif self._textarea is not None:
            name, value = self._form["values"][-1]
            self._form["values"][-1] = (name, value + data)

    def handle_endtag(self, tag):
        if tag == "option" and self._option is not None and self._select:
            value, label, selected = self._option
            self._form["choices"][self._select].append([self._select, value, label.strip()])
            if selected:
                self._form["values"].append((self._select, value))
            self._option = None
        elif tag == "select" and self._select:
            chosen = any(n == self._select for n, _ in self._form["values"])
            options = self._form["choices"][self._select]
            if not chosen and options:  # a browser sends the first option of a single select
                self._form["values"].append((self._select, options[0][1]))
            self._select = None
        elif tag == "textarea":
            self._textarea = None
        elif tag == "form":
            self._form = None
        elif tag == "label" and self._choice is not None:
            self._choice[2] = self._choice[2].strip()
            self._choice = None


def parse_forms(html: str) -> list[dict]:
    parser = FormParser()
    parser.feed(html)
    return parser.forms


def find_form(html: str, *, action: str | None = None, field: str | None = None) -> dict:
    """The POST form whose action ends with `action` and/or that has a field named `field`."""
    for form in parse_forms(html):
        if form["method"] != "post":
            continue
        if action is not None and not form["action"].endswith(action):
            continue
        if field is not None and field not in form["names"]:
            continue
        return form
    raise AssertionError(f"no POST form (action={action!r}, field={field!r}) on the page")


def choice_value(form: dict, field: str, label_contains: str) -> str:
    """The value of the option / checkbox of `field` whose label contains `label_contains`."""
    for _, value, label in form["choices"].get(field, []):
        if label_contains in label:
            return value
    raise AssertionError(f"no choice labelled {label_contains!r} for {field!r}: {form['choices'].get(field)}")


def page_errors(html: str) -> str:
    """Error and message text of a page, for assertion messages."""
    found = re.findall(r'class="[^"]*(?:error|errorlist|message)[^"]*"[^>]*>(.*?)</', html, re.S)
    return " | ".join(re.sub(r"\s+", " ", f).strip() for f in found if f.strip()) or html[-1500:]


ASSET_LINK = re.compile(r'(?:href|src)="(/static/[^"#]+)"')
IMAGE_LINK = re.compile(r'<img[^>]+src="(/[^"#]+)"')


# --- HTTP helpers ----------------------------------------------------------------------------------------
def new_session(base: str) -> requests.Session:
    session = requests.Session()
    session.headers["Referer"] = base + "/"  # Django checks it on every unsafe request
    session.base = base
    return session


def get(session: requests.Session, path: str, expect: int = 200, **kwargs) -> requests.Response:
    response = session.get(urljoin(session.base, path), timeout=60, **kwargs)
    assert response.status_code == expect, (
        f"GET {path}: {response.status_code} (expected {expect}): {response.text[:1500]}")
    return response


def check_assets(session: requests.Session, html: str, page: str) -> None:
    """Every /static/ link (and same-origin image) of a page answers 200 with a body; each is fetched once."""
    links = {unescape(link) for link in ASSET_LINK.findall(html) + IMAGE_LINK.findall(html)}
    for link in sorted(links - CHECKED_ASSETS.keys()):
        response = session.get(urljoin(session.base, link), timeout=60)
        assert response.status_code == 200, f"{link} (linked from {page}): {response.status_code}"
        assert response.content, f"{link} (linked from {page}) has an empty body"
        CHECKED_ASSETS[link] = len(response.content)


def get_page_with_assets(session: requests.Session, path: str) -> str:
    """GET an HTML page (200) and check every static asset it links."""
    response = get(session, path)
    assert response.headers["Content-Type"].startswith("text/html"), f"{path}: {response.headers['Content-Type']}"
    check_assets(session, response.text, path)
    return response.text


def post_form(session: requests.Session, path: str, values: dict, *, action: str | None = None,
              field: str | None = None) -> requests.Response:
    """Fill the POST form of the page at `path` like a browser (its defaults, CSRF token included), override
    `values` (a list for a multi-valued field), submit it and expect a redirect; returns the final response."""
    html = get_page_with_assets(session, path)
    form = find_form(html, action=action, field=field or next(iter(values), None))
    data = [(name, value) for name, value in form["values"] if name not in values]
    for name, value in values.items():
        data += [(name, str(v)) for v in value] if isinstance(value, list | tuple) else [(name, str(value))]
    target = urljoin(urljoin(session.base, path), form["action"] or path)
    response = session.post(target, data=data, timeout=120)
    assert response.status_code == 200 and response.history and response.history[0].status_code == 302, (
        f"POST {target}: {[r.status_code for r in response.history]} then {response.status_code}: "
        f"{page_errors(response.text)}")
    check_assets(session, response.text, response.url)
    return response


def csrf_headers(session: requests.Session) -> dict:
    return {"X-CSRFToken": session.cookies["csrftoken"]}


def api_get(session: requests.Session, path: str, expect: int = 200):
    response = get(session, path, expect=expect)
    return response.json()


def api_post(session: requests.Session, path: str, payload: dict | None = None, expect: int = 200):
    response = session.post(urljoin(session.base, path), json=payload or {}, headers=csrf_headers(session),
                            timeout=60)
    assert response.status_code == expect, f"POST {path}: {response.status_code} (expected {expect}): {response.text}"
    return response.json()


def results(data):
    """A DRF list, paginated or not."""
    return data["results"] if isinstance(data, dict) and "results" in data else data


def login(stack: ProductionStack, username: str) -> requests.Session:
    """Log in through the login form; returns the session (it has landed on the role's page)."""
    session = new_session(stack.base_url)
    html = get_page_with_assets(session, "/login/")
    form = find_form(html, field="username")
    data = dict(form["values"]) | {"username": username, "password": PASSWORD}
    response = session.post(urljoin(stack.base_url, "/login/"), data=data, timeout=60)
    assert response.status_code == 200, f"login {username}: {response.status_code}: {page_errors(response.text)}"
    assert urlparse(response.url).path == ROLE_PAGES[username], (
        f"{username} landed on {response.url}, not {ROLE_PAGES[username]}: {page_errors(response.text)}")
    check_assets(session, response.text, response.url)
    return session


def job_id_from(response: requests.Response) -> int:
    match = re.search(r"/jobs/(\d+)/$", urlparse(response.url).path)
    assert match, f"expected to land on a job page, landed on {response.url}"
    return int(match.group(1))


def wait_job(session: requests.Session, job_id: int, timeout: float, what: str) -> dict:
    """Poll /api/jobs/ID/ until the job has ended; it must have succeeded. Returns the job."""
    until = time.monotonic() + timeout
    job = {}
    while time.monotonic() < until:
        job = api_get(session, f"/api/jobs/{job_id}/")
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        assert not job["worker_lost"], f"{what} (job {job_id}): worker lost at {job['step']!r}"
        time.sleep(1)
    else:
        raise AssertionError(f"{what} (job {job_id}) not finished after {timeout:.0f}s: {job.get('status')} "
                             f"{job.get('done')}/{job.get('total')} {job.get('step')!r}")
    assert job["status"] == "succeeded", f"{what} (job {job_id}) {job['status']}: {job['error']}"
    return job


def log_tails(stack: ProductionStack, lines: int = 40) -> str:
    return "\n".join(f"--- {role}.log (last {lines} lines) ---\n" + "\n".join(text.splitlines()[-lines:])
                     for role, text in stack.logs().items())


def log_report(stack: ProductionStack, after: int = 30) -> str:
    """Each problem line of each log with the lines that follow it (the traceback), then the log tails."""
    parts = []
    for role, text in stack.logs().items():
        lines = text.splitlines()
        for n, line in enumerate(lines):
            if log_problems(line):
                parts.append(f"--- {role}.log line {n + 1} ---\n" + "\n".join(lines[n:n + after]))
    return "\n".join(parts) + "\n" + log_tails(stack)


# --- fixtures ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    production = ProductionStack(tmp_path_factory.mktemp("production"))
    try:
        yield production
    finally:
        production.close()


@pytest.fixture(scope="module")
def state() -> dict:
    """What the stages hand on to each other (ids, sessions), in file order."""
    return {}


def _read_exam(session: requests.Session, study: int, exam: int, *, fetch_images: bool) -> list[dict]:
    """Read every case of one exam over the reading API; returns the case payloads."""
    worklist = api_get(session, f"/api/reading/studies/{study}/exams/{exam}/")
    assert worklist["exam"]["state"] == "open", worklist["exam"]
    items = worklist["items"]
    assert len(items) == PATIENTS and not any(item["answered"] for item in items)
    payloads = []
    for n, item in enumerate(items):
        payload = api_get(session, f"/api/reading/{item['assignment']}/")
        assert payload["exam"] == exam and payload["display_code"] == item["display_code"]
        assert payload["series"] and payload["default_series"], f"case {item['display_code']} has no images"
        if fetch_images:
            by_id = {series["id"]: series for series in payload["series"]}
            for series_id in payload["default_series"]:
                series = by_id[series_id]
                volume = get(session, series["volume_url"])
                frame = series["rows"] * series["cols"] * 2  # uint16
                frames, rest = divmod(len(volume.content), frame)
                assert frames >= series["n_slices"] > 0 and rest == 0, (
                    f"series {series_id}: {len(volume.content)} bytes for {series['n_slices']} slices of {frame}")
        api_post(session, payload["urls"]["time"], {"seconds": 4.5})
        answer = {"call": "sarcoma" if n % 2 else "leiomyoma", "confidence": 20 + 5 * n, "note": "smoke"}
        saved = api_post(session, payload["urls"]["submit"], answer)
        assert (saved["call"], saved["confidence"]) == (answer["call"], answer["confidence"])
        payloads.append(payload)
    return payloads


# --- the workflow, stage by stage (in file order; -x stops at the first failure) -------------------------
def test_users_log_in_to_their_role_pages(stack, state):
    stack.manage("create_user", "admin", "--role", "admin", "--password", PASSWORD)
    stack.manage("create_user", "coordinator", "--role", "coordinator", "--password", PASSWORD)
    stack.manage("create_user", "reader1", "--role", "reader", "--group", "specialist", "--years", "12",
                 "--password", PASSWORD)
    stack.manage("create_user", "reader2", "--role", "reader", "--group", "practitioner", "--years", "3",
                 "--password", PASSWORD)
    anonymous = new_session(stack.base_url)
    assert urlparse(get(anonymous, "/").url).path == "/login/"
    state["sessions"] = {name: login(stack, name) for name in ROLE_PAGES}
    admin = state["sessions"]["admin"]
    get_page_with_assets(admin, "/jobs/")
    get_page_with_assets(admin, "/api/docs/")  # Swagger UI, its assets served locally
    assert api_get(admin, "/api/schema/?format=json")["openapi"]
    get(state["sessions"]["reader1"], "/console/", expect=403)


def test_coordinator_uploads_phantom_dicom(stack, state, tmp_path_factory):
    out = tmp_path_factory.mktemp("phantoms") / "cohort"
    stack.manage("make_phantoms", str(out), "--patients", str(PATIENTS), "--sarcoma-fraction", "0.5",
                 "--seed", "7", "--slice-size", "64", "--slices-per-series", "6", "-v", "0")
    coordinator = state["sessions"]["coordinator"]
    html = get_page_with_assets(coordinator, "/imaging/import/")
    token = find_form(html, field="label")["values"]
    files = [("files", (p.name, p.read_bytes(), "application/dicom"))
             for p in sorted((out / "dicom").rglob("*.dcm"))]
    files += [("manifest", ("manifest.csv", (out / "manifest.csv").read_bytes(), "text/csv")),
              ("boxes", ("boxes.csv", (out / "boxes.csv").read_bytes(), "text/csv"))]
    response = coordinator.post(urljoin(stack.base_url, "/imaging/import/"), files=files, timeout=300,
                                data=dict(token) | {"label": "smoke phantoms"})
    assert response.status_code == 200 and response.history, (
        f"upload: {response.status_code}: {page_errors(response.text)}")
    job = wait_job(coordinator, job_id_from(response), JOB_TIMEOUT_S["import"], "DICOM import")
    result = job["result"]
    assert result["cases"] == PATIENTS, result
    assert result["files_rejected"] == 0, result
    get_page_with_assets(coordinator, f"/jobs/{job['id']}/")

    cases = results(api_get(coordinator, "/api/cases/?limit=100"))
    assert len(cases) == PATIENTS
    assert sorted(c["truth"] for c in cases) == ["leiomyoma"] * 6 + ["sarcoma"] * 6, "manifest truth not applied"
    assert all(c["series"] for c in cases)
    get_page_with_assets(coordinator, "/imaging/imports/")
    get_page_with_assets(coordinator, "/imaging/cases/")
    get_page_with_assets(coordinator, f"/imaging/cases/{cases[0]['id']}/")
    series = cases[0]["series"][0]
    series_id = series["id"] if isinstance(series, dict) else series
    get_page_with_assets(coordinator, f"/imaging/series/{series_id}/")
    assert api_get(coordinator, f"/api/series/{series_id}/meta")["shape"]
    get_page_with_assets(coordinator, "/imaging/mapping/")


def test_coordinator_builds_a_cohort(state):
    coordinator = state["sessions"]["coordinator"]
    response = post_form(coordinator, "/imaging/cohorts/", {"name": "smoke-cohort", "selection": "synthetic",
                                                            "input_size": INPUT_SIZE})
    job = wait_job(coordinator, job_id_from(response), JOB_TIMEOUT_S["cohort"], "cohort build")
    assert job["result"]["n_slices"] > 0, job["result"]
    html = get_page_with_assets(coordinator, "/imaging/cohorts/")
    assert "smoke-cohort" in html


@pytest.mark.timeout(1500)
def test_admin_trains_a_tiny_ensemble(state):
    """The smallest run the form allows that can be evaluated: 2 repeats (the leave-one-repeat-out ensembles
    need two) × 2 folds (the form's least; the paper's 6 change nothing on this path but the count, and each
    model pays ~25 s here for compiling MobileNetV2's train step), one epoch of 8 samples, width 0.1, on the
    cohort's 32-pixel crops."""
    admin = state["sessions"]["admin"]
    tiny = {"cohort": "smoke-cohort", "name": "smoke tiny", "repeats": 2, "folds": 2, "epochs": 1,
            "samples_per_epoch": 8, "batch_size": 4, "learning_rate": 1e-3, "input_size": INPUT_SIZE, "width": 0.1,
            "seed": 1}
    response = post_form(admin, "/training/new/", tiny)
    match = re.search(r"/training/(\d+)/$", urlparse(response.url).path)
    assert match, f"landed on {response.url}"
    run = api_get(admin, f"/api/training/runs/{match.group(1)}/")
    wait_job(admin, run["job"], JOB_TIMEOUT_S["training"], "training")
    state["run"] = run["id"]
    get_page_with_assets(admin, f"/training/{run['id']}/")
    get_page_with_assets(admin, "/training/")


def test_admin_evaluates_the_ensemble(state):
    admin = state["sessions"]["admin"]
    response = post_form(admin, "/inference/evaluations/new/", {"run": state["run"], "name": "smoke evaluation"})
    match = re.search(r"/inference/evaluations/(\d+)/$", urlparse(response.url).path)
    assert match, f"landed on {response.url}"
    evaluation = api_get(admin, f"/api/inference/evaluations/{match.group(1)}/")
    wait_job(admin, evaluation["job"], JOB_TIMEOUT_S["evaluation"], "evaluation")
    evaluation = api_get(admin, f"/api/inference/evaluations/{evaluation['id']}/")
    assert evaluation["status"] == "done", evaluation["status"]
    cases = results(api_get(admin, f"/api/inference/evaluations/{evaluation['id']}/cases/"))
    assert len(cases) == PATIENTS and all(0 <= c["likelihood"] <= 100 for c in cases)
    state["evaluation"] = evaluation["id"]
    get_page_with_assets(admin, f"/inference/evaluations/{evaluation['id']}/")  # with its figures
    get_page_with_assets(admin, "/inference/evaluations/")


def test_coordinator_creates_and_opens_a_study(state):
    coordinator = state["sessions"]["coordinator"]
    form = find_form(get_page_with_assets(coordinator, "/coordination/studies/new/"), field="readers")
    reader_ids = {name: int(choice_value(form, "readers", name)) for name in ("reader1", "reader2")}
    values = {"name": "Smoke study", "cohort": choice_value(form, "cohort", "smoke-cohort"),
              "evaluation": state["evaluation"], "readers": [reader_ids["reader1"]], "washout_days": 28}
    response = post_form(coordinator, "/coordination/studies/new/", values)
    match = re.search(r"/coordination/studies/(\d+)/$", urlparse(response.url).path)
    assert match, f"landed on {response.url}"
    study = int(match.group(1))
    api_post(coordinator, f"/api/studies/{study}/enrol/", {"reader": reader_ids["reader2"]})
    response = post_form(coordinator, f"/coordination/studies/{study}/", {}, action=f"/studies/{study}/open/")
    assert "Study opened" in response.text, page_errors(response.text)
    summary = api_get(coordinator, f"/api/studies/{study}/progress/")
    assert summary["study"]["status"] == "open" and summary["study"]["cases"] == PATIENTS
    assert {r["username"] for r in summary["readers"]} == {"reader1", "reader2"}
    get_page_with_assets(coordinator, "/coordination/studies/")
    state.update(study=study, reader_ids=reader_ids)


def test_readers_read_exam_1_without_ai(state):
    study = state["study"]
    reader1, reader2 = state["sessions"]["reader1"], state["sessions"]["reader2"]
    get_page_with_assets(reader1, "/studies/")
    get_page_with_assets(reader1, f"/studies/{study}/")
    html = get_page_with_assets(reader1, f"/studies/{study}/exam/1/")
    first = api_get(reader1, f"/api/reading/studies/{study}/exams/1/")["items"][0]["assignment"]
    html = get_page_with_assets(reader1, f"/reading/{first}/")
    assert 'id="ai-likelihood"' not in html
    payloads = _read_exam(reader1, study, 1, fetch_images=True)
    assert all("ai" not in payload for payload in payloads), "exam 1 must not show the AI"
    _read_exam(reader2, study, 1, fetch_images=False)
    for reader in (reader1, reader2):
        finished = api_post(reader, f"/api/reading/studies/{study}/exams/1/finish/")
        assert finished["state"] == "finished", finished
        exam2 = api_get(reader, f"/api/reading/studies/{study}/")["exams"][1]
        assert exam2["state"] == "locked" and "washout" in exam2["reason"], exam2
        get(reader, f"/api/reading/studies/{study}/exams/2/", expect=403)


def test_coordinator_overrides_the_washout(state):
    coordinator, study = state["sessions"]["coordinator"], state["study"]
    done = api_post(coordinator, f"/api/studies/{study}/washout-override/",
                    {"reader": state["reader_ids"]["reader1"], "reason": "production smoke test"})
    assert done["overridden_at"]
    response = post_form(coordinator, f"/coordination/studies/{study}/",
                         {"reader": state["reader_ids"]["reader2"], "reason": "production smoke test"},
                         action="/washout-override/")
    assert "Washout overridden for reader2" in response.text, page_errors(response.text)


def test_readers_read_exam_2_with_the_ai_panel(state):
    study = state["study"]
    reader1, reader2 = state["sessions"]["reader1"], state["sessions"]["reader2"]
    get_page_with_assets(reader1, f"/studies/{study}/exam/2/")
    first = api_get(reader1, f"/api/reading/studies/{study}/exams/2/")["items"][0]["assignment"]
    html = get_page_with_assets(reader1, f"/reading/{first}/")
    assert 'id="ai-panel"' in html and 'id="ai-likelihood"' in html, "the reading page shows no AI panel"
    for reader, images in ((reader1, True), (reader2, False)):
        payloads = _read_exam(reader, study, 2, fetch_images=images)
        for payload in payloads:
            assert payload.get("ai"), f"exam 2 case {payload['display_code']} has no AI result"
            assert 0 <= payload["ai"]["likelihood"] <= 100
        assert api_post(reader, f"/api/reading/studies/{study}/exams/2/finish/")["state"] == "finished"


def test_coordinator_exports_the_study(state):
    coordinator, study = state["sessions"]["coordinator"], state["study"]
    get_page_with_assets(coordinator, "/analysis/")
    html = get_page_with_assets(coordinator, f"/analysis/studies/{study}/")  # figures are images: checked
    exports = sorted({unescape(link) for link in
                      re.findall(rf'href="(/analysis/studies/{study}/(?:exports|figures)/[^"]+)"', html)})
    assert any("/exports/" in link for link in exports), "no export links on the statistics page"
    for link in [*exports, f"/analysis/studies/{study}/exports/all.zip"]:
        response = get(coordinator, link)
        assert response.content, f"{link} is empty"
    statistics = api_get(coordinator, f"/api/analysis/studies/{study}/")
    assert statistics


def test_logs_show_no_server_error(stack):
    assert CHECKED_ASSETS, "no static asset was checked"
    problems = {role: log_problems(text) for role, text in stack.logs().items()}
    assert not any(problems.values()), f"problems in the logs: {problems}\n{log_report(stack)}"
    for role, process in stack.processes.items():
        assert process.alive(), f"{role} has exited\n{log_tails(stack)}"

