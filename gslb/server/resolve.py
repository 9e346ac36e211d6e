"""The authoritative lookup of RFC 1034 4.3.2, with wildcards (RFC 4592), DNAME (RFC 6672),
in-zone CNAME chasing, referrals with glue and RFC 8482 ANY.

This runs when answers are compiled and for the rare queries the compiled table lacks; it
never runs per query on the fast path, so it favours clarity over speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import cast

import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.name import Name
from dns.rdatatype import RdataType

from gslb.zone.model import Record, Zone

MAX_CHAIN = 8  # CNAME/DNAME links followed inside our zones
ANY_PREFERENCE = (RdataType.A, RdataType.AAAA, RdataType.CNAME, RdataType.MX, RdataType.TXT, RdataType.SOA)


@dataclass
class Answer:
    rcode: int = dns.rcode.NOERROR
    aa: bool = True
    answer: list[dns.rrset.RRset] = field(default_factory=list)
    authority: list[dns.rrset.RRset] = field(default_factory=list)
    additional: list[dns.rrset.RRset] = field(default_factory=list)
    zone: Zone | None = None
    wildcard: bool = False  # the answer depends on the query name (synthesised)
    dynamic: tuple[int, Record] | None = None  # answer[i] comes from a GSLB record: decided per client


def _renamed(rrset: dns.rrset.RRset, owner: Name) -> dns.rrset.RRset:
    if rrset.name == owner:
        return rrset
    out = dns.rrset.RRset(owner, rrset.rdclass, rrset.rdtype)
    out.update(rrset)
    out.ttl = rrset.ttl
    return out


def negative_soa(zone: Zone) -> dns.rrset.RRset:
    """The SOA for NXDOMAIN/NODATA, its TTL capped by the SOA minimum (RFC 2308 section 5).

    Made once per zone (a large zone has a NODATA answer for most names) and shared: answers
    only read their RRsets."""
    soa = zone.soa
    cached = zone.__dict__.get("_negative_soa")
    if cached is not None and cached[0] is soa:
        return cast(dns.rrset.RRset, cached[1])
    out = dns.rrset.RRset(soa.name, soa.rdclass, soa.rdtype)
    out.update(soa)
    out.ttl = min(soa.ttl, soa[0].minimum)
    zone.__dict__["_negative_soa"] = (soa, out)
    return out


class Zones:
    """The zones this server is authoritative for, found by longest match."""

    def __init__(self, zones: list[Zone]) -> None:
        self.by_origin: dict[Name, Zone] = {z.origin: z for z in zones}
        # the same, keyed by lower-cased labels: `find` walks suffixes without making names
        self._by_labels: dict[tuple[bytes, ...], Zone] = {
            tuple(label.lower() for label in z.origin.labels): z for z in zones}

    def __iter__(self):
        return iter(self.by_origin.values())

    def __len__(self) -> int:
        return len(self.by_origin)

    def find(self, qname: Name) -> Zone | None:
        labels = qname.labels
        if labels and not labels[-1]:  # absolute
            key = tuple([label.lower() for label in labels])
            get = self._by_labels.get
            for i in range(len(key)):
                zone = get(key[i:])
                if zone is not None:
                    return zone
            return None
        name = qname
        while True:
            zone = self.by_origin.get(name)
            if zone is not None:
                return zone
            if name == dns.name.root:
                return None
            name = name.parent()

    def zone_for(self, qname: Name, qtype: int) -> Zone | None:
        zone = self.find(qname)
        if zone is not None and qtype == RdataType.DS and qname == zone.origin and qname != dns.name.root:
            parent = self.find(qname.parent())  # DS belongs to the parent side of a cut
            if parent is not None:
                return parent
        return zone

    def resolve(self, qname: Name, qtype: int, tcp: bool = False) -> Answer | None:
        """The answer for one question; None when no zone of ours covers it (REFUSED)."""
        zone = self.zone_for(qname, qtype)
        if zone is None:
            return None
        ans = Answer(zone=zone)
        _lookup(self, zone, qname, qtype, tcp, ans, set())
        return ans


def _closest_encloser(zone: Zone, qname: Name) -> Name:
    name = qname.parent()
    while name not in zone.names:
        name = name.parent()
    return name


def _referral(zone: Zone, cut: Name, ans: Answer) -> None:
    ns = zone.nodes[cut][RdataType.NS]
    ans.authority.append(ns)
    if not ans.answer:
        ans.aa = False
    for rdata in ns:
        target = rdata.target
        if target.is_subdomain(zone.origin):
            node = zone.nodes.get(target, {})
            for rdtype in (RdataType.A, RdataType.AAAA):
                if rdtype in node:
                    ans.additional.append(node[rdtype])


def _dname_above(zone: Zone, qname: Name) -> Name | None:
    if not zone.dnames:
        return None
    name = qname.parent()
    while name.is_subdomain(zone.origin):
        if name in zone.dnames:
            return name
        if name == zone.origin:
            break
        name = name.parent()
    return None


def _follow(zones: Zones, target: Name, qtype: int, tcp: bool, ans: Answer, seen: set[Name]) -> None:
    """Continue a CNAME/DNAME chain when the target is in a zone of ours."""
    if len(seen) >= MAX_CHAIN or target in seen:
        return
    next_zone = zones.find(target)
    if next_zone is None:
        return
    _lookup(zones, next_zone, target, qtype, tcp, ans, seen)


def _synthesise(zones: Zones, zone: Zone, dname_owner: Name, qname: Name, qtype: int, tcp: bool, ans: Answer,
                seen: set[Name]) -> None:
    """RFC 6672: the DNAME, the CNAME it makes for `qname`, and the chain from its target."""
    dname = zone.nodes[dname_owner][RdataType.DNAME]
    ans.answer.append(dname)
    try:
        target = qname.relativize(dname_owner).derelativize(dname[0].target)
    except dns.name.NameTooLong:
        ans.rcode = dns.rcode.YXDOMAIN
        return
    cname = dns.rrset.from_text(qname, dname.ttl, dns.rdataclass.IN, RdataType.CNAME, target.to_text())
    ans.answer.append(cname)
    ans.wildcard = True
    _follow(zones, target, qtype, tcp, ans, seen)


def _lookup(zones: Zones, zone: Zone, qname: Name, qtype: int, tcp: bool, ans: Answer, seen: set[Name]) -> None:
    seen.add(qname)
    cut = zone.cut_above(qname, qtype)
    if cut is not None:
        _referral(zone, cut, ans)
        return
    dname_owner = _dname_above(zone, qname)
    if dname_owner is not None:
        _synthesise(zones, zone, dname_owner, qname, qtype, tcp, ans, seen)
        return
    node = zone.nodes.get(qname)
    source = qname
    if node is None and qname not in zone.names:
        source = dns.name.Name((b"*", *_closest_encloser(zone, qname).labels))
        node = zone.nodes.get(source)
        if node is None:
            ans.rcode = dns.rcode.NXDOMAIN
            ans.authority.append(negative_soa(zone))
            return
        ans.wildcard = True
    node = node or {}
    cname = node.get(RdataType.CNAME)
    if cname is not None and qtype not in (RdataType.CNAME, RdataType.ANY):
        ans.answer.append(_renamed(cname, qname))
        dynamic = zone.dynamic.get((source, RdataType.CNAME))
        if dynamic is not None:  # the target is chosen per client: the chain stops here
            ans.dynamic = (len(ans.answer) - 1, dynamic)
            return
        _follow(zones, cname[0].target, qtype, tcp, ans, seen)
        return
    if qtype == RdataType.ANY:
        rrsets = [_renamed(rrset, qname) for rrset in node.values()]
        found = _any_answer(rrsets, tcp)
        if found:
            ans.answer.extend(found)
            return
    elif qtype in node:
        ans.answer.append(_renamed(node[qtype], qname))
        dynamic = zone.dynamic.get((source, qtype))
        if dynamic is not None:
            ans.dynamic = (len(ans.answer) - 1, dynamic)
        return
    elif qtype in (RdataType.A, RdataType.AAAA) and qname == zone.origin and zone.alias is not None:
        target_zone = zones.find(zone.alias)
        if target_zone is not None:
            target_node = target_zone.nodes.get(zone.alias, {})
            if qtype in target_node:
                ans.answer.append(_renamed(target_node[qtype], qname))
                return
    ans.authority.append(negative_soa(zone))  # NODATA


def _any_answer(rrsets: list[dns.rrset.RRset], tcp: bool) -> list[dns.rrset.RRset]:
    if tcp:
        return sorted(rrsets, key=lambda r: r.rdtype)
    # RFC 8482 4.1: one RRset of the responder's choosing
    return sorted(rrsets, key=lambda r: (r.rdtype not in ANY_PREFERENCE,
                                         ANY_PREFERENCE.index(r.rdtype) if r.rdtype in ANY_PREFERENCE
                                         else r.rdtype))[:1]


def plain_zone(zone: Zone) -> bool:
    """No delegations, DNAMEs or GSLB records: every owner's answers come from its own node."""
    return not zone.cuts and not zone.dnames and not zone.dynamic


def owner_answer(zone: Zone, node: dict[int, dns.rrset.RRset], qtype: int) -> Answer:
    """What `Zones.resolve(owner, qtype)` (over UDP) answers for the owner of `node` in a `plain_zone`
    that has data and no CNAME, below the apex, when no other served zone is closer: its
    RRset, the one ANY chooses, or NODATA. Compiling a large zone asks this for most of its
    entries; the walk (cuts, DNAMEs, wildcards, chains) has nothing to find for them."""
    ans = Answer(zone=zone)
    if qtype == RdataType.ANY:
        ans.answer = _any_answer(list(node.values()), False)
        if ans.answer:
            return ans
    else:
        rrset = node.get(qtype)
        if rrset is not None:
            ans.answer.append(rrset)
            return ans
    ans.authority.append(negative_soa(zone))  # NODATA
    return ans


def chain_link(zones: Zones, zone: Zone, node: dict[int, dns.rrset.RRset]
               ) -> tuple[dns.rrset.RRset, dict[int, dns.rrset.RRset] | None] | None:
    """For an owner of a `plain_zone` whose node is a CNAME: (the CNAME, the target's node) when
    the target is a plain owner of the same zone (one link), (the CNAME, None) when no zone of
    ours holds the target; None for anything longer or stranger (the resolver walks those)."""
    cname = node[RdataType.CNAME]
    target = cname[0].target
    if cname.name == target:
        return None
    target_zone = zones.find(target)
    if target_zone is None:
        return cname, None
    target_node = zone.nodes.get(target)
    if (target_zone is not zone or target_node is None or target == zone.origin
            or RdataType.CNAME in target_node or RdataType.DS in target_node):
        return None
    return cname, target_node


def chain_answer(zone: Zone, node: dict[int, dns.rrset.RRset],
                 link: tuple[dns.rrset.RRset, dict[int, dns.rrset.RRset] | None], qtype: int) -> Answer:
    """`owner_answer` for a CNAME owner with its `chain_link`: the CNAME, then the target's
    RRset or NODATA (or nothing more for a target outside our zones)."""
    if qtype in (RdataType.CNAME, RdataType.ANY):
        return owner_answer(zone, node, qtype)
    cname, target_node = link
    ans = Answer(zone=zone, answer=[cname])
    if target_node is not None:
        rrset = target_node.get(qtype)
        if rrset is not None:
            ans.answer.append(rrset)
        else:
            ans.authority.append(negative_soa(zone))  # NODATA at the target
    return ans


def decision_answer(zones: Zones, ans: Answer, qtype: int, values: tuple[str, ...], ttl: int) -> Answer:
    """The answer a GSLB decision gives: `ans` (a GSLB answer) up to its GSLB RRset, which holds
    `values`, or NODATA when there are none. A GSLB CNAME's target is chased like any CNAME's
    (RFC 1034 section 4.3.2, step 3a): its records, or NXDOMAIN/NODATA, when a zone of ours holds
    it; nothing more when none does, or when the chain reaches another GSLB record (whose answer
    is decided for itself: the resolver asks for the target)."""
    assert ans.dynamic is not None
    index, record = ans.dynamic
    out = Answer(rcode=ans.rcode, aa=ans.aa, answer=ans.answer[:index], zone=ans.zone, wildcard=ans.wildcard)
    if not values:
        if ans.zone is not None:
            out.authority.append(negative_soa(ans.zone))
        return out
    rrset = dns.rrset.RRset(ans.answer[index].name, dns.rdataclass.IN, record.rdtype)
    for value in values:
        rrset.add(dns.rdata.from_text(dns.rdataclass.IN, record.rdtype, value), ttl)
    out.answer.append(rrset)
    if record.rdtype == RdataType.CNAME and qtype not in (RdataType.CNAME, RdataType.ANY):
        chased = replace(out, answer=list(out.answer), authority=[], additional=[])
        _follow(zones, rrset[0].target, qtype, False, chased, {r.name for r in out.answer})
        if chased.dynamic is None:  # else the CNAME alone
            return chased
    return out
