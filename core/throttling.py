"""API rate limits: DRF's throttles, reading their rates per request and never making the cache a dependency.

Two changes to DRF's own classes (settings.REST_FRAMEWORK, ``DEFAULT_THROTTLE_CLASSES``):

* DRF copies ``DEFAULT_THROTTLE_RATES`` into a class attribute once, at import, so a changed setting (a test's
  ``settings.REST_FRAMEWORK = {...}``, which DRF's ``api_settings`` does reload) never reached the throttles.
  These read ``api_settings`` each time.
* The request history lives in the default cache (Redis in production). While Redis is unreachable a throttle
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

log = logging.getLogger(__name__)


class _FailOpenCache:
    """The default cache, but a cache server that cannot be reached reads as an empty history."""

    def get(self, key, default=None):
        try:
            return default_cache.get(key, default)
        except Exception as exc:  # noqa: BLE001 - any cache failure: no history, the request passes
            log.warning("API rate limit skipped: cache unreachable (%s)", type(exc).__name__)
            return default

    def set(self, key, value, timeout=None):
        try:
            default_cache.set(key, value, timeout)
        except Exception:  # noqa: BLE001, S110 - not recorded this time; get() has logged it
            pass


class _LiveRates:
    cache = _FailOpenCache()

    @property
    def THROTTLE_RATES(self):  # DRF's name
        return api_settings.DEFAULT_THROTTLE_RATES


class AnonRateThrottle(_LiveRates, throttling.AnonRateThrottle):
    """Visitors, per address (``NUM_PROXIES``: the proxies trusted to name it in X-Forwarded-For). DRF checks
    permissions first, so this counts only what a visitor may use at all (the login-only API answers 403)."""


class UserRateThrottle(_LiveRates, throttling.UserRateThrottle):
    """Signed-in users, per user: readers behind one hospital NAT are counted apart."""


class ScopedRateThrottle(_LiveRates, throttling.ScopedRateThrottle):
    """A view's own tighter limit: ``throttle_scope = "name"`` and a rate under that name."""
