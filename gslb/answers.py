"""Zones + health → the answers a worker serves, rebuilt only when either changes.

Static names are compiled once per zone load (`gslb.server.table`). A GSLB name compiles to an
entry whose `pick` decides per client: the client's prefix is located once, the record's policy
decides once per (record, prefix) and health generation, and the wire answer for each distinct
value set is built once. A health change only empties the decision cache; the next query of
each client prefix decides again.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from gslb import gctools
from gslb.dnssec import serve as dnssec
from gslb.health.model import HealthMap
from gslb.policy.client import V4_BITS, V6_BITS, Client, Locator
from gslb.policy.select import Decision, RecordPolicy
from gslb.server import wire
from gslb.server.fastpath import Snapshot
from gslb.server.resolve import Answer, Zones, decision_answer
from gslb.server.table import Entry, compile_answer, compile_sections, compile_table
from gslb.zone.model import Zone

DECISION_CACHE_MAX = 1_000_000


class Decided:
    """One cached GSLB decision for a client prefix (or ECS option): the answer, or None when
    every answer draws its values again (`pick: random`); the ECS scope and counter label; the
    decision; the answers drawn so far by their values; and, once the native engine asked, the
    weighted one-value answers it draws from itself."""

    __slots__ = ("decision", "drawn", "draws", "entry", "label", "scope")

    def __init__(self, entry: Entry | None, scope: int, label: str, decision: Decision) -> None:
        self.entry, self.scope, self.label, self.decision = entry, scope, label, decision
        self.drawn: dict[tuple[str, ...], Entry] = {}
        self.draws: tuple[tuple[Entry, int], ...] = ()


class _Only(Zones):
    """All the served zones for lookups, but one of them to compile."""

    def __init__(self, zones: Zones, zone: Zone) -> None:  # not super().__init__: that would index again
        self.__dict__.update(zones.__dict__)
        self._only = zone

    def __iter__(self):
        return iter([self._only])


class Answers:
    """Zones + health → the entries workers answer from; GSLB names decide per client prefix."""

    def __init__(self, zones: list[Zone], locator: Locator | None = None,
                 site_coordinates: dict[str, tuple[float, float]] | None = None,
                 previous: Answers | None = None) -> None:
        self.locator = locator or Locator()
        self.site_coordinates = site_coordinates or {}
        self.health: HealthMap = {}
        self.decisions: dict[str, int] = {}  # "NAME TYPE|decision label" → answers
        self.decision_cache: dict[tuple[int, bytes], Decided] = {}
        self.answer_cache: dict[tuple, Entry] = {}
        self.random = random.Random()
        self.reusable: dict[dns.name.Name, Zone] = {}  # zones whose entries a next load may take as they are
        self.load(zones, previous)

    # -- inputs ---------------------------------------------------------------------------

    def load(self, zones: list[Zone], previous: Answers | None = None) -> None:
        """Compile `zones`; with `previous` (the generation before), a zone parsed from an
        unchanged file (the same object) keeps the entries compiled for it then."""
        dnssec.prepare(zones)  # keys, apex DNSKEY/CDS/CDNSKEY; ConfigError (nothing changed) when unusable
        self._fit_locator(zones)
        policies: dict[tuple[dns.name.Name, int], RecordPolicy] = {}
        for zone in zones:
            for key, record in zone.dynamic.items():
                policy = RecordPolicy(record, self.site_coordinates, self.locator)
                policy.set_health(self.health)
                policies[key] = policy
        self.policies = policies
        self.zones = Zones(zones)
        self.decision_cache = {}
        self.answer_cache = {}
        with gctools.paused():  # compiling makes millions of long-lived objects (see gctools)
            self.snapshot = Snapshot(self.zones, self._table(zones, previous), self.compile)
        gctools.settle()

    def _table(self, zones: list[Zone], previous: Answers | None) -> dict[bytes, Entry]:
        """The compiled table, zone by zone, taking unchanged zones' entries from `previous`.

        A zone's entries are reused only when they cannot depend on anything else: no GSLB names
        (their entries decide through this object's policies), not signed (signatures are
        refreshed by reloading), no served zone above or below it, every answer made of its own
        records only, and the same set of zones served."""
        origins = [z.origin for z in zones]
        same_set = previous is not None and set(origins) == {z.origin for z in previous.zones}
        reuse = {z.name for z in zones if same_set and previous is not None and previous.reusable.get(z.origin) is z}
        table: dict[bytes, Entry] = {}
        if reuse and previous is not None:
            table = {key: entry for key, entry in previous.snapshot.table.items() if entry.zone in reuse}
        self.reusable = {}
        for zone in zones:
            eligible = (not zone.dynamic and not dnssec.is_signed(zone)
                        and not any(o != zone.origin and (o.is_subdomain(zone.origin) or zone.origin.is_subdomain(o))
                                    for o in origins))
            if zone.name in reuse:
                self.reusable[zone.origin] = zone
                continue
            part, contained = self._compile_zone(zone, check=eligible and len(zones) > 1)
            table.update(part)
            if eligible and contained:
                self.reusable[zone.origin] = zone
        return table

    def _compile_zone(self, zone: Zone, check: bool) -> tuple[dict[bytes, Entry], bool]:
        """One zone's entries, and (when `check`) whether every answer stayed inside the zone."""
        origin = zone.origin
        contained = True
        compile_ = self.compile

        def compile_checked(qname: dns.name.Name, qtype: int, ans: Answer) -> Entry:
            nonlocal contained
            if contained and (ans.zone is not zone or not all(
                    r.name.is_subdomain(origin) for part in (ans.answer, ans.authority, ans.additional) for r in part)):
                contained = False
            return compile_(qname, qtype, ans)

        return compile_table(_Only(self.zones, zone), compile_checked if check else compile_), contained

    def _fit_locator(self, zones: list[Zone]) -> None:
        """Client prefixes must be at least as fine as the finest subnet rule."""
        v4, v6 = V4_BITS, V6_BITS
        for zone in zones:
            for record in zone.dynamic.values():
                for rule in record.dynamic.rules:
                    for net in rule.subnets:
                        if net.version == 4:
                            v4 = max(v4, net.prefixlen)
                        else:
                            v6 = max(v6, net.prefixlen)
        self.locator.resize(v4, v6)

    def set_health(self, health: HealthMap) -> bool:
        """New health decisions. Returns whether any GSLB answer can change."""
        if health == self.health:
            return False
        self.health = health
        for policy in self.policies.values():
            policy.set_health(health)
        self.decision_cache = {}
        return True

    # -- compiling ------------------------------------------------------------------------

    def compile(self, qname: dns.name.Name, qtype: int, ans: Answer) -> Entry:
        """Answer → Entry; answers that touch a GSLB record get a per-client `pick`."""
        static = compile_answer(qname, qtype, ans)
        if dnssec.is_signed(ans.zone):  # a signed zone: the twin sent to queries with DO
            static.signed = dnssec.signed_entry(qname, qtype, static.flags, ans.answer, ans.authority,
                                                ans.additional, static.zone)
        if ans.dynamic is None:
            return static
        _index, record = ans.dynamic
        policy = self.policies[(record.name, record.rdtype)]
        slot = id(policy) ^ hash((qname, qtype))
        decide = self._decider(qname, qtype, ans, policy, slot)
        entry = Entry(static.flags, static.an, static.ns, static.ar, static.tail, static.zone, pick=decide,
                      qtype=qtype)
        if static.signed is not None:
            entry.signed = dnssec.twin_for_pick(static.signed, decide)
        return entry

    def _decider(self, qname: dns.name.Name, qtype: int, ans: Answer, policy: RecordPolicy, slot: int
                 ) -> Callable[[bytes, bytes | None], tuple[Entry, int]]:
        locator = self.locator
        decisions = self.decisions
        record = policy.record
        record_label = f"{record.name.to_text(omit_final_dot=True)} {dns.rdatatype.to_text(record.rdtype)}|"

        def entry_for(values: tuple[str, ...], ttl: int) -> Entry:
            return self._entry(qname, qtype, ans, values, ttl)

        def decide(source: bytes, ecs: bytes | None, native: bool = False
                   ) -> tuple[Entry, int, bool, str, tuple[tuple[Entry, int], ...]]:
            """`ecs` is the raw Client Subnet option body: cached as is, validated on a miss.

            An option with SOURCE PREFIX-LENGTH 0 asks us not to use client information: the
            resolver's own address decides and the scope is 0 (RFC 7871 section 7.1.2).
            Returns the entry, the ECS scope, whether the decision may be cached as one answer
            (not for `pick: random`), its counter label (the native engine caches and counts
            too) and, when `native` asks and one value is drawn per answer, the weighted entries
            the engine may draw from itself."""
            key = ecs if ecs and ecs[2] else source
            hit = self.decision_cache.get((slot, key))
            if hit is None:
                subnet = wire.parse_ecs(ecs) if ecs else None
                decision = policy.decide(locator.client(locator.key(source, subnet)), self.random)
                scope = decision.scope if ecs and ecs[2] else 0
                # `pick: random` keeps the decision (rule, pool, healthy candidates, scope) and
                # draws the values again for every answer
                hit = Decided(None if decision.candidates else entry_for(decision.values, decision.ttl), scope,
                              record_label + decision.label, decision)
                cache = self.decision_cache
                if len(cache) >= DECISION_CACHE_MAX:
                    self.decision_cache = cache = {}
                cache[(slot, key)] = hit
            decisions[hit.label] = decisions.get(hit.label, 0) + 1
            if hit.entry is not None:
                return hit.entry, hit.scope, True, hit.label, ()
            decision = hit.decision
            values = decision.draw(self.random)
            entry = hit.drawn.get(values)
            if entry is None:
                entry = hit.drawn[values] = entry_for(values, decision.ttl)
            if native and decision.answers == 1 and not hit.draws:
                hit.draws = tuple((entry_for((v,), decision.ttl), w) for v, w in decision.candidates)
            return entry, hit.scope, False, hit.label, hit.draws if native else ()

        def pick(source: bytes, ecs: bytes | None) -> tuple[Entry, int]:
            entry, scope, _sticky, _label, _draws = decide(source, ecs)
            return entry, scope

        pick.decide = decide  # type: ignore[attr-defined]
        pick.decisions = decisions  # type: ignore[attr-defined]
        return pick

    def _entry(self, qname: dns.name.Name, qtype: int, ans: Answer, values: tuple[str, ...], ttl: int) -> Entry:
        key = (qname, qtype, values, ttl)
        entry = self.answer_cache.get(key)
        if entry is not None:
            return entry
        decided = decision_answer(self.zones, ans, qtype, values, ttl)
        answer, authority, additional = decided.answer, decided.authority, decided.additional
        flags = wire.QR | (wire.AA if decided.aa else 0) | decided.rcode
        entry = compile_sections(qname, qtype, dns.rdataclass.IN, flags, answer, authority, additional,
                                 ans.zone.name if ans.zone else "")
        if dnssec.is_signed(ans.zone):
            entry.signed = dnssec.signed_entry(qname, qtype, flags, answer, authority, additional, entry.zone)
        self.answer_cache[key] = entry
        return entry

    # -- for the dashboard ------------------------------------------------------------------

    def region_answers(self, regions: Any) -> dict[str, dict[str, Any]]:
        """Per GSLB name: its pools with value health, and what a client in each probe region gets."""
        from gslb.policy.client import Location

        clients = {}
        for name, place in regions.regions.items():
            codes = tuple(place.covers[:1])  # the region's first covered geo stands for it
            location = Location(codes=codes, latitude=place.latitude, longitude=place.longitude)
            clients[name] = self.locator.synthetic(location, name)
        out = {}
        for (owner, rdtype), policy in self.policies.items():
            record = policy.record
            pools = {p.name: [{"value": v.value, "weight": v.weight, "status": v.status, "up": policy.value_up(v),
                               "check": policy.checks[v.value].key if v.value in policy.checks else None}
                              for v in p.values] for p in record.dynamic.pools.values()}
            by_region = {}
            for region, client in clients.items():
                d = policy.decide(client, self.random)
                by_region[region] = {"rule": d.rule, "pool": d.pool, "values": list(d.values), "fallback": d.fallback,
                                     "fail_open": d.fail_open}
            name = owner.to_text(omit_final_dot=True)
            type_text = dns.rdatatype.to_text(dns.rdatatype.RdataType(rdtype))
            out[f"{name} {type_text}"] = {
                "name": name, "type": type_text, "policy": record.dynamic.options.policy,
                "time": time.time(), "pools": pools, "by_region": by_region}
        return out

    # -- explaining -----------------------------------------------------------------------

    def explain(self, qname: dns.name.Name, qtype: int, client: Client) -> dict[str, Any]:
        """What the server would answer this client, and why (for `gslb explain`).

        `rcode`, `aa`, and the records per section as text (`answer`, `authority`, `additional`);
        `negative` explains the TTL of a NXDOMAIN/NODATA answer from its SOA (RFC 2308)."""
        import dns.rcode

        ans = self.zones.resolve(qname, qtype)
        if ans is None:
            return {"answer": "REFUSED (not in any zone served)", "rcode": "REFUSED", "aa": False, "trace": [],
                    "sections": {}}
        out: dict[str, Any] = {"rcode": dns.rcode.to_text(dns.rcode.Rcode(ans.rcode)), "aa": ans.aa, "trace": [],
                               "zone": ans.zone.name if ans.zone else None, "wildcard": ans.wildcard}
        decided = ans
        if ans.dynamic is None:
            out["answer"] = "static"
        else:
            index, record = ans.dynamic
            policy = self.policies[(record.name, record.rdtype)]
            decision = policy.decide(client, self.random, explain=True)
            out.update({"answer": "dynamic", "record": f"{record.name} {record.rtype}",
                        "policy": record.dynamic.options.policy, "decision": decision, "trace": list(decision.trace),
                        "cname_chain": [r.to_text() for r in ans.answer[:index]]})
            values = decision.draw(self.random)  # `pick: random`: one answer's draw
            decided = decision_answer(self.zones, ans, qtype, values, decision.ttl)  # the served answer
            out.update({"rcode": dns.rcode.to_text(dns.rcode.Rcode(decided.rcode)), "aa": decided.aa})
        answer, authority = decided.answer, decided.authority
        sections = {"answer": answer, "authority": authority, "additional": decided.additional}
        out["sections"] = {name: [line for rrset in rrsets for line in rrset.to_text().splitlines()]
                           for name, rrsets in sections.items()}
        if not answer or decided.rcode == dns.rcode.NXDOMAIN:
            out["kind"] = "NXDOMAIN" if decided.rcode == dns.rcode.NXDOMAIN else "NODATA"
            soa = next((r for r in authority if r.rdtype == dns.rdatatype.SOA), None)
            if soa is not None and ans.zone is not None:
                zone_soa = ans.zone.soa
                out["negative"] = {"soa": soa.name.to_text(), "ttl": soa.ttl, "soa_ttl": zone_soa.ttl,
                                   "minimum": zone_soa[0].minimum}
            elif decided.rcode == dns.rcode.NOERROR and any(r.rdtype == dns.rdatatype.NS for r in authority):
                out["kind"] = "referral"
        return out
