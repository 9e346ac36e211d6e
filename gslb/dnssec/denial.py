"""Signed answers for never-seen names below a template, as wire bytes: one signature, no compile.

A name below a signed zone's template (`gslb.server.table.Template`: NXDOMAIN, NODATA, a
wildcard expansion) gets, with DO, the template's answer plus an NSEC that names it, and that
NSEC's RRSIG (`serve.sign_sections`). Everything before the NSEC is the same for every such
name, compression pointers moved by the prefix length as in the unsigned template; the NSEC
and its RRSIG are the only per-name records. A `Layout` keeps those fixed bytes and writes the
rest for each name, signing the NSEC with `ZoneSigner.sign_nsec` (the cache `sign` uses):

- negative (RFC 9824 compact denial): the NSEC at the query name (a pointer to the question),
  next name `\\000.qname`, the bitmap of the template (NXNAME, or the types that exist);
- wildcard expansion (RFC 4035 5.3.4): the answer's RRSIG is the wildcard's (the same bytes for
  every name); the NSEC covers the next closer name: owner `predecessor`, next `subtree_end`.

A layout is learnt from the careful compile of the first such name (the reference, whose bytes
it must reproduce exactly) and checked once more on the next name before it is trusted; names
it cannot lay out (too long for `\\000.qname`, a label no predecessor fits) are compiled as before.
"""

from __future__ import annotations

import logging
import struct

import dns.name
import dns.rdataclass
from dns.rdatatype import RdataType

from gslb.dnssec import serve
from gslb.dnssec.signer import ZoneSigner, predecessor_label
from gslb.server import encode
from gslb.server.resolve import Zones
from gslb.server.table import Entry, relocate

log = logging.getLogger(__name__)

NEGATIVE, WILDCARD = "negative", "wildcard"
_QUESTION = b"\xc0\x0c"  # a pointer to the query name at offset 12
_NSEC_HEAD = struct.pack(">HH", RdataType.NSEC, dns.rdataclass.IN)
_RRSIG_HEAD = struct.pack(">HH", RdataType.RRSIG, dns.rdataclass.IN)


class Layout:
    """The fixed bytes of one template's signed answers and how to write each name's NSEC."""

    __slots__ = ("bitmap", "checked", "head", "kind", "nsec_fixed", "plen0", "pointers", "proto", "rrsig_fixed",
                 "signer", "ttl")

    def __init__(self, kind: str, head: bytes, pointers: tuple[int, ...], plen0: int, ttl: int, bitmap: bytes,
                 signer: ZoneSigner, proto: Entry) -> None:
        self.kind = kind
        self.head = head  # the tail before the NSEC, for a prefix of plen0 octets
        self.pointers = pointers  # the pointers in head that move with the prefix length
        self.plen0 = plen0
        self.ttl = ttl
        self.bitmap = bitmap
        self.signer = signer
        self.proto = proto  # the learnt answer: its headers (counts, flags) are every name's
        self.nsec_fixed = _NSEC_HEAD + ttl.to_bytes(4, "big")
        self.rrsig_fixed = _RRSIG_HEAD + ttl.to_bytes(4, "big")
        self.checked = False  # trusted once a second name's careful compile agreed

    def signed_entry(self, key: bytes, plen: int) -> Entry | None:
        """The signed answer for the lower-cased `key` (name wire + type + class) whose name has
        a `plen`-octet prefix below the template's stop name; None where it cannot be laid out."""
        name = key[:-4]
        delta = plen - self.plen0
        head = relocate(self.head, self.pointers, delta) if delta and self.pointers else self.head
        if self.kind == NEGATIVE:
            if len(name) + 2 > 255:
                return None  # no room for `\000.qname` (successor's fallback): compiled
            owner, owner_wire, sig_owner = name, _QUESTION, _QUESTION
            rdata = b"\x01\x00" + name + self.bitmap
            labels = _labels(name) - (1 if name[:2] == b"\x01*" else 0)
        else:
            start = _label_above(name, plen)
            label = name[start + 1:plen]
            before = predecessor_label(label)
            kwire = name[plen:]
            if before is None or len(label) >= 63 or 64 + len(kwire) > 255 or len(label) + 2 + len(kwire) > 255:
                return None  # no predecessor, no subtree end: compiled
            owner = b"\x3f" + before + kwire
            owner_wire = b"\x3f" + before + (0xC000 | (12 + plen)).to_bytes(2, "big")
            at = 12 + len(key) + len(head)  # where the NSEC's owner sits: its RRSIG points there
            if at > 0x3FFF:
                return None
            sig_owner = (0xC000 | at).to_bytes(2, "big")
            rdata = bytes((len(label) + 1,)) + label + b"\x00" + kwire + self.bitmap
            labels = _labels(kwire) + 1
        sigs = self.signer.sign_nsec(owner, labels, self.ttl, rdata)
        tail = b"".join((head, owner_wire, self.nsec_fixed, len(rdata).to_bytes(2, "big"), rdata,
                         *(sig_owner + self.rrsig_fixed + len(s).to_bytes(2, "big") + s for s in sigs)))
        return self.proto.with_tail(tail)


def _labels(wire: bytes) -> int:
    n = pos = 0
    while wire[pos]:
        n += 1
        pos += wire[pos] + 1
    return n


def _label_above(name: bytes, plen: int) -> int:
    """Where the label just above the stop name (at `plen`) starts: the next closer name's."""
    pos = 0
    while pos + name[pos] + 1 < plen:
        pos += name[pos] + 1
    return pos


def learn(zones: Zones, key: bytes, plen: int, careful: Entry | None, layout: Layout | None = None,
          made: Entry | None = None) -> Layout | bool | None:
    """After the careful compile of `key` (its signed twin `careful`): a new layout learnt from it
    (`layout` None), or `layout` trusted when what it `made` for `key` is the same bytes;
    False when no layout fits this template. A name no layout could answer (see `_usual`)
    teaches nothing: the template's state stays as it was."""
    if careful is None:
        return False
    if not _usual(key, plen):
        return layout
    if layout is not None:
        if made is not None and made.tail == careful.tail and made.hdr == careful.hdr:
            layout.checked = True
            return layout
        log.warning("signed template layout disagrees with the careful compile for %s: compiling per name",
                    dns.name.from_wire(key, 0)[0])
        return False
    learnt = _learn(zones, key, plen, careful)
    if learnt is None:
        return False
    again = learnt.signed_entry(key, plen)  # the signature is the careful one's (cached)
    if again is None or again.tail != careful.tail or again.hdr != careful.hdr:
        return False
    return learnt


def _usual(key: bytes, plen: int) -> bool:
    """Whether `key` is a name every kind of layout answers (not one the careful path treats
    apart: too long for `\000.name`, no predecessor or subtree end for its next closer label)."""
    name = key[:-4]
    label = name[_label_above(name, plen) + 1:plen]
    return len(name) + 2 <= 255 and 0 < len(label) < 63 and label[-1] != 0 and 64 + len(name) - plen <= 255


def _learn(zones: Zones, key: bytes, plen: int, careful: Entry) -> Layout | None:
    """Re-run the careful path's signing (every signature cached by now) and split its answer:
    the records before the last NSEC (traced for pointers), and the NSEC's shape."""
    qname = dns.name.from_wire(key, 0)[0]
    qtype = int.from_bytes(key[-4:-2], "big")
    ans = zones.resolve(qname, qtype)
    owner_zone = serve.owner_zone(qname, qtype)
    if ans is None or ans.additional or owner_zone is None or careful.ar:
        return None
    signed = serve.sign_sections(qname, qtype, ans.rcode, list(ans.answer), list(ans.authority))
    if signed is None:
        return None
    _rcode, answer, authority = signed
    if len(authority) < 2 or authority[-2].rdtype != RdataType.NSEC or authority[-1].rdtype != RdataType.RRSIG:
        return None
    proof = authority[-2]
    w = encode.TracingWriter()
    *_counts, head = encode.sections_tail(qname, qtype, dns.rdataclass.IN, answer, authority[:-2], [], w)
    if w.foreign or not careful.tail.startswith(head):
        return None
    start = len(w.buf) - len(head)
    pointers = tuple(p - start for p in w.pointers if p >= start and (((w.buf[p] & 0x3F) << 8) | w.buf[p + 1]) > 12)
    name = key[:-4]
    if proof.name == qname:
        kind, next_wire = NEGATIVE, b"\x01\x00" + name
    else:
        label = name[_label_above(name, plen) + 1:plen]
        kind, next_wire = WILDCARD, bytes((len(label) + 1,)) + label + b"\x00" + name[plen:]
    rdata = getattr(proof[0], "data", b"") if len(proof) == 1 else b""  # a WireRdata: its bytes
    if not rdata.startswith(next_wire):
        return None
    return Layout(kind, head, pointers, plen, proof.ttl, rdata[len(next_wire):], owner_zone[1], careful)
