"""A probe agent: runs every check at its interval from one region, writes verdicts to the store.

Writes are cheap for readers: a verdict is announced (notify) only when its up/down state changes
or its smoothed RTT moves by more than 20% and 1 ms; otherwise it is refreshed silently. One
heartbeat per interval in the `region` space keeps all of this agent's verdicts fresh for
readers; when the agent dies the heartbeat and verdicts expire and the other regions decide.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from gslb.health import Verdict
from gslb.policy.checks import CheckSpec
from gslb.probe import checks
from gslb.probe.hysteresis import Hysteresis
from gslb.store import PROBE, REGION, Store, StoreError, event

log = logging.getLogger(__name__)

EWMA_ALPHA = 0.3  # weight of the newest RTT sample
RTT_NOTIFY = 0.20
CONCURRENCY = 256


@dataclass
class CheckState:
    spec: CheckSpec
    hysteresis: Hysteresis
    rtt_ms: float | None = None
    announced_rtt: float | None = None
    error: str = ""
    checked_at: float = 0.0
    runs: int = 0
    task: asyncio.Task | None = field(default=None, repr=False)


class ProbeAgent:
    def __init__(self, region: str, store: Store, specs: Iterable[CheckSpec], heartbeat: float = 1.0,
                 source: str | None = None) -> None:
        self.region = region
        self.source = source  # local address checks connect from (None: the kernel's choice)
        self.store = store
        self.heartbeat_interval = heartbeat
        self.states: dict[str, CheckState] = {}
        self._semaphore = asyncio.Semaphore(CONCURRENCY)
        self._store_ok = True
        self._running = False
        self._pending: list[CheckSpec] = list(specs)
        self._background: set[asyncio.Task] = set()

    # -- lifecycle ------------------------------------------------------------------------

    async def run(self) -> None:
        self._running = True
        self.update_checks(self._pending)
        try:
            while self._running:
                await self._heartbeat()
                await asyncio.sleep(self.heartbeat_interval)
        finally:
            tasks = [state.task for state in self.states.values() if state.task] + list(self._background)
            for task in tasks:
                task.cancel()
            if tasks:  # gone before we return (bounded: a check's own timeout is the longest wait)
                await asyncio.wait(tasks, timeout=max([s.spec.timeout for s in self.states.values()] + [1.0]))

    def stop(self) -> None:
        self._running = False

    def update_checks(self, specs: Iterable[CheckSpec]) -> None:
        """Start new checks, stop and delete the verdicts of removed ones."""
        wanted = {s.key: s for s in specs}
        if not self._running:
            self._pending = list(wanted.values())
            return
        for key in list(self.states):
            if key not in wanted or wanted[key] != self.states[key].spec:
                state = self.states.pop(key)
                if state.task:
                    state.task.cancel()
                if key not in wanted:
                    task = asyncio.ensure_future(self._delete(key))
                    self._background.add(task)
                    task.add_done_callback(self._background.discard)
        for key, spec in wanted.items():
            if key not in self.states:
                state = CheckState(spec, Hysteresis(spec.rise, spec.fall))
                self.states[key] = state
                state.task = asyncio.ensure_future(self._loop(state))

    # -- checking -------------------------------------------------------------------------

    async def _loop(self, state: CheckState) -> None:
        spec = state.spec
        await asyncio.sleep(random.uniform(0, min(spec.interval, 1.0)))  # spread the first round
        while self._running:
            started = time.monotonic()
            async with self._semaphore:
                result = await checks.run(spec, self.source)
            await self._record(state, result)
            jitter = random.uniform(-0.05, 0.05) * spec.interval
            await asyncio.sleep(max(0.0, spec.interval + jitter - (time.monotonic() - started)))

    async def _record(self, state: CheckState, result: checks.Result) -> None:
        spec = state.spec
        state.runs += 1
        state.checked_at = time.time()
        before = state.hysteresis.up
        changed = state.hysteresis.observe(result.ok)
        if result.ok:
            state.error = ""
        else:
            state.error = result.error
        if result.rtt_ms is not None:
            state.rtt_ms = result.rtt_ms if state.rtt_ms is None else (
                EWMA_ALPHA * result.rtt_ms + (1 - EWMA_ALPHA) * state.rtt_ms)
        moved = state.rtt_ms is not None and (state.announced_rtt is None or abs(state.rtt_ms - state.announced_rtt)
                                               > max(1.0, RTT_NOTIFY * state.announced_rtt))
        notify = changed or moved or not self._store_ok
        ttl = 3 * spec.interval + spec.timeout
        verdict = Verdict(region=self.region, check=spec.key, up=bool(state.hysteresis.up),
                          rtt_ms=None if state.rtt_ms is None else round(state.rtt_ms, 3),
                          checked_at=state.checked_at, expires_at=state.checked_at + ttl, error=state.error)
        if await self._put(PROBE, verdict.store_key, verdict.to_doc(), ttl, notify) and notify:
            state.announced_rtt = state.rtt_ms
        if changed and before is not None:
            new = "up" if state.hysteresis.up else "down"
            old = "up" if before else "down"
            reason = result.error or f"{spec.rise} successful checks in a row"
            log.info("%s: %s %s → %s (%s)", self.region, spec.key, old, new, reason)
            with contextlib.suppress(StoreError):
                await self.store.log(event("endpoint", spec.key, old, new, reason, self.region))

    async def _put(self, space: str, key: str, doc: dict, ttl: float, notify: bool) -> bool:
        try:
            await self.store.put(space, key, doc, ttl=ttl, notify=notify)
        except StoreError as exc:
            if self._store_ok:
                log.warning("%s: store unreachable, probing on and retrying: %s", self.region, exc)
            self._store_ok = False
            return False
        if not self._store_ok:
            log.info("%s: store reachable again", self.region)
            self._store_ok = True
        return True

    async def _delete(self, key: str) -> None:
        with contextlib.suppress(StoreError):
            await self.store.delete(PROBE, f"{self.region}|{key}")

    async def _heartbeat(self) -> None:
        now = time.time()
        ttl = 3 * self.heartbeat_interval + 0.5
        await self._put(REGION, self.region, {"region": self.region, "time": now, "expires_at": now + ttl,
                                              "checks": len(self.states)}, ttl, True)
