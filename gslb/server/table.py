"""Compiled answers: every (name, type, class) we can foresee, as ready wire bytes.

An `Entry` holds the response *after* the question (answer, authority and additional sections,
with names compressed against the question at offset 12) and the eight possible headers
(RD and CD copied from the query, with and without an OPT record). Answering a query is then a
dict lookup and a byte join. dnspython builds all of it when zones load; the fast path never
calls it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any, cast

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdatatype import RdataType

from gslb.server import encode, wire
from gslb.server.resolve import Answer, Zones

# Types answered from the table without a miss for every name (the rest are compiled on demand).
COMMON_TYPES = (RdataType.A, RdataType.AAAA, RdataType.CNAME, RdataType.MX, RdataType.TXT, RdataType.NS,
                RdataType.SOA, RdataType.SRV, RdataType.HTTPS, RdataType.CAA, RdataType.ANY)
IN = dns.rdataclass.IN.to_bytes(2, "big")
CH = dns.rdataclass.CH.to_bytes(2, "big")


class Entry:
    """A ready response body for one question. `pick` is set for GSLB names (per-client)."""

    __slots__ = ("an", "ar", "flags", "hdr", "hits", "ns", "pick", "qtype", "rcode", "signed", "tail", "zone")

    def __init__(self, flags: int, an: int, ns: int, ar: int, tail: bytes, zone: str = "",
                 pick: Callable[..., Any] | None = None, qtype: int = 0) -> None:
        self.flags, self.an, self.ns, self.ar, self.tail = flags, an, ns, ar, tail
        self.rcode = flags & 0xF
        self.zone = zone
        self.pick = pick
        self.qtype = qtype
        self.hits = 0  # answers sent from this entry: the per zone/type/rcode counters
        self.signed: Entry | None = None  # the DNSSEC-signed twin, sent when the query has DO
        hdr = []
        for edns in (0, 1):
            for rdcd in range(4):
                f = flags | (wire.RD if rdcd & 1 else 0) | (wire.CD if rdcd & 2 else 0)
                hdr.append(struct.pack(">HHHHH", f, 1, an, ns, ar + edns))
        self.hdr = tuple(hdr)

    def truncated(self) -> Entry:
        """The same response with TC set and no records: the client retries over TCP."""
        return Entry((self.flags | wire.TC), 0, 0, 0, b"", self.zone, qtype=self.qtype)


def header_only(rcode: int, aa: bool = False) -> Entry:
    return Entry(wire.QR | (wire.AA if aa else 0) | rcode, 0, 0, 0, b"")


REFUSED = header_only(wire.RCODE_REFUSED)
NOTIMP = header_only(wire.RCODE_NOTIMP)
FORMERR = header_only(wire.RCODE_FORMERR)


def qname_wire(name: dns.name.Name) -> bytes:
    return cast(bytes, name.canonicalize().to_wire())  # no file given: bytes, not None


def compile_sections(qname: dns.name.Name, qtype: int, qclass: int, flags: int,
                     answer: Iterable[dns.rrset.RRset] = (), authority: Iterable[dns.rrset.RRset] = (),
                     additional: Iterable[dns.rrset.RRset] = (), zone: str = "") -> Entry:
    """Sections → Entry: records encoded and names compressed as dnspython would (encode.py)."""
    an, ns, ar, tail = encode.sections_tail(qname, qtype, qclass, answer, authority, additional)
    if not an and len(_NEGATIVE) < 100_000:  # NODATA/NXDOMAIN bodies: a few distinct ones, shared
        tail = _NEGATIVE.setdefault(tail, tail)
    entry = Entry(flags, an, ns, ar, tail, zone, qtype=qtype)
    entry.hdr = _HEADERS.setdefault(entry.hdr, entry.hdr)  # one copy of each distinct header set
    return entry


_HEADERS: dict[tuple[bytes, ...], tuple[bytes, ...]] = {}
_NEGATIVE: dict[bytes, bytes] = {}


def compile_answer(qname: dns.name.Name, qtype: int, ans: Answer) -> Entry:
    flags = wire.QR | (wire.AA if ans.aa else 0) | ans.rcode
    zone = ans.zone.name if ans.zone is not None else ""
    return compile_sections(qname, qtype, dns.rdataclass.IN, flags, ans.answer, ans.authority, ans.additional,
                            zone)


def table_key(qname: dns.name.Name, qtype: int, qclass: bytes = IN) -> bytes:
    return qname_wire(qname) + qtype.to_bytes(2, "big") + qclass


def chaos_entries(identity: str, version: str | None) -> dict[bytes, Entry]:
    """CH TXT id.server / hostname.bind / version.bind / version.server: which node answered."""
    out = {}
    items = [("id.server.", identity), ("hostname.bind.", identity)]
    if version is not None:
        items += [("version.bind.", version), ("version.server.", version)]
    for name, text in items:
        qname = dns.name.from_text(name)
        rrset = dns.rrset.from_text(qname, 0, dns.rdataclass.CH, RdataType.TXT, f'"{text}"')
        out[table_key(qname, RdataType.TXT, CH)] = compile_sections(
            qname, RdataType.TXT, dns.rdataclass.CH, wire.QR | wire.AA, [rrset])
    return out


Compiler = Callable[[dns.name.Name, int, Answer], Entry]


def compile_table(zones: Zones, compile_: Compiler = compile_answer) -> dict[bytes, Entry]:
    """Entries for every owner name's data, CNAME chains, apex ALIAS and the common NODATA cases.

    Wildcard matches, NXDOMAIN and unusual types are compiled on first use into a bounded cache
    (see `fastpath.Responder`), so zone size, not query variety, bounds this table.
    """
    table: dict[bytes, Entry] = {}
    for zone in zones:
        for owner, node in zone.nodes.items():
            if owner.labels and owner.labels[0] == b"*":
                continue  # a wildcard's answers depend on the query name: compiled on demand
            types = set(node) | {RdataType.ANY, RdataType.A, RdataType.AAAA}
            if RdataType.CNAME in node or owner in zone.cuts:
                types |= set(COMMON_TYPES)
            for qtype in types:
                ans = zones.resolve(owner, qtype)
                if ans is None or ans.wildcard:
                    continue
                table[table_key(owner, qtype)] = compile_(owner, qtype, ans)
        for name in zone.names - set(zone.nodes):  # empty non-terminals: NODATA
            for qtype in (RdataType.A, RdataType.AAAA):
                ans = zones.resolve(name, qtype)
                if ans is not None and not ans.wildcard:
                    table[table_key(name, qtype)] = compile_(name, qtype, ans)
    return table
