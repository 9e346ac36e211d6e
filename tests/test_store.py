"""Both store backends behave the same: put/get/scan/expiry/delete, change stream, log."""

from __future__ import annotations

import asyncio

import pytest

from gslb.store import RESYNC, MemoryStore, StoreError, open_store
from gslb.store.redis import RedisStore
from tests.support.procs import free_port, redis_server


@pytest.fixture(params=["memory", "redis"])
def store_url(request, redis_url):
    return "memory://" if request.param == "memory" else redis_url


def run(coro):
    return asyncio.run(coro)


def test_put_get_scan_delete(store_url):
    async def body():
        store = open_store(store_url)
        await store.put("t1", "a", {"x": 1})
        await store.put("t1", "b", {"x": 2})
        await store.put("t2", "a", {"y": 3})
        assert await store.get("t1", "a") == {"x": 1}
        assert await store.scan("t1") == {"a": {"x": 1}, "b": {"x": 2}}
        await store.delete("t1", "a")
        assert await store.get("t1", "a") is None
        assert await store.scan("t1") == {"b": {"x": 2}}
        await store.delete("t1", "b")
        await store.delete("t2", "a")
        await store.close()

    run(body())


def test_ttl_expires(store_url):
    async def body():
        store = open_store(store_url)
        await store.put("ttl", "k", {"v": 1}, ttl=0.2)
        assert await store.get("ttl", "k") == {"v": 1}
        await asyncio.sleep(0.35)
        assert await store.get("ttl", "k") is None
        assert await store.scan("ttl") == {}
        await store.close()

    run(body())


def test_changes_are_pushed_to_other_clients(store_url):
    async def body():
        writer = open_store(store_url)
        reader = writer if isinstance(writer, MemoryStore) else open_store(store_url)
        stream = reader.changes()
        seen = []

        async def consume():
            async for change in stream:
                if change == RESYNC:
                    subscribed.set()
                    continue
                seen.append(change)
                if len(seen) == 2:
                    return

        subscribed = asyncio.Event()
        task = asyncio.create_task(consume())
        await asyncio.wait_for(subscribed.wait(), 5)
        await writer.put("push", "k", {"v": 1})
        await writer.delete("push", "k")
        await asyncio.wait_for(task, 5)
        assert [(c.space, c.key, c.value) for c in seen] == [("push", "k", {"v": 1}), ("push", "k", None)]
        await writer.close()
        await reader.close()

    run(body())


def test_log_keeps_order(store_url):
    async def body():
        store = open_store(store_url)
        for i in range(5):
            await store.log({"i": i, "kind": "test"})
        rows = [r["i"] for r in await store.recent(3) if r.get("kind") == "test"]
        assert rows == [2, 3, 4]
        await store.close()

    run(body())


def test_unreachable_redis_raises_store_error_naming_the_url():
    port = free_port()

    async def body():
        store = open_store(f"redis://127.0.0.1:{port}/0")
        with pytest.raises(StoreError, match=f"127.0.0.1:{port}"):
            await store.put("x", "y", {})
        assert await store.ping() is False

    run(body())


def test_subscription_survives_a_redis_restart():
    """A reader keeps its stream across a server restart and is told to resync."""

    async def body(url_holder):
        store = RedisStore(url_holder["url"])
        stream = store.changes()
        got = []

        async def consume():
            async for change in stream:
                got.append(change)
                if change.space == "after":
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        url_holder["restart"]()
        writer = RedisStore(url_holder["url"])
        for _ in range(100):
            try:
                await writer.put("after", "k", {"v": 1})
                if got and got[-1].space == "after":
                    break
            except StoreError:
                pass
            await asyncio.sleep(0.1)
            if task.done():
                break
        await asyncio.wait_for(task, 10)
        assert got.count(RESYNC) >= 2  # once when subscribed, again after the restart
        await store.close()
        await writer.close()

    port = free_port()
    ctx = redis_server(port)
    holder = {"url": ctx.__enter__()}

    def restart():
        nonlocal ctx
        ctx.__exit__(None, None, None)
        ctx = redis_server(port)
        ctx.__enter__()

    holder["restart"] = restart
    try:
        run(body(holder))
    finally:
        ctx.__exit__(None, None, None)


def test_unknown_url_scheme_is_rejected():
    with pytest.raises(StoreError, match="unknown store URL"):
        open_store("mongodb://x")


def test_history_is_kept_bounded_and_read_by_time(store_url):
    """Both backends: append/read by time, MAXLEN and max_age bounds, series listing (names with
    glob characters included), and the points that puts leave (probe, node, BGP changes only)."""
    import time

    from gslb.store import NODE, OVERRIDE, PROBE, SITE

    async def body():
        store = open_store(store_url)
        if store_url.startswith("redis"):
            import redis

            redis.Redis.from_url(store_url).flushdb()
        now = time.time()
        for i in range(300):
            await store.append_history("t|bounded", {"t": now - 300 + i, "i": i}, maxlen=10)
        points = await store.history("t|bounded")
        # memory keeps exactly 10; Redis's MAXLEN ~ drops whole stream nodes (100 entries each)
        assert 10 <= len(points) <= 110 and points[-1]["i"] == 299
        assert len(points) == 10 or store_url.startswith("redis")
        assert [p["i"] for p in points] == sorted(p["i"] for p in points)
        assert [p["i"] for p in await store.history("t|bounded", since=now - 3)] == [297, 298, 299]
        assert [p["i"] for p in await store.history("t|bounded", limit=2)] == [298, 299]
        await store.append_history("t|old", {"t": now - 100}, max_age=10)
        await store.append_history("t|old", {"t": now}, max_age=10)
        assert [p["t"] for p in await store.history("t|old")] == [now] or store_url.startswith("redis")
        assert [p["t"] for p in await store.history("t|old", since=now - 10)] == [now]

        check = "http://[2001:db8::1]:80/health"  # '[' and ']' are glob characters for Redis SCAN
        for i in range(3):
            await store.put(PROBE, f"eu-west|{check}", {
                "region": "eu-west", "check": check, "up": i != 1, "rtt_ms": 1.5 + i, "checked_at": now + i,
                "expires_at": now + i + 3, "error": "" if i != 1 else "connection refused"}, ttl=10, notify=i == 0)
        rtt = await store.history(f"probe|eu-west|{check}")
        assert [(p["up"], p["rtt_ms"]) for p in rtt] == [(True, 1.5), (False, 2.5), (True, 3.5)]
        assert rtt[1]["error"] == "connection refused" and rtt[0]["exp"] == now + 3
        await store.put(NODE, "ns1", {"time": now, "qps": 2.5, "queries": 10, "by_rcode": {"NOERROR": 10}})
        assert (await store.history("node|ns1"))[0]["by_rcode"] == {"NOERROR": 10}
        for state in ("announced", "announced", "withdrawn", "withdrawn"):
            await store.put(SITE, "ams", {"site": "ams", "time": time.time(), "healthy": True, "peers": {},
                                          "prefixes": {"203.0.113.0/24": {"state": state, "reason": "x"}}})
        await store.delete(SITE, "ams")
        bgp = await store.history("bgp|ams")
        assert [p["prefixes"].get("203.0.113.0/24") for p in bgp] == ["announced", "withdrawn", None]
        assert bgp[-1]["gone"] is True
        await store.put(OVERRIDE, check, {"status": "down"})
        await store.put(OVERRIDE, check, {"status": "down"})  # the same again: no new point
        await store.delete(OVERRIDE, check)
        assert [p["status"] for p in await store.history(f"override|{check}")] == ["down", None]
        assert await store.history_series("probe|") == [f"probe|eu-west|{check}"]
        assert set(await store.history_series()) >= {"t|bounded", "node|ns1", "bgp|ams", f"probe|eu-west|{check}"}
        await store.close()

    run(body())
