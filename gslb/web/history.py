"""History views for the dashboard's charts, assembled from the store's bounded history.

Pure reads, JSON-ready, compact (points as arrays). Every view takes `since` (Unix seconds)
and reports `now`, so the charts share one time axis.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from gslb.health import HealthView, Verdict
from gslb.store import CONTROL, Store
from gslb.store.history import BGP_SERIES, NODE_SERIES, OVERRIDE_SERIES, PROBE_SERIES, series

DEFAULT_WINDOW = 3600.0
LOOKBACK = 300.0  # also read this much before `since`, to know the state at `since`


def parse_since(raw: str | None, now: float) -> float:
    """`since` as given: Unix seconds, or a negative number of seconds before now (default -3600)."""
    if raw is None or raw == "":
        return now - DEFAULT_WINDOW
    value = float(raw)  # ValueError: the handler answers 400
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError("since must be a finite number")
    return now + value if value <= 0 else value


async def _probe_series(store: Store, check: str | None, region: str | None) -> list[tuple[str, str, str]]:
    """(series, region, check) for the probe series matching the filters."""
    prefix = series(PROBE_SERIES, region) + "|" if region else PROBE_SERIES + "|"
    out = []
    for name in await store.history_series(prefix):
        _kind, reg, chk = name.split("|", 2)
        if check is None or chk == check:
            out.append((name, reg, chk))
    return out


def downsample(points: list[list], n: int | None) -> list[list]:
    """At most `n` points of [t, rtt_ms, up]: equal time buckets, mean RTT, up only if all were."""
    if not n or len(points) <= n:
        return points
    t0, t1 = points[0][0], points[-1][0]
    width = (t1 - t0) / n or 1.0
    buckets: dict[int, list[list]] = {}
    for p in points:
        buckets.setdefault(min(n - 1, int((p[0] - t0) / width)), []).append(p)
    out = []
    for _i, group in sorted(buckets.items()):
        rtts = [p[1] for p in group if p[1] is not None]
        out.append([round(sum(p[0] for p in group) / len(group), 3),
                    round(sum(rtts) / len(rtts), 3) if rtts else None, all(p[2] for p in group)])
    return out


async def rtt(store: Store, since: float, check: str | None = None, region: str | None = None,
              max_points: int | None = None) -> dict[str, Any]:
    now = time.time()
    out = []
    for name, reg, chk in await _probe_series(store, check, region):
        points = [[round(float(p["t"]), 3), p.get("rtt_ms"), bool(p.get("up"))]
                  for p in await store.history(name, since)]
        out.append({"check": chk, "region": reg, "points": downsample(points, max_points)})
    out.sort(key=lambda s: (s["check"], s["region"]))
    return {"now": now, "since": since, "series": out}


def _bands(points: list[dict[str, Any]], since: float, now: float) -> list[list]:
    """[start, end, "up"|"down"|"stale"] from verdict points: each holds until the next one or
    its own expiry, whichever is first; a gap after an expiry is stale."""
    bands: list[list] = []

    def add(start: float, end: float, state: str) -> None:
        start, end = max(start, since), min(end, now)
        if end <= start:
            return
        if bands and bands[-1][2] == state and bands[-1][1] >= start - 1e-6:
            bands[-1][1] = max(bands[-1][1], end)
        else:
            bands.append([start, end, state])

    for i, p in enumerate(points):
        t, exp = float(p["t"]), float(p.get("exp", p["t"]))
        nxt = float(points[i + 1]["t"]) if i + 1 < len(points) else now
        add(t, min(exp, nxt), "up" if p.get("up") else "down")
        if exp < nxt:
            add(exp, nxt, "stale")
    return [[round(a, 3), round(b, 3), s] for a, b, s in bands]


def _state_at(bands: list[list], t: float) -> str | None:
    for a, b, s in bands:
        if a <= t < b:
            return s
    return None


async def fleet_quorum(store: Store) -> int | str:
    """The quorum `gslb serve` publishes (control/quorum: {"quorum": "majority" | N}), else majority."""
    doc = await store.get(CONTROL, "quorum")
    value = doc.get("quorum") if doc else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return "majority"


def _quorum(regions: dict[str, list[list]], overrides: list[dict[str, Any]], check: str, since: float,
            now: float, quorum: int | str = "majority") -> list[list]:
    """The quorum decision over time, decided by the same `HealthView` the DNS nodes use."""
    cuts = {now}
    for bands in regions.values():
        for a, b, _s in bands:
            cuts.update((a, b))
    cuts.update(float(o["t"]) for o in overrides if since < float(o["t"]) < now)
    edges = sorted(c for c in cuts if since <= c <= now)  # from the first data on: no decision before it
    out: list[list] = []
    for a, b in itertools.pairwise(edges):
        mid = (a + b) / 2
        view = HealthView(quorum)
        for region, bands in regions.items():
            state = _state_at(bands, mid)
            if state in ("up", "down"):
                view.put(Verdict(region, check, state == "up", None, a, b + 1))
        status = None
        for o in overrides:
            if float(o["t"]) <= mid:
                status = o.get("status")
        if status is not None:
            view.overrides[check] = status
        decided = view.decide(mid).get(check)
        state = "unknown" if decided is None or not decided.known else ("up" if decided.up else "down")
        if decided is not None and decided.override:
            state += " (override)"
        if out and out[-1][2] == state and abs(out[-1][1] - a) < 1e-6:
            out[-1][1] = b
        else:
            out.append([a, b, state])
    return [[round(a, 3), round(b, 3), s] for a, b, s in out]


async def health(store: Store, since: float, check: str | None = None) -> dict[str, Any]:
    """Per check: up/down/stale bands per region and the quorum decision, from `since` to now."""
    now = time.time()
    quorum = await fleet_quorum(store)
    by_check: dict[str, dict[str, list[list]]] = {}
    for name, reg, chk in await _probe_series(store, check, None):
        points = await store.history(name, since - LOOKBACK)
        bands = _bands(points, since, now)
        if bands:
            by_check.setdefault(chk, {})[reg] = bands
    checks = {}
    for chk, regions in sorted(by_check.items()):
        overrides = await store.history(series(OVERRIDE_SERIES, chk))
        checks[chk] = {"regions": dict(sorted(regions.items())),
                       "quorum": _quorum(regions, overrides, chk, since, now, quorum)}
    return {"now": now, "since": since, "quorum_rule": quorum, "checks": checks}


async def nodes(store: Store, since: float, node: str | None = None) -> dict[str, Any]:
    """Per node: [t, qps, {rcode: answers per second since the previous report}]."""
    now = time.time()
    out = {}
    for name in await store.history_series(NODE_SERIES + "|"):
        key = name.split("|", 1)[1]
        if node is not None and key != node:
            continue
        points = await store.history(name, since)
        rows, prev = [], None
        for p in points:
            mix: dict[str, float] = {}
            if prev is not None and float(p["t"]) > float(prev["t"]):
                dt = float(p["t"]) - float(prev["t"])
                for rcode, n in (p.get("by_rcode") or {}).items():
                    delta = n - (prev.get("by_rcode") or {}).get(rcode, 0)
                    if delta > 0:  # a restarted node starts its counts again: no negative rates
                        mix[rcode] = round(delta / dt, 3)
            rows.append([round(float(p["t"]), 3), float(p.get("qps", 0.0)), mix])
            prev = p
        out[key] = {"points": rows}
    return {"now": now, "since": since, "nodes": out}


async def bgp(store: Store, since: float, site: str | None = None) -> dict[str, Any]:
    """Per site: its BGP state changes, with the state in force at `since` first."""
    now = time.time()
    out = {}
    for name in await store.history_series(BGP_SERIES + "|"):
        key = name.split("|", 1)[1]
        if site is not None and key != site:
            continue
        points = await store.history(name)
        before = [p for p in points if float(p["t"]) < since]
        changes = ([{**before[-1], "t": since, "before": True}] if before else []) + \
            [p for p in points if float(p["t"]) >= since]
        out[key] = {"changes": changes}
    return {"now": now, "since": since, "sites": out}
