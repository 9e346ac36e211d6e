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
    docs = await store.scan(NODE)
    for doc in docs.values():
        doc["limiter"] = limiter(doc.get("abuse") or {})
    return {"time": time.time(), "nodes": docs}


def limiter(a: dict[str, Any]) -> dict[str, int]:
    """A node's abuse counters (abuse_config.stats, summed over its workers) in the few figures the
    DNS node panel shows: what RRL limited and how, what passed anyway, cookies, query limits, TCP."""
    def total(prefix: str) -> int:
        return sum(int(v) for k, v in a.items() if k.startswith(prefix) and k[len(prefix):].isalpha())

    return {"rrl_limited": total("rrl_limited_"), "rrl_slipped": total("rrl_slipped_"),
            "rrl_dropped": total("rrl_dropped_"), "rrl_would_limit": total("rrl_would_limit_"),
            "rrl_passed": int(a.get("rrl_exempt", 0)) + int(a.get("rrl_cookie_passed", 0)),
            "cookies_client_only": int(a.get("cookies_client_only", 0)),
            "cookies_valid": int(a.get("cookies_valid", 0)), "cookies_bad": int(a.get("cookies_bad", 0)),
            "query_limited": sum(int(a.get(f"query_limit_{w}_{x}", 0)) for w in ("prefix", "asn")
                                 for x in ("refused", "dropped")),
            "tcp_refused": int(a.get("tcp_refused_total", 0)) + int(a.get("tcp_refused_per_client", 0)),
            "tcp_closed": sum(int(a.get(f"tcp_closed_{r}", 0)) for r in ("idle_evicted", "idle_timeout",
                                                                        "message_timeout"))}


async def answers(store: Store) -> dict[str, Any]:
    return {"time": time.time(), "names": await store.scan(ANSWERS)}


async def dataplane(store: Store) -> dict[str, Any]:
    return {"time": time.time(), "nodes": await store.scan(DATAPLANE)}
