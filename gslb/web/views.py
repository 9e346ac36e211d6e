"""What the dashboard shows, assembled from the store (pure reads, JSON-ready)."""

from __future__ import annotations

import time
from typing import Any

from gslb.health.reader import read_view
from gslb.store import ANSWERS, DATAPLANE, DRAIN, NODE, SITE, Store


async def health(store: Store) -> dict[str, Any]:
    """Region-by-check matrix: each cell a region's verdict (fresh or stale), plus the quorum."""
    view = await read_view(store)
    now = time.time()
    decided = view.decide(now)
    regions = sorted({v.region for v in view.verdicts.values()} | set(view.heartbeats))
    checks = sorted({v.check for v in view.verdicts.values()} | set(view.overrides))
    cells: dict[str, dict[str, Any]] = {c: {} for c in checks}
    for v in view.verdicts.values():
        cells[v.check][v.region] = {"up": v.up, "rtt_ms": v.rtt_ms, "checked_at": v.checked_at, "error": v.error,
                                    "fresh": view.fresh(v, now)}
    quorum = {c: {"up": h.up, "known": h.known, "down_regions": h.down_regions, "override": h.override}
              for c, h in decided.items()}
    agents = {r: {"alive": float(d.get("expires_at", 0)) > now, "checks": d.get("checks", 0)}
              for r, d in view.agents.items()}
    return {"time": now, "regions": regions, "checks": checks, "cells": cells, "quorum": quorum, "agents": agents,
            "overrides": view.override_docs, "quorum_rule": view.quorum}


async def sites(store: Store) -> dict[str, Any]:
    now = time.time()
    docs = await store.scan(SITE)
    drains = await store.scan(DRAIN)
    for site, doc in docs.items():
        doc["stale"] = float(doc.get("expires_at", 0)) <= now
        doc["drain"] = drains.get(site)
    return {"time": now, "sites": docs, "drains": drains}


async def nodes(store: Store) -> dict[str, Any]:
    return {"time": time.time(), "nodes": await store.scan(NODE)}


async def answers(store: Store) -> dict[str, Any]:
    return {"time": time.time(), "names": await store.scan(ANSWERS)}


async def dataplane(store: Store) -> dict[str, Any]:
    return {"time": time.time(), "nodes": await store.scan(DATAPLANE)}
