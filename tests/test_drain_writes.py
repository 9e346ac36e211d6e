"""Drains from the admin API follow the CLI's rule: unknown sites are errors, repeats are no-ops."""

from __future__ import annotations

import asyncio
import time

from aiohttp.test_utils import TestClient, TestServer

from gslb.store import DRAIN, SITE, open_store
from gslb.web import make_app

TOKEN = "correct horse battery staple"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _run(body) -> None:
    async def go():
        store = open_store("memory://")
        now = time.time()
        for site in ("ams", "fra"):
            await store.put(SITE, site, {"site": site, "time": now, "expires_at": now + 30, "healthy": True,
                                         "prefixes": {}, "peers": {}, "signals": {}}, ttl=30)
        client = TestClient(TestServer(make_app(store, token=TOKEN)))
        await client.start_server()
        try:
            await body(client, store)
        finally:
            await client.close()
            await store.close()

    asyncio.run(go())


def test_drain_of_an_unknown_site_is_404_listing_the_known_ones():
    async def body(client, store):
        for method in (client.post, client.delete):
            r = await method("/api/sites/amss/drain", json={"reason": "typo"}, headers=AUTH)
            assert r.status == 404
            doc = await r.json()
            assert "unknown site 'amss'" in doc["error"] and doc["known"] == ["ams", "fra"]
        assert await store.get(DRAIN, "amss") is None
        assert not [e for e in await store.recent(10) if e["kind"] == "drain"]

    _run(body)


def test_a_repeated_drain_changes_nothing_and_says_so():
    async def body(client, store):
        first = await client.post("/api/sites/ams/drain", json={"reason": "maintenance"}, headers=AUTH)
        assert first.status == 200 and (await first.json())["changed"] is True
        again = await client.post("/api/sites/ams/drain", json={"reason": "maintenance"}, headers=AUTH)
        doc = await again.json()
        assert again.status == 200 and doc["changed"] is False and "already drained" in doc["message"]
        forced = await (await client.post("/api/sites/ams/drain", json={"force": True}, headers=AUTH)).json()
        assert forced["changed"] is True and (await store.get(DRAIN, "ams"))["force"] is True
        assert (await (await client.delete("/api/sites/ams/drain", headers=AUTH)).json())["changed"] is True
        assert (await (await client.delete("/api/sites/ams/drain", headers=AUTH)).json())["changed"] is False
        kinds = [(e["kind"], e["new"]) for e in await store.recent(20) if e["kind"] == "drain"]
        assert sorted(kinds) == [("drain", "draining"), ("drain", "draining"), ("drain", "undrained")]

    _run(body)
