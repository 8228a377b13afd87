"""The signed-in user of each request, read from the shared cache instead of the database.

Why our own backend: every request of a reader (page, case, three volumes, a ping, an answer — seven per case)
loaded the user and then the user's roles with two queries, about a fifth of the read path's queries and
server time (docs/production.md, *Read path*). Django has no cached user backend, and the third-party ones
cache the bare user without its groups. This one keeps the user row *and* its role names (what
``accounts.roles`` asks) under one cache key for ``USER_CACHE_SECONDS``.

It is switched on only where the cache is shared by every process (Redis, ``settings.USER_CACHE``): a
per-process cache could not be cleared from another process. A change to the user or to its groups clears
the entry at once (``accounts.signals``: saving a user — a new password, deactivation, the admin's form —
or changing its groups); what bypasses the ORM (SQL by hand, deleting a whole group) takes effect within
``USER_CACHE_SECONDS``. Django still checks the session's password hash against the cached user, so a new
password ends the old sessions as before.

The cache is a speed-up, never a dependency: while Redis is unreachable the user comes from the database
as before (one warning in the log), and a clearing that could not reach Redis is bounded by the same
``USER_CACHE_SECONDS``. Sessions follow the same rules (``accounts.sessions``): the database is their record,
and their cached copy lives that minute at most.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.core.cache import cache
from django.db import transaction

USER_CACHE_SECONDS = 60
_KEY = "accounts.user.v1.{}"
log = logging.getLogger(__name__)


def user_cache_key(user_id) -> str:
    return _KEY.format(user_id)


def user_cache_clear(user_id) -> None:
    """Forget the cached copy of one user (the next request reads the database again), now and, inside a
    transaction, once more when it commits: a request that read the user between the change and the commit
    would otherwise have stored the old row and roles for the whole minute."""
    if not getattr(settings, "USER_CACHE", False):
        return
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _forget(user_id))
    _forget(user_id)


def _forget(user_id) -> None:
    try:
        cache.delete(user_cache_key(user_id))
    except Exception as exc:  # noqa: BLE001 - any cache failure: the entry expires by itself
        log.warning("cached user %s not cleared (%s); it expires within %s s", user_id, type(exc).__name__,
                    USER_CACHE_SECONDS)


class CachedUserBackend(ModelBackend):
    """``ModelBackend`` (passwords, permissions) whose ``get_user`` reads the shared cache first."""

    def get_user(self, user_id):
        if not getattr(settings, "USER_CACHE", False):
            return super().get_user(user_id)
        key = user_cache_key(user_id)
        try:
            user = cache.get(key)
        except Exception as exc:  # noqa: BLE001 - the cache is down: the database answers, as without it
            log.warning("user cache unreachable (%s): reading the user from the database", type(exc).__name__)
            return super().get_user(user_id)
        if user is None:
            user = super().get_user(user_id)    # None for an unknown or inactive user: not cached
            if user is None:
                return None
            user._role_names = set(user.groups.values_list("name", flat=True))
            try:
                cache.set(key, user, USER_CACHE_SECONDS)
            except Exception:  # noqa: BLE001, S110 - not cached this time; the next request tries again
                pass
        return user
