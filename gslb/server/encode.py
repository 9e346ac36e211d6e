"""Direct wire encoding of response sections, byte for byte what dnspython's renderer makes.

`compile_sections` used to build a `dns.message.Message` per compiled answer and render it; at
hundreds of thousands of names that is most of a zone load. This writes the same bytes straight
into one bytearray: the header's twelve octets, the question, then each RRset's records in
their stored order (dnspython would shuffle them; the differential test renders it with
`want_shuffle=False`).

Name compression follows dnspython's `Name.to_wire` exactly: each suffix of a name (longest
first) is looked up in the compression table; a hit ends the name with a pointer, a miss
writes the label and, when the offset fits 14 bits, records the suffix. Suffixes compare
without regard to case, so the table is keyed by the tuple of lower-cased labels. Rdata that
dnspython compresses (CNAME, NS, PTR, MX, SOA) uses the same table; types with names it does
not compress are written uncompressed; anything else goes through dnspython itself with an
equivalent compression table, so an unusual type costs time, never a different byte.
"""

from __future__ import annotations

import io
import socket
import struct
from collections.abc import Iterable
from typing import Any, cast

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.SPF
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rrset
from dns.rdatatype import RdataType

_A = dns.rdtypes.IN.A.A
_AAAA = dns.rdtypes.IN.AAAA.AAAA
_TXT = (dns.rdtypes.ANY.TXT.TXT, dns.rdtypes.ANY.SPF.SPF)
_TARGET = (dns.rdtypes.ANY.CNAME.CNAME, dns.rdtypes.ANY.NS.NS, dns.rdtypes.ANY.PTR.PTR)
_MX = dns.rdtypes.ANY.MX.MX
_SOA = dns.rdtypes.ANY.SOA.SOA
_pack_HHI = struct.Struct(">HHI").pack
_pack_H = struct.Struct(">H").pack
_pack_IIIII = struct.Struct(">IIIII").pack
_inet_pton = socket.inet_pton
_AF_INET, _AF_INET6 = socket.AF_INET, socket.AF_INET6

# Types whose rdata dnspython writes without touching the compression table (names, if any,
# uncompressed): their own to_wire() bytes are the answer.
_UNCOMPRESSED = frozenset({
    RdataType.SRV, RdataType.CAA, RdataType.HTTPS, RdataType.SVCB, RdataType.DS, RdataType.TLSA,
    RdataType.SSHFP, RdataType.NAPTR, RdataType.LOC, RdataType.URI, RdataType.OPENPGPKEY, RdataType.DNAME,
    RdataType.RRSIG, RdataType.DNSKEY, RdataType.NSEC, RdataType.NSEC3, RdataType.NSEC3PARAM, RdataType.CDS,
    RdataType.CDNSKEY, RdataType.HINFO, RdataType.RP, RdataType.AFSDB, RdataType.KX, RdataType.CERT,
    RdataType.SMIMEA, RdataType.ZONEMD, RdataType.CSYNC, RdataType.NULL,
})

class Writer:
    """One message being rendered: a bytearray and its compression table."""

    __slots__ = ("buf", "compress")

    def __init__(self) -> None:
        self.buf = bytearray(12)
        self.compress: dict[tuple[bytes, ...], int] = {}

    def name(self, name: dns.name.Name) -> None:
        """`dns.name.Name.to_wire(file, compress)` for an absolute name."""
        labels = name.labels
        buf = self.buf
        compress = self.compress
        last = len(labels) - 1
        if last < 0 or labels[last]:
            raise dns.name.NeedAbsoluteNameOrOrigin
        low = tuple(map(bytes.lower, labels))
        for i in range(last):
            key = low[i:] if i else low  # suffixes compare without regard to case
            pos = compress.get(key)
            if pos is not None:
                buf += _pack_H(0xC000 + pos)
                return
            pos = len(buf)
            if pos <= 0x3FFF:
                compress[key] = pos
            label = labels[i]
            buf.append(len(label))
            buf += label
        buf.append(0)

    def question(self, qname: dns.name.Name, qtype: int, qclass: int, lower: bool = True) -> None:
        """The question into an empty table, its name lower-cased (`qname.canonicalize()`) or as is."""
        labels = qname.labels
        low = [label.lower() for label in labels]
        if not low or low[-1]:
            raise dns.name.NeedAbsoluteNameOrOrigin
        out = low if lower else labels
        buf = self.buf
        compress = self.compress
        for i in range(len(low) - 1):
            compress.setdefault(tuple(low[i:]), len(buf))
            buf.append(len(out[i]))
            buf += out[i]
        buf.append(0)
        buf += _pack_H(qtype) + _pack_H(qclass)

    def rrset(self, rrset: dns.rrset.RRset) -> int:
        """`Rdataset.to_wire(name, file, compress, want_shuffle=False)`; returns records written."""
        name = rrset.name
        buf = self.buf
        if len(rrset) == 0:
            self.name(name)
            buf += _pack_HHI(rrset.rdtype, rrset.rdclass, 0) + b"\x00\x00"
            return 1
        fixed = _pack_HHI(rrset.rdtype, rrset.rdclass, rrset.ttl)
        for rd in rrset:
            self.name(name)
            buf += fixed
            start = len(buf)
            buf += b"\x00\x00"
            self.rdata(rd)
            buf[start:start + 2] = _pack_H(len(buf) - start - 2)
        return len(rrset)

    def rdata(self, rd: Any) -> None:
        # rd is a dns.rdata.Rdata; Any because the `kind is _A` dispatch below (one type() call,
        # kept for speed) does not narrow for mypy, so the per-type attributes would not check.
        kind = type(rd)
        buf = self.buf
        if kind is _A:
            buf += _inet_pton(_AF_INET, rd.address)
        elif kind is _AAAA:
            buf += _inet_pton(_AF_INET6, rd.address)
        elif kind in _TXT:
            for s in rd.strings:
                buf.append(len(s))
                buf += s
        elif kind in _TARGET:
            self.name(rd.target)
        elif kind is _MX:
            buf += _pack_H(rd.preference)
            self.name(rd.exchange)
        elif kind is _SOA:
            self.name(rd.mname)
            self.name(rd.rname)
            buf += _pack_IIIII(rd.serial, rd.refresh, rd.retry, rd.expire, rd.minimum)
        elif rd.rdtype in _UNCOMPRESSED and rd.rdclass == dns.rdataclass.IN:
            buf += rd.to_wire()
        else:
            self._dnspython(rd)

    def _dnspython(self, rd: dns.rdata.Rdata) -> None:
        """Let dnspython write it, with our table translated to its own (Name → offset)."""
        table = {dns.name.Name(key): pos for key, pos in self.compress.items()}
        out = io.BytesIO()
        out.write(self.buf)
        rd.to_wire(out, table, None)
        self.buf[:] = out.getvalue()
        for name, pos in table.items():
            self.compress.setdefault(tuple(label.lower() for label in name.labels), pos)


    def rollback(self, mark: int) -> None:
        """Forget everything written from offset `mark` on (names it recorded too)."""
        del self.buf[mark:]
        for key in [key for key, pos in self.compress.items() if pos >= mark]:
            del self.compress[key]


def render(qname: dns.name.Name, qtype: int, qclass: int, flags: int,
           sections: Iterable[Iterable[dns.rrset.RRset]]) -> tuple[bytes, tuple[int, ...], int]:
    """A whole response with id 0: (message, record count per section, question length)."""
    w = Writer()
    w.question(qname, qtype, qclass)
    qlen = len(w.buf) - 12
    counts = tuple(sum(w.rrset(rrset) for rrset in section) for section in sections)
    w.buf[0:12] = struct.pack(">HHHHHH", 0, flags, 1, *counts, *(0,) * (3 - len(counts)))
    return bytes(w.buf), counts, qlen


_OWNED: list[Any] = [None, None, b""]  # the last RRset `owned_tail` encoded, its query name, its bytes


def owned_tail(qname: dns.name.Name, rrset: dns.rrset.RRset) -> bytes | None:
    """The records of an RRset owned by the query name whose rdata hold no names (A, AAAA,
    TXT): what `Writer` writes after the question, without it. Each owner is a pointer to the
    question (offset 12; the root has none) and nothing enters the compression table that matters. None for
    anything else. Most entries of a large zone are one such RRset (its A answer and its ANY
    answer are the same RRset, so the last one's bytes are kept and shared)."""
    if _OWNED[0] is rrset and _OWNED[1] is qname:
        return cast(bytes, _OWNED[2])
    name = rrset.name
    if not len(rrset) or len(qname.labels) < 2 or (name is not qname and tuple(map(bytes.lower, name.labels)) != tuple(
            map(bytes.lower, qname.labels))):
        return None
    head = b"\xc0\x0c" + _pack_HHI(rrset.rdtype, rrset.rdclass, rrset.ttl)
    parts = []
    for rd in rrset:
        kind = type(rd)
        if kind is _A:
            data = _inet_pton(_AF_INET, rd.address)
        elif kind is _AAAA:
            data = _inet_pton(_AF_INET6, rd.address)
        elif kind in _TXT:
            data = b"".join([bytes((len(s),)) + s for s in rd.strings])
        else:
            return None
        parts.append(head + _pack_H(len(data)) + data)
    tail = b"".join(parts)
    _OWNED[:] = rrset, qname, tail
    return tail


def sections_tail(qname: dns.name.Name, qtype: int, qclass: int,
                  answer: Iterable[dns.rrset.RRset], authority: Iterable[dns.rrset.RRset],
                  additional: Iterable[dns.rrset.RRset], w: Writer | None = None) -> tuple[int, int, int, bytes]:
    """(an, ns, ar, the bytes after the question) for a response to `qname` (asked in lower case)."""
    if w is None:
        if type(answer) is list and len(answer) == 1 and not authority and not additional:
            tail = owned_tail(qname, answer[0])
            if tail is not None and len(tail) <= 65535 - 12 - 255 - 4:  # else TooBig, from the Writer
                return len(answer[0]), 0, 0, tail
        w = Writer()
    w.question(qname, qtype, qclass)
    start = len(w.buf)
    an = ns = ar = 0
    for rrset in answer:
        an += w.rrset(rrset)
    for rrset in authority:
        ns += w.rrset(rrset)
    for rrset in additional:
        ar += w.rrset(rrset)
    if len(w.buf) > 65535:
        raise dns.exception.TooBig
    return an, ns, ar, bytes(w.buf[start:])


class TracingWriter(Writer):
    """A `Writer` that also notes what a template needs (`table.Template`): where each
    compression pointer lies, every name written (and whether it sat in rdata), and whether
    dnspython wrote something itself (its pointers cannot be seen, so no template then)."""

    __slots__ = ("foreign", "in_rdata", "names", "pointers")

    def __init__(self) -> None:
        super().__init__()
        self.pointers: list[int] = []  # offsets in buf of two-octet compression pointers
        self.names: list[tuple[tuple[bytes, ...], bool]] = []  # (lower-cased labels, in rdata)
        self.in_rdata = False
        self.foreign = False

    def name(self, name: dns.name.Name) -> None:
        start = len(self.buf)
        super().name(name)
        self.names.append((tuple(label.lower() for label in name.labels), self.in_rdata))
        buf = self.buf
        pos = start
        while buf[pos]:
            if buf[pos] >= 0xC0:
                self.pointers.append(pos)
                break
            pos += buf[pos] + 1

    def rdata(self, rd: Any) -> None:
        self.in_rdata = True
        try:
            super().rdata(rd)
        finally:
            self.in_rdata = False

    def _dnspython(self, rd: dns.rdata.Rdata) -> None:
        self.foreign = True
        super()._dnspython(rd)
