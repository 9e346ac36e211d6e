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
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdatatype import RdataType

from gslb.server import encode, wire
from gslb.server.resolve import Answer, Zones, chain_answer, chain_link, decision_answer, owner_answer, plain_zone
from gslb.zone.bulk import is_bulk

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
        self.hdr = headers(flags, an, ns, ar)

    def with_tail(self, tail: bytes) -> Entry:
        """The same answer with another tail (its twin, if any, kept): a template relocated, a
        signed denial laid out per name. Made without __init__: the headers are the same objects."""
        entry = object.__new__(Entry)
        entry.flags, entry.an, entry.ns, entry.ar, entry.tail = self.flags, self.an, self.ns, self.ar, tail
        entry.rcode, entry.zone, entry.pick, entry.qtype = self.rcode, self.zone, None, self.qtype
        entry.hits, entry.signed, entry.hdr = 0, self.signed, self.hdr
        return entry

    def truncated(self) -> Entry:
        """The same response with TC set and no records: the client retries over TCP."""
        return Entry((self.flags | wire.TC), 0, 0, 0, b"", self.zone, qtype=self.qtype)


_HEADER_SETS: dict[tuple[int, int, int, int], tuple[bytes, ...]] = {}


def headers(flags: int, an: int, ns: int, ar: int) -> tuple[bytes, ...]:
    """The eight headers of an answer (RD and CD as asked, without and with OPT), one shared
    tuple per distinct set: a large zone has a few distinct ones for its hundreds of thousands
    of entries."""
    key = (flags, an, ns, ar)
    hdr = _HEADER_SETS.get(key)
    if hdr is None:
        out = []
        for edns in (0, 1):
            for rdcd in range(4):
                f = flags | (wire.RD if rdcd & 1 else 0) | (wire.CD if rdcd & 2 else 0)
                out.append(struct.pack(">HHHHH", f, 1, an, ns, ar + edns))
        hdr = tuple(out)
        if len(_HEADER_SETS) < 100_000:
            _HEADER_SETS[key] = hdr
    return hdr


def header_only(rcode: int, aa: bool = False) -> Entry:
    return Entry(wire.QR | (wire.AA if aa else 0) | rcode, 0, 0, 0, b"")


# The `signed` of a signed zone's template entry: the DO answer is made per name (its NSEC names
# the query name), never sent from the template (gslb.dnssec.denial; the engine leaves DO to Python)
SIGNED_PER_NAME = header_only(wire.RCODE_SERVFAIL)
REFUSED = header_only(wire.RCODE_REFUSED)
NOTIMP = header_only(wire.RCODE_NOTIMP)
FORMERR = header_only(wire.RCODE_FORMERR)


_LENGTHS = tuple(bytes((n,)) for n in range(256))


def qname_wire(name: dns.name.Name) -> bytes:
    """`name.canonicalize().to_wire()` (lower-cased wire) without making two names."""
    labels = name.labels
    if not labels or labels[-1]:
        raise dns.name.NeedAbsoluteNameOrOrigin
    lengths = _LENGTHS
    return b"".join([lengths[len(label)] + label.lower() for label in labels])


def compile_sections(qname: dns.name.Name, qtype: int, qclass: int, flags: int,
                     answer: Iterable[dns.rrset.RRset] = (), authority: Iterable[dns.rrset.RRset] = (),
                     additional: Iterable[dns.rrset.RRset] = (), zone: str = "") -> Entry:
    """Sections → Entry: records encoded and names compressed as dnspython would (encode.py)."""
    an, ns, ar, tail = encode.sections_tail(qname, qtype, qclass, answer, authority, additional)
    if not an and len(_NEGATIVE) < 100_000:  # NODATA/NXDOMAIN bodies: a few distinct ones, shared
        tail = _NEGATIVE.setdefault(tail, tail)
    return Entry(flags, an, ns, ar, tail, zone, qtype=qtype)


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

    Wildcard matches, NXDOMAIN and referrals below a cut come from a `Template` per closest
    encloser, unusual types are compiled on first use into a bounded cache (see
    `fastpath.Responder`), so zone size, not query variety, bounds this table.
    """
    table: dict[bytes, Entry] = {}
    for zone in zones:
        plain = plain_zone(zone)
        bulk = is_bulk(zone)  # only the apex: the names below are answered from its store
        for owner, node in [(zone.origin, zone.nodes[zone.origin])] if bulk else zone.nodes.items():
            if owner.labels and owner.labels[0] == b"*":
                continue  # a wildcard's answers depend on the query name: compiled on demand
            types = set(node) | {RdataType.ANY, RdataType.A, RdataType.AAAA}
            if RdataType.CNAME in node or owner in zone.cuts:
                types |= set(COMMON_TYPES)
            direct = plain and RdataType.DS not in node and owner != zone.origin and zones.find(owner) is zone
            link = chain_link(zones, zone, node) if direct and RdataType.CNAME in node else None
            if link is None and RdataType.CNAME in node:
                direct = False  # a chain the resolver walks
            owner_wire = qname_wire(owner)
            for qtype in types:
                if link is not None:
                    ans: Answer | None = chain_answer(zone, node, link, qtype)
                elif direct:
                    ans = owner_answer(zone, node, qtype)
                else:
                    ans = zones.resolve(owner, qtype)
                if ans is None or ans.wildcard:
                    continue
                table[owner_wire + qtype.to_bytes(2, "big") + IN] = compile_(owner, qtype, ans)
        for name in () if bulk else zone.names - set(zone.nodes):  # empty non-terminals: NODATA
            for qtype in (RdataType.A, RdataType.AAAA):
                ans = zones.resolve(name, qtype)
                if ans is not None and not ans.wildcard:
                    table[table_key(name, qtype)] = compile_(name, qtype, ans)
    return table


# -- templates: answers for names below a closest encloser --------------------------------------

_SAMPLE_LABELS = (b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7")
_HEADER_ONLY = (REFUSED, NOTIMP, FORMERR)


class Template:
    """One answer for every name strictly below a stop name K (a name of a zone, or one the
    answer itself writes), asked with one type and class: wildcard synthesis, NXDOMAIN, a
    referral below a cut, NODATA from a wildcard, REFUSED outside our zones.

    For such names the answer's records are the same, owners renamed to the query name, and
    only the compression pointers past the question depend on it: compiled once for a sample
    name one label below K (`plen0` octets of prefix), the answer for a name with a `plen`-octet
    prefix is the sample's tail with each pointer in `pointers` moved by `plen - plen0`. That
    is what dnspython's compression would write too, as long as no suffix of the query name
    strictly below K is a name the answer writes (`sensitive`): those become stop names, so the
    walk from the query name stops there instead (fastpath.Responder and _engine.c alike).
    """

    __slots__ = ("by_plen", "denial", "entry", "make", "plen0", "pointers", "sensitive")

    def __init__(self, entry: Entry, plen0: int, pointers: tuple[int, ...], sensitive: frozenset[bytes],
                 make: Callable[[int], Entry | None] | None = None) -> None:
        self.entry = entry
        # a GSLB wildcard's (per-client answers): the picker for a prefix length, compiled for a
        # name of that length (`dynamic_template`); None for the others, relocated instead
        self.make = make
        # a signed zone's (entry.signed is SIGNED_PER_NAME): None until a DO answer was learnt from,
        # then the wire layout of its per-name denial (gslb.dnssec.denial.Layout), or False
        self.denial: Any = None
        self.plen0 = plen0
        self.pointers = pointers  # offsets in entry.tail of the pointers to move
        self.sensitive = sensitive
        self.by_plen: dict[int, Entry] = {plen0: entry}  # bounded: a prefix is at most 255 octets

    def entry_for(self, plen: int) -> Entry | None:
        """The answer for a `plen`-octet prefix; None where a GSLB wildcard's cannot be made
        for that length (the name is then compiled for itself)."""
        if not self.pointers and self.make is None:
            return self.entry
        entry = self.by_plen.get(plen)
        if entry is None:
            entry = (self.make(plen) if self.make is not None
                     else self.entry.with_tail(relocate(self.entry.tail, self.pointers, plen - self.plen0)))
            if entry is not None:
                self.by_plen[plen] = entry
        return entry

    def entries(self) -> list[Entry]:
        """Every Entry this template answered from (the shared header-only ones left out)."""
        return [e for e in self.by_plen.values() if all(e is not h for h in _HEADER_ONLY)]

    def pointer_bytes(self) -> bytes:
        return b"".join(p.to_bytes(2, "big") for p in self.pointers)


def relocate(tail: bytes, pointers: tuple[int, ...], delta: int) -> bytes:
    out = bytearray(tail)
    for pos in pointers:
        value = ((out[pos] << 8) | out[pos + 1]) + delta
        out[pos] = value >> 8
        out[pos + 1] = value & 0xFF
    return bytes(out)


def name_independent(qtype: int, qclass: int) -> Entry | None:
    """The header-only answers that depend on the question's type and class alone."""
    if qclass != dns.rdataclass.IN:
        return REFUSED
    if dns.rdatatype.is_metatype(cast(RdataType, qtype)) and qtype != RdataType.ANY:  # any int works
        return FORMERR if qtype == RdataType.OPT else NOTIMP
    return None


def build_template(zones: Zones, compile_: Compiler, kwire: bytes, qtype: int, qclass: int,
                   stops: set[bytes]) -> Template | None:
    """The template for names below `kwire` (lower-cased wire), or None where the answer
    depends on more than the name's length: a DNAME's synthesis, a GSLB (per-client) answer,
    records dnspython writes itself, or no sample name that works. A signed zone's template
    answers queries without DO; those with DO get an answer of their own (`SIGNED_PER_NAME`)."""
    fixed = name_independent(qtype, qclass)
    if fixed is not None:
        return Template(fixed, 2, (), frozenset())
    if len(kwire) + 2 > 255:
        return None
    klabels, _ = dns.name.from_wire(kwire, 0)
    for label in _SAMPLE_LABELS:
        sample_wire = bytes((len(label),)) + label + kwire
        if sample_wire in stops:
            continue
        sample = dns.name.Name((label, *klabels.labels))
        ans = zones.resolve(sample, qtype)
        if ans is None:
            return Template(REFUSED, len(label) + 1, (), frozenset())
        if ans.rcode == dns.rcode.YXDOMAIN or any(r.rdtype == RdataType.DNAME for r in ans.answer):
            return None
        if ans.dynamic is not None:
            return dynamic_template(zones, compile_, kwire, sample, qtype, qclass, ans, stops)
        if ans.zone is not None and ans.zone.config.dnssec is not None:
            # signed: the unsigned answer from here (no signature for a sample); the DO answer
            # names the query name (its NSEC), so it is made per name (gslb.dnssec.denial)
            entry = compile_answer(sample, qtype, ans)
            entry.signed = SIGNED_PER_NAME
        else:
            entry = compile_(sample, qtype, ans)
        if entry.pick is not None or (entry.signed is not None and entry.signed is not SIGNED_PER_NAME):
            return None
        w = encode.TracingWriter()
        _an, _ns, _ar, tail = encode.sections_tail(sample, qtype, qclass, ans.answer, ans.authority,
                                                   ans.additional, w)
        if w.foreign or tail != entry.tail or 12 + 255 + len(tail) > 0x3FFF:
            return None
        sensitive = _sensitive(w, sample.labels, len(klabels.labels))
        if sensitive is None:
            continue  # the answer writes the sample name itself: try another
        start = len(w.buf) - len(tail)
        pointers = tuple(p - start for p in w.pointers if p >= start and (
            ((w.buf[p] & 0x3F) << 8) | w.buf[p + 1]) > 12)
        return Template(entry, len(label) + 1, pointers, sensitive)
    return None


_TEMPLATED = (RdataType.A, RdataType.AAAA, RdataType.TXT, RdataType.CNAME)  # GSLB types with templates


def dynamic_template(zones: Zones, compile_: Compiler, kwire: bytes, sample: dns.name.Name, qtype: int,
                     qclass: int, ans: Answer, stops: set[bytes]) -> Template | None:
    """A GSLB answer for every name below K (a GSLB wildcard, or a wildcard CNAME to a GSLB
    name): the decision is the record's, whatever the name, and so are the bytes, but for the
    compression pointers into the question, which depend on the prefix length only, as long as
    no name any decision's answer writes lies below K in a way the walk does not stop at
    (`sensitive`, as for the other templates; for a GSLB CNAME, every target any pool or the
    record itself holds). So one picker per prefix length, compiled for a name of that length
    (`make`), answers every name of it: its decisions are cached per client like any GSLB
    name's. Signed zones keep per-name answers."""
    record = ans.dynamic[1] if ans.dynamic is not None else None
    if record is None or record.rdtype not in _TEMPLATED or (
            ans.zone is not None and ans.zone.config.dnssec is not None):
        return None
    entry = compile_(sample, qtype, ans)
    if entry.pick is None:
        return None
    sensitive = _decisions_sensitive(zones, sample, qtype, qclass, ans, record, len(sample.labels) - 1)
    if sensitive is None:
        return None
    klabels = sample.labels[1:]

    def make(plen: int) -> Entry | None:
        name = _name_of_length(klabels, kwire, plen, stops | sensitive)
        if name is None:
            return None
        found = zones.resolve(name, qtype)
        if (found is None or found.dynamic is None or found.dynamic[1] is not record or found.zone is not ans.zone
                or found.rcode != ans.rcode or found.wildcard != ans.wildcard):
            return None
        picker = compile_(name, qtype, found)
        return picker if picker.pick is not None else None

    return Template(entry, len(sample.labels[0]) + 1, (), sensitive, make)


def _decisions_sensitive(zones: Zones, sample: dns.name.Name, qtype: int, qclass: int, ans: Answer, record: Any,
                         klen: int) -> frozenset[bytes] | None:
    """The names below K that some decision's answer for `sample` writes (`_sensitive` of each):
    the answer as resolved, and for a record whose values are names (CNAME) the answer with each
    value it may give (`decision_answer`, its chase included), or with none (NODATA). None if one
    cannot be templated."""
    variants = [ans]
    if record.rdtype == RdataType.CNAME:
        targets = {rd.to_text() for rd in record.rdatas} | set(record.dynamic.values())
        variants += [decision_answer(zones, ans, qtype, (target,), record.ttl) for target in sorted(targets)]
        variants.append(decision_answer(zones, ans, qtype, (), record.ttl))
    out: set[bytes] = set()
    for variant in variants:
        w = encode.TracingWriter()
        encode.sections_tail(sample, qtype, qclass, variant.answer, variant.authority, variant.additional, w)
        sensitive = _sensitive(w, sample.labels, klen)
        if w.foreign or sensitive is None:
            return None
        out |= sensitive
    return frozenset(out)


def _name_of_length(klabels: tuple[bytes, ...], kwire: bytes, plen: int, stops: set[bytes] | frozenset[bytes]
                    ) -> dns.name.Name | None:
    """A name `plen` octets longer than K (labels of zeros) that no stop name is a suffix of."""
    labels: list[bytes] = []
    rest = plen
    while rest > 0:
        n = min(63, rest - 1)
        if rest - (n + 1) == 1:
            n -= 1  # never leave a single octet: a label takes two
        if n < 1:
            return None
        labels.append(b"0" * n)
        rest -= n + 1
    if plen + len(kwire) > 255:
        return None
    wire = kwire
    for label in reversed(labels):
        wire = bytes((len(label),)) + label + wire
        if wire in stops:
            return None
    return dns.name.Name((*labels, *klabels))


def _sensitive(w: encode.TracingWriter, sample: tuple[bytes, ...], klen: int) -> frozenset[bytes] | None:
    """The names strictly below K the answer writes (every suffix of them): a query name with
    one of them as a suffix would be compressed differently. None if the sample is one."""
    out: set[bytes] = set()
    k = sample[1:]
    for labels, in_rdata in w.names:
        if labels == sample and not in_rdata:
            continue  # an owner renamed to the query name: a pointer to the question, always
        for i in range(len(labels) - klen):
            suffix = labels[i:]
            if suffix[-klen:] != k:
                break
            if suffix == sample:
                return None
            out.add(b"".join(bytes((len(label),)) + label for label in suffix))
    return frozenset(out)
