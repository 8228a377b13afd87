"""Shared fixtures: users per role, a real Celery worker process, database auto-marking."""

from pathlib import Path

import pytest

from testsupport import WorkerProcess


def pytest_collection_modifyitems(config, items):
    """Mark every test that uses the database, so the PostgreSQL pass can select them (-m db)."""
    for item in items:
        uses_db = item.get_closest_marker("django_db") or {"db", "transactional_db"} & set(item.fixturenames)
        if uses_db:
            item.add_marker(pytest.mark.db)


@pytest.fixture
def make_user(db):
    from accounts.services import user_create

    counter = {"n": 0}

    def _make(role: str = "reader", **kwargs):
        counter["n"] += 1
        username = kwargs.pop("username", f"{role}{counter['n']}")
        if role == "reader":
            kwargs.setdefault("reader_group", "specialist")
            kwargs.setdefault("years_experience", 10)
        return user_create(username=username, password="pw-Test-1234", role=role, **kwargs)

    return _make


@pytest.fixture
def reader(make_user):
    return make_user("reader")


@pytest.fixture
def coordinator(make_user):
    return make_user("coordinator")


@pytest.fixture
def admin_user(make_user):
    return make_user("admin")


@pytest.fixture(autouse=True)
def _no_rate_limit_history():
    """The API's rate limits (core.throttling) count requests in the default cache, per user and per address
    (every test client is 127.0.0.1, and user ids come back after a rollback): each test starts with an empty
    local-memory cache, so one test's requests never throttle another's. A real cache server (REDIS_URL set
    for a test run) is never flushed."""
    from django.core.cache import caches
    from django.core.cache.backends.locmem import LocMemCache

    if isinstance(caches["default"], LocMemCache):
        caches["default"].clear()


@pytest.fixture
def shared_cache(settings):
    """What production has with Redis, in one process: a cache every request sees, the cached user and session
    on (a local-memory cache stands in for Redis; it is emptied before and after)."""
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": "shared-cache-test"}}
    settings.USER_CACHE = True
    settings.SESSION_ENGINE = "accounts.sessions"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from django.core.cache import cache

    cache.clear()
    yield cache
    cache.clear()


@pytest.fixture
def start_worker(tmp_path):
    """Start real worker processes; each is stopped at the end of the test."""
    workers: list[WorkerProcess] = []

    def _start(*, broker_url: str, broker_folder: Path | None = None, nodename: str = "test@%h", **env):
        log = tmp_path / f"worker-{len(workers)}.log"
        w = WorkerProcess(broker_url=broker_url, broker_folder=broker_folder, nodename=nodename, log=log,
                          env={k: str(v) for k, v in env.items()})
        workers.append(w)
        return w

    yield _start
    for w in workers:
        w.stop()




@pytest.fixture
def role_groups(transactional_db):
    """A transactional test's flush removes the role groups the migration made; put them back."""
    from django.contrib.auth.models import Group

    from accounts.roles import ROLES

    for name in ROLES:
        Group.objects.get_or_create(name=name)
