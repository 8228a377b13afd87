"""API rate limits: DRF's throttles, reading their rates per request and never making the cache a dependency.

Three changes to DRF's own classes (settings.REST_FRAMEWORK, ``DEFAULT_THROTTLE_CLASSES``):

* DRF copies ``DEFAULT_THROTTLE_RATES`` into a class attribute once, at import, so a changed setting (a test's
  ``settings.REST_FRAMEWORK = {...}``, which DRF's ``api_settings`` does reload) never reached the throttles.
  These read ``api_settings`` each time.
* DRF keeps each user's history of request times (up to the rate: 2,000 timestamps) in the cache and reads
  and writes the whole list on every request: two round trips and a pickle that grows with use. These count
  requests per fixed window instead (a counter per user and window, one round trip on Redis:
  ``core.cache.count``). A client can then send up to twice the rate across a window's edge; the rates are
  a guard far above what a reader's browser sends, so that is accepted for the cheaper check.
* The counters live in the default cache (Redis in production). While Redis is unreachable a throttle
  lets the request through (one warning in the log) instead of failing it: like the cached user
  (``accounts.backends``), the cache is a speed-up and a guard, never a dependency of the API.

A throttled request is answered 429 with ``Retry-After`` (DRF's ``Throttled``). docs/security.md, *Login
throttling*.
"""

from __future__ import annotations

import logging

from django.core.cache import cache as default_cache
from rest_framework import throttling
from rest_framework.settings import api_settings

from core.cache import count

log = logging.getLogger(__name__)


def _count(key: str, timeout: int) -> int | None:
    """The request counted in the default cache; None where the cache server cannot be reached."""
    try:
        return count(default_cache, key, timeout)
    except Exception as exc:  # noqa: BLE001 - any cache failure: not counted, the request passes
        log.warning("API rate limit skipped: cache unreachable (%s)", type(exc).__name__)
        return None


class _LiveRates:
    @property
    def THROTTLE_RATES(self):  # DRF's name
        return api_settings.DEFAULT_THROTTLE_RATES


class _FixedWindow(throttling.SimpleRateThrottle):
    """A count per fixed window instead of DRF's history of timestamps (see the module's doc). It replaces
    ``SimpleRateThrottle.allow_request``, so DRF's scoped throttle still picks its rate first and calls it."""

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_ends = (window + 1) * self.duration
        counted = _count(f"{self.key}:{window}", self.duration)
        return counted is None or counted <= self.num_requests

    def wait(self) -> float:
        """Seconds until the window ends (DRF's Retry-After)."""
        return max(0.0, self.window_ends - self.now)


class AnonRateThrottle(_LiveRates, throttling.AnonRateThrottle, _FixedWindow):
    """Visitors, per address (``NUM_PROXIES``: the proxies trusted to name it in X-Forwarded-For). DRF checks
    permissions first, so this counts only what a visitor may use at all (the login-only API answers 403)."""


class UserRateThrottle(_LiveRates, throttling.UserRateThrottle, _FixedWindow):
    """Signed-in users, per user: readers behind one hospital NAT are counted apart."""


class ScopedRateThrottle(_LiveRates, throttling.ScopedRateThrottle, _FixedWindow):
    """A view's own tighter limit: ``throttle_scope = "name"`` and a rate under that name."""
