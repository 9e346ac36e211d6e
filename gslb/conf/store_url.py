"""Store URLs as every config spells them: gslb.yaml `redis:`, --redis, BGP site and dataplane files."""

from __future__ import annotations

SCHEMES = ("memory", "redis", "rediss", "unix", "redis+sentinel", "redis+cluster")
REDIS_SCHEMES = SCHEMES[1:]


class StoreUrlError(ValueError):
    """A store URL with no scheme we know; the message lists the ones we do."""


def store_scheme(url: str) -> str:
    """The scheme of a store URL (`memory` for the in-process store); StoreUrlError if unknown."""
    if not url or url.startswith("memory:"):
        return "memory"
    scheme = url.split(":", 1)[0] if ":" in url else ""
    if scheme not in REDIS_SCHEMES:
        raise StoreUrlError(f"unknown store URL {url!r}: use {', '.join(s + '://' for s in REDIS_SCHEMES)} "
                            "or memory://")
    return scheme
