"""Sessions read from the shared cache, written through to the database, cached for one minute at most.

Why our own store: every request of a reader (seven per case) read its session row from PostgreSQL, a
sixth of the read path's queries (docs/production.md, *Read path*). Django's ``cached_db`` store removes that
query but caches each session for its whole life (12 hours here) and lets a cache error fail the request on
reads and deletes. Two consequences we do not accept:

* a sign-out while Redis is unreachable deletes the row but not the cached copy, which would come back with
  Redis and keep the session alive for hours;
* a Redis outage would turn every request into a 500.

This store is ``cached_db`` with the same rules as the cached user (``accounts.backends``): the cached copy
lives ``USER_CACHE_SECONDS`` at most, so whatever the cache missed (a sign-out, a save, a row deleted behind
the ORM's back) takes effect within that bound; and the cache is a speed-up, never a dependency: an
unreachable cache is read as a miss (the database answers; a warning in the log) and a failed write or
delete is logged and bounded by the same minute. A sign-out leaves an *ended* marker in the cache for that
minute instead of deleting the copy, and a copy read from the database is cached with ``cache.add``, so a
request that read the row just before the sign-out cannot put the session back. The async methods run the
sync ones, so both paths keep these rules. The database stays the record, so a session survives a cache
flush or restart. ``settings.SESSION_ENGINE`` selects it only where the cache is shared (``USER_CACHE``).
"""

from __future__ import annotations

import logging

from asgiref.sync import sync_to_async
from django.contrib.sessions.backends import cached_db

from accounts.backends import USER_CACHE_SECONDS

log = logging.getLogger(__name__)
_ENDED = "accounts.session.ended"      # the marker a sign-out leaves for the minute


class SessionStore(cached_db.SessionStore):
    cache_key_prefix = "accounts.session.v1."

    def _cache_seconds(self, **expiry) -> int:
        return max(0, min(USER_CACHE_SECONDS, self.get_expiry_age(**expiry)))

    def _cache_get(self):
        try:
            return self._cache.get(self.cache_key)
        except Exception as exc:  # noqa: BLE001 - unreachable cache or invalid key: the database answers
            log.warning("session cache unreachable (%s): reading the session from the database",
                        type(exc).__name__)
            return None

    def _cache_put(self, data, seconds: int, *, replace: bool) -> None:
        try:
            (self._cache.set if replace else self._cache.add)(self.cache_key, data, seconds)
        except Exception as exc:  # noqa: BLE001 - not cached; a stale copy expires by itself
            log.warning("session not cached (%s); any older copy expires within %s s", type(exc).__name__,
                        USER_CACHE_SECONDS)

    def load(self):
        data = self._cache_get()
        if data == _ENDED:                       # signed out within the minute
            self._session_key = None
            return {}
        if data is not None:
            return data
        row = self._get_session_from_db()
        if not row:
            return {}
        data = self.decode(row.session_data)
        self._cache_put(data, self._cache_seconds(expiry=row.expire_date), replace=False)
        return data

    def exists(self, session_key):
        return super(cached_db.SessionStore, self).exists(session_key)   # the database: the record

    def save(self, must_create=False):
        super(cached_db.SessionStore, self).save(must_create)   # a deleted session fails here (UpdateError)
        self._cache_put(self._session, self._cache_seconds(), replace=True)

    def delete(self, session_key=None):
        super(cached_db.SessionStore, self).delete(session_key)
        session_key = session_key or self.session_key
        if session_key is None:
            return
        try:
            self._cache.set(self.cache_key_prefix + session_key, _ENDED, USER_CACHE_SECONDS)
        except Exception as exc:  # noqa: BLE001 - the row is gone; the cached copy expires by itself
            log.warning("signed-out session still cached (%s); it expires within %s s", type(exc).__name__,
                        USER_CACHE_SECONDS)

    async def aload(self):
        return await sync_to_async(self.load)()

    async def aexists(self, session_key):
        return await sync_to_async(self.exists)(session_key)

    async def asave(self, must_create=False):
        await sync_to_async(self.save)(must_create)

    async def adelete(self, session_key=None):
        await sync_to_async(self.delete)(session_key)
