"""In-process store: the embedded default, so one machine needs nothing else running."""

from __future__ import annotations

import asyncio
import copy
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from gslb.store.base import RESYNC, Change, Store

LOG_LENGTH = 1000


class MemoryStore(Store):
    """Dicts with expiry times; `changes()` fans out to every subscriber's queue."""

    def __init__(self) -> None:
        self.url = "memory://"
        self._data: dict[tuple[str, str], tuple[dict[str, Any], float | None]] = {}
        self._log: deque[dict[str, Any]] = deque(maxlen=LOG_LENGTH)
        self._subscribers: set[asyncio.Queue[Change]] = set()
        self._history: dict[str, deque[dict[str, Any]]] = {}
        self._history_age: dict[str, float] = {}

    def _alive(self, item: tuple[dict[str, Any], float | None], now: float) -> bool:
        return item[1] is None or item[1] > now

    def _notify(self, change: Change) -> None:
        for queue in self._subscribers:
            queue.put_nowait(change)

    async def put(self, space: str, key: str, value: dict[str, Any], ttl: float | None = None,
                  notify: bool = True) -> None:
        value = copy.deepcopy(value)
        self._data[(space, key)] = (value, time.time() + ttl if ttl else None)
        if notify:
            self._notify(Change(space, key, copy.deepcopy(value)))
        await self._record_history(space, key, value)

    async def delete(self, space: str, key: str) -> None:
        if self._data.pop((space, key), None) is not None:
            self._notify(Change(space, key, None))
            await self._record_history(space, key, None)

    async def get(self, space: str, key: str) -> dict[str, Any] | None:
        item = self._data.get((space, key))
        if item is None or not self._alive(item, time.time()):
            return None
        return copy.deepcopy(item[0])

    async def scan(self, space: str) -> dict[str, dict[str, Any]]:
        now = time.time()
        dead = [k for k, item in self._data.items() if not self._alive(item, now)]
        for k in dead:
            del self._data[k]
        return {k[1]: copy.deepcopy(v[0]) for k, v in self._data.items() if k[0] == space}

    async def log(self, event: dict[str, Any]) -> None:
        self._log.append(dict(event))

    async def recent(self, count: int = 100) -> list[dict[str, Any]]:
        return [dict(e) for e in list(self._log)[-count:]]

    async def append_history(self, series: str, point: dict[str, Any], maxlen: int = 2000,
                             max_age: float = 6 * 3600.0) -> None:
        ring = self._history.get(series)
        if ring is None or ring.maxlen != maxlen:
            ring = self._history[series] = deque(ring or (), maxlen=maxlen)
        ring.append(copy.deepcopy(point))
        self._history_age[series] = max_age
        oldest = time.time() - max_age
        while ring and float(ring[0].get("t", 0)) < oldest:
            ring.popleft()

    async def history(self, series: str, since: float = 0.0, limit: int | None = None) -> list[dict[str, Any]]:
        points = [copy.deepcopy(p) for p in self._history.get(series, ()) if float(p.get("t", 0)) >= since]
        return points[-limit:] if limit else points

    async def history_series(self, prefix: str = "") -> list[str]:
        now = time.time()
        for name in [s for s, ring in self._history.items()  # series nobody writes any more
                     if not ring or float(ring[-1].get("t", 0)) < now - self._history_age.get(s, 0)]:
            del self._history[name]
        return sorted(s for s in self._history if s.startswith(prefix))

    async def changes(self) -> AsyncIterator[Change]:
        queue: asyncio.Queue[Change] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            yield RESYNC  # subscribed: anything written from now on will be seen
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
