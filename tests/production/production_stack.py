"""The documented production stack, started for real on loopback: a private PostgreSQL and Redis, gunicorn
and Celery workers, each started by `scripts/serve.sh` exactly as the image and docker-compose start them.

PostgreSQL and Redis are started by this module (initdb / redis-server in a temporary folder, on spare
ports), never the machine's shared servers: the fault tests restart them. Used by the production smoke
and fault tests and by `benchmarks/load_readers.py`; where a binary is missing, `missing()` says which,
and the tests skip with that message.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "tests") not in sys.path:  # benchmarks import this module from outside pytest
    sys.path.insert(0, str(REPO / "tests"))

from testsupport import wait_for  # noqa: E402

SERVE = REPO / "scripts" / "serve.sh"
PYTHON = REPO / ".venv" / "bin" / "python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / name).exists():
            return str(folder / name)
    return None


def missing() -> str | None:
    """Why the stack cannot start here, or None."""
    for name in ("initdb", "pg_ctl"):
        if not _pg_bin(name):
            return f"PostgreSQL's {name} is not installed (Debian: postgresql)"
    if not shutil.which("redis-server"):
        return "redis-server is not installed (Debian: redis-server)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run a private PostgreSQL as"
    return None


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (fsync off: it is a test's), restartable on the same port."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="sarcoma-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.log = self.root / "postgres.log"
        self._as = []
        if os.geteuid() == 0:  # initdb refuses to run as root
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync",
                  "-E", "UTF8")
        self.start()
        self._psql("CREATE DATABASE sarcoma")

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/sarcoma"

    def _run(self, *cmd: str) -> None:
        result = subprocess.run([*self._as, *cmd], capture_output=True, text=True, cwd=self.root)
        if result.returncode:
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr[-2000:]}")

    def _psql(self, sql: str) -> None:
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cursor:
            cursor.execute(sql)
        conn.close()

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def close(self) -> None:
        try:
            self.stop("immediate")
        except RuntimeError:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """A throw-away Redis that keeps an append-only file, as docker-compose's does, so a restart keeps the
    broker's queues (the production set-up the fault tests check)."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="sarcoma-redis-"))
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.start()

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.root),
             "--appendonly", "yes", "--appendfsync", "always", "--save", ""],
            stdout=open(self.root / "redis.log", "ab"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: _port_open(self.port), 20, what=f"redis on port {self.port}")

    def stop(self) -> None:
        """SIGTERM: Redis writes its append-only file and exits, as on `docker restart`."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


class Process:
    """One `scripts/serve.sh ROLE` process with its own log file; stopped with its whole process group."""

    def __init__(self, role: str, env: dict, log: Path, *, cmd: list[str] | None = None, cwd: Path = REPO):
        self.role, self.env, self.log = role, env, log
        self.proc = subprocess.Popen(cmd or [str(SERVE), role], cwd=cwd, env=env, stdout=open(log, "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def signal(self, sig: int) -> None:
        os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        """SIGKILL to the whole group: the process dies without any cleanup, like a crashed machine."""
        if self.alive():
            self.signal(signal.SIGKILL)
            self.proc.wait(20)

    def stop(self) -> None:
        if self.alive():
            self.signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


class ProductionStack:
    """PostgreSQL + Redis + gunicorn (DEBUG=0, real secrets) + a `default` and a `gpu` worker."""

    def __init__(self, root: Path, *, web_workers: int = 2, workers: bool = True, extra_env: dict | None = None):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._stack = ExitStack()
        self.postgres = PrivatePostgres()
        self._stack.callback(self.postgres.close)
        self.redis = PrivateRedis()
        self._stack.callback(self.redis.close)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.env = self._environment(web_workers, extra_env or {})
        self.processes: dict[str, Process] = {}
        self._stack.callback(self._stop_all)
        self.manage("migrate", "--noinput")
        self.start("web")
        wait_for(lambda: _port_open(self.port) or self._died("web"), 120, what="gunicorn to listen")
        if workers:
            self.start("worker")
            self.start("gpu-worker")

    def _environment(self, web_workers: int, extra: dict) -> dict:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST"))}
        env.update({
            "DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50), "PSEUDONYM_KEY": secrets.token_urlsafe(32),
            "ALLOWED_HOSTS": "127.0.0.1,localhost", "CSRF_TRUSTED_ORIGINS": self.base_url,
            # plain HTTP on loopback stands in for the TLS proxy the README puts in front
            "SECURE_SSL_REDIRECT": "0", "SESSION_COOKIE_SECURE": "0", "CSRF_COOKIE_SECURE": "0",
            "DATABASE_URL": self.postgres.url, "CELERY_BROKER_URL": self.redis.url(0),
            "REDIS_URL": self.redis.url(1), "DATA_DIR": str(self.root / "data"),
            "STATIC_ROOT": str(self.root / "static"), "BIND": f"127.0.0.1:{self.port}",
            "WEB_WORKERS": str(web_workers), "WORKER_CONCURRENCY": "1", "PYTHON": str(PYTHON),
            "PYTHONUNBUFFERED": "1", "KERAS_BACKEND": "tensorflow", "LOG_LEVEL": "INFO",
        })
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def _died(self, role: str) -> bool:
        process = self.processes[role]
        if not process.alive():
            raise RuntimeError(f"{role} exited early:\n{process.text()[-4000:]}")
        return False

    def start(self, role: str) -> Process:
        process = Process(role, self.env, self.root / f"{role}.log")
        self.processes[role] = process
        if role.endswith("worker"):
            wait_for(lambda: " ready." in process.text() or self._died(role), 120, what=f"{role} to be ready")
        return process

    def restart(self, role: str) -> Process:
        self.processes[role].stop()
        return self.start(role)

    def manage(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([str(PYTHON), "manage.py", *args], cwd=REPO, env=self.env, capture_output=True,
                                text=True, timeout=600)
        if check and result.returncode:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout[-2000:]}{result.stderr[-3000:]}")
        return result

    def shell(self, code: str) -> str:
        """Run Python with Django set up in the stack's environment (as an admin's `manage.py shell -c`)."""
        return self.manage("shell", "-c", code).stdout

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """Read the stack's database directly (assertions of the fault tests: what was really stored)."""
        import psycopg2

        conn = psycopg2.connect(self.postgres.url, connect_timeout=5)
        try:
            with conn.cursor() as cursor:
                cursor.execute(query, params)
                return cursor.fetchall()
        finally:
            conn.close()

    def logs(self) -> dict[str, str]:
        return {role: process.text() for role, process in self.processes.items()}

    def _stop_all(self) -> None:
        for process in self.processes.values():
            process.stop()

    def close(self) -> None:
        self._stack.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_SERVER_ERROR = re.compile(r'HTTP/1\.[01]" 5\d\d ')


READER_PASSWORD = "stack-reader-pass-2026"  # noqa: S105 - throw-away users of a throw-away database

_SEED = """
import json, tempfile
from pathlib import Path
from accounts.services import user_create
from imaging.models import Case
from imaging.phantoms import write_phantom_cohort
from imaging.services import import_params
from jobs.services import job_create, job_run
from reader_study import services

work = Path(tempfile.mkdtemp(prefix="seed-"))
summary = write_phantom_cohort(work / "cohort", patients={patients}, sarcoma_fraction=0.34, seed=2026,
                               slice_size={size}, slices_per_series={slices})
params = import_params(source=summary.dicom_dir, manifest=summary.manifest_path, boxes=summary.boxes_path,
                       label="production stack seed (synthetic phantoms)")
job = job_run(job_pk=job_create(kind="import_dicom", params=params, enqueue=False).pk, worker="seed")
assert job.status == "succeeded", job.error
cases = list(Case.objects.filter(is_synthetic=True).order_by("pk"))
coordinator = user_create(username="seed-coordinator", password={password!r}, role="coordinator")
readers = [user_create(username=f"reader{{i:03d}}", password={password!r}, role="reader",
                       reader_group="specialist", years_experience=10) for i in range({readers})]
study = services.study_create(name="Production stack study (synthetic)", created_by=coordinator, cases=cases,
                              readers=readers)
services.study_open(study=study, by=coordinator)
print(json.dumps({{"study": study.pk, "readers": [r.username for r in readers], "cases": len(cases)}}))
"""


def seed_reading_study(stack: ProductionStack, *, readers: int, patients: int, size: int = 64,
                       slices: int = 8) -> dict:
    """An open study on SYNTHETIC phantoms imported by the real importer: readers reader000…, one password.

    Returns {"study": id, "readers": [usernames], "cases": n}.
    """
    import json

    code = _SEED.format(patients=patients, size=size, slices=slices, readers=readers, password=READER_PASSWORD)
    return json.loads(stack.shell(code).strip().splitlines()[-1])


def login(base_url: str, username: str, password: str = READER_PASSWORD):
    """A requests session logged in through the login form, with CSRF set up for API posts."""
    import requests

    session = requests.Session()
    session.headers["Referer"] = base_url + "/"
    session.get(base_url + "/login/", timeout=30).raise_for_status()
    token = session.cookies["csrftoken"]
    response = session.post(base_url + "/login/", timeout=30, data={
        "username": username, "password": password, "csrfmiddlewaretoken": token})
    response.raise_for_status()
    if "sessionid" not in session.cookies:
        raise RuntimeError(f"login as {username} failed (status {response.status_code})")
    session.headers["X-CSRFToken"] = session.cookies["csrftoken"]
    return session


def log_problems(text: str) -> list[str]:
    """Lines of a gunicorn or worker log that show a server error (5xx in the access log) or a traceback."""
    return [line for line in text.splitlines()
            if "Traceback (most recent call last)" in line or _SERVER_ERROR.search(line)]
