"""The one way health is read from the store: probe verdicts, heartbeats, overrides and the
fleet's quorum, turned into a `HealthView`.

DNS nodes, `gslb explain`, the BGP API process, the dataplane agent and the dashboard all read
through here, so under one quorum they compute the same decision from the same data.

The quorum is configured once, in gslb.yaml (`quorum:`), and published by `gslb serve` in the
store's control space (`control/quorum`); every consumer, DNS nodes included, follows that key.
With nothing published, everyone uses "majority".
"""

from __future__ import annotations

import logging
from typing import Any

from gslb.health.model import MAJORITY, HealthView, Quorum, parse_quorum
from gslb.store import CONTROL, OVERRIDE, PROBE, REGION, Store

log = logging.getLogger(__name__)

QUORUM_KEY = "quorum"  # CONTROL space: {"quorum": "majority" | N, "by": node, "time": t}


def quorum_from_doc(doc: dict[str, Any] | None) -> Quorum:
    """The published quorum, or majority when none (or a broken one) is published."""
    if doc is None:
        return MAJORITY
    try:
        return parse_quorum(doc.get("quorum"))
    except ValueError as exc:
        log.error("store %s/%s: %s; using majority", CONTROL, QUORUM_KEY, exc)
        return MAJORITY


async def publish_quorum(store: Store, quorum: Quorum, by: str) -> None:
    import time

    await store.put(CONTROL, QUORUM_KEY, {"quorum": quorum, "by": by, "time": time.time()})


async def read_view(store: Store, into: HealthView | None = None) -> HealthView:
    """One full read (raises StoreError). With `into`, merges into an existing view."""
    probes = await store.scan(PROBE)
    regions = await store.scan(REGION)
    overrides = await store.scan(OVERRIDE)
    quorum = quorum_from_doc(await store.get(CONTROL, QUORUM_KEY))
    view = into if into is not None else HealthView()
    view.quorum = quorum
    view.merge(probes, regions, overrides)
    return view
