"""Per-prefix state machine: announced → degraded / draining → withdrawn, and back.

Decisions change only when a signal (after hysteresis), the operator drain, the global view or a
timer changes, never per probe. Three safety rules sit on top of the plain mapping from signals
to states:

- Flap damping (hold-down): after a signal-driven move to a worse state, the prefix comes back no
  sooner than `hold_down` seconds later; the hold doubles for every further departure that
  follows a return by less than `max_hold_down`, up to that maximum. Upstream routers punish
  flapping prefixes (route flap damping can suppress one for an hour); this keeps us under it.
- Global guard: a site does not withdraw a prefix that no other site announces (fail open), unless
  the config allows it or the drain is forced. The decision is reported once as a transition.
- Settling: a withdraw first marks the prefix `leaving` (published), waits `guard_settle` seconds
  for the other sites' published states to arrive, then looks again. If several sites leave at
  once and nobody else announces, the one with the smallest site name keeps the prefix: every site
  applies the same rule to the same view, so exactly one stays.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bgp.config import Neighbor, Prefix, SiteConfig
from bgp.signals import SignalState

ANNOUNCED, DEGRADED, DRAINING, WITHDRAWN = "announced", "degraded", "draining", "withdrawn"
GRACEFUL_SHUTDOWN = "65535:0"  # RFC 8326
RANK = {WITHDRAWN: 0, DRAINING: 1, DEGRADED: 2, ANNOUNCED: 3}


@dataclass
class PrefixState:
    prefix: Prefix
    state: str = WITHDRAWN
    since: float = 0.0
    reason: str = "starting"
    drain_started: float | None = None
    guarded: bool = False
    leaving_since: float | None = None  # a withdraw waiting for the others' view to settle
    hold: float = 0.0  # the current hold-down (doubles while the prefix flaps)
    hold_until: float = 0.0  # no signal-driven return before this time
    returned_at: float | None = None  # last return to a better state
    decided: bool = False  # every gating signal has had a first result
    synced: bool = False  # the peers were told the current state at least once by this process

    def doc(self) -> dict:
        return {"state": self.state, "since": self.since, "reason": self.reason, "guarded": self.guarded,
                "leaving": self.leaving_since is not None, "hold_until": self.hold_until or None}


@dataclass(frozen=True)
class Other:
    """Another site's published view of one prefix."""

    site: str
    state: str
    leaving: bool = False
    guarded: bool = False

    @property
    def announces(self) -> bool:
        return self.state in (ANNOUNCED, DEGRADED, DRAINING)


@dataclass(frozen=True)
class Transition:
    prefix: str
    old: str
    new: str
    reason: str
    at: float


Others = Callable[[str], list[Other]]


class Controller:
    def __init__(self, cfg: SiteConfig) -> None:
        self.cfg = cfg
        self.prefixes = {str(p.prefix): PrefixState(p, since=time.time()) for p in cfg.prefixes}

    def evaluate(self, signals: dict[str, SignalState], drain: dict | None, others: Others,
                 now: float | None = None) -> list[Transition]:
        """Move every prefix to the state its inputs call for; returns what changed (a guard decision
        is a transition with old == new)."""
        now = time.time() if now is None else now
        out: list[Transition] = []
        for key, ps in self.prefixes.items():
            decided = self._target(ps, signals, drain, now)
            if decided is None:  # a gating signal has no first result yet: change nothing
                continue
            target, reason = decided
            if not ps.decided:
                ps.decided = True
                if target == ps.state:
                    ps.since, ps.reason = now, reason
            if RANK[target] > RANK[ps.state] and drain is None and now < ps.hold_until:
                ps.leaving_since, ps.guarded = None, False
                ps.reason = (f"held down {ps.hold:g}s after flapping (until "
                             f"{time.strftime('%H:%M:%S', time.localtime(ps.hold_until))}), then {target}")
                continue
            if target == WITHDRAWN and ps.state != WITHDRAWN:
                forced = self.cfg.allow_last_withdraw or bool(drain and drain.get("force"))
                if not forced and not self._may_leave(key, ps, others, reason, now, out):
                    continue
            elif ps.leaving_since is not None or ps.guarded:
                if ps.guarded and target == ps.state:
                    ps.reason = reason  # the guard is over: say why it stands now
                ps.leaving_since, ps.guarded = None, False
            if target != ps.state:
                self._depart_or_return(ps, target, drain, now)
                out.append(Transition(key, ps.state, target, reason, now))
                ps.state, ps.since, ps.reason = target, now, reason
                ps.leaving_since, ps.guarded = None, False
        return out

    def _may_leave(self, key: str, ps: PrefixState, others: Others, reason: str, now: float,
                   out: list[Transition]) -> bool:
        """The global guard with settling; True when the prefix may be withdrawn now."""
        if ps.leaving_since is None:
            if self._covered(others(key)):
                if self.cfg.guard_settle <= 0:
                    return True
                ps.leaving_since = now  # tell the others first, look again after guard_settle
                return False
        elif now < ps.leaving_since + self.cfg.guard_settle:
            return False
        elif self._covered(others(key)):
            return True
        ps.leaving_since = None
        if not ps.guarded:
            ps.guarded = True
            ps.reason = f"guard: kept {ps.state}, no other site announces it ({reason})"
            out.append(Transition(key, ps.state, ps.state, ps.reason, now))
        return False

    def _covered(self, others: list[Other]) -> bool:
        """Another site keeps the prefix if we leave: a steady announcer, or one that is itself
        leaving or guarded but wins the tie (smaller name) and therefore stays."""
        return any(o.announces and ((not o.leaving and not o.guarded) or o.site < self.cfg.site) for o in others)

    def _depart_or_return(self, ps: PrefixState, target: str, drain: dict | None, now: float) -> None:
        """Hold-down bookkeeping for signal-driven moves (operator drains are never damped)."""
        if drain is not None or ps.state == DRAINING or target == DRAINING:
            return
        if RANK[target] < RANK[ps.state]:
            steady = ps.returned_at is None or now - ps.returned_at >= ps.prefix.max_hold_down
            ps.hold = ps.prefix.hold_down if steady or ps.hold <= 0 else min(ps.prefix.max_hold_down, ps.hold * 2)
            ps.hold_until = now + ps.hold
        elif ps.synced:  # not the first announcement of this process
            ps.returned_at = now

    def _target(self, ps: PrefixState, signals: dict[str, SignalState], drain: dict | None,
                now: float) -> tuple[str, str] | None:
        prefix = ps.prefix
        if drain is not None:
            if ps.drain_started is None:
                ps.drain_started = now
            if ps.state == WITHDRAWN:
                return WITHDRAWN, "drained"
            if now - ps.drain_started >= prefix.drain_seconds:
                return WITHDRAWN, f"drained after {prefix.drain_seconds:g}s of graceful shutdown"
            return DRAINING, f"operator drain by {drain.get('by', '?')}: {drain.get('reason', '')}".rstrip(": ")
        ps.drain_started = None
        gating = [signals[n] for n in prefix.signals if n in signals]
        if any(s.hysteresis.up is None for s in gating):
            return None
        failing = [s for s in gating if not s.up]
        hard = [s for s in failing if s.signal.on_fail == "withdraw"]
        if hard:
            return WITHDRAWN, "; ".join(f"{s.signal.name}: {s.detail}" for s in hard)
        if failing:
            return DEGRADED, "; ".join(f"{s.signal.name}: {s.detail}" for s in failing)
        return ANNOUNCED, "all signals up"

    def next_deadline(self) -> float | None:
        """When a timer (drain time, settling, hold-down) may change a decision."""
        times = []
        for ps in self.prefixes.values():
            if ps.state == DRAINING and ps.drain_started is not None:
                times.append(ps.drain_started + ps.prefix.drain_seconds)
            if ps.leaving_since is not None:
                times.append(ps.leaving_since + self.cfg.guard_settle)
            if ps.hold_until > time.time():
                times.append(ps.hold_until)
        return min(times) if times else None

    def snapshot(self) -> dict[str, dict]:
        return {k: ps.doc() for k, ps in self.prefixes.items()}

    def unsynced(self) -> list[str]:
        """Prefixes whose current state this process has not sent yet (it may have been respawned
        by ExaBGP, whose routing table still holds what the previous process announced)."""
        return [k for k, ps in self.prefixes.items() if ps.decided and not ps.synced]

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
