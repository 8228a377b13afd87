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
