"""Viewer latency on localhost with the SYNTHETIC phantom cohort (issue 6): target < 300 ms to first image.

    .venv/bin/python benchmarks/viewer_latency.py [--patients 6] [--size 256] [--slices 24] [--runs 2]

What it does, in a throw-away data folder (its own SQLite database and media, nothing of var/ is touched):
writes a phantom cohort as DICOM (imaging.phantoms), imports it through the real importer job (so the
volumes are stored exactly as in production), opens a reader study on it, starts Django's threaded live
server and drives Debian's Chromium (/usr/bin/chromium) with Playwright. It reports:

* open → first image: from the start of the navigation to a reading page to the first image drawn
  (performance.now() at the viewer's first draw, which counts from the navigation start). "cold" = a new
  browser profile (no HTTP cache); "next case" = the way a reader moves on, after the previous page
  prefetched the next case's first series in idle time.
* series switch: PageUp/PageDown in the active viewport, from the key press to the new series drawn, once
  the page has preloaded the case's series (the normal case) and right after opening (maybe still loading).

Timings depend on the machine and its load; they are printed, not asserted (issue 6: timings belong in
benchmarks/, never in unit tests).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):      # run as a script: make the project importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHROMIUM = "/usr/bin/chromium"
LAUNCH_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
TARGET_MS = 300.0
PASSWORD = "bench-pass-2026"  # noqa: S105 - a throw-away user in a throw-away database


def _django(data_dir: Path) -> None:
    """Point Django at a fresh data folder (database, media) and migrate it."""
    os.environ.update(DEBUG="1", DATA_DIR=str(data_dir), DJANGO_SETTINGS_MODULE="config.settings",
                      DJANGO_ALLOW_ASYNC_UNSAFE="true")
    for name in ("DATABASE_URL", "MEDIA_ROOT", "http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        os.environ.pop(name, None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def _import_phantoms(work: Path, *, patients: int, size: int, slices: int) -> list:
    """The phantom cohort, written as DICOM and imported by the importer job; returns the cases."""
    from imaging.models import Case
    from imaging.phantoms import write_phantom_cohort
    from imaging.services import import_params
    from jobs.services import job_create, job_run

    summary = write_phantom_cohort(work / "cohort", patients=patients, sarcoma_fraction=0.34, seed=2026,
                                   slice_size=size, slices_per_series=slices)
    params = import_params(source=summary.dicom_dir, manifest=summary.manifest_path, boxes=summary.boxes_path,
                           label="viewer latency benchmark (synthetic)")
    job = job_run(job_pk=job_create(kind="import_dicom", params=params, enqueue=False).pk, worker="benchmark")
    if job.status != "succeeded":
        raise SystemExit(f"phantom import failed: {job.error}")
    return list(Case.objects.filter(is_synthetic=True).order_by("pk"))


def _study(cases: list):
    from accounts.services import user_create
    from reader_study import services

    coordinator = user_create(username="bench-coordinator", password=PASSWORD, role="coordinator")
    reader = user_create(username="bench-reader", password=PASSWORD, role="reader", reader_group="specialist",
                         years_experience=10)
    study = services.study_create(name="Latency benchmark (synthetic)", created_by=coordinator, cases=cases,
                                  readers=[reader])
    return services.study_open(study=study, by=coordinator), reader


def _server():
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.test.testcases import LiveServerThread

    thread = LiveServerThread("127.0.0.1", StaticFilesHandler, port=0)
    thread.daemon = True
    thread.start()
    thread.is_ready.wait()
    if thread.error:
        raise thread.error
    return thread, f"http://127.0.0.1:{thread.port}"


def _new_page(browser, base: str, username: str):
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    page = context.new_page()
    page.goto(base + "/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(base + "/reader/")
    return context, page


def _first_image_ms(page, url: str) -> float:
    page.goto(url)
    page.wait_for_function("window.viewerTimings && window.viewerTimings.firstImage !== null", timeout=30000)
    return page.evaluate("window.viewerTimings.firstImage")


def _switch_ms(page, key: str) -> float:
    count = page.evaluate("window.viewerTimings.switches.length")
    page.locator(".viewport").first.hover()
    page.keyboard.press(key)
    page.wait_for_function(f"window.viewerTimings.switches.length > {count}", timeout=30000)
    return page.evaluate("window.viewerTimings.switches[window.viewerTimings.switches.length - 1]")


def measure(browser, base: str, urls: list[str], username: str) -> dict[str, list[float]]:
    """Cold opens (fresh profile each), next-case opens (one profile, in reading order), series switches."""
    timings = {"cold open": [], "next-case open": [], "switch (preloaded)": [], "switch (just opened)": []}
    for url in urls:
        context, page = _new_page(browser, base, username)
        timings["cold open"].append(_first_image_ms(page, url))
        timings["switch (just opened)"].append(_switch_ms(page, "PageDown"))
        context.close()
    context, page = _new_page(browser, base, username)
    for url in urls:
        timings["next-case open"].append(_first_image_ms(page, url))
        page.wait_for_load_state("networkidle")          # preload of this case and prefetch of the next done
        for key in ("PageDown", "PageDown", "PageUp"):
            timings["switch (preloaded)"].append(_switch_ms(page, key))
    context.close()
    return timings


def _report(timings: dict[str, list[float]], volumes: dict) -> None:
    print(f"\nvolumes: {volumes['series']} series, median {volumes['median_kib']:.0f} KiB on the wire "
          f"(gzip), {volumes['median_raw_kib']:.0f} KiB decoded")
    print(f"{'measure':<24}{'n':>4}{'median ms':>12}{'p90 ms':>10}{'max ms':>10}")
    for name, values in timings.items():
        ordered = sorted(values)
        p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
        print(f"{name:<24}{len(values):>4}{statistics.median(values):>12.0f}{p90:>10.0f}{max(values):>10.0f}")
    cold = statistics.median(timings["cold open"])
    verdict = "meets" if cold < TARGET_MS else "MISSES"
    print(f"\nopen → first image (cold, median) {cold:.0f} ms: {verdict} the target of {TARGET_MS:.0f} ms")


def _volume_sizes() -> dict:
    from imaging import importer_store
    from imaging.models import Series

    series = list(Series.objects.exclude(volume_path=""))
    wire = [importer_store.volume_file(s).stat().st_size / 1024 for s in series]
    raw = [s.n_slices * s.rows * s.cols * 2 / 1024 for s in series]
    return {"series": len(series), "median_kib": statistics.median(wire),
            "median_raw_kib": statistics.median(raw)}


def _run_browser(urls: list[str], base: str, username: str, runs: int) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    timings: dict[str, list[float]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        for _ in range(runs):
            for name, values in measure(browser, base, urls, username).items():
                timings.setdefault(name, []).extend(values)
        browser.close()
    return timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--patients", type=int, default=6, help="phantom patients = cases read (default 6)")
    parser.add_argument("--size", type=int, default=256, help="rows = columns of each slice (default 256)")
    parser.add_argument("--slices", type=int, default=24, help="slices per series (default 24)")
    parser.add_argument("--runs", type=int, default=2, help="passes over the cases (default 2)")
    args = parser.parse_args(argv)
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: install Debian's chromium (scripts/install_chromium.sh)")
        return 2
    with tempfile.TemporaryDirectory(prefix="viewer-latency-") as tmp:
        work = Path(tmp)
        _django(work / "data")
        started = time.perf_counter()
        cases = _import_phantoms(work, patients=args.patients, size=args.size, slices=args.slices)
        study, reader = _study(cases)
        print(f"SYNTHETIC phantom cohort: {len(cases)} cases, {args.size}x{args.size} px, {args.slices} "
              f"slices per series, imported in {time.perf_counter() - started:.1f} s")
        from reader_study import selectors

        paths = [f"/reading/{a.pk}/" for a in selectors.worklist(study, reader, 1)]
        thread, base = _server()
        timings = _run_browser([base + p for p in paths], base, reader.username, args.runs)
        thread.terminate()
        _report(timings, _volume_sizes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
