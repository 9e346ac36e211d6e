"""What a DNS node tells the dashboard through the store: its counters every few seconds, and
which answer each probe region's clients get now (on every change, at most twice a second)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import dns.rcode

from gslb.answers import Answers
from gslb.regions import Regions
from gslb.store import ANSWERS, NODE, Store, StoreError

NODE_INTERVAL = 2.0
ANSWERS_TTL = 120.0


async def publish_node(store: Store, identity: str, site: str, totals: Callable[[], dict[str, Any]],
                       about: Callable[[], dict[str, Any]]) -> None:
    """Counters for the dashboard's DNS node view (expiring, so a dead node disappears)."""
    last_queries, last_time = None, time.monotonic()
    while True:
        await asyncio.sleep(NODE_INTERVAL)
        t = totals()
        now = time.monotonic()
        qps = 0.0 if last_queries is None else (t["queries"] - last_queries) / max(1e-6, now - last_time)
        last_queries, last_time = t["queries"], now
        doc = {"node": identity, "site": site, "time": time.time(), "expires_at": time.time() + 3 * NODE_INTERVAL,
               "qps": round(qps, 1), "queries": t["queries"],
               "by_rcode": {dns.rcode.to_text(dns.rcode.Rcode(int(k))): v for k, v in t["by_rcode"].items()},
               "by_decision": t["decisions"], "abuse": t.get("abuse", {}), **about()}
        with contextlib.suppress(StoreError):
            await store.put(NODE, identity, doc, ttl=3 * NODE_INTERVAL)


class AnswersPublisher:
    """Publishes `Answers.region_answers` whenever `due()` is called, at most twice a second."""

    def __init__(self, store: Store, answers: Callable[[], Answers], regions: Regions) -> None:
        self.store, self.answers, self.regions = store, answers, regions
        self._due = asyncio.Event()
        self._due.set()

    def due(self) -> None:
        self._due.set()

    async def run(self) -> None:
        while True:
            await self._due.wait()
            self._due.clear()
            for key, doc in self.answers().region_answers(self.regions).items():
                with contextlib.suppress(StoreError):
                    await self.store.put(ANSWERS, key, doc, ttl=ANSWERS_TTL)
            await asyncio.sleep(0.5)
