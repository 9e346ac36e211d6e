"""The JSON API, the admin API's token rule, and /metrics, against both store backends."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.parse

import dns.message
import dns.rrset
import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from gslb.health import Verdict
from gslb.policy.checks import CheckSpec
from gslb.probe.agent import ProbeAgent
from gslb.server import abuse_config, cookies, rrl
from gslb.server.abuse_config import merge
from gslb.store import CONTROL, DATAPLANE, DRAIN, NODE, OVERRIDE, PROBE, REGION, SITE, open_store
from gslb.web import make_app
from gslb.web.metrics import dns_families, render
from tests.support.endpoints import Endpoint, free_port_on

TOKEN = "correct horse battery staple"
CHECK = "http://127.0.0.61:8080/health#www.example.com"


@pytest.fixture(params=["memory", "redis"])
def store_url(request, redis_url):
    return "memory://" if request.param == "memory" else redis_url


def run(store_url: str, body, token: str | None = TOKEN):
    if store_url.startswith("redis"):
        import redis

        redis.Redis.from_url(store_url).flushdb()  # each test starts from an empty store

    async def go():
        store = open_store(store_url)
        client = TestClient(TestServer(make_app(store, token=token)))
        await client.start_server()
        try:
            await body(client, store)
        finally:
            await client.close()
            await store.close()

    asyncio.run(go())


async def seed(store) -> None:
    now = time.time()
    for region, up, rtt in (("eu-west", True, 4.5), ("us-east", False, 80.0)):
        v = Verdict(region, CHECK, up, rtt, now, now + 30, "" if up else "http status 503, expected 2xx or 3xx")
        await store.put(PROBE, v.store_key, v.to_doc(), ttl=30)
        await store.put(REGION, region, {"region": region, "time": now, "expires_at": now + 30, "checks": 1}, ttl=30)
    await store.put(SITE, "ams", {"site": "ams", "time": now, "expires_at": now + 30, "healthy": True,
                                  "prefixes": {"203.0.113.0/24": {"state": "degraded", "since": now, "reason": "x"}},
                                  "peers": {"192.0.2.2": "up"}, "signals": {}}, ttl=30)
    await store.put(NODE, "ns1", {"node": "ns1", "time": now, "qps": 12.5, "queries": 1000,
                                  "by_rcode": {"NOERROR": 990, "NXDOMAIN": 10}, "by_decision": {"eu": 400}}, ttl=30)
    await store.put(DATAPLANE, "lb1", {"node": "lb1", "time": now, "vips": {"198.51.100.1:80/tcp": {
        "packets": 10, "bytes": 1000, "backends": {"192.0.2.11": {"packets": 10, "bytes": 1000, "up": True,
                                                                  "weight": 1}}}}}, ttl=30)


def test_read_endpoints(store_url):
    async def body(client, store):
        await seed(store)
        h = await (await client.get("/api/health")).json()
        assert h["regions"] == ["eu-west", "us-east"]
        assert h["cells"][CHECK]["us-east"]["error"].startswith("http status 503")
        assert h["quorum"][CHECK]["up"] is True  # 1 of 2 regions down is not a majority
        s = await (await client.get("/api/sites")).json()
        assert s["sites"]["ams"]["prefixes"]["203.0.113.0/24"]["state"] == "degraded"
        assert (await (await client.get("/api/nodes")).json())["nodes"]["ns1"]["qps"] == 12.5
        assert "lb1" in (await (await client.get("/api/dataplane")).json())["nodes"]
        spec = await (await client.get("/api/openapi.json")).json()
        assert spec["openapi"].startswith("3.") and "/api/overrides/{check}" in spec["paths"]
        page = await client.get("/")
        assert page.status == 200 and "gslb dashboard" in await page.text()
        js = await client.get("/static/app.js")
        assert js.status == 200 and "EventSource" in await js.text()

    run(store_url, body)


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic Zm9vOmJhcg==", f"bearer {TOKEN}"])
def test_writes_without_the_token_are_refused_and_change_nothing(store_url, header):
    async def body(client, store):
        headers = {"Authorization": header} if header else {}
        quoted = urllib.parse.quote(CHECK, safe="")
        for method, path, payload in (("POST", "/api/reload", None), ("POST", "/api/sites/ams/drain", {"reason": "x"}),
                                      ("PUT", f"/api/overrides/{quoted}", {"status": "down"})):
            r = await client.request(method, path, json=payload, headers=headers)
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert await store.get(CONTROL, "reload") is None
        assert await store.get(DRAIN, "ams") is None
        assert await store.scan(OVERRIDE) == {}

    run(store_url, body)


def test_writes_with_the_token_reach_the_store(store_url):
    async def body(client, store):
        await seed(store)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = await client.post("/api/reload", headers=auth)
        assert r.status == 200
        assert (await store.get(CONTROL, "reload"))["by"].startswith("web")
        r = await client.post("/api/sites/ams/drain", json={"reason": "maintenance", "force": True}, headers=auth)
        assert r.status == 200
        drain = await store.get(DRAIN, "ams")
        assert drain["reason"] == "maintenance" and drain["force"] is True
        assert (await client.delete("/api/sites/ams/drain", headers=auth)).status == 200
        assert await store.get(DRAIN, "ams") is None
        again = await client.delete("/api/sites/ams/drain", headers=auth)  # not drained: a no-op that says so
        assert again.status == 200 and (await again.json())["changed"] is False
        quoted = urllib.parse.quote(CHECK, safe="")
        assert (await client.put(f"/api/overrides/{quoted}", json={"status": "sideways"}, headers=auth)).status == 400
        assert (await client.put(f"/api/overrides/{quoted}", json={"status": "down"}, headers=auth)).status == 200
        assert (await store.get(OVERRIDE, CHECK))["status"] == "down"
        h = await (await client.get("/api/health")).json()
        assert h["quorum"][CHECK]["up"] is False and h["quorum"][CHECK]["override"] == "down"
        assert (await client.delete(f"/api/overrides/{quoted}", headers=auth)).status == 200
        assert await store.get(OVERRIDE, CHECK) is None
        kinds = [e["kind"] for e in (await (await client.get("/api/log?limit=20")).json())["entries"]]
        assert kinds.count("drain") == 2 and "zone" in kinds and "endpoint" in kinds

    run(store_url, body)


def test_no_token_configured_disables_writes(store_url):
    async def body(client, store):
        r = await client.post("/api/reload", headers={"Authorization": "Bearer anything"})
        assert r.status == 403
        assert await store.get(CONTROL, "reload") is None

    run(store_url, body, token=None)


def test_metrics_parse_and_carry_the_store(store_url):
    async def body(client, store):
        await seed(store)
        text = await (await client.get("/metrics")).text()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        assert families["gslb_store_up"].samples[0].value == 1
        probe = {(s.labels["region"], s.labels["check"]): s.value for s in families["gslb_probe_up"].samples}
        assert probe[("eu-west", CHECK)] == 1 and probe[("us-east", CHECK)] == 0
        rtt = {s.labels["region"]: s.value for s in families["gslb_probe_rtt_seconds"].samples}
        assert rtt["eu-west"] == pytest.approx(0.0045)
        bgp = {(s.labels["state"]): s.value for s in families["gslb_bgp_prefix_state"].samples}
        assert bgp["degraded"] == 1 and bgp["announced"] == 0
        nodes = {s.labels["rcode"]: s.value for s in families["gslb_node_queries"].samples}
        assert nodes["NXDOMAIN"] == 10
        assert families["gslb_xdp_packets"].samples[0].value == 10

    run(store_url, body)


def test_live_events_announce_store_writes(store_url):
    async def body(client, store):
        resp = await client.get("/api/events")
        assert (await resp.content.readline()).startswith(b"event: hello")
        await resp.content.readline()
        await resp.content.readline()
        await asyncio.sleep(0.2)
        await store.put(SITE, "fra", {"site": "fra", "prefixes": {}}, ttl=10)
        lines = []
        while not any(line.startswith(b"data:") and b'"site"' in line for line in lines):
            lines.append(await asyncio.wait_for(resp.content.readline(), 5))  # (a resync "*" may come first)
        assert b"event: change" in lines[-2]
        resp.close()

    run(store_url, body)


def test_override_of_an_unknown_check_is_404_listing_the_known_ones(store_url):
    async def body(client, store):
        await seed(store)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        r = await client.put("/api/overrides/no-such-check", json={"status": "down"}, headers=auth)
        assert r.status == 404
        data = await r.json()
        assert "no-such-check" in data["error"] and data["known"] == [CHECK]
        assert await store.scan(OVERRIDE) == {}
        assert (await client.put("/api/overrides/no-such-check", json={"status": "down"})).status == 401  # auth first
        quoted = urllib.parse.quote(CHECK, safe="")
        first = await (await client.put(f"/api/overrides/{quoted}", json={"status": "down"}, headers=auth)).json()
        again = await (await client.put(f"/api/overrides/{quoted}", json={"status": "down"}, headers=auth)).json()
        assert first["changed"] is True and again["changed"] is False and "already" in again["message"]
        assert (await (await client.delete(f"/api/overrides/{quoted}", headers=auth)).json())["changed"] is True
        cleared = await (await client.delete(f"/api/overrides/{quoted}", headers=auth)).json()
        assert cleared["changed"] is False and "no override" in cleared["message"]
        log = (await (await client.get("/api/log?limit=50")).json())["entries"]
        assert [e["new"] for e in log if e["kind"] == "endpoint"] == ["override down", "cleared"]  # no-ops unlogged

    run(store_url, body)


def test_status_and_openapi_document_writes_and_history(store_url):
    async def body(client, store):
        assert (await (await client.get("/api/status")).json())["writes"] is True
        spec = await (await client.get("/api/openapi.json")).json()
        for path in ("/api/history/rtt", "/api/history/health", "/api/history/nodes", "/api/history/bgp"):
            assert path in spec["paths"] and spec["paths"][path]["get"]["parameters"][0]["name"] == "since"
        put = spec["paths"]["/api/overrides/{check}"]["put"]["responses"]
        assert "wrong token" in put["401"]["description"] and "without a token" in put["403"]["description"]
        assert "known" in put["404"]["content"]["application/json"]["schema"]["properties"]
        assert (await client.get("/api/history/rtt?since=soon")).status == 400

    run(store_url, body)

    async def disabled(client, store):
        s = await (await client.get("/api/status")).json()
        assert s["writes"] is False and "without a token" in s["reason"]

    run(store_url, disabled, token=None)


def test_history_api_after_real_probe_rounds(store_url):
    """Two probe agents (regions) check a real endpoint; it fails and comes back: the RTT series
    have points, the health timeline has up and down bands and the quorum follows; nodes and
    BGP changes are served on the same clock."""
    ep = Endpoint("127.0.0.62", free_port_on("127.0.0.62")).start()
    spec = CheckSpec(protocol="http", address=ep.address, port=ep.port, path="/health", host="www.example.com",
                     interval=0.1, timeout=1.0, rise=1, fall=1, expect_status=(), body_match=None)

    async def body(client, store):
        agents = [ProbeAgent(region, store, [spec], heartbeat=0.2) for region in ("eu-west", "us-east")]
        tasks = [asyncio.ensure_future(a.run()) for a in agents]
        async def until(done, what: str, timeout: float = 20.0) -> None:
            """Wait on what the API serves, not on the clock: a loaded machine probes slower."""
            deadline = time.monotonic() + timeout
            while True:
                r = await (await client.get("/api/history/rtt", params={"check": spec.key, "since": "-60"})).json()
                series = {s["region"]: s["points"] for s in r["series"]}
                if len(series) == 2 and all(done(points) for points in series.values()):
                    return
                assert time.monotonic() < deadline, f"timed out waiting for {what}: {series}"
                await asyncio.sleep(0.05)

        try:
            await until(lambda pts: len(pts) >= 4, "up rounds")
            ep.status = 503
            await until(lambda pts: any(p[2] is False for p in pts), "down rounds")
            ep.status = 200
            await until(lambda pts: len(pts) >= 8 and pts[-1][2] is True, "recovered rounds")
        finally:
            for a in agents:
                a.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
        now = time.time()
        for i, (qps, ok, nx) in enumerate(((0.0, 100, 0), (50.0, 200, 10), (60.0, 320, 10))):
            await store.put(NODE, "ns1", {"node": "ns1", "time": now - 4 + 2 * i, "qps": qps, "queries": ok + nx,
                                          "by_rcode": {"NOERROR": ok, "NXDOMAIN": nx}}, ttl=30)
        for state in ("announced", "announced", "withdrawn"):
            await store.put(SITE, "ams", {"site": "ams", "time": time.time(), "healthy": state == "announced",
                                          "prefixes": {"203.0.113.0/24": {"state": state, "reason": "r"}},
                                          "peers": {"192.0.2.2": "up"}}, ttl=30)

        r = await (await client.get("/api/history/rtt", params={"check": spec.key, "since": "-60"})).json()
        assert [s["region"] for s in r["series"]] == ["eu-west", "us-east"]
        for s in r["series"]:
            assert len(s["points"]) >= 8, s
            assert all(p[1] is None or 0 < p[1] < 1000 for p in s["points"])
            assert {p[2] for p in s["points"]} == {True, False}
            assert [p[0] for p in s["points"]] == sorted(p[0] for p in s["points"])
        few = await (await client.get("/api/history/rtt", params={"region": "eu-west", "points": "3"})).json()
        assert len(few["series"]) == 1 and len(few["series"][0]["points"]) <= 3

        h = await (await client.get("/api/history/health", params={"since": "-60"})).json()
        timeline = h["checks"][spec.key]
        for region in ("eu-west", "us-east"):
            states = [b[2] for b in timeline["regions"][region]]
            assert "up" in states and "down" in states, states
            assert all(a < b for a, b, _s in timeline["regions"][region])
        quorum = [b[2] for b in timeline["quorum"]]
        assert "up" in quorum and "down" in quorum, quorum
        assert timeline["quorum"][-1][1] == pytest.approx(h["now"], abs=1)
        # the agents are stopped: their last verdicts expire and the bands end stale
        await asyncio.sleep(3 * spec.interval + spec.timeout + 0.1)
        deadline = time.monotonic() + 10  # each region's last verdict expires on its own (a busy machine lags)
        while True:
            h = await (await client.get("/api/history/health", params={"since": "-60"})).json()
            last = h["checks"][spec.key]
            if last["quorum"][-1][2] == "unknown" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert last["regions"]["eu-west"][-1][2] == "stale" and last["regions"]["us-east"][-1][2] == "stale"
        assert last["quorum"][-1][2] == "unknown"

        n = await (await client.get("/api/history/nodes", params={"since": "-60"})).json()
        points = n["nodes"]["ns1"]["points"]
        assert [p[1] for p in points] == [0.0, 50.0, 60.0]
        assert points[1][2] == {"NOERROR": 50.0, "NXDOMAIN": 5.0} and points[2][2] == {"NOERROR": 60.0}
        # under the fleet's published quorum (1 region suffices), the same bands decide differently
        await store.put(CONTROL, "quorum", {"quorum": 1})
        one = await (await client.get("/api/history/health", params={"since": "-60"})).json()
        assert one["quorum_rule"] == 1 and h["quorum_rule"] == "majority"
        b = await (await client.get("/api/history/bgp", params={"since": "-60"})).json()
        assert [c["prefixes"]["203.0.113.0/24"] for c in b["sites"]["ams"]["changes"]] == ["announced", "withdrawn"]

    try:
        run(store_url, body)
    finally:
        ep.stop()


def _histogram_quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """PromQL's histogram_quantile over cumulative (le, count) buckets, +Inf last."""
    total = buckets[-1][1]
    rank = q * total
    lower_le, lower_count = 0.0, 0.0
    for le, count in buckets:
        if count >= rank:
            if le == float("inf"):
                return lower_le  # PromQL: the upper bound of the highest finite bucket
            return lower_le + (le - lower_le) * (rank - lower_count) / max(count - lower_count, 1e-12)
        lower_le, lower_count = le, count
    return lower_le


def _scrape(totals, latency):
    """Render like /metrics does and read it back with prometheus-client's text parser."""
    text = render(dns_families(totals, [], latency)).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def test_dns_metrics_are_a_proper_histogram_and_decisions_carry_the_record():
    # handler-time counts below 1, 2, 4 … 1024 µs, then slower (12 buckets, as _udpbatch ships them)
    first = [0, 0, 10, 60, 20, 10, 0, 0, 0, 0, 0, 0]
    later = [0, 0, 10, 60, 20, 10, 0, 0, 0, 0, 100, 0]  # 100 more queries took 512-1024 µs
    decisions = {"www.gslb.example.com A|eu (fallback)": 7, "api.gslb.example.com A|eu (fallback)": 5,
                 "www.gslb.example.com AAAA|all": 2}
    families = _scrape({"decisions": decisions}, first)
    hist = families["gslb_dns_processing_seconds"]
    assert hist.type == "histogram"
    names = {s.name for s in hist.samples}
    assert names == {"gslb_dns_processing_seconds_bucket", "gslb_dns_processing_seconds_sum",
                     "gslb_dns_processing_seconds_count"}
    buckets = sorted((float(s.labels["le"]), s.value) for s in hist.samples if s.name.endswith("_bucket"))
    count = next(s.value for s in hist.samples if s.name.endswith("_count"))
    total = next(s.value for s in hist.samples if s.name.endswith("_sum"))
    assert count == 100 == buckets[-1][1]
    # histogram_quantile(0.5, …): the median query lies in the 4-8 µs bucket
    assert 4e-6 <= _histogram_quantile(0.5, buckets) <= 8e-6
    assert _histogram_quantile(0.99, buckets) <= 32e-6
    # the mean (sum/count) from midpoints: 10*3 + 60*6 + 20*12 + 10*24 µs = 870 µs over 100
    assert total / count == pytest.approx(8.7e-6)

    families2 = _scrape({"decisions": decisions}, later)
    hist2 = families2["gslb_dns_processing_seconds"]
    count2 = next(s.value for s in hist2.samples if s.name.endswith("_count"))
    total2 = next(s.value for s in hist2.samples if s.name.endswith("_sum"))
    # rate(sum[…]) / rate(count[…]) between two scrapes: the new queries' mean, 768 µs
    assert (total2 - total) / (count2 - count) == pytest.approx(768e-6)
    exact = render(dns_families({"latency_sum": 0.5}, [], first)).decode()
    assert "gslb_dns_processing_seconds_sum 0.5" in exact

    d = {(s.labels["record"], s.labels["type"], s.labels["decision"]): s.value
         for s in families["gslb_dns_decisions"].samples}
    assert d == {("www.gslb.example.com", "A", "eu (fallback)"): 7, ("api.gslb.example.com", "A", "eu (fallback)"): 5,
                 ("www.gslb.example.com", "AAAA", "all"): 2}
    # sum by (decision): the two records' fallbacks add up only when asked to
    by_decision: dict[str, float] = {}
    for (_r, _t, decision), v in d.items():
        by_decision[decision] = by_decision.get(decision, 0) + v
    assert by_decision == {"eu (fallback)": 12, "all": 2}

    paths = _scrape({"queries": 10, "native_answers": 7, "python_decisions": 2}, first)
    assert [s.value for s in paths["gslb_dns_native_answers"].samples] == [7]
    assert [s.value for s in paths["gslb_dns_python_decisions"].samples] == [2]


def test_node_decisions_in_metrics_carry_the_record(store_url):
    async def body(client, store):
        await store.put(NODE, "ns1", {"node": "ns1", "time": time.time(), "qps": 1.0, "queries": 3, "by_rcode": {},
                                      "by_decision": {"www.gslb.example.com A|eu": 3}}, ttl=30)
        text = await (await client.get("/metrics")).text()
        fam = {f.name: f for f in text_string_to_metric_families(text)}["gslb_node_decisions"]
        assert fam.samples[0].labels == {"node": "ns1", "record": "www.gslb.example.com", "type": "A",
                                         "decision": "eu"}

    run(store_url, body)


def test_quorum_timeline_follows_the_quorum_rule_and_overrides():
    from gslb.web.history import _bands, _quorum

    eu = _bands([{"t": 0, "up": True, "exp": 100}, {"t": 10, "up": False, "exp": 100}], 0, 30)
    us = _bands([{"t": 0, "up": True, "exp": 100}], 0, 30)
    assert eu == [[0, 10, "up"], [10, 30, "down"]]
    regions = {"eu": eu, "us": us}
    assert [b[2] for b in _quorum(regions, [], "c", 0, 30)] == ["up"]  # 1 of 2 down: no majority
    assert _quorum(regions, [], "c", 0, 30, quorum=1) == [[0, 10, "up"], [10, 30, "down"]]
    assert _quorum(regions, [{"t": 20, "status": "down"}, {"t": 25, "status": None}], "c", 0, 30) == [
        [0, 20, "up"], [20, 25, "down (override)"], [25, 30, "up"]]
    # a verdict that expired before the next one: stale, and no region fresh means unknown
    stale = _bands([{"t": 0, "up": True, "exp": 5}, {"t": 20, "up": True, "exp": 40}], 0, 30)
    assert stale == [[0, 5, "up"], [5, 20, "stale"], [20, 30, "up"]]
    assert [b[2] for b in _quorum({"eu": stale}, [], "c", 0, 30)] == ["up", "unknown", "up"]


def _worker_abuse(limited_v4: int, limited_v6: int, tcp_refused: int) -> dict:
    """One worker's abuse counters, as gslb.server.abuse_config.stats reports them, from a real
    limiter that saw a flood (IPv4 and IPv6 clients) and made those counts."""
    lim = rrl.Limiter(rrl.RrlConfig(enabled=True, rate=1, slip=2), clock=lambda: 1.0)
    q = dns.message.make_query("www.example.com", "A")
    out = dns.message.make_response(q)
    out.answer.append(dns.rrset.from_text("www.example.com.", 60, "IN", "A", "192.0.2.1"))
    wire = out.to_wire()
    for client, n in ((socket.inet_aton("192.0.2.1"), limited_v4), (socket.inet_pton(socket.AF_INET6, "2001:db8::1"),
                                                                   limited_v6)):
        for _ in range(n + 1):  # the first passes
            lim.filter(q.to_wire(), client, wire)

    jar = cookies.Cookies(bytes(16))
    jar.seen = [0, 3, 2, 1]

    class Worker:  # what abuse_config.stats reads off a Responder
        cookies = jar
        guards = [(lim, None)]
        tcp_stats = {"accepted": 5, "refused_total": 0, "refused_per_client": tcp_refused, "closed_idle_evicted": 1,
                     "closed_idle_timeout": 0, "closed_message_timeout": 2}
        abuse = abuse_config.AbuseConfig(rrl=rrl.RrlConfig(enabled=True, ipv6_prefix=48))

    return abuse_config.stats(Worker())


def test_abuse_metrics_are_summed_over_workers_and_parse():
    totals = {"queries": 100, "abuse": merge([_worker_abuse(10, 4, 1), _worker_abuse(6, 0, 2), None])}
    families = _scrape(totals, [])
    rrl = {(s.labels["action"], s.labels["class"], s.labels["family"], s.labels["prefix_length"]): s.value
           for s in families["gslb_dns_rrl_responses"].samples}
    assert rrl[("limited", "positive", "ipv4", "24")] == 16
    assert rrl[("limited", "positive", "ipv6", "48")] == 4
    assert rrl[("slipped", "positive", "ipv4", "24")] + rrl[("dropped", "positive", "ipv4", "24")] == 16
    assert rrl[("limited", "nxdomain", "ipv4", "24")] == 0
    assert families["gslb_dns_rrl_responses"].type == "counter"
    seen = {s.labels["status"]: s.value for s in families["gslb_dns_cookies"].samples}
    assert seen == {"client_only": 6, "valid": 4, "bad": 2, "none": 88}
    tcp = {(s.labels["event"], s.labels["reason"]): s.value for s in families["gslb_dns_tcp_connections"].samples}
    assert tcp[("refused", "per_client")] == 3 and tcp[("closed", "message_timeout")] == 4
    assert tcp[("accepted", "")] == 10
    hits = {(s.labels["limit"], s.labels["action"]): s.value for s in families["gslb_dns_query_limit_hits"].samples}
    assert hits == {("prefix", "refused"): 0, ("prefix", "dropped"): 0, ("asn", "refused"): 0, ("asn", "dropped"): 0}
    assert "gslb_dns_rrl_responses" not in _scrape({}, [])  # a server without the counters shows none


def test_dns_node_panel_shows_the_limiter(store_url):
    async def body(client, store):
        now = time.time()
        abuse = merge([_worker_abuse(10, 4, 1), _worker_abuse(6, 0, 2)])
        await store.put(NODE, "ns2", {"node": "ns2", "time": now, "qps": 1.0, "queries": 50, "by_rcode": {},
                                      "by_decision": {}, "abuse": abuse}, ttl=30)
        await store.put(NODE, "ns3", {"node": "ns3", "time": now, "qps": 1.0, "queries": 50}, ttl=30)  # older node
        nodes = (await (await client.get("/api/nodes")).json())["nodes"]
        lim = nodes["ns2"]["limiter"]
        assert lim["rrl_limited"] == 20 and lim["rrl_slipped"] + lim["rrl_dropped"] == 20
        assert lim["cookies_valid"] == 4 and lim["cookies_bad"] == 2 and lim["cookies_client_only"] == 6
        assert lim["tcp_refused"] == 3 and lim["tcp_closed"] == 6 and lim["query_limited"] == 0
        assert nodes["ns3"]["limiter"]["rrl_limited"] == 0
        js = await (await client.get("/static/app.js")).text()
        assert "limiterText(d.limiter)" in js  # the DNS node panel renders it

    run(store_url, body)


_AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def _two_sites(store) -> None:
    now = time.time()
    for site in ("ams", "fra"):
        await store.put(SITE, site, {"site": site, "time": now, "expires_at": now + 30, "healthy": True,
                                     "prefixes": {}, "peers": {}, "signals": {}}, ttl=30)


def test_drain_of_an_unknown_site_is_404_listing_the_known_ones():
    async def body(client, store):
        await _two_sites(store)
        for method in (client.post, client.delete):
            r = await method("/api/sites/amss/drain", json={"reason": "typo"}, headers=_AUTH)
            assert r.status == 404
            doc = await r.json()
            assert "unknown site 'amss'" in doc["error"] and doc["known"] == ["ams", "fra"]
        assert await store.get(DRAIN, "amss") is None
        assert not [e for e in await store.recent(10) if e["kind"] == "drain"]

    run("memory://", body)


def test_a_repeated_drain_changes_nothing_and_says_so():
    async def body(client, store):
        await _two_sites(store)
        first = await client.post("/api/sites/ams/drain", json={"reason": "maintenance"}, headers=_AUTH)
        assert first.status == 200 and (await first.json())["changed"] is True
        again = await client.post("/api/sites/ams/drain", json={"reason": "maintenance"}, headers=_AUTH)
        doc = await again.json()
        assert again.status == 200 and doc["changed"] is False and "already drained" in doc["message"]
        forced = await (await client.post("/api/sites/ams/drain", json={"force": True}, headers=_AUTH)).json()
        assert forced["changed"] is True and (await store.get(DRAIN, "ams"))["force"] is True
        assert (await (await client.delete("/api/sites/ams/drain", headers=_AUTH)).json())["changed"] is True
        assert (await (await client.delete("/api/sites/ams/drain", headers=_AUTH)).json())["changed"] is False
        kinds = [(e["kind"], e["new"]) for e in await store.recent(20) if e["kind"] == "drain"]
        assert sorted(kinds) == [("drain", "draining"), ("drain", "draining"), ("drain", "undrained")]

    run("memory://", body)
