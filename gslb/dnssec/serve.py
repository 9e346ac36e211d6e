"""Signed answers, made when answers compile: each `Entry` of a signed zone gets a twin
(`Entry.signed`) that the fast path sends to queries with the DO bit.

`prepare(zones)` runs on every (re)load, in the supervisor and in each worker: it loads the keys
of every signed zone (refusing the load, file named, when they are missing or unusable), puts
DNSKEY/CDS/CDNSKEY at the apex and registers one `ZoneSigner` per zone (kept across reloads
while the keys do not change, so unchanged RRsets are not signed again).

What the twin carries, beside the unsigned answer:
- an RRSIG for every RRset of the answer and authority sections, made by the zone that owns it
  (a CNAME chain into another signed zone of ours is signed by that zone); glue and the NS
  RRset of a referral are not signed (RFC 4035 section 2.2), nor a CNAME synthesised from a DNAME;
- a wildcard expansion: the RRSIG made over the wildcard owner (its labels field tells the
  validator) plus an NSEC proving that the next closer name does not exist (RFC 4035 5.3.4);
- a referral: the DS RRset and its RRSIG, or an NSEC at the cut without DS (an unsigned child);
- compact denial (RFC 9824): NXDOMAIN becomes NOERROR with an NSEC at the name, next name
  `\\000.name`, bitmap NSEC RRSIG NXNAME; NODATA gets an NSEC at the name with the types that do exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import dns.name
import dns.rcode
import dns.rdataclass
import dns.rrset
from dns.name import Name
from dns.rdatatype import RdataType

from gslb.conf.problems import ConfigError, Problem
from gslb.dnssec import keys as keyfiles
from gslb.dnssec.signer import NXNAME, ZoneSigner, nsec, predecessor, subtree_end, successor
from gslb.dnssec.state import ZoneKeys
from gslb.server.table import Entry, compile_sections

if TYPE_CHECKING:  # annotations only
    from gslb.zone.model import Zone

_registry: dict[Name, tuple[Zone, ZoneSigner]] = {}  # origin → (Zone, signer), the signed zones in service
_zones: dict[Name, Zone] = {}  # origin → Zone, every zone in service (signed or not)
_signers: dict[tuple, ZoneSigner] = {}  # by fingerprint: signature caches survive reloads


def check_zone(zone) -> list[Problem]:
    """What keeps a signed zone from being served: missing/unreadable keys, a broken state."""
    cfg = zone.config.dnssec
    if cfg is None:
        return []
    try:
        zk = ZoneKeys.load(cfg.keys_dir, zone.origin)
    except keyfiles.KeyError_ as exc:
        return [Problem(zone.file, 1, f"{zone.name}.dnssec", str(exc))]
    return [Problem(zone.file, 1, f"{zone.name}.dnssec", p) for p in zk.check()]


def prepare(zones: Iterable[Zone]) -> dict[Name, ZoneSigner]:
    """Load keys, add the apex key RRsets and register the signers of `zones` (see module doc).
    Raises ConfigError (nothing changed) when a signed zone's keys cannot be used."""
    zones = list(zones)
    problems: list[Problem] = []
    new: dict[Name, tuple[Zone, ZoneSigner]] = {}
    for zone in zones:
        cfg = zone.config.dnssec
        if cfg is None:
            continue
        try:
            zk = ZoneKeys.load(cfg.keys_dir, zone.origin)
        except keyfiles.KeyError_ as exc:
            problems.append(Problem(zone.file, 1, f"{zone.name}.dnssec", str(exc)))
            continue
        broken = zk.check()
        if broken:
            problems += [Problem(zone.file, 1, f"{zone.name}.dnssec", p) for p in broken]
            continue
        fingerprint = (zone.origin, cfg, zk.fingerprint())
        signer = _signers.get(fingerprint) or ZoneSigner(zone.origin, cfg, zk)
        new[zone.origin] = (zone, signer)
    if problems:
        raise ConfigError(problems)
    for zone, signer in new.values():
        apex = zone.nodes.setdefault(zone.origin, {})
        for rrset in signer.apex_rrsets():
            apex[rrset.rdtype] = rrset
    _registry.clear()
    _registry.update(new)
    _zones.clear()
    _zones.update({zone.origin: zone for zone in zones})
    _signers.clear()
    _signers.update({s.fingerprint: s for _, s in new.values()})
    return {origin: s for origin, (_, s) in new.items()}


def signers() -> dict[Name, ZoneSigner]:
    return {origin: s for origin, (_, s) in _registry.items()}


def signatures() -> int:
    """Signing operations so far in this process (the /metrics counter)."""
    return sum(s.signatures for _, s in _registry.values())


def refresh_due() -> float | None:
    """The earliest time a served signature needs re-making: answers must recompile by then."""
    due = [t for _, s in _registry.values() if (t := s.refresh_due()) is not None]
    return min(due) if due else None


def prune() -> None:
    """After answers recompiled for a refresh: drop the signatures no answer uses any more."""
    for _, signer in _registry.values():
        signer.prune()


def is_signed(zone) -> bool:
    return zone is not None and zone.origin in _registry and _registry[zone.origin][0] is zone


def _owner_zone(name: Name, rdtype: int = 0):
    """(zone, signer) of the zone that holds `name` (longest match) when it is signed, else None.
    A DS at a zone's apex belongs to the parent side of the cut."""
    start = name
    if rdtype == RdataType.DS and name in _zones and name != dns.name.root:
        start = name.parent()  # as Zones.zone_for: the parent when we serve it, else the zone itself
    found = _find_zone(start)
    if found is None and start != name:
        found = _find_zone(name)
    if found is None:
        return None
    hit = _registry.get(found.origin)
    return hit if hit is not None and hit[0] is found else None


owner_zone = _owner_zone  # for gslb.dnssec.denial: the signer of a name's records


def _find_zone(name: Name):
    while True:
        zone = _zones.get(name)
        if zone is not None:
            return zone
        if name == dns.name.root:
            return None
        name = name.parent()


def _closest_encloser(zone, name: Name) -> Name:
    while name not in zone.names and name != zone.origin:
        name = name.parent()
    return name


def _types_at(zone, name: Name) -> set[int]:
    """The types that exist at `name` (through the wildcard when the name itself does not exist)."""
    node = zone.nodes.get(name)
    if node is None and name not in zone.names:
        ce = _closest_encloser(zone, name)
        node = zone.nodes.get(dns.name.Name((b"*", *ce.labels)))
    return set(node or ())


def _renamed(rrset: dns.rrset.RRset, owner: Name) -> dns.rrset.RRset:
    out = dns.rrset.RRset(owner, rrset.rdclass, rrset.rdtype, rrset.covers)
    out.update(rrset)
    out.ttl = rrset.ttl
    return out


def _negative_ttl(zone) -> int:
    soa = zone.soa
    return min(soa.ttl, soa[0].minimum)


def _sign_data(rrset: dns.rrset.RRset, out: list[dns.rrset.RRset], authority: list[dns.rrset.RRset]) -> None:
    """Append `rrset` and its RRSIGs; a wildcard expansion also proves the next closer name absent."""
    out.append(rrset)
    hit = _owner_zone(rrset.name, rrset.rdtype)
    if hit is None:
        return
    zone, signer = hit
    name = rrset.name
    if name in zone.names or not name.is_subdomain(zone.origin):
        out.append(signer.sign(rrset))
        return
    ce = _closest_encloser(zone, name)
    wild = dns.name.Name((b"*", *ce.labels))
    if wild not in zone.nodes:  # not a wildcard expansion after all (should not happen): sign as is
        out.append(signer.sign(rrset))
        return
    next_closer = name.split(len(ce) + 1)[1]
    before, after = predecessor(next_closer), subtree_end(next_closer)
    if before is None or after is None:  # no room for the proof: answer as if the name existed
        out.append(signer.sign(rrset))
        return
    out.append(signer.sign(_renamed(rrset, wild), owner=name))
    proof = nsec(before, after, (), _negative_ttl(zone))
    if not any(r.name == proof.name and r.rdtype == RdataType.NSEC for r in authority):
        authority += [proof, signer.sign(proof)]


def sign_sections(qname: Name, qtype: int, rcode: int, answer: list[dns.rrset.RRset],
                  authority: list[dns.rrset.RRset]) -> tuple[int, list, list] | None:
    """(rcode, answer, authority) with signatures and denial added; None when the zone is unsigned."""
    first = _owner_zone(qname, qtype)
    if first is None:
        return None
    signed_answer: list[dns.rrset.RRset] = []
    signed_authority: list[dns.rrset.RRset] = []
    dnames = [r.name for r in answer if r.rdtype == RdataType.DNAME]
    final = qname
    for rrset in answer:
        if rrset.rdtype == RdataType.CNAME:
            final = rrset[0].target
            if any(rrset.name.is_subdomain(d) and rrset.name != d for d in dnames):
                signed_answer.append(rrset)  # synthesised from a signed DNAME: never signed
                continue
        _sign_data(rrset, signed_answer, signed_authority)
    negative = False
    for rrset in authority:
        hit = _owner_zone(rrset.name)
        if rrset.rdtype == RdataType.NS and hit is not None and rrset.name in hit[0].cuts:
            zone, signer = hit
            signed_authority.append(rrset)  # the referral's NS: not signed (the child's data)
            ds = zone.nodes.get(rrset.name, {}).get(RdataType.DS)
            if ds is not None:
                signed_authority += [ds, signer.sign(ds)]
            else:
                proof = nsec(rrset.name, successor(rrset.name), _types_at(zone, rrset.name) - {RdataType.DS},
                             _negative_ttl(zone))
                signed_authority += [proof, signer.sign(proof)]
            continue
        if rrset.rdtype == RdataType.SOA:
            negative = True
        if hit is None:
            signed_authority.append(rrset)
        else:
            signed_authority += [rrset, hit[1].sign(rrset)]
    if negative:
        hit = _owner_zone(final, qtype)
        if hit is not None:
            zone, signer = hit
            if rcode == dns.rcode.NXDOMAIN:
                types = {NXNAME}
                rcode = dns.rcode.NOERROR  # RFC 9824 section 3: the name "exists", with nothing
            else:
                types = _types_at(zone, final) - {qtype}
            proof = nsec(final, successor(final), types, _negative_ttl(zone))
            signed_authority += [proof, signer.sign(proof)]
    return rcode, signed_answer, signed_authority


def signed_entry(qname: Name, qtype: int, flags: int, answer: list, authority: list, additional: list,
                 zone_name: str):
    """The signed twin of one compiled answer (an `Entry`), or None when its zone is unsigned."""
    signed = sign_sections(qname, qtype, flags & 0xF, list(answer), list(authority))
    if signed is None:
        return None
    rcode, an, ns = signed
    return compile_sections(qname, qtype, dns.rdataclass.IN, (flags & ~0xF) | rcode, an, ns, additional, zone_name)


def twin_for_pick(entry, pick):
    """The signed twin of a GSLB entry: the same decision, its answer's signed twin."""

    def signed_pick(source: bytes, ecs: bytes | None):
        chosen, scope = pick(source, ecs)
        return (chosen.signed or chosen), scope

    return Entry(entry.flags, entry.an, entry.ns, entry.ar, entry.tail, entry.zone, pick=signed_pick,
                 qtype=entry.qtype)
