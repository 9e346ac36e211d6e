"""Operator drain requests for BGP sites, one rule for the CLI and the admin API.

A drain may only name a site the store knows (one publishing its state, or one already drained),
so a typo is an error listing the known sites rather than a request nothing will ever read; a
repeated request changes nothing and says so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from gslb.store.base import Store, event
from gslb.store.spaces import DRAIN, SITE


@dataclass(frozen=True)
class DrainResult:
    """What a drain or undrain did: `known` False means nothing was written (unknown site)."""

    site: str
    known: bool
    changed: bool
    message: str
    known_sites: list[str] = field(default_factory=list)
    drain: dict[str, Any] | None = None


async def known_sites(store: Store, extra: str | None = None) -> list[str]:
    """Sites publishing their state, sites with a drain, and `extra` (a site file's own site)."""
    known = set(await store.scan(SITE)) | set(await store.scan(DRAIN))
    if extra:
        known.add(extra)
    return sorted(known)


def _unknown(site: str, what: str, known: list[str]) -> DrainResult:
    listed = ", ".join(known) if known else (
        "none (no site has published its state to this store: is `gslb bgp run` up with it? "
        "--site-file SITE.yaml names a site that is not running yet)")
    return DrainResult(site, False, False, f"{what}: unknown site {site!r}; known sites: {listed}", known)


async def drain(store: Store, site: str, by: str, reason: str = "", force: bool = False,
                also_known: str | None = None) -> DrainResult:
    """Ask `site` to drain (GRACEFUL_SHUTDOWN, then withdraw; `force` withdraws at once)."""
    known = await known_sites(store, also_known)
    if site not in known:
        return _unknown(site, "drain", known)
    current = await store.get(DRAIN, site)
    if current is not None and bool(current.get("force")) == force:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(current.get("time", 0))))
        why = f": {current['reason']}" if current.get("reason") else ""
        return DrainResult(site, True, False, f"{site} is already drained (since {since} by "
                           f"{current.get('by', '?')}{why}): nothing to do", known, current)
    doc = {"time": time.time(), "by": by, "reason": reason, "force": force}
    await store.put(DRAIN, site, doc)
    if current is not None:
        detail = "forced" if force else "no longer forced"
        await store.log(event("drain", site, "draining", "draining", detail, by))
        return DrainResult(site, True, True, f"drain of {site} {'now forced' if force else 'no longer forced'}",
                           known, doc)
    await store.log(event("drain", site, "serving", "draining", reason, by))
    return DrainResult(site, True, True, f"drain requested for {site}", known, doc)


async def undrain(store: Store, site: str, by: str, reason: str = "", also_known: str | None = None) -> DrainResult:
    """Lift a drain; undraining a site that is not drained is a no-op that says so."""
    known = await known_sites(store, also_known)
    if site not in known:
        return _unknown(site, "undrain", known)
    if await store.get(DRAIN, site) is None:
        return DrainResult(site, True, False, f"{site} is not drained: nothing to do", known)
    await store.delete(DRAIN, site)
    await store.log(event("drain", site, "draining", "undrained", reason, by))
    return DrainResult(site, True, True, f"undrained {site}", known)
