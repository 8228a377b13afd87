"""Sessions from the shared cache (accounts.sessions): no query per request, the database the record, a cached
copy that lives one minute at most, and a cache outage that costs speed, never a request or a sign-out."""

import time

import pytest
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import roles, sessions
from accounts.backends import USER_CACHE_SECONDS
from accounts.services import user_create

pytestmark = pytest.mark.django_db
PASSWORD = "pw-Test-1234"  # noqa: S105 - a test user's


@pytest.fixture
def signed_in(client, shared_cache):
    user = user_create(username="session_reader", password=PASSWORD, role=roles.READER,
                       reader_group="specialist", years_experience=3)
    assert client.post("/login/", {"username": "session_reader", "password": PASSWORD}).status_code == 302
    assert client.get("/reader/").status_code == 200
    return user


def _key(client) -> str:
    return client.cookies["sessionid"].value


def _session_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    return response, [q["sql"] for q in queries.captured_queries if "django_session" in q["sql"]]


def test_a_signed_in_request_reads_the_session_from_the_cache(client, signed_in):
    response, queries = _session_queries(client, "/reader/")
    assert response.status_code == 200 and queries == []


def test_the_database_stays_the_record(client, signed_in, shared_cache):
    assert Session.objects.filter(session_key=_key(client)).exists()
    shared_cache.clear()                                   # Redis flushed or restarted empty
    response, queries = _session_queries(client, "/reader/")
    assert response.status_code == 200 and len(queries) == 1      # read once from the database, cached again
    assert _session_queries(client, "/reader/")[1] == []


def test_a_cached_copy_lives_one_minute_at_most(client, signed_in, settings):
    assert settings.SESSION_COOKIE_AGE > USER_CACHE_SECONDS          # the session itself lives much longer
    cache = caches["default"]
    key = cache.make_key(sessions.SessionStore.cache_key_prefix + _key(client))
    expires_in = cache._expire_info[key] - time.time()            # LocMemCache's own expiry time
    assert 0 < expires_in <= USER_CACHE_SECONDS


def test_signing_out_ends_the_session_in_both_places(client, signed_in, shared_cache):
    cookie = _key(client)
    client.post("/logout/")
    assert not Session.objects.filter(session_key=cookie).exists()
    assert shared_cache.get(sessions.SessionStore.cache_key_prefix + cookie) == sessions._ENDED   # the marker
    client.cookies["sessionid"] = cookie
    response = client.get("/reader/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_request_that_read_the_row_before_the_sign_out_cannot_bring_the_session_back(client, signed_in,
                                                                                       shared_cache):
    cookie = _key(client)
    late = sessions.SessionStore(cookie)
    row = late._get_session_from_db()                 # read just before the sign-out...
    shared_cache.delete(late.cache_key)               # (its cached copy had expired)
    client.post("/logout/")
    late._cache_put(late.decode(row.session_data), 60, replace=False)     # ...and cached just after it
    client.cookies["sessionid"] = cookie
    response = client.get("/reader/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_shorter_expiry_set_on_the_session_bounds_its_cached_copy(shared_cache):
    store = sessions.SessionStore()
    store["seen"] = True
    store.set_expiry(10)
    store.save()
    cache = caches["default"]
    assert 0 < cache._expire_info[cache.make_key(store.cache_key)] - time.time() <= 10


def test_the_async_methods_keep_the_same_rules(shared_cache):
    from asgiref.sync import async_to_sync

    store = sessions.SessionStore()
    store["seen"] = True
    async_to_sync(store.asave)()
    key = store.session_key
    cache = caches["default"]
    assert 0 < cache._expire_info[cache.make_key(store.cache_key)] - time.time() <= USER_CACHE_SECONDS
    assert async_to_sync(sessions.SessionStore(key).aload)() == {"seen": True}
    async_to_sync(sessions.SessionStore(key).adelete)()
    assert not Session.objects.filter(session_key=key).exists()
    assert async_to_sync(sessions.SessionStore(key).aload)() == {}


@pytest.fixture
def cache_down(monkeypatch):
    """The shared cache's server is unreachable (Redis restarting)."""
    cache = caches["default"]

    def unreachable(*args, **kwargs):
        raise ConnectionError("cache server unreachable")

    def down():
        for name in ("get", "set", "delete", "has_key"):
            monkeypatch.setattr(cache, name, unreachable)
    return down


def test_while_the_cache_is_down_sessions_come_from_the_database(client, signed_in, cache_down, caplog):
    cache_down()
    response, queries = _session_queries(client, "/reader/")
    assert response.status_code == 200 and len(queries) == 1
    assert "session cache unreachable" in caplog.text


def test_signing_in_and_out_work_while_the_cache_is_down(client, shared_cache, cache_down, caplog):
    user_create(username="outage_reader", password=PASSWORD, role=roles.READER, reader_group="specialist",
                years_experience=3)
    cache_down()
    assert client.post("/login/", {"username": "outage_reader", "password": PASSWORD}).status_code == 302
    assert client.get("/reader/").status_code == 200
    cookie = _key(client)
    client.post("/logout/")
    assert not Session.objects.filter(session_key=cookie).exists()     # the record is gone at once
    assert "session not cached" in caplog.text and "still cached" in caplog.text
    client.cookies["sessionid"] = cookie
    assert client.get("/reader/").status_code == 302
