"""Per-prefix state machine: announced → degraded / draining → withdrawn, and back.

Decisions change only when a signal (after hysteresis), the operator drain, or the global view
changes, never per probe. The global guard keeps a site from withdrawing the last announcement
of a prefix: when no other site announces it healthily, the prefix stays up (fail open) and the
decision is logged, unless the config allows it or the drain is forced.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bgp.config import Neighbor, Prefix, SiteConfig
from bgp.signals import SignalState

ANNOUNCED, DEGRADED, DRAINING, WITHDRAWN = "announced", "degraded", "draining", "withdrawn"
GRACEFUL_SHUTDOWN = "65535:0"  # RFC 8326


@dataclass
class PrefixState:
    prefix: Prefix
    state: str = WITHDRAWN
    since: float = 0.0
    reason: str = "starting"
    drain_started: float | None = None
    guarded: bool = False


@dataclass(frozen=True)
class Transition:
    prefix: str
    old: str
    new: str
    reason: str
    at: float


class Controller:
    def __init__(self, cfg: SiteConfig) -> None:
        self.cfg = cfg
        self.prefixes = {str(p.prefix): PrefixState(p, since=time.time()) for p in cfg.prefixes}

    def evaluate(self, signals: dict[str, SignalState], drain: dict | None,
                 others_announce: Callable[[str], bool], now: float | None = None) -> list[Transition]:
        """Move every prefix to the state its inputs call for; returns what changed."""
        now = time.time() if now is None else now
        out = []
        for key, ps in self.prefixes.items():
            target, reason = self._target(ps, signals, drain, now)
            if target == WITHDRAWN and ps.state != WITHDRAWN:
                forced = self.cfg.allow_last_withdraw or bool(drain and drain.get("force"))
                if not forced and not others_announce(key):
                    if not ps.guarded:
                        ps.guarded = True
                        out.append(Transition(key, ps.state, ps.state,
                                              f"guard: kept announced, no other site announces it ({reason})", now))
                    continue
            ps.guarded = False
            if target != ps.state:
                out.append(Transition(key, ps.state, target, reason, now))
                ps.state, ps.since, ps.reason = target, now, reason
        return out

    def _target(self, ps: PrefixState, signals: dict[str, SignalState], drain: dict | None,
                now: float) -> tuple[str, str]:
        prefix = ps.prefix
        if drain is not None:
            if ps.drain_started is None:
                ps.drain_started = now
            if ps.state == WITHDRAWN and ps.drain_started < now:
                return WITHDRAWN, "drained"
            if now - ps.drain_started >= prefix.drain_seconds:
                return WITHDRAWN, f"drained after {prefix.drain_seconds:g}s of graceful shutdown"
            return DRAINING, f"operator drain by {drain.get('by', '?')}: {drain.get('reason', '')}".rstrip(": ")
        ps.drain_started = None
        failing = [signals[n] for n in prefix.signals if n in signals and not signals[n].up]
        hard = [s for s in failing if s.signal.on_fail == "withdraw"]
        if hard:
            return WITHDRAWN, "; ".join(f"{s.signal.name}: {s.detail}" for s in hard)
        if failing:
            return DEGRADED, "; ".join(f"{s.signal.name}: {s.detail}" for s in failing)
        return ANNOUNCED, "all signals up"

    def drain_deadline(self) -> float | None:
        times = [ps.drain_started + ps.prefix.drain_seconds for ps in self.prefixes.values()
                 if ps.state == DRAINING and ps.drain_started is not None]
        return min(times) if times else None

    # -- ExaBGP commands --------------------------------------------------------------------

    def commands(self, key: str, neighbors: list[Neighbor] | None = None) -> list[str]:
        """The API commands that put one prefix in its current state on the given sessions."""
        ps = self.prefixes[key]
        prefix = ps.prefix
        out = []
        for n in neighbors if neighbors is not None else self.cfg.neighbors_for(prefix):
            if n.address.version != prefix.prefix.version:
                continue
            head = f"neighbor {n.address}"
            if ps.state == WITHDRAWN:
                out.append(f"{head} withdraw route {prefix.prefix} next-hop {prefix.next_hop}")
                continue
            attrs = [f"next-hop {prefix.next_hop}"]
            communities = list(prefix.communities)
            med = prefix.med
            if ps.state == DEGRADED:
                if prefix.degrade.prepend:
                    # ExaBGP sends an explicit AS path as given (our AS is not added again): our AS
                    # once for the hop, plus the extra copies that make the path longer.
                    path = [str(self.cfg.local_as)] * (prefix.degrade.prepend + 1)
                    attrs.append("as-path [ " + " ".join(path) + " ]")
                if prefix.degrade.med is not None:
                    med = prefix.degrade.med
            if ps.state == DRAINING:
                communities.append(GRACEFUL_SHUTDOWN)
            if med is not None:
                attrs.append(f"med {med}")
            if communities:
                attrs.append("community [ " + " ".join(communities) + " ]")
            out.append(f"{head} announce route {prefix.prefix} " + " ".join(attrs))
        return out
