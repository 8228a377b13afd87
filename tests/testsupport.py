"""Helpers shared by test modules (import with `from testsupport import ...`): brokers, worker processes,
the browser tests' Chromium page.

Kept out of conftest.py because several test folders have a conftest.py and `from testsupport import` would
pick whichever was imported first.
"""

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def redis_available(url: str = "redis://127.0.0.1:6379/15") -> bool:
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
        return True
    except Exception:
        return False


def database_url_for_worker() -> str:
    """The URL of the *test* database, so a worker process sees what the test wrote."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER'] or 'postgres'}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@contextmanager
def broker(url: str, folder: Path | None = None):
    """Point this process's Celery app at a broker for the duration of a test."""
    from config.celery import app

    old = (app.conf.broker_url, app.conf.broker_transport_options)
    options = {}
    if url.startswith("filesystem"):
        for sub in ("queue", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        options = {"data_folder_in": str(folder / "queue"), "data_folder_out": str(folder / "queue"),
                   "control_folder": str(folder / "control"), "store_processed": False}
    else:
        import redis

        redis.Redis.from_url(url).flushdb()
    _reset_pool(app)
    app.conf.broker_url, app.conf.broker_transport_options = url, options
    try:
        yield
    finally:
        _reset_pool(app)
        app.conf.broker_url, app.conf.broker_transport_options = old


def _reset_pool(app):
    """Forget every broker connection and producer pool (kombu keeps a global registry of them)."""
    from kombu import pools

    if app._pool is not None:
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    pools.reset()


class WorkerProcess:
    """A real `celery worker` subprocess on the test database and the given broker."""

    def __init__(self, *, broker_url: str, broker_folder: Path | None, nodename: str, log: Path, env: dict):
        self.log = log
        environment = {**os.environ, **env, "DATABASE_URL": database_url_for_worker(),
                       "CELERY_BROKER_URL": broker_url, "PYTHONUNBUFFERED": "1"}
        if broker_folder:
            environment["CELERY_BROKER_FOLDER"] = str(broker_folder)
        cmd = [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", "default,gpu", "--pool=solo",
               "-n", nodename, "--without-mingle", "--without-gossip", "-l", "info"]
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=environment, stdout=open(log, "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 60) -> None:
        until = time.monotonic() + timeout
        while time.monotonic() < until:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log.read_text()[-3000:]}")
            if " ready." in self.log.read_text():
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker not ready in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task without any cleanup, like a crashed machine."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def wait_for(predicate, timeout: float = 60, every: float = 0.2, what: str = "condition"):
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# --- browser tests (Playwright + Debian's Chromium) ----------------------------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_MISSING = "Debian's Chromium is not installed at /usr/bin/chromium (scripts/install_chromium.sh)"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _predicates_as_functions(wait_for_function):
    """The pages run under a CSP without 'unsafe-eval' (docs/security.md). Playwright evaluates a plain string
    predicate with eval() at every poll, which the CSP refuses; a function predicate is compiled once, by the
    DevTools protocol (which the CSP does not govern), and then only called. So every predicate becomes one."""
    def wait(expression: str, *args, **kwargs):
        if not expression.lstrip().startswith(("(", "function", "async")):
            expression = f"() => ({expression})"
        return wait_for_function(expression, *args, **kwargs)

    return wait


@contextmanager
def chromium_page(monkeypatch, viewport=(1500, 880)):
    """A headless Chromium page; script errors and failed requests (but the favicon) are kept in page.problems.

    For a pytest fixture: ``with chromium_page(monkeypatch) as tab: yield tab``. Chromium reaches the live server
    directly (no proxy); the ORM may be used while Playwright's loop runs.
    """
    from django.db import connections
    from playwright.sync_api import sync_playwright

    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    for name in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        tab = context.new_page()
        tab.set_default_timeout(20000)
        tab.problems = []
        tab.on("console", lambda m: m.type == "error" and "Failed to load resource" not in m.text
               and tab.problems.append(m.text))
        tab.on("pageerror", lambda e: tab.problems.append(str(e)))
        tab.on("response", lambda r: r.status >= 400 and not r.url.endswith("/favicon.ico")
               and tab.problems.append(f"{r.status} {r.url}"))
        tab.wait_for_function = _predicates_as_functions(tab.wait_for_function)
        try:
            yield tab
        finally:
            browser.close()
            # ORM calls made while Playwright's loop runs get a connection of their own: close it, or
            # PostgreSQL keeps the session and the test database cannot be dropped at the end.
            connections.close_all()
