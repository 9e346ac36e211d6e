"""The switch for the native answer engine (gslb/server/_engine.c).

`new_engine` gives an engine for a `Responder`, or None when the extension was not built or
`GSLB_NO_NATIVE` is set: then the pure-Python path (the reference) serves the same bytes.
"""

from __future__ import annotations

import os
from typing import Any

try:
    from gslb.server import _engine  # type: ignore[attr-defined]  # C extension, no stubs
except ImportError:  # optional: the build may have failed (no compiler), Python serves instead
    _engine = None

MISS_CAP = 200_000  # native entries for names compiled on first use (wildcard, NXDOMAIN, REFUSED)
DECISION_CAP = 1_000_000  # native GSLB decisions (question x client prefix or ECS option)


def enabled() -> bool:
    return _engine is not None and not os.environ.get("GSLB_NO_NATIVE")


def histogram() -> list[int]:
    """Queries the engine answered (or handed to Python) by time taken, `_udpbatch`'s buckets."""
    return list(_engine.histogram()) if _engine is not None else []


def histogram_sum_ns() -> int:
    """The exact total of those times in nanoseconds (the histogram's `_sum`)."""
    return int(_engine.histogram_sum_ns()) if _engine is not None else 0


def new_engine(udp_size: int, opt_head: bytes, opt_head_do: bytes) -> Any:
    if not enabled():
        return None
    return _engine.Engine(udp_size, opt_head, opt_head_do, MISS_CAP, DECISION_CAP)
