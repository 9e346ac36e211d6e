"""The store interface shared by the Redis and in-process backends.

The store is a small document store: JSON-able dicts filed under a *space* (what kind of thing)
and a *key* (which one), with an optional time to live, plus an append-only change log for the
dashboard. Writers call `put`/`delete`; every node learns of writes through `changes()`, a push
stream, never by polling. Expiry is not announced (Redis cannot do that reliably); values that
expire carry their own `expires_at` so readers can tell stale data by the clock.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gslb.store.spaces import (  # noqa: F401  (re-exported: the store's vocabulary)
    ANSWERS,
    CONTROL,
    DATAPLANE,
    DRAIN,
    NODE,
    OVERRIDE,
    PROBE,
    REGION,
    SITE,
)

log = logging.getLogger(__name__)


class StoreError(Exception):
    """The store cannot be reached or refused an operation."""


@dataclass(frozen=True)
class Change:
    """A write seen by `changes()`. `value` is None for a delete.

    `space == "*"` means "the stream was interrupted and resumed: re-read everything".
    """

    space: str
    key: str
    value: dict[str, Any] | None


RESYNC = Change("*", "", None)
LOST = Change("!", "", None)  # the stream broke: what you hold may be stale until the next RESYNC


class Store(abc.ABC):
    """One interface, two backends (`MemoryStore`, `RedisStore`)."""

    url: str

    @abc.abstractmethod
    async def put(self, space: str, key: str, value: dict[str, Any], ttl: float | None = None,
                  notify: bool = True) -> None:
        """Store `value`; with `ttl` (seconds) it disappears by itself afterwards.

        `notify=False` refreshes a value without telling watchers (probe agents re-write
        unchanged verdicts to keep them alive and announce only changes plus a heartbeat).
        """

    @abc.abstractmethod
    async def delete(self, space: str, key: str) -> None: ...

    @abc.abstractmethod
    async def get(self, space: str, key: str) -> dict[str, Any] | None: ...

    @abc.abstractmethod
    async def scan(self, space: str) -> dict[str, dict[str, Any]]:
        """Every live key of a space with its value."""

    @abc.abstractmethod
    async def log(self, event: dict[str, Any]) -> None:
        """Append to the change log (bounded; oldest entries drop off)."""

    @abc.abstractmethod
    async def recent(self, count: int = 100) -> list[dict[str, Any]]:
        """The newest `count` log entries, oldest first."""

    @abc.abstractmethod
    def changes(self) -> AsyncIterator[Change]:
        """Every `put`/`delete` from any writer, as it happens.

        The stream starts with `RESYNC` once subscribed and repeats it after every gap: that is
        the moment to (re)read the state with `scan`, knowing no later write can be missed.
        """

    # -- bounded history (see gslb.store.history for the series and their points) ----------

    @abc.abstractmethod
    async def append_history(self, series: str, point: dict[str, Any], maxlen: int = 2000,
                             max_age: float = 6 * 3600.0) -> None:
        """Append `point` (a dict with "t", Unix seconds) to `series`, keeping at most about
        `maxlen` points no older than `max_age` seconds."""

    @abc.abstractmethod
    async def history(self, series: str, since: float = 0.0, limit: int | None = None) -> list[dict[str, Any]]:
        """The points of `series` with t >= since, oldest first (with `limit`: the newest that many)."""

    @abc.abstractmethod
    async def history_series(self, prefix: str = "") -> list[str]:
        """The names of the series that start with `prefix` and hold points."""

    async def _record_history(self, space: str, key: str, value: dict[str, Any] | None) -> None:
        """Called by the backends on every put (value) and delete (None) of a document."""
        from gslb.store import history as h

        if space not in h.history_spaces():
            return
        try:
            if space == PROBE and value is not None:
                got = h.probe_point(value)
                if got is not None:
                    await self.append_history(*got, maxlen=h.HISTORY_LEN, max_age=h.HISTORY_AGE)
            elif space == NODE and value is not None:
                await self.append_history(*h.node_point(key, value), maxlen=h.HISTORY_LEN, max_age=h.HISTORY_AGE)
            elif space == SITE:
                # one writer per site, every second or so: remember its last state here
                await self._record_change(h.series(h.BGP_SERIES, key), h.bgp_state(value), h.same_bgp,
                                          value.get("time") if value else None, cache=True)
            elif space == OVERRIDE:
                status = None if value is None else str(value.get("status", "up"))
                await self._record_change(h.series(h.OVERRIDE_SERIES, key), {"status": status},
                                          lambda a, b: a is not None and a.get("status") == b["status"],
                                          value.get("time") if value else None)
        except StoreError as exc:  # history is a by-product: never fail the write that made it
            log.debug("history for %s/%s not kept: %s", space, key, exc)
        except Exception:  # an odd document must not break its writer either
            log.exception("history for %s/%s not kept", space, key)

    async def _record_change(self, series: str, state: dict[str, Any], same, at: Any, cache: bool = False) -> None:
        """Append `state` only when it differs from the series' last point (with `cache`, the
        last point this process wrote, for series that only this process writes)."""
        from gslb.store import history as h

        last_seen: dict[str, dict[str, Any] | None] = self.__dict__.setdefault("_history_last", {})
        if not cache or series not in last_seen:
            last = await self.history(series, limit=1)
            last_seen[series] = last[-1] if last else None
        if same(last_seen[series], state):
            return
        point = {"t": float(at) if isinstance(at, int | float) else time.time(), **state}
        await self.append_history(series, point, maxlen=h.HISTORY_LEN, max_age=h.HISTORY_AGE)
        last_seen[series] = point

    async def ping(self) -> bool:
        """True when the backend answers now."""
        return True

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


def event(kind: str, subject: str, old: str, new: str, reason: str, source: str) -> dict[str, Any]:
    """A change-log entry in the one shape the dashboard reads."""
    return {
        "time": time.time(),
        "kind": kind,
        "subject": subject,
        "old": old,
        "new": new,
        "reason": reason,
        "source": source,
    }
