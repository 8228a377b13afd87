"""The Redis cache with one shared client per connection pool (core.cache), against a real Redis."""

import threading

import pytest

from core.cache import SharedClientRedisCache
from testsupport import redis_available

REDIS_URL = "redis://127.0.0.1:6379/14"
pytestmark = pytest.mark.skipif(not redis_available(REDIS_URL), reason=f"Redis is not running at {REDIS_URL}")


@pytest.fixture
def cache():
    cache = SharedClientRedisCache(REDIS_URL, {"KEY_PREFIX": "core-cache-test"})
    yield cache
    cache.clear()


def test_one_client_serves_every_call(cache):
    assert cache._cache.get_client("a") is cache._cache.get_client("b", write=True)
    cache.set("k", {"v": 1}, 30)
    assert cache.get("k") == {"v": 1}
    cache.delete_many(["k"])
    assert cache.get("k") is None


def test_the_shared_client_is_safe_across_threads(cache):
    errors, clients = [], []

    def work(n):
        clients.append(cache._cache.get_client(f"t{n}"))
        try:
            for i in range(50):
                cache.set(f"t{n}-{i}", i, 30)
                assert cache.get(f"t{n}-{i}") == i
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(client is clients[0] for client in clients)         # one client served every thread


def test_count_counts_in_one_round_trip_and_expires_with_the_window(cache):
    from core.cache import count

    sent = []
    client = cache._cache.get_client("w", write=True)
    real = client.connection_pool.get_connection

    def counting(*args, **kwargs):
        sent.append(1)
        return real(*args, **kwargs)

    client.connection_pool.get_connection = counting
    try:
        assert [count(cache, "w", 30) for _ in range(3)] == [1, 2, 3]
    finally:
        client.connection_pool.get_connection = real
    assert len(sent) == 3                                    # one connection use (one pipeline) per count
    assert cache.get("w") == 3                               # Django's get reads the counter
    assert 0 < client.ttl(cache.make_and_validate_key("w")) <= 30   # set once, not pushed back by each count


def test_count_on_another_cache_uses_add_and_incr():
    from django.core.cache.backends.locmem import LocMemCache

    from core.cache import count

    local = LocMemCache("count-test", {})
    assert [count(local, "w", 30) for _ in range(3)] == [1, 2, 3]
