"""The JSON API, the admin API's token rule, and /metrics, against both store backends."""

from __future__ import annotations

import asyncio
import time
import urllib.parse

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from gslb.health import Verdict
from gslb.store import CONTROL, DATAPLANE, DRAIN, NODE, OVERRIDE, PROBE, REGION, SITE, open_store
from gslb.web import make_app

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
        quoted = urllib.parse.quote(CHECK, safe="")
        assert (await client.put(f"/api/overrides/{quoted}", json={"status": "sideways"}, headers=auth)).status == 400
        assert (await client.put(f"/api/overrides/{quoted}", json={"status": "down"}, headers=auth)).status == 200
        assert (await store.get(OVERRIDE, CHECK))["status"] == "down"
        h = await (await client.get("/api/health")).json()
        assert h["quorum"][CHECK]["up"] is False and h["quorum"][CHECK]["override"] == "down"
        assert (await client.delete(f"/api/overrides/{quoted}", headers=auth)).status == 200
        assert await store.get(OVERRIDE, CHECK) is None
        kinds = [e["kind"] for e in (await (await client.get("/api/log?limit=20")).json())["entries"]]
        assert kinds.count("drain") >= 2 and "zone" in kinds and "endpoint" in kinds

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
