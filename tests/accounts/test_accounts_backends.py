"""The cached signed-in user (accounts.backends): no query for the user or its roles once cached, and every
change to the user or its groups seen by the very next request."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import backends, roles
from accounts.backends import user_cache_key
from accounts.services import user_create

pytestmark = pytest.mark.django_db


def _user_queries(client, url):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    return response, [q["sql"] for q in queries.captured_queries
                      if '"auth_user"' in q["sql"] or '"auth_group"' in q["sql"] or "django_session" in q["sql"]]


@pytest.fixture
def signed_in(client, shared_cache):
    user = user_create(username="cached_reader", password="pw-Test-1234", role=roles.READER,
                       reader_group="specialist", years_experience=3)
    # The login page (django-axes needs the request: Client.login() without one is refused, docs/security.md)
    assert client.post("/login/", {"username": "cached_reader", "password": "pw-Test-1234"}).status_code == 302
    client.get("/reader/")                    # the first request fills the cache
    return user


def test_once_cached_a_request_asks_the_database_nothing_about_the_user_or_roles(client, signed_in,
                                                                                 shared_cache):
    response, queries = _user_queries(client, "/reader/")
    assert response.status_code == 200
    assert queries == []                  # the session is cached too (accounts.sessions)
    assert shared_cache.get(user_cache_key(signed_in.pk))._role_names == {roles.READER}


def test_without_the_shared_cache_the_user_comes_from_the_database(client, settings):
    settings.USER_CACHE = False
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    user_create(username="plain_reader", password="pw-Test-1234", role=roles.READER, reader_group="specialist",
                years_experience=3)
    assert client.post("/login/", {"username": "plain_reader", "password": "pw-Test-1234"}).status_code == 302
    client.get("/reader/")
    response, queries = _user_queries(client, "/reader/")
    assert response.status_code == 200
    assert any('"auth_user"' in q for q in queries) and any('"auth_group"' in q for q in queries)


def test_a_role_taken_away_is_seen_by_the_next_request(client, signed_in):
    signed_in.groups.set([Group.objects.get(name=roles.COORDINATOR)])
    assert client.get("/reader/").status_code == 403
    assert client.get("/coordinator/").status_code == 200


def test_removing_the_user_from_the_group_side_is_seen_too(client, signed_in):
    Group.objects.get(name=roles.READER).user_set.remove(signed_in)
    assert client.get("/reader/").status_code == 403


def test_emptying_the_group_is_seen_too(client, signed_in):
    Group.objects.get(name=roles.READER).user_set.clear()
    assert client.get("/reader/").status_code == 403


def test_adding_a_role_from_the_group_side_is_seen(client, signed_in):
    Group.objects.get(name=roles.COORDINATOR).user_set.add(signed_in)
    assert client.get("/coordinator/").status_code == 200


def test_a_deactivated_user_is_signed_out_at_once(client, signed_in):
    signed_in.is_active = False
    signed_in.save()
    response = client.get("/reader/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_new_password_ends_the_old_session(client, signed_in):
    signed_in.set_password("another-Pass-5678")
    signed_in.save()
    response = client.get("/reader/")
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_signing_out_ends_the_session(client, signed_in):
    cookie = client.cookies["sessionid"].value
    client.post("/logout/")
    client.cookies["sessionid"] = cookie          # a copy of the old cookie is worth nothing
    response = client.get("/reader/")
    assert response.status_code == 302 and "/login/" in response["Location"]


class _DownCache:
    """A cache whose server is unreachable (Redis restarting)."""

    def get(self, *args, **kwargs):
        raise ConnectionError("cache server unreachable")

    set = delete = get


def test_while_the_cache_is_down_the_user_comes_from_the_database(client, signed_in, monkeypatch, caplog):
    monkeypatch.setattr(backends, "cache", _DownCache())
    assert client.get("/reader/").status_code == 200
    signed_in.groups.set([Group.objects.get(name=roles.COORDINATOR)])     # clearing fails: logged, not raised
    assert client.get("/reader/").status_code == 403                     # the database's answer
    assert "user cache unreachable" in caplog.text and "not cleared" in caplog.text


def test_a_copy_stored_while_the_change_was_uncommitted_is_cleared_at_commit(signed_in, shared_cache,
                                                                            django_capture_on_commit_callbacks):
    """A request that read the user between a role change and its commit would store the old roles for the
    minute: the clearing runs again when the change commits."""
    key = user_cache_key(signed_in.pk)
    with django_capture_on_commit_callbacks(execute=True):
        signed_in.groups.clear()                                   # cleared now ...
        stale = backends.CachedUserBackend().get_user(signed_in.pk)     # ... another request stores a copy
        stale._role_names = {roles.READER}
        shared_cache.set(key, stale, 60)
        assert shared_cache.get(key) is not None
    assert shared_cache.get(key) is None                           # ... and it is gone once the change commits
