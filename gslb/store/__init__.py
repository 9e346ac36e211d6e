"""Where probe results, site states and operator overrides live. See `base.Store`."""

from __future__ import annotations

from gslb.conf.store_url import StoreUrlError, store_scheme
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
    try:
        scheme = store_scheme(url or "")
    except StoreUrlError as exc:
        raise StoreError(str(exc)) from None
    if scheme == "memory":
        return MemoryStore()
    from gslb.store.redis import RedisStore

    return RedisStore(url or "")
