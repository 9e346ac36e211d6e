"""Bounded history kept beside the documents: which writes leave a point, and in what shape.

Both backends call `Store._record_history` from `put`/`delete`, so the probes, the DNS nodes and
the BGP controller keep history without knowing about it. Series names (one per thing):

  probe|<region>|<check>   every verdict write: {t, up, rtt_ms, exp, error?}
  node|<node>              every node doc write: {t, qps, queries, by_rcode (running counts)}
  bgp|<site>               only when a site's BGP state changes: {t, healthy, prefixes: {prefix: state}, peers}
                           (reasons per prefix ride along; a deleted site doc leaves {t, gone: true, …})
  override|<check>         only when an override changes: {t, status ("up"/"down"/null)}

A series keeps at most `maxlen` points no older than `max_age` seconds (Redis: a stream
trimmed with MAXLEN ~ / MINID ~ that expires when nobody writes; memory: a deque).
"""

from __future__ import annotations

import time
from typing import Any

from gslb.store.spaces import NODE, OVERRIDE, PROBE, SITE

HISTORY_LEN = 2000  # points per series: 2.8 h of a 5 s probe, 1.1 h of a node's 2 s reports
HISTORY_AGE = 6 * 3600.0  # seconds

PROBE_SERIES = "probe"
NODE_SERIES = "node"
BGP_SERIES = "bgp"
OVERRIDE_SERIES = "override"


def series(kind: str, *parts: str) -> str:
    return "|".join((kind, *parts))


def probe_point(value: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    try:
        name = series(PROBE_SERIES, str(value["region"]), str(value["check"]))
        point: dict[str, Any] = {"t": float(value["checked_at"]), "up": bool(value["up"]),
                                 "rtt_ms": None if value.get("rtt_ms") is None else float(value["rtt_ms"]),
                                 "exp": float(value["expires_at"])}
    except (KeyError, TypeError, ValueError):
        return None
    if not point["up"] and value.get("error"):
        point["error"] = str(value["error"])[:160]
    return name, point


def node_point(key: str, value: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    by_rcode = value.get("by_rcode") or {}
    return series(NODE_SERIES, key), {
        "t": float(value.get("time") or time.time()), "qps": float(value.get("qps") or 0.0),
        "queries": int(value.get("queries") or 0),
        "by_rcode": {str(k): int(v) for k, v in by_rcode.items()} if isinstance(by_rcode, dict) else {}}


def bgp_state(value: dict[str, Any] | None) -> dict[str, Any]:
    """What of a site doc counts as its BGP state (a change in it leaves a point)."""
    if value is None:
        return {"gone": True, "healthy": False, "prefixes": {}, "peers": {}}
    prefixes = value.get("prefixes") or {}
    return {"healthy": bool(value.get("healthy", True)),
            "prefixes": {str(p): str((s or {}).get("state", "")) for p, s in prefixes.items()},
            "reasons": {str(p): str((s or {}).get("reason", "")) for p, s in prefixes.items()},
            "peers": {str(a): str(s) for a, s in (value.get("peers") or {}).items()}}


def same_bgp(a: dict[str, Any] | None, b: dict[str, Any]) -> bool:
    if a is None:
        return False
    strip = ("t", "reasons")  # a new reason for the same state is not a change
    return {k: v for k, v in a.items() if k not in strip} == {k: v for k, v in b.items() if k not in strip}


def history_spaces() -> frozenset[str]:
    return frozenset((PROBE, NODE, SITE, OVERRIDE))
