"""Where probe results, site states and operator overrides live. See `base.Store`."""

from __future__ import annotations

from gslb.store.base import (
    ANSWERS,
    CONTROL,
    DATAPLANE,
    DRAIN,
    LOST,
    NODE,
    OVERRIDE,
    PROBE,
    REGION,
    RESYNC,
    SITE,
    Change,
    Store,
    StoreError,
    event,
)
from gslb.store.memory import MemoryStore

__all__ = [
    "ANSWERS", "CONTROL", "DATAPLANE", "DRAIN", "LOST", "NODE", "OVERRIDE", "PROBE", "REGION", "RESYNC", "SITE",
    "Change", "MemoryStore", "Store", "StoreError", "event", "open_store",
]


def open_store(url: str | None) -> Store:
    """`None` or `memory://` gives the in-process store; any redis URL the Redis store."""
    if not url or url.startswith("memory:"):
        return MemoryStore()
    if url.split(":", 1)[0] in ("redis", "rediss", "unix", "redis+sentinel", "redis+cluster"):
        from gslb.store.redis import RedisStore

        return RedisStore(url)
    raise StoreError(f"unknown store URL {url!r}: use redis://, rediss://, unix://, "
                     "redis+sentinel://, redis+cluster:// or memory://")
