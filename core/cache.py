"""Django's Redis cache, with one Redis client per connection pool instead of one per cache call.

Why: Django's ``RedisCacheClient.get_client`` builds a new ``redis.Redis`` for every get, set and delete, and
redis-py fills a ~170-entry table of response callbacks in each constructor. A reader's request makes two to
four cache calls (session, user, API rate limit), and profiling the read path showed the constructors at
about 0.1 ms each: a tenth of a millisecond per call spent on bookkeeping (docs/production.md, *Read path*).
A ``redis.Redis`` is safe to share between threads (each command takes a connection from the pool), and the
pool itself re-opens its connections in a forked child, so one client per pool is enough.

``count`` (used by the API's rate limits, ``core.throttling``) counts a request in a window in one round trip
where Django's cache API needs two (``add`` then ``incr``, which itself asks ``EXISTS`` first: three).
"""

from __future__ import annotations

from django.core.cache.backends.redis import RedisCache, RedisCacheClient


class SharedClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        pool = self._get_connection_pool(write)       # Django's choice of server (primary or a replica)
        client = self._clients.get(id(pool))
        if client is None:
            client = self._clients[id(pool)] = self._client(connection_pool=pool)
        return client


class SharedClientRedisCache(RedisCache):
    """``django.core.cache.backends.redis.RedisCache`` with `SharedClientRedisCacheClient`."""

    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = SharedClientRedisCacheClient

    def count(self, key: str, timeout: int) -> int:
        """Add one to the counter ``key`` (created at 0 with ``timeout`` seconds to live) and return it."""
        key = self.make_and_validate_key(key)
        client = self._cache.get_client(key, write=True)
        # MULTI/EXEC: still one round trip, and the key cannot expire between the two (an INCR alone would
        # create it again without an expiry)
        _, value = client.pipeline(transaction=True).set(key, 0, ex=timeout, nx=True).incr(key).execute()
        return value


def count(cache, key: str, timeout: int) -> int:
    """``cache``'s counter ``key`` plus one (created at 0, ``timeout`` seconds to live): one round trip on
    Redis (``SharedClientRedisCache.count``), ``add`` + ``incr`` on any other cache (tests, no Redis)."""
    if hasattr(cache, "count"):
        return cache.count(key, timeout)
    cache.add(key, 0, timeout)
    return cache.incr(key)
