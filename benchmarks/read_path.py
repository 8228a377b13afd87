"""Server time alone on the read path, this tree against a baseline commit, side by side (issue 10, item 6).

    .venv/bin/python benchmarks/read_path.py [--baseline REF] [--rounds 10] [--cases 20] [--workers 3]
        [--gap-ms 50] [--json FILE]

Target: the case API and the reading page at ≤ 8 ms of server time for one reader alone. This machine's
speed drifts by half within an hour (the same gunicorn CPU per case measured 26 → 38 ms on one day), so an
absolute figure measured alone cannot tell a change from the drift. This script therefore measures both
codes in the same minutes on the same database:

1. starts the production stack of this tree (`tests/production/production_stack.py`: a private PostgreSQL and
   Redis, gunicorn with ``--workers`` sync workers started by `scripts/serve.sh web`, DEBUG=0) and seeds it as
   `benchmarks/load_readers.py` does (a SYNTHETIC phantom cohort of ``--cases`` patients through the real
   importer, one reader, one open study);
2. checks out ``--baseline`` (default: the commit before the read-path changes of session 11) into a
   throw-away git worktree and starts its gunicorn, the same way and with the same environment, on another
   port against the same database and Redis (the two codes must share the database schema: migrations are
   applied by this tree only);
3. one reader (one session, valid on both) reads the study's cases ``--rounds`` times, one request at a time,
   each case on one server then the other, alternating which goes first: reading page, case API, the default
   volumes, an active-time ping, the answer, with ``--gap-ms`` between requests (the API's per-user rate
   limit, 2000/min, counts both servers' requests);
4. prints, per endpoint and per code, gunicorn's own request time (``%(D)s``, p50 / p95) and the ratio.

Figures are printed, not asserted. Where PostgreSQL, Redis or git are missing, it says which and exits 2.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "production"))
sys.path.insert(0, str(REPO / "benchmarks"))

from load_readers import ACCESS_FORMAT, ENDPOINTS, PYTHON, percentile, server_times  # noqa: E402
from production_stack import Process, ProductionStack, free_port, missing  # noqa: E402

from testsupport import wait_for  # noqa: E402

BASELINE = "b23d14e"       # the last commit before session 11's read-path changes
TARGET_MS = 8.0
NAMES = {name: short for (name, _, _), short in zip(ENDPOINTS, ["worklist", "page", "case API", "volume", "ping",
                                                                "answer"], strict=True)}
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def baseline_tree(ref: str, root: Path) -> Path:
    """``ref`` checked out in a throw-away worktree that uses this tree's virtual environment."""
    path = root / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", "-f", str(path), ref], cwd=REPO, check=True,
                   capture_output=True)
    (path / ".venv").symlink_to(REPO / ".venv")
    return path


def start_baseline(stack: ProductionStack, tree: Path) -> tuple[Process, str]:
    port = free_port()
    env = {**stack.env, "BIND": f"127.0.0.1:{port}", "SERVE_MIGRATE": "0",
           "STATIC_ROOT": str(stack.root / "static-baseline"), "CSRF_TRUSTED_ORIGINS": f"http://127.0.0.1:{port}"}
    process = Process("web", env, stack.root / "web-baseline.log", cmd=[str(tree / "scripts" / "serve.sh"), "web"],
                      cwd=tree)
    base = f"http://127.0.0.1:{port}"

    def listening() -> bool:
        if not process.alive():
            raise RuntimeError(f"the baseline's gunicorn exited:\n{process.text()[-3000:]}")
        try:
            return requests.get(f"{base}/login/", timeout=5).status_code == 200
        except requests.ConnectionError:
            return False

    wait_for(listening, 180, what="the baseline's gunicorn")
    return process, base


class Reader:
    """One signed-in reader: one session cookie, sent to either server (same database, Redis and secret)."""

    def __init__(self, base: str, username: str, password: str, gap_s: float):
        self.session, self.gap_s, self.last = requests.Session(), gap_s, 0.0
        form = self.session.get(f"{base}/login/", timeout=60).text
        token = CSRF_FIELD.search(form).group(1)
        answer = self.session.post(f"{base}/login/", allow_redirects=False, timeout=60, headers={
            "Referer": f"{base}/login/"}, data={"username": username, "password": password,
                                               "csrfmiddlewaretoken": token})
        if answer.status_code != 302:
            raise RuntimeError(f"login answered {answer.status_code}")

    def call(self, method: str, url: str, **kwargs) -> requests.Response:
        time.sleep(max(0.0, self.last + self.gap_s - time.perf_counter()))
        self.last = time.perf_counter()
        response = self.session.request(method, url, timeout=60, allow_redirects=False, **kwargs)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {url} answered {response.status_code}: {response.text[:300]}")
        return response

    def read_case(self, base: str, assignment: int, n: int) -> None:
        """The requests of one case, as the browser and `benchmarks/locust_readers.py` send them."""
        self.call("GET", f"{base}/reading/{assignment}/")
        payload = self.call("GET", f"{base}/api/reading/{assignment}/").json()
        urls = {s["id"]: s["volume_url"] for s in payload["series"]}
        for pk in payload["default_series"]:
            self.call("GET", f"{base}{urls[pk]}", headers={"Accept-Encoding": "gzip"}, stream=True).raw.read()
        headers = {"X-CSRFToken": self.session.cookies["csrftoken"], "Referer": f"{base}/reading/{assignment}/"}
        self.call("POST", f"{base}/api/reading/{assignment}/time/", json={"seconds": 10.0}, headers=headers)
        self.call("POST", f"{base}/api/reading/{assignment}/read/", headers=headers, json={
            "call": ("sarcoma", "leiomyoma")[n % 2], "confidence": n % 101, "active_seconds": 20.0})


def measure(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="read-path-") as tmp:
        root = Path(tmp)
        tree = baseline_tree(args.baseline, root)
        try:
            extra = {"GUNICORN_CMD_ARGS": f"--access-logformat '{ACCESS_FORMAT}'", "LOG_LEVEL": "WARNING"}
            with ProductionStack(root / "stack", web_workers=args.workers, workers=False, extra_env=extra) as stack:
                plan = seed(stack, root, args.cases)
                baseline, baseline_url = start_baseline(stack, tree)
                try:
                    return drive(args, stack, plan, {"current": stack.base_url, "baseline": baseline_url},
                                 {"current": stack.processes["web"], "baseline": baseline})
                finally:
                    baseline.stop()
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
            subprocess.run(["git", "worktree", "prune"], cwd=REPO, capture_output=True)


def seed(stack: ProductionStack, root: Path, cases: int) -> dict:
    plan_path = root / "plan.json"
    env = {**stack.env, "DJANGO_SETTINGS_MODULE": "config.settings"}
    subprocess.run([str(PYTHON), str(REPO / "benchmarks" / "load_readers.py"), "--seed-plan", str(plan_path),
                    "--readers", "1", "--cases", str(cases), "--size", "256", "--slices", "24"], cwd=REPO, env=env,
                   check=True, capture_output=True, timeout=3600)
    return json.loads(plan_path.read_text())


def drive(args, stack, plan: dict, bases: dict[str, str], processes: dict[str, Process]) -> dict:
    reader = Reader(bases["current"], plan["readers"][0], plan["password"], args.gap_ms / 1000)
    items = [i["assignment"] for i in reader.call(
        "GET", f"{bases['current']}/api/reading/studies/{plan['study']}/exams/1/").json()["items"]]
    for code in ("current", "baseline"):                   # warm every worker of both servers
        for _ in range(2 * args.workers):
            reader.read_case(bases[code], items[0], 0)
    offsets = {code: len(process.text()) for code, process in processes.items()}
    started, n = time.perf_counter(), 0
    for round_ in range(args.rounds):
        for index, assignment in enumerate(items):
            order = ("current", "baseline") if (round_ + index) % 2 else ("baseline", "current")
            for code in order:
                n += 1
                reader.read_case(bases[code], assignment, n)
    elapsed = time.perf_counter() - started
    times = {code: server_times(process.text()[offsets[code]:]) for code, process in processes.items()}
    rows = []
    for name, short in NAMES.items():
        row = {"request": short}
        for code in ("baseline", "current"):
            values = times[code].get(name, [])
            row[code] = {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95)}
        if row["current"]["n"]:
            rows.append(row)
    return {"rows": rows, "cases_per_code": len(items) * args.rounds, "elapsed_s": elapsed}


def report(args, figures: dict) -> None:
    print(f"\none reader alone, {figures['cases_per_code']} cases on each code, alternating "
          f"({figures['elapsed_s']:.0f} s); gunicorn {args.workers} sync workers each; "
          "server time (gunicorn %(D)s), ms")
    print(f"{'request':<10}{'n':>6}{'baseline p50':>14}{'p95':>8}{'current p50':>13}{'p95':>8}{'ratio p50':>11}")
    for row in figures["rows"]:
        b, c = row["baseline"], row["current"]
        print(f"{row['request']:<10}{c['n']:>6}{b['p50']:>14.2f}{b['p95']:>8.2f}{c['p50']:>13.2f}{c['p95']:>8.2f}"
              f"{c['p50'] / b['p50'] if b['p50'] else float('nan'):>11.2f}")
    for row in figures["rows"]:
        if row["request"] in ("page", "case API"):
            p50 = row["current"]["p50"]
            print(f"target ≤ {TARGET_MS:.0f} ms, {row['request']}: {'met' if p50 <= TARGET_MS else 'MISSED'} "
                  f"(p50 {p50:.2f} ms)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=BASELINE, help=f"git ref to compare with (default {BASELINE})")
    parser.add_argument("--rounds", type=int, default=10, help="times each case is read on each code (10)")
    parser.add_argument("--cases", type=int, default=20, help="phantom cases in the study (20)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn sync workers of each server (3)")
    parser.add_argument("--gap-ms", type=float, default=50.0, help="pause between requests (50 ms)")
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    why = missing() or (None if shutil.which("git") else "git is not installed")
    if why:
        print(f"cannot start the production stack: {why}")
        return 2
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; baseline {args.baseline}; "
          "data: SYNTHETIC phantom cohort")
    figures = measure(args)
    report(args, figures)
    if args.json:
        Path(args.json).write_text(json.dumps({**figures, "args": vars(args)}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
