"""One dynamic record's decision for one client: rule → pool (→ fallbacks) → values.

Pure logic over the record, the client and the current health: no I/O, no clocks, so the engine
can cache decisions per client prefix and throw them away when health changes.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field

from gslb.geo_math import distance_km
from gslb.policy.checks import value_checks
from gslb.policy.client import Client, Location, Locator
from gslb.zone.dynamic import Dynamic, Pool, PoolValue, Rule
from gslb.zone.model import Record

MASK64 = (1 << 64) - 1
_RANDOM = random.Random()
_Selected = tuple[list[str], bool, tuple[tuple[str, int], ...]]  # values, hash decided, random candidates


def _mix(x: int) -> int:
    """splitmix64: a well-spread 64-bit hash, identical on every node and worker."""
    x = (x + 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return x ^ (x >> 31)


@dataclass(frozen=True)
class Decision:
    values: tuple[str, ...]
    ttl: int
    scope: int  # ECS scope prefix length this answer holds for
    rule: str  # the rule that matched, e.g. "rule 1 (EU)"
    pool: str | None  # the pool answered from; None for the record's own values
    fallback: bool = False
    fail_open: bool = False
    degraded: bool = False
    # `pick: random`: the healthy candidates and their weights; every answer draws `answers` of
    # them again (`draw`), while the rest of the decision is cached per client prefix.
    candidates: tuple[tuple[str, int], ...] = ()
    answers: int = 1
    trace: tuple[str, ...] = field(default=(), compare=False)  # only when asked (gslb explain)

    @property
    def sticky(self) -> bool:
        """Whether one answer serves every query this decision covers (not a per-answer draw)."""
        return not self.candidates

    def draw(self, rnd: random.Random) -> tuple[str, ...]:
        """The values for one answer: the decided ones, or a fresh weighted draw for `pick: random`."""
        if not self.candidates:
            return self.values
        return weighted_draw(self.candidates, self.answers, rnd)

    @property
    def label(self) -> str:
        """The decision kind for metrics: which rule/pool, or fallback / fail-open."""
        if self.fail_open:
            return "fail-open"
        if self.pool is None:
            return "record-values"
        return f"{self.pool}{' (fallback)' if self.fallback else ''}"


def weighted_draw(candidates: tuple[tuple[str, int], ...], n: int, rnd: random.Random) -> tuple[str, ...]:
    """`n` distinct values, each drawn with probability proportional to its weight."""
    if n == 1:  # the common case, without building lists
        x = rnd.random() * sum(w for _, w in candidates)
        for value, weight in candidates:
            x -= weight
            if x < 0:
                return (value,)
        return (candidates[-1][0],)
    pool = list(candidates)
    picked: list[str] = []
    while pool and len(picked) < n:
        total = sum(w for _, w in pool)
        x = rnd.random() * total
        for i, (value, weight) in enumerate(pool):
            x -= weight
            if x < 0 or i == len(pool) - 1:
                picked.append(value)
                del pool[i]
                break
    return tuple(picked)


WIDEN_BUDGET = 64  # geo lookups one decision may spend widening its ECS scope


class RecordPolicy:
    def __init__(self, record: Record, site_coordinates: dict[str, tuple[float, float]] | None = None,
                 locator: Locator | None = None) -> None:
        self.record = record
        self.locator = locator
        self.dyn: Dynamic = record.dynamic
        self.checks = value_checks(record)
        self.defaults = tuple(r.to_text() for r in record.rdatas)
        self.value_hash = {v: zlib.crc32(v.encode()) for v in self.dyn.values() | set(self.defaults)}
        self.coords: dict[str, tuple[float, float]] = {}
        for value, site in self.dyn.options.sites.items():
            if isinstance(site, tuple):
                self.coords[value] = site
            elif site_coordinates and site in site_coordinates:
                self.coords[value] = site_coordinates[site]
        self.up: dict[str, bool] = {}
        self.rtt: dict[str, dict[str, float]] = {}

    # -- health ---------------------------------------------------------------------------

    def set_health(self, health: dict[str, tuple[bool, dict[str, float]]]) -> None:
        """health: check key → (up, smoothed RTT by region). Unknown checks count as up."""
        self.up, self.rtt = {}, {}
        for value, spec in self.checks.items():
            state = health.get(spec.key)
            if state is not None:
                self.up[value] = state[0]
                self.rtt[value] = state[1]

    def value_up(self, value: PoolValue) -> bool:
        if value.status == "up":
            return True
        if value.status == "down":
            return False
        return self.up.get(value.value, True)

    # -- the decision ---------------------------------------------------------------------

    def match(self, client: Client) -> tuple[int | None, Rule | None]:
        rules = self.dyn.rules
        if self.dyn.options.policy == "weighted":  # weights only: the catch-all's pool
            return len(rules) - 1, rules[-1]
        ip = client.ip() if client.prefix else None
        codes = set(client.location.codes)
        for i, rule in enumerate(rules):
            if rule.catch_all:
                return i, rule
            if ip is not None and any(ip.version == net.version and ip in net for net in rule.subnets):
                return i, rule
            if any(g in codes for g in rule.geos):
                return i, rule
        return None, None

    def decide(self, client: Client, rnd: random.Random | None = None, explain: bool = False) -> Decision:
        """The decision for `client`; with `explain`, also the steps that led to it (`trace`)."""
        opts = self.dyn.options
        trace: list[str] | None = [] if explain else None
        index, rule = self.match(client)
        if trace is not None:
            trace.append(f"matched {rule.label(index)} → pool {rule.pool}"
                         if rule is not None and index is not None else "no rule matched")
        start = rule.pool if rule else None
        name, fallback, seen = start, False, set()
        chosen: list[str] = []
        used_hash = False
        candidates: tuple[tuple[str, int], ...] = ()
        pool: Pool | None = None
        while name is not None and name not in seen:
            seen.add(name)
            pool = self.dyn.pools[name]
            healthy = [v for v in pool.values if self.value_up(v)]
            if trace is not None:
                trace.append(f"pool {name}: " + ", ".join(
                    f"{v.value} {'up' if self.value_up(v) else 'down'}{self._rtt_text(v.value)}"
                    for v in pool.values))
            if healthy:
                chosen, used_hash, candidates = self._select(healthy, client, rnd)
                break
            if trace is not None:
                trace.append(f"pool {name}: no healthy value; " +
                             (f"falling back to {pool.fallback}" if pool.fallback else "end of the fallback chain"))
            fallback = True
            name = pool.fallback
        else:
            name = None
        fail_open = False
        if not chosen:
            picked, fail_open = self._last_resort(start, client, rnd, trace)
            if picked is not None:
                (chosen, used_hash, candidates), name = picked
                fallback = fallback or not fail_open
        degraded = fallback or fail_open or (pool is not None and any(not self.value_up(v) for v in pool.values))
        ttl = self.record.ttl
        if degraded and opts.degraded_ttl is not None:
            ttl = min(ttl, opts.degraded_ttl)
        scope = self._scope(client, index, used_hash)
        if trace is not None:
            trace.append(f"answer {', '.join(chosen) or '(none)'} ttl {ttl} scope /{scope}"
                         + (f" (drawn again for every answer from {', '.join(v for v, _ in candidates)})"
                            if candidates else ""))
        label = rule.label(index) if rule is not None and index is not None else "none"
        return Decision(values=tuple(chosen), ttl=ttl, scope=scope, rule=label,
                        pool=name, fallback=fallback, fail_open=fail_open, degraded=degraded,
                        candidates=candidates, answers=opts.answers, trace=tuple(trace or ()))

    def _last_resort(self, start: str | None, client: Client, rnd: random.Random | None,
                     trace: list[str] | None) -> tuple[tuple[_Selected, str | None] | None, bool]:
        """When every pool of the chain is down: the record's own values if any is up, else fail
        open (as if every check were up) when the record allows it; returns (selection and pool,
        failed open)."""
        defaults = [PoolValue(v) for v in self.defaults]
        healthy = [v for v in defaults if self.value_up(v)]
        if healthy:
            if trace is not None:
                trace.append("answering the record's values: " + ", ".join(v.value for v in healthy))
            return (self._select(healthy, client, rnd, n=len(healthy)), None), False
        if not (self.dyn.options.fail_open and start is not None):
            if trace is not None:
                trace.append("everything is down and fail_open is false: empty answer")
            return None, False
        # As if every check were up; values an operator set to `status: down` stay out.
        listed = [v for v in self.dyn.pools[start].values if v.status != "down"]
        if listed:
            if trace is not None:
                trace.append(f"everything is down: failing open with pool {start} as if all were up")
            return (self._select(listed, client, rnd), start), True
        if trace is not None:
            trace.append("everything is down: failing open with the record's values")
        return (self._select(defaults, client, rnd, n=len(defaults)), None), True

    def _rtt_text(self, value: str) -> str:
        rtts = self.rtt.get(value)
        if not rtts:
            return ""
        return " (" + ", ".join(f"{r} {ms:.1f} ms" for r, ms in sorted(rtts.items())) + ")"

    def _select(self, values: list[PoolValue], client: Client, rnd: random.Random | None,
                n: int | None = None) -> _Selected:
        """Pick `answers` values; returns them, whether a weighted pick (not the data) decided, and
        for `pick: random` the candidates every answer draws from again."""
        n = n or self.dyn.options.answers
        policy = self.dyn.options.policy
        if policy == "latency":
            ordered = self._by_latency(values, client)
            if ordered is not None:
                return ordered[:n], False, ()
        if policy == "proximity" and client.location.latitude is not None:
            ordered = self._by_distance(values, client)
            if ordered is not None:
                return ordered[:n], False, ()
        if len(values) <= n:
            return [v.value for v in values], False, ()
        if self.dyn.options.pick == "random":
            candidates = tuple((v.value, v.weight) for v in values)
            return list(weighted_draw(candidates, n, rnd or _RANDOM)), True, candidates
        key = client.subnet_hash()
        scored = sorted(values, key=lambda v: self._hrw(key, v), reverse=True)
        return [v.value for v in scored[:n]], True, ()

    def _hrw(self, key: int, value: PoolValue) -> float:
        """Weighted rendezvous hashing: sticky per client subnet, and only the clients of a value
        that leaves move when the set changes."""
        h = _mix(key ^ (self.value_hash[value.value] << 1))
        u = (h + 1) / (MASK64 + 2)
        return value.weight / -math.log(u)

    def _geo_key(self, location: Location) -> tuple:
        """What a location decides for this record, leaving subnet rules aside."""
        codes = set(location.codes)
        rules = self.dyn.rules
        index = next((i for i, r in enumerate(rules) if r.catch_all or any(g in codes for g in r.geos)), None)
        region = self.locator.region_of(location) if self.dyn.options.policy == "latency" and self.locator else None
        return index, region

    def _widen(self, client: Client, prefix: int) -> int:
        """Widen the scope past the geo network while the neighbouring half decides the same (the
        way gdnsd merges networks): resolvers then cache one answer for a whole region."""
        locator = self.locator
        if locator is None:
            return prefix
        width = 32 if client.version == 4 else 128
        want = self._geo_key(client.location)
        budget = [WIDEN_BUDGET]

        def uniform(start: int, plen: int) -> bool:
            if budget[0] <= 0:
                return False
            budget[0] -= 1
            location = locator.locate_int(start, client.version)
            net = location.network
            if net is not None and net.prefixlen <= plen:
                return self._geo_key(location) == want
            if plen >= width:
                return False
            half = 1 << (width - plen - 1)
            return uniform(start, plen + 1) and uniform(start + half, plen + 1)

        address = client.address & ~((1 << (width - prefix)) - 1)
        while prefix > 0:
            size = 1 << (width - prefix)
            parent = address & ~((size << 1) - 1)
            sibling = parent + size if address == parent else parent
            if not uniform(sibling, prefix):
                break
            address, prefix = parent, prefix - 1
        return prefix

    def _by_latency(self, values: list[PoolValue], client: Client) -> list[str] | None:
        def rtt(v: PoolValue) -> float | None:
            by_region = self.rtt.get(v.value) or {}
            if client.region and client.region in by_region:
                return by_region[client.region]
            return sum(by_region.values()) / len(by_region) if by_region else None

        measured = [(rtt(v), v) for v in values]
        if all(m is None for m, _ in measured):
            return None
        key = client.subnet_hash()
        measured.sort(key=lambda mv: (mv[0] is None, mv[0] or 0.0, -self._hrw(key, mv[1])))
        return [v.value for _, v in measured]

    def _by_distance(self, values: list[PoolValue], client: Client) -> list[str] | None:
        lat, lon = client.location.latitude, client.location.longitude
        if lat is None or lon is None or not all(v.value in self.coords for v in values):
            return None
        return [v.value for v in sorted(values, key=lambda v: distance_km(lat, lon, *self.coords[v.value]))]

    def _scope(self, client: Client, index: int | None, used_hash: bool) -> int:
        """The widest prefix for which this decision is the same (RFC 7871 scope)."""
        if self.dyn.options.ecs_scope is not None:
            return int(self.dyn.options.ecs_scope)
        if client.prefix == 0:
            return 0
        if self.dyn.options.policy == "weighted":
            consulted: tuple[Rule, ...] = ()  # weights only: geography never decided
        else:
            consulted = self.dyn.rules if index is None else self.dyn.rules[:index + 1]
        scope = 0
        if any(r.geos for r in consulted) or self.dyn.options.policy in ("latency", "proximity"):
            net = client.location.network
            scope = max(scope, net.prefixlen if net is not None and net.version == client.version else client.prefix)
            if net is not None and net.version == client.version and self.dyn.options.policy != "proximity":
                scope = self._widen(client, net.prefixlen)
        if consulted:
            # A subnet rule inside the scope would make part of it answer differently: narrow the
            # scope until it either lies inside that subnet or no longer touches it.
            width = 32 if client.version == 4 else 128
            for rule in consulted:
                for net in rule.subnets:
                    if net.version != client.version:
                        continue
                    start = int(net.network_address)
                    if (client.address >> (width - net.prefixlen)) == (start >> (width - net.prefixlen)):
                        scope = max(scope, net.prefixlen)  # the client is inside the subnet
                    else:
                        common = width - (client.address ^ start).bit_length()
                        if common < net.prefixlen and scope <= common:
                            scope = common + 1  # the scope would reach into the subnet
        if used_hash:
            scope = max(scope, 24 if client.version == 4 else 48)
        return scope
