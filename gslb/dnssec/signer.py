"""One signer per signed zone: the apex key RRsets, RRSIGs made once per distinct RRset, NSECs.

Signatures are cached by the RRset's canonical form (owner, type, TTL and the sorted canonical
RDATA), so every compiled answer that carries the same RRset (a static record, the SOA of every
negative answer, each distinct GSLB value set) shares one signing operation. A cached signature
is re-made when less than `refresh_margin` of its validity is left.

Inception is rounded down to the hour before backdating, and ECDSA signatures are deterministic
(RFC 6979), so every worker and every node of a fleet signing the same RRset in the same hour
produces the same bytes.

Denial of existence is "compact" (RFC 9824): one NSEC per answer, at the query name. NSEC
signatures are kept apart and bounded (`DENIALS_MAX`): in a random-name flood each name is new,
and its signed answer already sits in the responder's bounded miss cache. `sign_nsec` signs one
NSEC given as wire bytes (the per-name denials of `gslb.dnssec.denial`), in the same cache.

RRSIGs and NSECs are built as wire bytes (`WireRdata`), not as dnspython's typed rdata: the
signature is the same (tests compare them byte for byte), for a fraction of the Python work.
"""

from __future__ import annotations

import functools
import struct
import time
from collections.abc import Iterable
from typing import cast

import dns.dnssec
import dns.immutable
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, utils
from dns.rdatatype import RdataType
from dns.rdtypes.ANY.NSEC import Bitmap

from gslb.dnssec.config import DnssecConfig
from gslb.dnssec.state import ZoneKeys

NXNAME = 128  # RFC 9824 meta-type: "this name does not exist" in a compact-denial NSEC bitmap
_ZERO = b"\x00"
_PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey


def canonical_wire(name: dns.name.Name) -> bytes:
    """`name.canonicalize().to_wire()` without making a Name (bytes.lower() folds ASCII only,
    as RFC 4034 section 6.2 asks)."""
    return b"".join(bytes((len(label),)) + label.lower() for label in name.labels)


def rrset_key(rrset: dns.rrset.RRset) -> bytes:
    """The canonical form the signature covers (RFC 4034 section 6), TTL included."""
    owner = canonical_wire(rrset.name)
    rdatas = sorted(rd.to_digestable() for rd in rrset)
    head = owner + rrset.rdtype.to_bytes(2, "big") + rrset.rdclass.to_bytes(2, "big") + rrset.ttl.to_bytes(4, "big")
    return head + b"".join(len(r).to_bytes(2, "big") + r for r in rdatas)


_ECDSA = ec.ECDSA(hashes.SHA256(), deterministic_signing=True)  # RFC 6979: same RRset, same bytes


@dns.immutable.immutable
class WireRdata(dns.rdata.GenericRdata):
    """An NSEC or RRSIG we made, kept as its wire bytes: dnspython's typed rdata would be built,
    validated and re-encoded several times per never-seen name (hashing, canonical form, the
    answer encoder), which cost more than the signature itself. Reads back as the typed rdata
    (`typed()`, `to_text()`); on the wire it is the same bytes."""

    __slots__ = ["covered"]

    def __init__(self, rdclass: dns.rdataclass.RdataClass, rdtype: RdataType, data: bytes, covered: int = 0) -> None:
        super().__init__(rdclass, rdtype, data)
        self.covered = covered

    def covers(self) -> RdataType:
        return RdataType.make(self.covered)

    def typed(self) -> dns.rdata.Rdata:
        return dns.rdata.from_wire(self.rdclass, self.rdtype, self.data, 0, len(self.data))

    def to_styled_text(self, style: dns.rdata.RdataStyle) -> str:
        return self.typed().to_styled_text(style)


def rrsig(rrset: dns.rrset.RRset, private: _PrivateKey, signer: dns.name.Name, algorithm: int, key_tag: int,
          inception: int, expiration: int) -> WireRdata:
    """One RRSIG over `rrset` (RFC 4034 section 3.1.8.1), byte for byte what
    `dns.dnssec.sign(..., deterministic=True)` makes, without its per-call key wrapping and
    checks: this is what a never-seen name's denial pays."""
    owner = rrset.name
    labels = len(owner) - 1 - (1 if owner.is_wild() else 0)
    data = rrsig_wire(canonical_wire(owner), labels, rrset.rdtype, rrset.rdclass, rrset.ttl,
                      sorted(rd.to_digestable() for rd in rrset), private, canonical_wire(signer),
                      cast(bytes, signer.to_wire()), algorithm, key_tag, inception, expiration)
    return WireRdata(rrset.rdclass, RdataType.RRSIG, data, rrset.rdtype)


def rrsig_wire(owner: bytes, labels: int, rdtype: int, rdclass: int, ttl: int, rdatas: list[bytes],
               private: _PrivateKey, signer_canonical: bytes, signer_wire: bytes, algorithm: int, key_tag: int,
               inception: int, expiration: int) -> bytes:
    """The RRSIG rdata over the RRset given in canonical form (owner wire lower-cased, rdatas
    canonical and sorted): shared by `rrsig` and the per-name denials (`ZoneSigner.sign_nsec`)."""
    fixed = struct.pack("!HBBIIIH", rdtype, algorithm, labels, ttl, expiration, inception, key_tag)
    rr_head = owner + struct.pack("!HHI", rdtype, rdclass, ttl)
    data = b"".join((fixed, signer_canonical, *(rr_head + struct.pack("!H", len(r)) + r for r in rdatas)))
    if isinstance(private, ec.EllipticCurvePrivateKey):
        r, s = utils.decode_dss_signature(private.sign(data, _ECDSA))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        signature = private.sign(data)
    return fixed + signer_wire + signature


@functools.lru_cache(maxsize=256)
def _bitmap(types: frozenset[int]) -> bytes:
    rdtypes = sorted(types | {RdataType.NSEC, RdataType.RRSIG})
    # from_rdtypes only does arithmetic on the values: plain ints (NXNAME) are fine
    windows = Bitmap.from_rdtypes(cast(list[RdataType], rdtypes)).windows
    return b"".join(struct.pack("!BB", window, len(bits)) + bits for window, bits in windows)


def nsec(owner: dns.name.Name, next_name: dns.name.Name, types: Iterable[int], ttl: int) -> dns.rrset.RRset:
    """One NSEC record (the next name as given: RFC 6840 section 5.1 keeps its case)."""
    data = cast(bytes, next_name.to_wire()) + _bitmap(frozenset(types))
    out = dns.rrset.RRset(owner, dns.rdataclass.IN, RdataType.NSEC)
    out.add(WireRdata(dns.rdataclass.IN, RdataType.NSEC, data), ttl)
    return out


def successor(name: dns.name.Name) -> dns.name.Name:
    """The name right after `name` in canonical order: `\\000.name` (RFC 4471 section 3.1.1)."""
    try:
        return dns.name.Name((_ZERO, *name.labels))
    except dns.name.NameTooLong:  # no room for a label: the next sibling-ish name
        first = name.labels[0]
        if len(first) < 63:
            return dns.name.Name((first + _ZERO, *name.labels[1:]))
        return name  # cannot happen for names we serve; an NSEC to itself still covers nothing wrong


def subtree_end(name: dns.name.Name) -> dns.name.Name | None:
    """A name after `name` and all its descendants, with nothing in between: the first label
    with a zero octet appended. None when the label is already 63 octets."""
    first = name.labels[0]
    if len(first) >= 63:
        return None
    return dns.name.Name((first + _ZERO, *name.labels[1:]))


def predecessor(name: dns.name.Name) -> dns.name.Name | None:
    """A name just before `name` among its siblings (RFC 4471 section 3.1.2, simplified): the
    first label's last octet decremented and padded with 0xff to 63 octets. None when the label
    ends in a zero octet (its predecessor would be the parent, which exists)."""
    label = predecessor_label(name.labels[0])
    if label is None:
        return None
    try:
        return dns.name.Name((label, *name.labels[1:]))
    except dns.name.NameTooLong:
        return None


def predecessor_label(first: bytes) -> bytes | None:
    """`predecessor`'s first label (see there), for a label given as bytes."""
    first = first.lower()
    last = first[-1]
    if last == 0:
        return None
    last -= 1
    if 0x41 <= last <= 0x5A:  # upper case would sort as lower case: step below 'A'
        last = 0x40
    label = first[:-1] + bytes((last,))
    return label + b"\xff" * (63 - len(label))


# canonical RRset → (its RRSIGs, their expiration); the RRSIGs as an RRset (`sign`) or as the
# rdatas' wire bytes (`sign_nsec`: a never-seen name's NSEC, no RRset built for it)
_Signatures = dict[bytes, tuple[dns.rrset.RRset | tuple[bytes, ...], int]]
DENIALS_MAX = 100_000  # NSEC signatures kept (one per never-seen name in a random-name flood)
_MEMO_MAX = 50_000


class ZoneSigner:
    """Signs RRsets of one zone with its active keys; counts signing operations."""

    def __init__(self, origin: dns.name.Name, cfg: DnssecConfig, keys: ZoneKeys, clock=time.time) -> None:
        self.origin = origin
        self.cfg = cfg
        self.keys = keys
        self.clock = clock
        self.cache: _Signatures = {}  # canonical RRset → (RRSIGs, expiration)
        # the same for NSECs, bounded; `sign_nsec` keeps the RRSIG rdatas as bytes (a tuple)
        self.denials: _Signatures = {}
        self._keys: dict[tuple, tuple[list, bytes]] = {}  # RRsets asked again → (their rdatas, key)
        self.signatures = 0  # signing operations (one per key per RRset signed): for /metrics
        self.fingerprint = (origin, cfg, keys.fingerprint())
        self._origin_canonical = canonical_wire(origin)
        self._origin_wire = cast(bytes, origin.to_wire())
        # (private key, algorithm, tag) of the signing keys, for the DNSKEY RRset and for the rest:
        # worked out once (a key tag is a loop over the key's bytes), not per signature
        self._signing = {dnskey: [(cast(_PrivateKey, k.private), k.algorithm, k.tag) for k in keys.signing(dnskey)]
                         for dnskey in (True, False)}  # signing keys are read with their private half

    # -- the apex ----------------------------------------------------------------------------

    def apex_rrsets(self) -> list[dns.rrset.RRset]:
        """DNSKEY (every published key), and CDS (SHA-256) + CDNSKEY for the keys the parent's
        DS should point at (RFC 7344), all with the DNSKEY TTL."""
        ttl = self.cfg.dnskey_ttl
        dnskey = dns.rrset.RRset(self.origin, dns.rdataclass.IN, RdataType.DNSKEY)
        for key in self.keys.published():
            dnskey.add(key.dnskey, ttl)
        out = [dnskey]
        sep = self.keys.sep_active()
        if sep:
            cds = dns.rrset.RRset(self.origin, dns.rdataclass.IN, RdataType.CDS)
            cdnskey = dns.rrset.RRset(self.origin, dns.rdataclass.IN, RdataType.CDNSKEY)
            for key in sep:
                cds.add(dns.dnssec.make_cds(self.origin, key.dnskey, "SHA256"), ttl)
                cdnskey.add(_cdnskey(key.dnskey), ttl)
            out += [cds, cdnskey]
        return out

    # -- signing ----------------------------------------------------------------------------

    def window(self) -> tuple[int, int]:
        """(inception, expiration) for a signature made now."""
        now = int(self.clock())
        hour = now - now % 3600
        return hour - self.cfg.inception_backdate, hour + self.cfg.signature_validity

    def sign(self, rrset: dns.rrset.RRset, owner: dns.name.Name | None = None) -> dns.rrset.RRset:
        """The RRSIG RRset covering `rrset` (signed under its own owner, which may be a wildcard),
        placed at `owner` (the query name, for a wildcard expansion) or the RRset's owner."""
        # negative answers carry a fresh SOA RRset each time, over the zone's one SOA rdata: the
        # memo knows an RRset by its owner, type, TTL and rdata objects (held, so ids stay unique)
        ident = (rrset.name, rrset.rdtype, rrset.ttl, *map(id, rrset))
        memo = self._keys.get(ident)
        key = memo[1] if memo is not None else rrset_key(rrset)
        cache = self.denials if rrset.rdtype == RdataType.NSEC else self.cache
        hit = cache.get(key)
        now = self.clock()
        if hit is not None and memo is None:  # asked again: remember this RRset object's key
            if len(self._keys) >= _MEMO_MAX:
                self._keys = {}
            self._keys[ident] = (list(rrset), key)
        if hit is None or hit[1] - self.cfg.refresh_margin <= now:
            inception, expiration = self.window()
            sigs = dns.rrset.RRset(rrset.name, rrset.rdclass, RdataType.RRSIG, rrset.rdtype)
            for private, algorithm, tag in self._signing[rrset.rdtype == RdataType.DNSKEY]:
                sigs.add(rrsig(rrset, private, self.origin, algorithm, tag, inception, expiration), rrset.ttl)
                self.signatures += 1
            hit = (sigs, expiration)
            if cache is self.denials and len(cache) >= DENIALS_MAX:
                cache.clear()  # a flood of never-seen names: their answers are in the miss cache anyway
            cache[key] = hit
        kept = hit[0]
        sigs = _as_rrset(rrset, kept) if isinstance(kept, tuple) else kept  # a tuple: made by sign_nsec
        if owner is not None and owner != sigs.name:
            moved = dns.rrset.RRset(owner, sigs.rdclass, RdataType.RRSIG, rrset.rdtype)
            moved.update(sigs)
            moved.ttl = sigs.ttl
            return moved
        return sigs

    def sign_nsec(self, owner: bytes, labels: int, ttl: int, rdata: bytes) -> tuple[bytes, ...]:
        """The RRSIG rdatas over one NSEC record given as wire (owner lower-cased, as `canonical_wire`
        writes it): what `sign` makes for `nsec(...)`, from the same cache (`denials`, one key
        format), without building an RRset. The one signing operation a never-seen name costs."""
        head = owner + _NSEC_IN + ttl.to_bytes(4, "big")
        key = head + len(rdata).to_bytes(2, "big") + rdata
        hit = self.denials.get(key)
        if hit is not None and hit[1] - self.cfg.refresh_margin > self.clock():
            sigs = hit[0]
            return sigs if isinstance(sigs, tuple) else tuple(rd.data for rd in sigs)
        inception, expiration = self.window()
        made = tuple(rrsig_wire(owner, labels, RdataType.NSEC, dns.rdataclass.IN, ttl, [rdata], private,
                                self._origin_canonical, self._origin_wire, algorithm, tag, inception, expiration)
                     for private, algorithm, tag in self._signing[False])
        self.signatures += len(made)
        if len(self.denials) >= DENIALS_MAX:
            self.denials.clear()  # as in `sign`
        self.denials[key] = (made, expiration)
        return made

    def prune(self) -> None:
        """Forget signatures due for refreshing: the ones still in use were made again when the
        answers recompiled, the rest belong to RRsets no answer carries any more."""
        now = self.clock()
        margin = self.cfg.refresh_margin
        self.cache = {k: hit for k, hit in self.cache.items() if hit[1] - margin > now}
        self.denials = {k: hit for k, hit in self.denials.items() if hit[1] - margin > now}
        self._keys = {}

    def refresh_due(self) -> float | None:
        """When the first cached signature needs re-making (answers must be recompiled by then)."""
        if not self.cache and not self.denials:
            return None
        return min(exp for _, exp in (*self.cache.values(), *self.denials.values())) - self.cfg.refresh_margin


_NSEC_IN = struct.pack("!HH", RdataType.NSEC, dns.rdataclass.IN)


def _as_rrset(rrset: dns.rrset.RRset, sigs: tuple[bytes, ...]) -> dns.rrset.RRset:
    """The RRSIG RRset `sign` returns, from the rdatas `sign_nsec` kept."""
    out = dns.rrset.RRset(rrset.name, rrset.rdclass, RdataType.RRSIG, rrset.rdtype)
    for data in sigs:
        out.add(WireRdata(rrset.rdclass, RdataType.RRSIG, data, rrset.rdtype), rrset.ttl)
    return out


def _cdnskey(dnskey: dns.rdata.Rdata) -> dns.rdata.Rdata:
    wire = cast(bytes, dnskey.to_wire())  # no file given: bytes
    return dns.rdata.from_wire(dns.rdataclass.IN, RdataType.CDNSKEY, wire, 0, len(wire))
