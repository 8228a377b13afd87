"""Progressive loading of real-size series (issue 15): first image and scrolling under a throttled network.

    .venv/bin/python benchmarks/progressive_loading.py [--cases 2] [--size 512] [--slices 30] [--runs 2]

What it does, in a throw-away data folder (its own SQLite database and media; nothing of var/ is touched): renders
SYNTHETIC phantom patients (imaging.phantom_render) at ``--size``² × ``--slices``, stores their series exactly as an
import does (imaging.importer_store.write_volume, through the test factories' ``write_series``), opens a reader
study on them, starts Django's threaded live server and drives Debian's Chromium with Playwright. Every page is
throttled through the DevTools protocol (``Network.emulateNetworkConditions``: 100 Mbit/s down and up, 5 ms
latency), each case opened in a fresh browser context (no HTTP cache), in two modes side by side:

* ``whole``: the loading before this change (``window.volumeLoaderMode = "whole"``): one request per volume,
  nothing drawn before its last byte;
* ``progressive``: the slice the viewport opens on first (``?slices=m-m``), the rest streamed behind it.

It reports, per mode: open → first image (``viewerTimings.firstImage``, from the navigation start), the frames
of the first viewport's series in memory at that moment, and a scroll through the whole series with the keyboard
at 20 slices/s (Down from the opening slice to the last, then Up to the first), started the moment the first
image is up or ``--pause-ms`` later: for each step whether the slice was drawn at once or showed "loading"
first, and the longest wait. ``next case``: progressive, opened after the previous case's page went quiet (its
idle-time preloading and its prefetch of this case done), as a reader moves on.
Timings depend on the machine and its load; they are printed, not asserted. ``BENCH_TRACE=1`` also prints, for
each open, every request's timing and the DevTools network events of the volumes (where the time went).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):      # run as a script: make the project and the test factories importable
    sys.path.insert(0, str(ROOT))
sys.path[1:1] = [str(ROOT / "tests"), str(ROOT / "tests" / "reader_study")]

from benchmarks.viewer_latency import CHROMIUM, LAUNCH_ARGS, _django, _server  # noqa: E402

PASSWORD = "bench-pass-2026"  # noqa: S105 - a throw-away user in a throw-away database
THROTTLE = {"offline": False, "latency": 5, "downloadThroughput": 12.5e6, "uploadThroughput": 12.5e6,
            "connectionType": "ethernet"}   # 100 Mbit/s = 12.5e6 bytes/s each way, 5 ms
FIRST_IMAGE_TARGET_MS = 150.0
STEP_S = 0.05                                # 20 slices per second
SCREEN = {"width": 1600, "height": 900}
CODES = ("T2axi", "T2sag", "DWI", "ADC", "T1axi")

# Installed before the page's scripts: the baseline switch, and a log of what the first viewport shows at each
# animation frame (slice index, whether its pixels are drawn), for the scroll measurement.
WATCH_SCRIPT = """
window.volumeLoaderMode = %r;
window.__shown = [];
(function poll() {
  const vp = document.querySelector('.viewport[data-index="0"]');
  if (vp && vp.dataset.ready === "1") {
    const slice = Number(vp.dataset.slice), drawn = vp.dataset.sliceLoaded !== "0";
    const last = window.__shown[window.__shown.length - 1];
    if (!last || last.slice !== slice || last.drawn !== drawn) {
      window.__shown.push({ t: performance.now(), slice, drawn });
    }
  }
  requestAnimationFrame(poll);
})();
"""


def _seed(cases: int, size: int, slices: int):
    """Rendered SYNTHETIC phantom cases stored as the importer stores them, an open study, its reader."""
    from accounts.services import user_create
    from factories_reader_study import CaseFactory, open_study, write_series
    from imaging.phantom_plan import plan_cohort
    from imaging.phantom_render import render_patient

    made = []
    for plan in plan_cohort(patients=cases, sarcoma_fraction=0.5, seed=15):
        rendered = render_patient(plan, seed=15, slice_size=size, slices_per_series=slices)
        case = CaseFactory(truth=plan.label)
        for number, series in enumerate(rendered.series, start=1):
            if series.code not in CODES:
                continue
            geometry, n = series.geometries[0], series.stored.shape[0]
            write_series(case, series.code, series.stored, plane=geometry.plane, positions=geometry.positions[:n],
                         pixel_mm=geometry.pixel_spacing[0], spacing=geometry.spacing, window=series.window,
                         slope=series.rescale_slope, number=number)
        made.append(case)
    coordinator = user_create(username="bench-coordinator", password=PASSWORD, role="coordinator")
    reader = user_create(username="bench-reader", password=PASSWORD, role="reader", reader_group="specialist",
                         years_experience=10)
    study = open_study(coordinator=coordinator, readers=[reader], cases=made, name="Progressive loading (synthetic)")
    return study, reader


def _log_in(page, base: str) -> None:
    page.goto(base + "/login/")
    page.fill("#id_username", "bench-reader")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/reader/")


def _open(new_context, base: str, url: str, mode: str, *, after: str | None = None, pause_ms: int = 0) -> dict:
    """One open of a reading page in ``mode``, throttled; the first image, then a scroll through the series.
    Cold (a fresh context: no HTTP cache), or ``after`` another case, read until its page went quiet (its idle-time
    preloading and its prefetch of this case done), the way a reader moves on: then in a browser profile on disk,
    as a reader's is (in a fresh in-memory context the next page's cache lookup of the 10 MB prefetched volumes
    missed). The scroll starts ``pause_ms`` after the first image (0: at once, the hardest case)."""
    context = new_context()
    page = context.new_page()
    _log_in(page, base)
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    if not os.environ.get("BENCH_NO_THROTTLE"):
        cdp.send("Network.emulateNetworkConditions", THROTTLE)
    page.add_init_script(WATCH_SCRIPT % mode)
    if after:
        page.goto(after)
        if "/reading/" in after:
            page.wait_for_function("() => window.viewerTimings && window.viewerTimings.firstImage !== null",
                                   timeout=60000)
        page.wait_for_load_state("networkidle", timeout=120000)
    network = _listen(cdp) if os.environ.get("BENCH_TRACE") else None
    page.goto(url, wait_until="commit")
    page.wait_for_function("() => window.viewerTimings && window.viewerTimings.firstImage !== null",
                           timeout=60000, polling=5)
    first = page.evaluate("""() => { const vp = document.querySelector('.viewport[data-index="0"]');
        const series = window.readingPage.payload.series.find((s) => String(s.id) === vp.dataset.seriesId);
        return { ms: window.viewerTimings.firstImage, slice: Number(vp.dataset.slice), n: series.n_slices,
                 loaded: Number(vp.dataset.loadedAtFirstDraw || 0) }; }""")
    if network is not None:
        _trace(page, network)
    n_slices = first["n"]
    page.locator(".viewport").first.hover()
    page.wait_for_timeout(pause_ms)
    keys = ["ArrowDown"] * (n_slices - 1 - first["slice"]) + ["ArrowUp"] * (n_slices - 1)
    started = time.perf_counter()
    for step, key in enumerate(keys):
        page.keyboard.press(key)
        time.sleep(max(0.0, started + (step + 1) * STEP_S - time.perf_counter()))
    page.wait_for_timeout(400)
    shown = page.evaluate("() => window.__shown")
    context.close()
    return {"first_ms": first["ms"], "loaded_at_first": first["loaded"], "n_slices": n_slices, "steps": _steps(shown)}


def _listen(cdp) -> list[tuple]:
    """BENCH_TRACE=1: the DevTools network events of the page (request sent, finished with its bytes, failed)."""
    events: list[tuple] = []
    for name in ("Network.requestWillBeSent", "Network.loadingFinished", "Network.loadingFailed"):
        cdp.on(name, lambda e, name=name: events.append((name.split(".")[1], e.get("requestId"),
               e.get("request", {}).get("url", "")[-40:], e.get("encodedDataLength"), e.get("errorText"),
               round(e.get("timestamp", 0) * 1000) % 100000)))
    return events


def _trace(page, network: list[tuple]) -> None:
    """BENCH_TRACE=1: each request's timing (start, request sent, first byte, last byte, ms from the navigation;
    bytes) and the volume requests' network events: where the first image's time went."""
    for entry in page.evaluate("""() => performance.getEntriesByType("navigation").concat(
            performance.getEntriesByType("resource")).map((e) => [e.name.slice(-60), e.startTime,
            e.requestStart, e.responseStart, e.responseEnd, e.transferSize])"""):
        print("   ", entry[0], " ".join(f"{x:7.0f}" for x in entry[1:]))
    print("    marks", page.evaluate("() => performance.getEntriesByType('mark').map((m) => m.name + ' '"
                                 " + Math.round(m.startTime)).join(', ')"))
    for item in network:
        if "volume" in item[2] or item[0] != "requestWillBeSent":
            print("    net", item)


def _steps(shown: list[dict]) -> list[float]:
    """For each slice shown after the opening one, in order: how long (ms) it showed "loading" before its pixels
    were drawn; 0 when drawn at once. A slice left before it was drawn counts the time it was shown waiting."""
    entries = []
    for event in shown:
        if not entries or event["slice"] != entries[-1]["slice"]:
            if entries and entries[-1]["wait"] is None:
                entries[-1]["wait"] = event["t"] - entries[-1]["since"]
            entries.append({"slice": event["slice"], "since": event["t"], "wait": 0.0 if event["drawn"] else None})
        elif event["drawn"] and entries[-1]["wait"] is None:
            entries[-1]["wait"] = event["t"] - entries[-1]["since"]
    return [e["wait"] if e["wait"] is not None else float("inf") for e in entries[1:]]


def _line(mode: str, run: dict) -> None:
    print(f"  {mode:<13} first image {run['first_ms']:6.0f} ms, frames then {run['loaded_at_first']}/"
          f"{run['n_slices']}, steps waited {sum(1 for w in run['steps'] if w > 0)}/{len(run['steps'])}, longest "
          f"{max(run['steps'], default=0):.0f} ms", flush=True)


def _report(results: dict[str, list[dict]]) -> None:
    print(f"\n{'mode':<13}{'opens':>6}{'first image ms (median / max)':>32}{'frames at 1st':>15}"
          f"{'steps':>7}{'waited':>8}{'longest wait ms':>17}")
    medians = {}
    for mode, runs in results.items():
        firsts = [r["first_ms"] for r in runs]
        waits = [w for r in runs for w in r["steps"]]
        waited = [w for w in waits if w > 0]
        medians[mode] = statistics.median(firsts)
        at_first = statistics.median(r["loaded_at_first"] for r in runs)
        print(f"{mode:<14}{len(runs):>5}{medians[mode]:>20.0f} / {max(firsts):<9.0f}"
              f"{at_first:>11.0f}/{runs[0]['n_slices']:<3}{len(waits):>7}{len(waited):>8}"
              f"{max(waited, default=0.0):>17.0f}")
    if {"whole", "progressive"} <= medians.keys():
        print(f"\nfirst image, whole / progressive: {medians['whole'] / medians['progressive']:.1f}x")
    verdict = "meets" if medians.get("progressive", 1e9) <= FIRST_IMAGE_TARGET_MS else "MISSES"
    print(f"progressive first image (median) {medians.get('progressive', float('nan')):.0f} ms: {verdict} the "
          f"target of {FIRST_IMAGE_TARGET_MS:.0f} ms; scrolling: "
          f"{sum(1 for r in results.get('progressive', []) for w in r['steps'] if w > 0)} steps waited")


def _seed_plan(plan_path: Path, args) -> None:
    """Internal (``--seed-plan``, in a child process with the production stack's environment): seed that stack's
    database and media, write the reading pages' paths."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from reader_study import selectors

    study, reader = _seed(args.cases, args.size, args.slices)
    paths = [f"/reading/{a.pk}/" for a in selectors.worklist(study, reader, 1)]
    plan_path.write_text(json.dumps({"paths": paths, "worklist": _worklist_path(study)}))


def _worklist_path(study) -> str:
    from django.urls import reverse

    return reverse("reader_study:worklist", kwargs={"pk": study.pk, "exam": 1})


@contextlib.contextmanager
def _production_server(root: Path, args):
    """The production stack (tests/production/production_stack.py: gunicorn started by ``scripts/serve.sh web``
    with DEBUG=0, WhiteNoise's compressed hashed static files, a private PostgreSQL and Redis), seeded by a child
    process; yields the base URL and the reading pages' URLs."""
    sys.path.insert(0, str(ROOT / "tests" / "production"))
    from production_stack import ProductionStack

    with ProductionStack(root / "stack", web_workers=args.web_workers, workers=False) as stack:
        plan = root / "plan.json"
        result = subprocess.run([sys.executable, __file__, "--seed-plan", str(plan), "--cases", str(args.cases),
                                 "--size", str(args.size), "--slices", str(args.slices)], cwd=ROOT,
                                env={**stack.env, "DJANGO_SETTINGS_MODULE": "config.settings"},
                                capture_output=True, text=True, timeout=1800)
        if result.returncode:
            raise SystemExit(f"seeding failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        if args.split_cores:
            _pin_server(stack)
        seeded = json.loads(plan.read_text())
        yield stack.base_url, [stack.base_url + path for path in seeded["paths"]], stack.base_url + seeded["worklist"]


def _pin_server(stack) -> None:
    """``--split-cores``: the server side (gunicorn and its workers, PostgreSQL, Redis) on CPU 0, this process and
    the browser it starts on CPU 1: the reader's workstation and the server are two machines, not one pair of
    cores that the browser and gunicorn fight over. Processes started later (PostgreSQL backends, a restarted
    gunicorn worker) inherit their parent's CPU."""
    import psutil

    server = {p.pid for p in psutil.Process(stack.processes["web"].proc.pid).children(recursive=True)}
    server.add(stack.processes["web"].proc.pid)
    if stack.redis.proc:
        server.add(stack.redis.proc.pid)
    for p in psutil.process_iter(["pid", "cmdline"]):
        if str(stack.postgres.data) in " ".join(p.info["cmdline"] or []):
            server |= {p.pid, *(c.pid for c in p.children(recursive=True))}
    for pid in server:
        with contextlib.suppress(psutil.Error, OSError):
            os.sched_setaffinity(pid, {0})
    os.sched_setaffinity(0, {1})


@contextlib.contextmanager
def _dev_server(root: Path, args):
    """Django's threaded live server (DEBUG=1, static files from the source, in this process): the older setup."""
    _django(root / "data")
    study, reader = _seed(args.cases, args.size, args.slices)
    from reader_study import selectors

    thread, base = _server()
    try:
        yield (base, [f"{base}/reading/{a.pk}/" for a in selectors.worklist(study, reader, 1)],
               base + _worklist_path(study))
    finally:
        thread.terminate()


def _warm_up(browser, base: str, urls: list[str], passes: int) -> None:
    """Open every page ``passes`` times, unthrottled and unmeasured, until it went quiet: a server that has been
    serving (each gunicorn worker has imported its code, opened its database connection, filled its caches), as
    a reader meets it; a worker's very first request is not what the target is about."""
    for _ in range(passes):
        context = browser.new_context(viewport=SCREEN)
        page = context.new_page()
        _log_in(page, base)
        for url in urls:
            page.goto(url)
            page.wait_for_load_state("networkidle", timeout=120000)
        context.close()


def _measure(args, base: str, urls: list[str], worklist: str) -> dict[str, list[dict]]:
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    results: dict[str, list[dict]] = {m: [] for m in modes}
    if "progressive" in modes:
        results["from worklist"] = []
    if len(urls) > 1 and "progressive" in modes:
        results["next case"] = []
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        _warm_up(browser, base, urls, args.warm_up)
        for _ in range(args.runs):
            for url in urls:
                for mode in modes:                 # alternated, so that both see the same machine
                    run = _open(lambda: browser.new_context(viewport=SCREEN), base, url, mode,
                                pause_ms=args.pause_ms)
                    results[mode].append(run)
                    _line(mode, run)
            if "from worklist" in results:      # the session's first case, opened from the worklist (idle first)
                with tempfile.TemporaryDirectory(prefix="profile-") as profile:
                    run = _open(lambda profile=profile: p.chromium.launch_persistent_context(
                        profile, executable_path=CHROMIUM, args=LAUNCH_ARGS, viewport=SCREEN),
                        base, urls[0], "progressive", after=worklist, pause_ms=args.pause_ms)
                results["from worklist"].append(run)
                _line("from worklist", run)
            if "next case" in results:                  # progressive, after the previous case prefetched it
                for before, url in zip(urls, urls[1:], strict=False):
                    with tempfile.TemporaryDirectory(prefix="profile-") as profile:
                        run = _open(lambda profile=profile: p.chromium.launch_persistent_context(
                            profile, executable_path=CHROMIUM, args=LAUNCH_ARGS, viewport=SCREEN),
                            base, url, "progressive", after=before, pause_ms=args.pause_ms)
                    results["next case"].append(run)
                    _line("next case", run)
        browser.close()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2, help="phantom cases, each opened per run (default 2)")
    parser.add_argument("--size", type=int, default=512, help="rows = columns of each slice (default 512)")
    parser.add_argument("--slices", type=int, default=30, help="slices per series (default 30)")
    parser.add_argument("--runs", type=int, default=2, help="passes over the cases per mode (default 2)")
    parser.add_argument("--pause-ms", type=int, default=0,
                        help="look at the first image this long before scrolling (default 0: scroll at once)")
    parser.add_argument("--modes", default="whole,progressive", help="comma-separated (default both)")
    parser.add_argument("--server", choices=("production", "dev"), default="production",
                        help="production: gunicorn + PostgreSQL as deployed (default); dev: Django's live server")
    parser.add_argument("--web-workers", type=int, default=5,
                        help="gunicorn workers (production server; 5, scripts/serve.sh's default on 2 cores)")
    parser.add_argument("--warm-up", type=int, default=2,
                        help="unmeasured passes over the pages before measuring (default 2; 0: a cold server)")
    parser.add_argument("--split-cores", action="store_true",
                        help="production server on CPU 0, the browser on CPU 1 (two machines, as deployed)")
    parser.add_argument("--seed-plan", help=argparse.SUPPRESS)  # internal: seed the production stack
    args = parser.parse_args(argv)
    if args.seed_plan:
        _seed_plan(Path(args.seed_plan), args)
        return 0
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: install Debian's chromium (scripts/install_chromium.sh)")
        return 2
    if args.server == "production":
        sys.path.insert(0, str(ROOT / "tests" / "production"))
        from production_stack import missing

        why = missing()
        if why:
            print(f"cannot start the production stack ({why}): use --server dev")
            return 2
    server = _production_server if args.server == "production" else _dev_server
    with tempfile.TemporaryDirectory(prefix="progressive-loading-") as tmp:
        os.environ["NO_PROXY"] = "127.0.0.1,localhost"
        started = time.perf_counter()
        with server(Path(tmp), args) as (base, urls, worklist):
            print(f"SYNTHETIC phantom study on the {args.server} server: {args.cases} cases, {args.size}x{args.size}"
                  f" px, {args.slices} slices per series, ready in {time.perf_counter() - started:.1f} s; network "
                  f"100 Mbit/s, 5 ms", flush=True)
            results = _measure(args, base, urls, worklist)
        _report(results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
