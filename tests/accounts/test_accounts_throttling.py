"""Login throttling (django-axes, accounts/lockout.py) and the API's rate limits (core/throttling.py).

Issue 12, item 5: 30 wrong passwords in a row were all answered and the right one then logged in. Now 15
wrong passwords lock the account (the right one is refused too, with a clear message), per account and not
per address (readers share a hospital's NAT), a success before the limit clears the count, coordinators and
admins unlock, and the API answers a runaway client 429 + Retry-After.
"""

import io
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.test import RequestFactory
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from accounts import services
from accounts.lockout import client_ip
from core import throttling

pytestmark = pytest.mark.django_db

PASSWORD = "pw-Test-1234"   # tests/conftest.py make_user
LOCKED = "Sign-in to this account is temporarily locked after too many failed attempts"


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _login(client, username, password, path="/login/", **extra):
    return client.post(path, {"username": username, "password": password}, **extra)


def _fail(client, username, times, **extra):
    return [_login(client, username, "wrong-password", **extra) for _ in range(times)]


def _signed_in(client) -> bool:
    return client.get("/").status_code == 302 and "/login/" not in client.get("/")["Location"]


# --- login lockout ----------------------------------------------------------------------------------------

def test_fifteen_wrong_passwords_lock_the_account_and_the_right_one_is_refused(client, reader, settings):
    limit = settings.AXES_FAILURE_LIMIT
    assert 1 < limit <= 15
    answers = _fail(client, reader.username, 15)
    assert [r.status_code for r in answers] == [200] * (limit - 1) + [429] * (15 - limit + 1)
    assert "password didn" in answers[0].content.decode()
    right = _login(client, reader.username, PASSWORD)
    assert right.status_code == 429
    page = right.content.decode()
    assert LOCKED in page and "study coordinator or an administrator" in page and reader.username not in page
    assert int(right["Retry-After"]) == settings.AXES_COOLOFF_TIME.total_seconds()
    assert not _signed_in(client)


def test_another_reader_behind_the_same_address_still_signs_in(client, make_user):
    victim, colleague = make_user("reader"), make_user("reader")
    _fail(client, victim.username, 15)                                    # all from 127.0.0.1
    assert _login(client, colleague.username, PASSWORD).status_code == 302
    assert _signed_in(client)


def test_a_success_before_the_limit_clears_the_count(client, reader, settings):
    _fail(client, reader.username, settings.AXES_FAILURE_LIMIT - 1)
    assert _login(client, reader.username, PASSWORD).status_code == 302
    client.post("/logout/")
    assert [r.status_code for r in _fail(client, reader.username, settings.AXES_FAILURE_LIMIT - 1)] == \
        [200] * (settings.AXES_FAILURE_LIMIT - 1)                          # counted from zero again
    assert _login(client, reader.username, PASSWORD).status_code == 302


def _normalised(response, username: str) -> tuple[int, str]:
    """Status and page, without what differs by request anyway (the CSRF token, the username typed in)."""
    body = re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", response.content.decode())
    return response.status_code, body.replace(username, "USERNAME")


def test_the_answers_do_not_tell_whether_the_username_exists(client, reader, settings):
    n = settings.AXES_FAILURE_LIMIT + 2
    known = [_normalised(r, reader.username) for r in _fail(client, reader.username, n)]
    unknown = [_normalised(r, "nobody-here") for r in _fail(client, "nobody-here", n)]
    assert known == unknown
    assert _normalised(_login(client, reader.username, PASSWORD), reader.username) == \
        _normalised(_login(client, "nobody-here", PASSWORD), "nobody-here")   # locked, right password or not
    as_json = [_login(client, name, PASSWORD, HTTP_X_REQUESTED_WITH="XMLHttpRequest") for name in
               (reader.username, "nobody-here")]
    assert [r.status_code for r in as_json] == [429, 429]
    assert as_json[0].json() == as_json[1].json() and as_json[0].json()["locked"] is True
    assert LOCKED in as_json[0].json()["detail"]


def test_the_django_admin_login_is_locked_too(client, coordinator, settings):
    answers = _fail(client, coordinator.username, settings.AXES_FAILURE_LIMIT, path="/admin/login/")
    assert answers[0].status_code == 200 and answers[-1].status_code == 429
    right = _login(client, coordinator.username, PASSWORD, path="/admin/login/?next=/admin/")
    assert right.status_code == 429 and LOCKED in right.content.decode()
    assert client.get("/admin/").status_code == 302                       # still signed out


def test_a_locked_account_also_counts_at_the_login_page(client, coordinator, settings):
    _fail(client, coordinator.username, settings.AXES_FAILURE_LIMIT, path="/admin/login/")
    assert _login(client, coordinator.username, PASSWORD).status_code == 429   # one count for every login


def test_many_failures_from_one_address_lock_that_address_only(client, reader, settings):
    settings.AXES_ADDRESS_FAILURE_LIMIT = 5                               # a password spray: one try per name
    for i in range(5):
        _fail(client, f"guess{i}", 1, REMOTE_ADDR="10.0.0.9")
    assert _login(client, reader.username, PASSWORD, REMOTE_ADDR="10.0.0.9").status_code == 429
    assert _login(client, reader.username, PASSWORD, REMOTE_ADDR="10.0.0.10").status_code == 302


def test_the_address_limit_can_be_switched_off(client, reader, settings):
    settings.AXES_ADDRESS_FAILURE_LIMIT = 0
    for i in range(12):
        _fail(client, f"guess{i}", 1)
    assert _login(client, reader.username, PASSWORD).status_code == 302


def test_the_client_address_comes_from_trusted_proxies_only(settings):
    rf = RequestFactory()
    forwarded = {"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.7"}
    settings.PROXY_COUNT = 0
    assert client_ip(rf.get("/", **forwarded)) == "127.0.0.1"             # the header is not trusted
    settings.PROXY_COUNT = 1
    assert client_ip(rf.get("/", **forwarded)) == "203.0.113.7"           # what our proxy appended
    assert client_ip(rf.get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="not-an-address")) == "127.0.0.1"


# --- unlocking ----------------------------------------------------------------------------------------

def test_user_unlock_lets_the_reader_in_again_and_is_audited(client, reader, coordinator, settings):
    _fail(client, reader.username, settings.AXES_FAILURE_LIMIT)
    assert _login(client, reader.username, PASSWORD).status_code == 429
    assert services.user_unlock(user=reader, by=coordinator) >= 1
    entry = LogEntry.objects.get(object_id=str(reader.pk))
    assert entry.user == coordinator and "Unlocked sign-in" in entry.change_message
    assert _login(client, reader.username, PASSWORD).status_code == 302


def test_only_an_admin_unlocks_a_coordinator(make_user):
    coordinator, other, admin = make_user("coordinator"), make_user("coordinator"), make_user("admin")
    reader = make_user("reader")
    with pytest.raises(PermissionDenied, match="only an admin"):
        services.user_unlock(user=other, by=coordinator)
    with pytest.raises(PermissionDenied, match="for coordinators and admins"):
        services.user_unlock(user=other, by=reader)
    services.user_unlock(user=other, by=admin)
    assert not LogEntry.objects.filter(user=coordinator).exists()         # the refused ones left no trace
    assert LogEntry.objects.filter(user=admin, object_id=str(other.pk)).exists()


def test_the_axes_command_unlocks_by_username(client, reader, settings):
    _fail(client, reader.username, settings.AXES_FAILURE_LIMIT)
    out = io.StringIO()
    call_command("axes_reset_username", reader.username, stdout=out)
    assert "attempts removed" in out.getvalue()
    assert _login(client, reader.username, PASSWORD).status_code == 302


def test_the_locked_accounts_page_lists_and_unlocks(client, make_user, settings):
    reader, coordinator, colleague = make_user("reader"), make_user("coordinator"), make_user("coordinator")
    _fail(client, reader.username, settings.AXES_FAILURE_LIMIT)
    _fail(client, colleague.username, settings.AXES_FAILURE_LIMIT)
    _fail(client, "nobody-here", settings.AXES_FAILURE_LIMIT)
    client.force_login(coordinator)
    page = client.get("/accounts/locked/").content.decode()
    assert reader.username in page
    assert colleague.username not in page and "nobody-here" not in page   # a coordinator's; an unknown name
    assert "Locked accounts" in client.get("/coordinator/").content.decode()
    assert client.post(f"/accounts/{colleague.pk}/unlock/").status_code == 403
    response = client.post(f"/accounts/{reader.pk}/unlock/")
    assert response.status_code == 302 and response.url == "/accounts/locked/"
    assert client.get("/accounts/locked/").context["rows"] == []
    client.logout()
    assert _login(client, reader.username, PASSWORD).status_code == 302
    assert client.get("/accounts/locked/").status_code == 403             # readers unlock no one


def test_an_admin_sees_every_locked_account(client, make_user, settings):
    colleague, admin = make_user("coordinator"), make_user("admin")
    _fail(client, colleague.username, settings.AXES_FAILURE_LIMIT)
    client.force_login(admin)
    assert colleague.username in client.get("/accounts/locked/").content.decode()


# --- the API's rate limits ------------------------------------------------------------------------------

def _rates(settings, **rates):
    """DRF re-reads REST_FRAMEWORK when the setting changes, and core.throttling reads the rates each time."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                                          **rates}}


def test_a_user_over_the_rate_gets_429_with_retry_after(client, coordinator, settings):
    _rates(settings, user="2/min")
    client.force_login(coordinator)
    assert [client.get("/api/jobs/").status_code for _ in range(2)] == [200, 200]
    throttled = client.get("/api/jobs/")
    assert throttled.status_code == 429
    assert 0 < int(throttled["Retry-After"]) <= 60


def test_the_rate_is_per_user_not_per_address(client, make_user, settings):
    _rates(settings, user="2/min")
    first, second = make_user("coordinator"), make_user("coordinator")
    client.force_login(first)
    for _ in range(2):
        client.get("/api/jobs/")
    assert client.get("/api/jobs/").status_code == 429
    client.force_login(second)                                             # same 127.0.0.1
    assert client.get("/api/jobs/").status_code == 200


class _Open(APIView):
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"ok": True})


def test_a_visitor_over_the_anonymous_rate_gets_429(settings):
    _rates(settings, anon="1/min")
    view, rf = _Open.as_view(), APIRequestFactory()
    assert view(rf.get("/api/open/")).status_code == 200
    throttled = view(rf.get("/api/open/"))
    assert throttled.status_code == 429 and "Retry-After" in throttled
    assert view(rf.get("/api/open/", REMOTE_ADDR="10.1.2.3")).status_code == 200   # another address


class _Scoped(APIView):
    permission_classes = [AllowAny]
    throttle_scope = "export"

    def get(self, request):
        return Response({"ok": True})


def test_a_views_scoped_rate_is_counted_apart(settings):
    _rates(settings, export="2/min")
    view, rf = _Scoped.as_view(), APIRequestFactory()
    answers = [view(rf.get("/api/scoped/", REMOTE_ADDR="10.9.9.9")) for _ in range(3)]
    assert [r.status_code for r in answers] == [200, 200, 429]
    assert 0 < int(answers[-1]["Retry-After"]) <= 60
    assert view(rf.get("/api/open/", REMOTE_ADDR="10.9.9.9")).status_code == 429   # per view scope, not path
    assert _Open.as_view()(rf.get("/api/open/", REMOTE_ADDR="10.9.9.9")).status_code == 200   # no scope


def test_the_count_starts_again_in_the_next_window(client, coordinator, settings, monkeypatch):
    _rates(settings, user="2/min")
    client.force_login(coordinator)
    clock = [600.0]                                                # the start of a one-minute window
    monkeypatch.setattr(throttling.UserRateThrottle, "timer", lambda self: clock[0])
    assert [client.get("/api/jobs/").status_code for _ in range(3)] == [200, 200, 429]
    clock[0] = 659.5
    throttled = client.get("/api/jobs/")
    assert throttled.status_code == 429 and throttled["Retry-After"] == "1"   # half a second left
    clock[0] = 660.0
    assert client.get("/api/jobs/").status_code == 200


def test_default_rates_leave_room_for_the_reading_workflow(settings):
    rates = settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]
    count, period = rates["user"].split("/")
    assert period.startswith("m") and int(count) >= 600      # a reader sends a few requests per second at most
    assert settings.REST_FRAMEWORK["NUM_PROXIES"] == settings.PROXY_COUNT   # X-Forwarded-For is not trusted


class _DownCache:
    """A cache whose server is unreachable (Redis restarting)."""

    def get(self, *args, **kwargs):
        raise ConnectionError("cache server unreachable")

    set = add = incr = count = get


def test_an_unreachable_cache_lets_requests_through(client, coordinator, settings, monkeypatch, caplog):
    _rates(settings, user="1/min")
    monkeypatch.setattr(throttling, "default_cache", _DownCache())
    client.force_login(coordinator)
    assert [client.get("/api/jobs/").status_code for _ in range(3)] == [200, 200, 200]
    assert "API rate limit skipped: cache unreachable" in caplog.text
