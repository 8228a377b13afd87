"""Load benchmark: N radiologists reading at once, with Locust, against the real production stack.

    .venv/bin/python benchmarks/load_readers.py [--readers 50] [--cases 20] [--mode realistic|stress]
        [--run-time 150] [--web-workers 5] [--web-threads 1] [--spawn-rate 4] [--wait-quiet 900]
        [--json FILE] [--quick]

What it does, all on loopback, in a throw-away folder:

1. starts the production stack (`tests/production/production_stack.py`): a private PostgreSQL and Redis and
   gunicorn (DEBUG=0, real secrets) started by `scripts/serve.sh web` exactly as in production, with
   ``--web-workers`` workers of ``--web-threads`` threads (no Celery worker: reading needs none);
2. seeds that stack's database: a SYNTHETIC phantom cohort of ``--cases`` patients written as DICOM and
   imported by the real importer job (the code of `benchmarks/viewer_latency.py`), ``--readers`` readers and
   one open study (`reader_study.services`), so each reader has an exam-1 worklist of every case;
3. runs Locust headless (`benchmarks/locust_readers.py`): every reader logs in (ramp, ``--spawn-rate``
   logins per second; logging in costs ~0.25 s of CPU by design: PBKDF2), then all start together and read
   case after case: reading page, case API, the default volumes, an active-time ping, the answer.
   ``--mode realistic``: one case per ``--pacing`` (30) s per reader, readers spread over the first 30 s;
   ``--mode stress``: no think time at all. The measured window is ``--run-time`` seconds after the ramp;
4. prints per endpoint p50 / p95 / max as Locust saw them (client side, includes Locust's own queueing on
   the shared CPUs) and as gunicorn logged them (server side, ``%(D)s``), requests per second, errors, the
   CPU each part used, and checks that **every acknowledged answer is stored**: Read rows in the database
   == distinct cases with a 2xx answer, each with the last acknowledged call and confidence. Exit status 1
   when they differ.

Locust, gunicorn and PostgreSQL share this machine's CPUs: the figures are for all three on one machine.
Timings are printed, not asserted (issue 6: timings belong in benchmarks/).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYTHON = REPO / ".venv" / "bin" / "python"
LOCUST = REPO / ".venv" / "bin" / "locust"
LOCUSTFILE = REPO / "benchmarks" / "locust_readers.py"
PASSWORD = "load-bench-2026"  # noqa: S105 - throw-away readers in a throw-away database
TARGET_P95_MS = 100.0
ACCESS_FORMAT = "LOAD %(t)s %(m)s %(U)s %(s)s %(D)s"   # gunicorn access log: D = request time in µs

# Endpoint templates (as the locustfile names them) and the paths gunicorn logs for them.
LOGIN_FORM, LOGIN = "GET /login/", "POST /login/"
ENDPOINTS = [
    ("GET /api/reading/studies/[id]/exams/1/", "GET", re.compile(r"^/api/reading/studies/\d+/exams/1/$")),
    ("GET /reading/[assignment]/", "GET", re.compile(r"^/reading/\d+/$")),
    ("GET /api/reading/[assignment]/", "GET", re.compile(r"^/api/reading/\d+/$")),
    ("GET /api/reading/[assignment]/series/[handle]/volume?v=", "GET",
     re.compile(r"^/api/reading/\d+/series/[0-9a-f]+/volume$")),
    ("POST /api/reading/[assignment]/time/", "POST", re.compile(r"^/api/reading/\d+/time/$")),
    ("POST /api/reading/[assignment]/read/", "POST", re.compile(r"^/api/reading/\d+/read/$")),
]
LOGINS = [(LOGIN_FORM, "GET", re.compile(r"^/login/$")), (LOGIN, "POST", re.compile(r"^/login/$"))]


# --- seeding (runs in a child process with the stack's environment) ---------------------------------
def seed(plan_path: Path, *, readers: int, cases: int, size: int, slices: int) -> None:
    """SYNTHETIC phantom cases imported by the real importer, N readers, one open study; writes the plan."""
    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "benchmarks"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.test.utils import override_settings
    from viewer_latency import _import_phantoms

    from accounts.services import user_create
    from imaging import importer_store
    from imaging.models import Series
    from reader_study import services

    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="load-phantoms-") as tmp:
        imported = _import_phantoms(Path(tmp), patients=cases, size=size, slices=slices)
    imported_s = time.perf_counter() - started
    fast = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    with override_settings(PASSWORD_HASHERS=fast):      # 0.25 s a hash × N readers: hash once, below
        coordinator = user_create(username="load-coordinator", password=PASSWORD, role="coordinator")
        users = [user_create(username=f"load-reader{i:04d}", password=PASSWORD, role="reader",
                             reader_group="specialist" if i % 2 else "practitioner", years_experience=5 + i % 20)
                 for i in range(1, readers + 1)]
    # the production hasher (PBKDF2), one hash shared by the throw-away readers: logins cost what they cost
    get_user_model().objects.filter(pk__in=[u.pk for u in users]).update(password=make_password(PASSWORD))
    study = services.study_create(name="Load benchmark (synthetic)", created_by=coordinator, cases=imported,
                                  readers=users)
    services.study_open(study=study, by=coordinator)
    series = list(Series.objects.filter(case__in=imported).exclude(volume_path=""))
    wire = [importer_store.volume_file(s).stat().st_size for s in series]
    plan = {"study": study.pk, "password": PASSWORD, "readers": [u.username for u in users],
            "cases": len(imported), "series": len(series), "imported_s": round(imported_s, 1),
            "volume_kib_median": round(statistics.median(wire) / 1024, 1) if wire else 0,
            "seeded_s": round(time.perf_counter() - started, 1)}
    plan_path.write_text(json.dumps(plan))


# --- measuring ----------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (the value below which q % of the values lie); NaN for none."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def machine_load(mine: set[int] = frozenset()) -> dict:
    """Load average and other engineers' test or server processes running now (not this benchmark's:
    ``mine``, and this process)."""
    mine = {os.getpid(), *mine}
    others = subprocess.run(["pgrep", "-af", "pytest|gunicorn|celery|locust"], capture_output=True,
                            text=True).stdout.splitlines()
    return {"loadavg": os.getloadavg(), "cores": len(os.sched_getaffinity(0)),
            "others": [line for line in others if int(line.split()[0]) not in mine]}


def cpu_seconds(pids: set[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            pass
    return total


def tree(pid: int) -> set[int]:
    import psutil

    try:
        root = psutil.Process(pid)
        return {root.pid, *(p.pid for p in root.children(recursive=True))}
    except psutil.Error:
        return set()


def postgres_pids(data_dir: Path) -> set[int]:
    """The postmaster and its backends now (backends come and go: ask again at each reading)."""
    import psutil

    pids = set()
    for p in psutil.process_iter(["pid", "cmdline"]):
        if str(data_dir) in " ".join(p.info["cmdline"] or []):
            pids |= tree(p.info["pid"])
    return pids


def cpu_now(stack, locust_pid: int) -> dict[str, float]:
    return {"gunicorn": cpu_seconds(tree(stack.processes["web"].proc.pid)),
            "postgres": cpu_seconds(postgres_pids(stack.postgres.data)),
            "locust": cpu_seconds(tree(locust_pid))}


def warm_up_and_check_sendfile(stack, plan: dict) -> str:
    """Warm every gunicorn worker (first requests import and compile), then fetch one volume as a reader
    with strace on the workers: the stored gzip file must leave through sendfile(2), not through Python."""
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    import requests

    base = stack.base_url
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: requests.get(f"{base}/login/", timeout=120), range(24)))
        list(pool.map(lambda _: requests.get(f"{base}/api/reading/studies/", timeout=120), range(24)))
    session = requests.Session()
    form = session.get(f"{base}/login/", timeout=60).text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
    session.post(f"{base}/login/", data={"username": plan["readers"][0], "password": plan["password"],
                                         "csrfmiddlewaretoken": token}, allow_redirects=False, timeout=60)
    items = session.get(f"{base}/api/reading/studies/{plan['study']}/exams/1/", timeout=60).json()["items"]
    payload = session.get(f"{base}/api/reading/{items[0]['assignment']}/", timeout=60).json()
    url = next(s["volume_url"] for s in payload["series"] if s["id"] == payload["default_series"][0])
    if not shutil.which("strace"):
        return "sendfile: not checked (no strace)"
    workers = tree(stack.processes["web"].proc.pid) - {stack.processes["web"].proc.pid}
    log = Path(stack.root) / "strace.log"
    tracer = subprocess.Popen(["strace", "-f", "-e", "trace=sendfile", "-o", str(log),
                               *[arg for pid in sorted(workers) for arg in ("-p", str(pid))]],
                              stderr=subprocess.DEVNULL)
    time.sleep(1.5)
    response = session.get(f"{base}{url}", headers={"Accept-Encoding": "gzip"}, stream=True, timeout=60)
    body = response.raw.read(decode_content=False)
    time.sleep(0.5)
    tracer.terminate()
    tracer.wait(10)
    sent = [int(m.group(1)) for m in re.finditer(r"sendfile\(.*\) = (\d+)", log.read_text())]
    verdict = "sendfile(2)" if sum(sent) >= len(body) > 0 else "NOT sendfile"
    return (f"volume {url.split('?')[0]}: {len(body)} bytes gzip, Cache-Control "
            f"'{response.headers.get('Cache-Control')}'; gunicorn sent it with {verdict} "
            f"({len(sent)} call(s), {sum(sent)} bytes)")


def server_times(log_text: str) -> dict[str, list[float]]:
    """Per endpoint, gunicorn's own request times (ms), from its access log (format ACCESS_FORMAT)."""
    times: dict[str, list[float]] = defaultdict(list)
    pattern = re.compile(r"LOAD \[([^\]]+)\] (\S+) (\S+) (\d{3}) (\d+)")
    for line in log_text.splitlines():
        match = pattern.search(line)
        if not match:
            continue
        _stamp, method, path, _status, micros = match.groups()
        for name, verb, regex in ENDPOINTS + LOGINS:
            if verb == method and regex.match(path):
                times[name].append(int(micros) / 1000)
                break
    return times


def table(samples: list, server: dict[str, list[float]], names: list[str], window_s: float) -> list[dict]:
    rows = []
    for name in names:
        mine = [s for s in samples if s[0] == name]
        ok = [s[1] for s in mine if s[2]]
        rows.append({"endpoint": name, "n": len(mine), "errors": sum(1 for s in mine if not s[2]),
                     "p50": percentile(ok, 50), "p95": percentile(ok, 95), "max": max(ok, default=float("nan")),
                     "server_p50": percentile(server.get(name, []), 50),
                     "server_p95": percentile(server.get(name, []), 95),
                     "server_max": max(server.get(name, []), default=float("nan")),
                     "rps": len(mine) / window_s if window_s > 0 else float("nan")})
    return rows


def over_time(samples: list, first: float, step_s: float = 30.0) -> list[dict]:
    """Client p50 / p95 of every reading request per ``step_s`` of the window: whether the tail is the
    start (every reader's first case at once: cold caches, first openings) or the steady state."""
    slices: dict[int, list[float]] = defaultdict(list)
    for _name, ms, ok, at in samples:
        if ok:
            slices[int((at - first) // step_s)].append(ms)
    return [{"from_s": k * step_s, "n": len(v), "p50": percentile(v, 50), "p95": percentile(v, 95)}
            for k, v in sorted(slices.items())]


def print_table(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print(f"{'endpoint':<40}{'n':>7}{'err':>5}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
          f"{'srv p50':>9}{'srv p95':>9}{'srv max':>9}{'req/s':>8}")
    for r in rows:
        print(f"{r['endpoint']:<40}{r['n']:>7}{r['errors']:>5}{r['p50']:>9.1f}{r['p95']:>9.1f}{r['max']:>9.1f}"
              f"{r['server_p50']:>9.1f}{r['server_p95']:>9.1f}{r['server_max']:>9.1f}{r['rps']:>8.1f}")


def check_reads(database_url: str, study: int, results: dict) -> dict:
    """Reads stored vs acknowledged: every case with a 2xx answer has its Read, with the last answer."""
    import psycopg2

    conn = psycopg2.connect(database_url)
    with conn.cursor() as cursor:
        cursor.execute("SELECT a.id, r.call, r.confidence FROM reader_study_read r JOIN reader_study_assignment a "
                       "ON a.id = r.assignment_id WHERE a.study_id = %s", [study])
        stored = {str(pk): [call, confidence] for pk, call, confidence in cursor.fetchall()}
    conn.close()
    acknowledged = results["acknowledged"]
    return {"stored": len(stored), "acknowledged": len(acknowledged),
            "submissions_acknowledged": results["submissions"]["acknowledged"],
            "submissions_failed": results["submissions"]["failed"],
            "missing": sorted(set(acknowledged) - set(stored)),
            "unacknowledged": sorted(set(stored) - set(acknowledged)),
            "different": sorted(k for k in acknowledged if k in stored and stored[k] != acknowledged[k])}


# --- the run ------------------------------------------------------------------------------------------
def run(args) -> int:
    sys.path.insert(0, str(REPO / "tests" / "production"))
    from production_stack import ProductionStack, log_problems, missing

    why = missing()
    if why:
        print(f"cannot start the production stack: {why}")
        return 2
    before = machine_load()
    print(f"machine: {before['cores']} cores, load average {before['loadavg'][0]:.2f} "
          f"{before['loadavg'][1]:.2f} {before['loadavg'][2]:.2f}; other test/server processes: "
          f"{len(before['others'])}")
    for line in before["others"]:
        print(f"  other: {line[:150]}")
    with tempfile.TemporaryDirectory(prefix="load-readers-") as tmp:
        root = Path(tmp)
        extra = {"WEB_THREADS": args.web_threads, "GUNICORN_CMD_ARGS": f"--access-logformat '{ACCESS_FORMAT}'"}
        started = time.perf_counter()
        with ProductionStack(root / "stack", web_workers=args.web_workers, workers=False,
                             extra_env=extra) as stack:
            print(f"stack up in {time.perf_counter() - started:.0f} s: gunicorn {args.web_workers} workers × "
                  f"{args.web_threads} threads at {stack.base_url}, PostgreSQL {stack.postgres.port}")
            plan_path = root / "plan.json"
            env = {**stack.env, "DJANGO_SETTINGS_MODULE": "config.settings"}
            result = subprocess.run([str(PYTHON), __file__, "--seed-plan", str(plan_path), "--readers",
                                     str(args.readers), "--cases", str(args.cases), "--size", str(args.size),
                                     "--slices", str(args.slices)], cwd=REPO, env=env, capture_output=True,
                                    text=True, timeout=3600)
            if result.returncode:
                print(result.stdout[-3000:], result.stderr[-5000:])
                return 2
            plan = json.loads(plan_path.read_text())
            print(f"seeded in {plan['seeded_s']:.0f} s: SYNTHETIC phantom study {plan['study']}, "
                  f"{plan['cases']} cases ({plan['series']} series, {args.size}×{args.size}×{args.slices}, "
                  f"median {plan['volume_kib_median']:.0f} KiB gzip on the wire), {len(plan['readers'])} readers")
            print(warm_up_and_check_sendfile(stack, plan))
            outcome = drive(args, stack, plan, root)
            problems = log_problems(stack.processes["web"].text())
            if problems:
                print(f"\ngunicorn log: {len(problems)} server error line(s), e.g. {problems[0][:200]}")
    after = machine_load()
    print(f"\nload average at the end {after['loadavg'][0]:.2f}; other test/server processes: "
          f"{len(after['others'])}")
    if args.json:
        Path(args.json).write_text(json.dumps({**outcome, "before": before, "after": after,
                                               "args": vars(args)}, indent=1, default=str))
    return 0 if outcome["reads_ok"] else 1


def wait_until_quiet(stack, limit_s: float) -> None:
    """Wait (up to ``limit_s``) until no other test or server process runs and the CPUs are idle: this
    machine is shared, and other engineers' test runs would be measured too."""
    import psutil

    until, waited = time.time() + limit_s, False
    while time.time() < until:
        others = machine_load(tree(stack.processes["web"].proc.pid))["others"]
        busy = psutil.cpu_percent(interval=3)
        if not others and busy < 25:
            if waited:
                print(f"quiet now (CPU {busy:.0f} %)")
            return
        if not waited:
            print(f"waiting for a quiet machine (up to {limit_s:.0f} s): {len(others)} other test/server "
                  f"processes, CPU {busy:.0f} %")
            waited = True
        time.sleep(10)
    print("still not quiet: measuring anyway (see the processes listed below)")


def drive(args, stack, plan: dict, root: Path) -> dict:
    """Run Locust against the seeded stack; print and return the figures."""
    if args.wait_quiet:
        wait_until_quiet(stack, args.wait_quiet)
    results_path = root / "results.json"
    log_offset = len(stack.processes["web"].text())       # gunicorn's times: this run's requests only
    launch = time.time()
    ramp = args.readers / args.spawn_rate
    start = launch + 8 + ramp * 1.25 + 0.3 * args.readers / max(1, args.web_workers)
    end = start + args.run_time
    total = int(end - launch + (args.pacing if args.mode == "realistic" else 0) + 15)
    env = {**os.environ, "LOAD_PLAN": str(root / "plan.json"), "LOAD_RESULTS": str(results_path),
           "LOAD_MODE": args.mode, "LOAD_PACING": str(args.pacing), "LOAD_START": str(start),
           "LOAD_END": str(end)}
    command = [str(LOCUST), "-f", str(LOCUSTFILE), "--headless", "--users", str(args.readers),
               "--spawn-rate", str(args.spawn_rate), "--run-time", f"{total}s", "--stop-timeout", "120",
               "--host", stack.base_url, "--only-summary", "--loglevel", "WARNING"]
    print(f"\nlocust: {args.readers} readers, {args.mode} mode"
          f"{f' (one case per {args.pacing:.0f} s each)' if args.mode == 'realistic' else ' (no think time)'}, "
          f"logins ramp {ramp:.0f} s, then a measured window of {args.run_time} s")
    locust = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    time.sleep(max(0.0, start - time.time()))
    cpu_start = cpu_now(stack, locust.pid)
    load_at_start, others = os.getloadavg(), []
    while time.time() < end:                      # other engineers' test runs during the window, if any
        ours = tree(stack.processes["web"].proc.pid) | tree(locust.pid)
        others += [line for line in machine_load(ours)["others"] if line not in others]
        time.sleep(min(10.0, max(0.0, end - time.time())))
    cpu_end = cpu_now(stack, locust.pid)
    load_at_end = os.getloadavg()
    output, _ = locust.communicate(timeout=total + 300)
    if not results_path.exists():
        print(output[-5000:])
        raise SystemExit("locust wrote no results")
    results = json.loads(results_path.read_text())
    samples = results["samples"]
    measured = [s for s in samples if s[0] not in (LOGIN_FORM, LOGIN)]
    logins = [s for s in samples if s[0] in (LOGIN_FORM, LOGIN)]
    first = min((s[3] for s in measured), default=start)
    last = max((s[3] + s[1] / 1000 for s in measured), default=end)
    window = last - first
    server = server_times(stack.processes["web"].text()[log_offset:])
    names = [name for name, _, _ in ENDPOINTS]
    rows = table(measured, server, names, window)
    ok = [s[1] for s in measured if s[2]]
    overall = {"endpoint": "all reading requests", "n": len(measured),
               "errors": sum(1 for s in measured if not s[2]), "p50": percentile(ok, 50), "p95": percentile(ok, 95),
               "max": max(ok, default=float("nan")),
               "server_p50": percentile([t for n in names for t in server.get(n, [])], 50),
               "server_p95": percentile([t for n in names for t in server.get(n, [])], 95),
               "server_max": max([t for n in names for t in server.get(n, [])], default=float("nan")),
               "rps": len(measured) / window if window > 0 else float("nan")}
    login_rows = table(logins, server, [LOGIN_FORM, LOGIN], max(1e-9, start - launch))
    print_table(f"reading ({window:.0f} s from the first to the last reading request; client = Locust, "
                "srv = gunicorn's own time)", [*rows, overall])
    timeline = over_time(measured, first)
    print("all reading requests by 30 s of the window (client p50 / p95 ms): " + "; ".join(
        f"{t['from_s']:.0f} s: {t['p50']:.0f} / {t['p95']:.0f}" for t in timeline))
    print_table(f"logins (the ramp, {start - launch:.0f} s)", login_rows)
    unknown = sorted({s[0] for s in measured} - set(names))
    if unknown:
        print(f"requests under other names (counted in 'all' only): {unknown[:10]}")
    cases_read = sum(1 for s in measured if s[0] == names[-1] and s[2])
    print(f"\ncases read (answers acknowledged): {cases_read} = {cases_read / window * 60:.1f} per minute"
          if window > 0 else "")
    span = max(1e-9, end - start)
    cpu = {k: (cpu_end[k] - cpu_start[k]) / span for k in cpu_end}
    print(f"CPU in the measured window (cores busy): gunicorn {cpu['gunicorn']:.2f}, PostgreSQL "
          f"{cpu['postgres']:.2f}, Locust {cpu['locust']:.2f}; load average {load_at_start[0]:.2f} → "
          f"{load_at_end[0]:.2f}")
    print(f"other test/server processes seen during the window: {len(others)}"
          + "".join(f"\n  other: {line[:150]}" for line in others[:6]))
    reads = check_reads(stack.postgres.url, plan["study"], results)
    reads_ok = not (reads["missing"] or reads["unacknowledged"] or reads["different"]) and \
        reads["stored"] == reads["acknowledged"]
    print(f"reads stored {reads['stored']} / acknowledged {reads['acknowledged']} (distinct cases; "
          f"{reads['submissions_acknowledged']} answers acknowledged, {reads['submissions_failed']} not): "
          f"{'OK, none lost' if reads_ok else 'MISMATCH'}"
          + ("" if reads_ok else f"; missing {reads['missing'][:10]}, not acknowledged "
                                 f"{reads['unacknowledged'][:10]}, different {reads['different'][:10]}"))
    errors = overall["errors"] + sum(r["errors"] for r in login_rows)
    worst = max((r["p95"] for r in rows if r["n"]), default=float("nan"))
    verdict = "meets" if worst < TARGET_P95_MS and errors == 0 and reads_ok else "MISSES"
    print(f"target (p95 < {TARGET_P95_MS:.0f} ms on every reading endpoint, 0 errors, 0 lost reads): {verdict} "
          f"(worst endpoint p95 {worst:.1f} ms, {errors} errors)")
    if errors:
        print("locust output (tail):\n" + output[-3000:])
    return {"rows": rows, "overall": overall, "timeline": timeline, "logins": login_rows, "reads": reads,
            "reads_ok": reads_ok,
            "errors": errors, "cpu_cores": cpu, "window_s": window, "cases_read": cases_read, "plan": {
                k: v for k, v in plan.items() if k not in ("readers", "password")},
            "load_at_start": load_at_start, "load_at_end": load_at_end, "others_during_window": others}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--readers", type=int, default=50, help="simultaneous readers (default 50)")
    parser.add_argument("--cases", type=int, default=20, help="phantom cases in the study (default 20)")
    parser.add_argument("--mode", choices=["realistic", "stress"], default="realistic")
    parser.add_argument("--pacing", type=float, default=30.0, help="realistic: seconds per case per reader")
    parser.add_argument("--run-time", type=int, default=150, help="measured seconds after the ramp (150)")
    parser.add_argument("--web-workers", type=int, default=5, help="gunicorn workers (default 5 = 2 × 2 + 1)")
    parser.add_argument("--web-threads", type=int, default=1, help="threads per gunicorn worker (default 1)")
    parser.add_argument("--spawn-rate", type=float, default=4.0, help="logins per second in the ramp (4)")
    parser.add_argument("--size", type=int, default=256, help="rows = columns of the phantom slices (256)")
    parser.add_argument("--slices", type=int, default=24, help="slices per phantom series (24)")
    parser.add_argument("--quick", action="store_true", help="a short check: 5 readers, 4 small cases, 20 s")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                        help="before measuring, wait up to S seconds for no other test/server process")
    parser.add_argument("--seed-plan", help=argparse.SUPPRESS)  # internal: seed the stack, write the plan
    args = parser.parse_args(argv)
    if args.seed_plan:
        seed(Path(args.seed_plan), readers=args.readers, cases=args.cases, size=args.size, slices=args.slices)
        return 0
    if args.quick:
        args.readers, args.cases, args.run_time, args.size, args.slices = 5, 4, 20, 64, 8
        args.pacing = min(args.pacing, 5.0)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
