"""What the supervisor and its workers say to each other over their pipes: typed messages.

Zones never travel here: a worker starts from the generation the supervisor built (fork). Down
(supervisor → worker) messages are pickled once per broadcast; up messages carry the sending
worker's index. A worker that cannot understand a message logs it and goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gslb.health.model import HealthMap

# -- supervisor → worker ----------------------------------------------------------------------


@dataclass(frozen=True)
class Retire:
    """A newer generation serves this worker's slot now: answer what is queued, finish the open
    TCP connections (at most `bound` seconds), send the last counters and leave."""

    bound: float


@dataclass(frozen=True)
class SetHealth:
    """New health decisions (generation `generation`): decisions are re-made on the next query."""

    health: HealthMap
    generation: int


@dataclass(frozen=True)
class Stop:
    """Leave now."""


# -- worker → supervisor ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ready:
    index: int
    generation: int  # the zone generation it serves


@dataclass(frozen=True)
class HealthApplied:
    index: int
    generation: int


@dataclass(frozen=True)
class Stats:
    index: int
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """The worker cannot serve (it exits after saying why)."""

    index: int
    reason: str
