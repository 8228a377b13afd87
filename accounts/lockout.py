"""Login lockout with django-axes: what is counted, what a locked-out visitor sees, the client's address.

django-axes (settings: ``AXES_*``) records every failed login of the login page, the Django admin's login and
anything else that calls ``authenticate(request, ...)``, and its backend (first in
``AUTHENTICATION_BACKENDS``) refuses a locked-out login before any password is checked. Here:

* ``AccountAndAddressHandler``: axes' database handler counts failures per account (``AXES_LOCKOUT_PARAMETERS
  = ["username"]``); this adds a second, much higher limit per address (``AXES_ADDRESS_FAILURE_LIMIT``
  failures over all accounts within the cool-off: a password spray from one machine). Per address alone
  would lock a whole hospital behind one NAT out after one reader's typos.
* ``lockout_response``: the answer to a locked-out login, 429 + ``Retry-After``, an HTML page or JSON. It is
  the same whether the account exists or not (axes counts unknown usernames too) and names no username.
* ``client_ip``: ``REMOTE_ADDR``, or behind ``PROXY_COUNT`` trusted proxies the address they put in
  X-Forwarded-For (the same rule as the API's throttles, DRF's ``NUM_PROXIES``).

Unlocking: ``accounts.services.user_unlock`` (the *Locked accounts* page), axes' pages in the Django admin,
or ``manage.py axes_reset_username <name>`` / ``axes_reset_ip <address>``. docs/security.md, *Login
throttling*.
"""

from __future__ import annotations

import ipaddress
import logging
import math

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_cool_off
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import JsonResponse
from django.shortcuts import render

log = logging.getLogger(__name__)


def cool_off_seconds() -> int | None:
    """How long a lockout lasts after the last failure (None: until someone unlocks it)."""
    cool_off = get_cool_off()
    return int(cool_off.total_seconds()) if cool_off else None


def locked_message() -> str:
    """The one message of every lockout (account or address, known username or not)."""
    seconds = cool_off_seconds()
    if seconds is None:
        return ("Sign-in to this account is locked after too many failed attempts. Ask your study coordinator "
                "or an administrator to unlock it.")
    minutes = max(1, math.ceil(seconds / 60))
    return (f"Sign-in to this account is temporarily locked after too many failed attempts. Try again in "
            f"{minutes} minute{'s' if minutes != 1 else ''}, or ask your study coordinator or an administrator "
            f"to unlock it.")


def _wants_json(request) -> bool:
    accept = request.META.get("HTTP_ACCEPT", "")
    return (request.META.get("HTTP_X_REQUESTED_WITH") == "XMLHttpRequest" or request.path.startswith("/api/")
            or ("application/json" in accept and "text/html" not in accept))


def lockout_response(request, original_response=None, credentials=None):
    """``AXES_LOCKOUT_CALLABLE``: 429 with the lockout message; nothing about the account or the username."""
    message = locked_message()
    status = settings.AXES_HTTP_RESPONSE_CODE
    if _wants_json(request):
        response = JsonResponse({"detail": message, "locked": True}, status=status)
    else:
        response = render(request, "accounts/locked_out.html", {"message": message}, status=status)
    seconds = cool_off_seconds()
    if seconds:
        response["Retry-After"] = str(seconds)
    return response


def client_ip(request) -> str | None:
    """``AXES_CLIENT_IP_CALLABLE``: the client's address, never a made-up one from a forged header."""
    remote = request.META.get("REMOTE_ADDR")
    candidate = remote
    count = getattr(settings, "PROXY_COUNT", 0)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR")
    if count and forwarded:
        addresses = [a.strip() for a in forwarded.split(",")]
        candidate = addresses[-min(count, len(addresses))]
    for value in (candidate, remote):
        try:
            return str(ipaddress.ip_address(value or ""))
        except ValueError:
            continue
    return None


class AccountAndAddressHandler(AxesDatabaseHandler):
    """Axes' database handler (per account) plus a limit per address over all accounts."""

    def address_failures(self, request) -> int:
        attempts = AccessAttempt.objects.filter(ip_address=request.axes_ip_address)
        if get_cool_off(request) is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        return attempts.aggregate(n=Sum("failures_since_start"))["n"] or 0

    def address_locked(self, request) -> bool:
        limit = getattr(settings, "AXES_ADDRESS_FAILURE_LIMIT", 0)
        if not (limit and settings.AXES_LOCK_OUT_AT_FAILURE and getattr(request, "axes_ip_address", None)):
            return False
        return self.address_failures(request) >= limit

    def is_locked(self, request, credentials=None) -> bool:
        return super().is_locked(request, credentials) or self.address_locked(request)

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or getattr(request, "axes_locked_out", False) or self.is_whitelisted(request,
                                                                                                 credentials):
            return
        if self.address_locked(request):
            log.warning("AXES: locking out an address after %s failed logins over all accounts",
                        settings.AXES_ADDRESS_FAILURE_LIMIT)
            request.axes_locked_out = True
            request.axes_credentials = credentials
