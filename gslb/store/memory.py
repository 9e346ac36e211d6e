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

    async def delete(self, space: str, key: str) -> None:
        if self._data.pop((space, key), None) is not None:
            self._notify(Change(space, key, None))

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

    async def changes(self) -> AsyncIterator[Change]:
        queue: asyncio.Queue[Change] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            yield RESYNC  # subscribed: anything written from now on will be seen
            while True:
                yield await queue.get()
        finally:
            self._subscribers.discard(queue)
