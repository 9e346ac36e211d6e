"""Probe checks and the agent against real servers on loopback."""

from __future__ import annotations

import asyncio
import time

import pytest

from gslb.health import Verdict
from gslb.health.reader import read_view
from gslb.policy.checks import CheckSpec
from gslb.probe import checks
from gslb.probe.agent import ProbeAgent
from gslb.probe.hysteresis import Hysteresis
from gslb.store import PROBE, REGION, MemoryStore, open_store
from tests.support.endpoints import Endpoint, free_port_on, self_signed_context


def spec(protocol: str, address: str, port: int, **kw) -> CheckSpec:
    base = dict(protocol=protocol, address=address, port=port, path="/health" if protocol != "tcp" else "",
                host="www.example.com" if protocol != "tcp" else "", interval=0.1, timeout=1.0, rise=2, fall=2,
                expect_status=(), body_match=None)
    base.update(kw)
    return CheckSpec(**base)


@pytest.fixture
def endpoint():
    ep = Endpoint("127.0.0.31", free_port_on("127.0.0.31")).start()
    yield ep
    ep.stop()


def run(coro):
    return asyncio.run(coro)


def test_tcp_check_up_and_refused():
    ep = Endpoint("127.0.0.32", free_port_on("127.0.0.32")).start()
    r = run(checks.run(spec("tcp", ep.address, ep.port)))
    assert r.ok and r.rtt_ms is not None and r.rtt_ms < 100
    ep.stop()
    r = run(checks.run(spec("tcp", ep.address, ep.port)))
    assert not r.ok
    assert f"tcp connect 127.0.0.32:{ep.port}" in r.error and "refused" in r.error.lower()


def test_http_status_body_and_host(endpoint):
    ok = run(checks.run(spec("http", endpoint.address, endpoint.port)))
    assert ok.ok
    assert endpoint.hosts[-1] == "www.example.com"
    endpoint.status = 503
    bad = run(checks.run(spec("http", endpoint.address, endpoint.port)))
    assert not bad.ok and "status 503, expected 2xx or 3xx" in bad.error
    endpoint.status = 200
    endpoint.body = b"maintenance"
    bad = run(checks.run(spec("http", endpoint.address, endpoint.port, body_match="^ok")))
    assert not bad.ok and "body does not match" in bad.error
    endpoint.status = 204
    bad = run(checks.run(spec("http", endpoint.address, endpoint.port, expect_status=(200,))))
    assert not bad.ok and "status 204, expected 200" in bad.error


def test_https_handshake_with_sni():
    ep = Endpoint("127.0.0.33", free_port_on("127.0.0.33"), tls=self_signed_context()).start()
    try:
        r = run(checks.run(spec("https", ep.address, ep.port)))
        assert r.ok, r.error
        assert ep.sni[-1] == "www.example.com"
        r = run(checks.run(spec("http", ep.address, ep.port)))  # plain HTTP to a TLS port fails
        assert not r.ok
    finally:
        ep.stop()


def test_timeout_is_reported():
    # A listening socket that never accepts beyond its backlog would still connect; use a port
    # that drops SYNs instead: an unroutable documentation address is not allowed, so we time
    # out on a server that accepts but never answers HTTP.
    import socket

    srv = socket.socket()
    srv.bind(("127.0.0.34", 0))
    srv.listen(8)
    try:
        r = run(checks.run(spec("http", "127.0.0.34", srv.getsockname()[1], timeout=0.3)))
        assert not r.ok and "timeout after 0.3s" in r.error
    finally:
        srv.close()


def test_hysteresis_counts():
    h = Hysteresis(rise=3, fall=2)
    assert h.observe(True) and h.up  # the first result decides
    assert not h.observe(False) and h.up
    assert h.observe(False) and not h.up  # 2 failures
    assert not h.observe(True) and not h.observe(True)
    assert not h.up
    assert h.observe(True) and h.up  # 3 successes
    assert not h.observe(False) and not h.observe(True) and h.up  # a single blip resets


def test_agent_publishes_verdicts_and_follows_an_endpoint(endpoint):
    async def body():
        store = MemoryStore()
        s = spec("http", endpoint.address, endpoint.port)
        agent = ProbeAgent("test-region", store, [s], heartbeat=0.2)
        task = asyncio.ensure_future(agent.run())

        async def verdict() -> Verdict | None:
            doc = await store.get(PROBE, f"test-region|{s.key}")
            return Verdict.from_doc(doc) if doc else None

        for _ in range(50):
            v = await verdict()
            if v is not None:
                break
            await asyncio.sleep(0.05)
        assert v.up and v.rtt_ms is not None
        assert (await store.get(REGION, "test-region"))["checks"] == 1
        endpoint.status = 500
        start = time.monotonic()
        while (await verdict()).up:
            await asyncio.sleep(0.02)
            assert time.monotonic() - start < 3
        down_after = time.monotonic() - start
        v = await verdict()
        assert "status 500" in v.error
        log = await store.recent(10)
        assert any(e["subject"] == s.key and e["new"] == "down" and e["source"] == "test-region" for e in log)
        endpoint.status = 200
        start = time.monotonic()
        while not (await verdict()).up:
            await asyncio.sleep(0.02)
            assert time.monotonic() - start < 3
        print(f"down after {down_after:.2f}s (fall=2 at 0.1s), up after {time.monotonic() - start:.2f}s (rise=2)")
        agent.update_checks([])  # a removed check's verdict is deleted
        for _ in range(50):
            if await verdict() is None:
                break
            await asyncio.sleep(0.02)
        assert await verdict() is None
        agent.stop()
        task.cancel()

    run(body())


def test_agents_in_two_regions_reach_a_quorum_through_redis(redis_url, endpoint):
    async def body():
        s = spec("http", endpoint.address, endpoint.port)
        stores = [open_store(redis_url) for _ in range(3)]
        agents = [ProbeAgent(f"q{i}", stores[i], [s], heartbeat=0.2) for i in range(2)]
        tasks = [asyncio.ensure_future(a.run()) for a in agents]
        reader = stores[2]
        await asyncio.sleep(0.8)
        view = await read_view(reader)
        h = view.decide()[s.key]
        assert h.up and {"q0", "q1"} <= set(h.up_regions)
        agents[1].stop()
        tasks[1].cancel()
        await asyncio.sleep(1.6)  # q1's heartbeat (3 x 0.2 s + 0.5) lapses
        await read_view(reader, into=view)
        h = view.decide()[s.key]
        assert "q1" not in h.up_regions + h.down_regions and "q0" in h.up_regions
        agents[0].stop()
        tasks[0].cancel()
        for st in stores:
            await st.close()

    run(body())
