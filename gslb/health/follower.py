"""Follow the store: probe verdicts in, one health decision per check out, pushed not polled.

Used by every DNS node, the BGP API process and the dataplane agent: it keeps a `HealthView`
current from the store's change stream (the published quorum included, see `reader`),
re-decides when a verdict changes or goes stale, and calls back only when the outcome changes in
a way answers care about. When the store is unreachable it keeps the last decisions, says so
(`stale`), and retries with backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from gslb.health.model import HealthMap, HealthView, Verdict, summarize
from gslb.health.reader import QUORUM_KEY, quorum_from_doc, read_view
from gslb.store import CONTROL, LOST, OVERRIDE, PROBE, REGION, RESYNC, Store, StoreError

log = logging.getLogger(__name__)

RTT_CHANGE = 0.10  # RTT moves smaller than 10% (or 1 ms) do not re-decide answers
BACKOFF_MAX = 5.0


def significant(old: HealthMap, new: HealthMap) -> bool:
    if old.keys() != new.keys():
        return True
    for key, (up, rtts) in new.items():
        old_up, old_rtts = old[key]
        if up != old_up or rtts.keys() != old_rtts.keys():
            return True
        for region, ms in rtts.items():
            before = old_rtts[region]
            if abs(ms - before) > max(1.0, RTT_CHANGE * before):
                return True
    return False


class HealthFollower:
    def __init__(self, store: Store, on_change: Callable[[HealthMap], Awaitable[None] | None]) -> None:
        self.store = store
        self.view = HealthView()
        self.on_change = on_change
        self.health: HealthMap = {}
        self.stale = True  # until the first successful read
        self._dirty = asyncio.Event()

    async def run(self) -> None:
        decider = asyncio.ensure_future(self._decide_loop())
        try:
            async for change in self.store.changes():
                if change == RESYNC:
                    await self._rescan()
                elif change == LOST:
                    self.stale = True
                    continue
                elif change.space == PROBE:
                    if change.value is None:
                        self.view.remove(change.key)
                    else:
                        self.view.put(Verdict.from_doc(change.value))
                elif change.space == REGION:
                    if change.value is not None:
                        self.view.heartbeat(change.key, float(change.value.get("expires_at", 0)))
                elif change.space == OVERRIDE:
                    self.view.set_override(change.key, change.value)
                elif change.space == CONTROL and change.key == QUORUM_KEY:
                    self.view.quorum = quorum_from_doc(change.value)
                    log.info("health: quorum is now %s", self.view.quorum)
                else:
                    continue
                self._dirty.set()
        finally:
            decider.cancel()

    async def _rescan(self) -> None:
        delay = 0.1
        while True:
            try:
                await read_view(self.store, into=self.view)
                break
            except StoreError as exc:
                if not self.stale:
                    log.warning("store unreachable, answering from the last known health: %s", exc)
                self.stale = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
        if self.stale:
            log.info("store %s: reading health again", self.store.url)
        self.stale = False
        self._dirty.set()

    async def _decide_loop(self) -> None:
        while True:
            expiry = self.view.next_expiry()
            timeout = max(0.0, expiry - time.time()) + 0.01 if expiry else None
            try:
                await asyncio.wait_for(self._dirty.wait(), timeout)
            except TimeoutError:
                pass  # a verdict just went stale: decide again without it
            self._dirty.clear()
            decided = self.view.decide()
            health = summarize(decided)
            if significant(self.health, health):
                for key, (up, _) in health.items():
                    was_up = self.health.get(key, (True, {}))[0]
                    if was_up != up:
                        log.info("health: %s is %s (down in: %s)", key, "up" if up else "DOWN",
                                 ", ".join(decided[key].down_regions) or "none")
                self.health = health
                result = self.on_change(health)
                if asyncio.iscoroutine(result):
                    await result
