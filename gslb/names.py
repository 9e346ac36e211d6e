"""Faster equality and hashing for dnspython names and common rdata, installed on import of gslb.

dnspython hashes a name with a per-character Python loop and compares names through
`fullcompare`; with names as the keys of every zone index, that was a large share of loading
and compiling a big zone. These keep the same contract (equal ignoring ASCII case, equal names
hash alike) using C-level byte and tuple operations. Ordering (`<`, `fullcompare`) is untouched.

Rdata hash through their DNSSEC-canonical wire form (`to_digestable`), which a set of records
(every RRset) computes twice per record added; for A, AAAA, TXT, SOA and the single-name types a
hash of the fields that form that wire (equal rdata give equal fields) gives the same contract.
"""

from __future__ import annotations

import dns.name
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.MX
import dns.rdtypes.ANY.NS
import dns.rdtypes.ANY.PTR
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.SPF
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA

_Name = dns.name.Name


def _hash(self: _Name) -> int:
    return hash(b"\x00".join(self.labels).lower())  # equal names join alike; collisions only cost time


def _eq(self: _Name, other: object) -> bool:
    if not isinstance(other, _Name):
        return False
    a, b = self.labels, other.labels
    if a == b:
        return True
    if len(a) != len(b):
        return False
    return [x.lower() for x in a] == [y.lower() for y in b]


def _ne(self: _Name, other: object) -> bool:
    return not _eq(self, other)


def _hash_address(self) -> int:
    return hash(self.address)  # canonical text: one text per address


def _hash_strings(self) -> int:
    return hash(self.strings)


def _hash_target(self) -> int:
    return hash(self.target)


def _hash_mx(self) -> int:
    return hash((self.preference, self.exchange))


def _hash_soa(self) -> int:
    return hash((self.mname, self.rname, self.serial))


_RDATA_HASHES = (
    (dns.rdtypes.ANY.SOA.SOA, _hash_soa),
    (dns.rdtypes.IN.A.A, _hash_address), (dns.rdtypes.IN.AAAA.AAAA, _hash_address),
    (dns.rdtypes.ANY.TXT.TXT, _hash_strings), (dns.rdtypes.ANY.SPF.SPF, _hash_strings),
    (dns.rdtypes.ANY.CNAME.CNAME, _hash_target), (dns.rdtypes.ANY.NS.NS, _hash_target),
    (dns.rdtypes.ANY.PTR.PTR, _hash_target), (dns.rdtypes.ANY.MX.MX, _hash_mx),
)


def install() -> None:
    if getattr(_Name, "_gslb_fast", False):
        return
    _Name.__hash__ = _hash  # type: ignore[method-assign]  # deliberate monkey-patch for speed
    _Name.__eq__ = _eq  # type: ignore[method-assign]  # deliberate monkey-patch for speed
    _Name.__ne__ = _ne  # type: ignore[method-assign]  # deliberate monkey-patch for speed
    for cls, fn in _RDATA_HASHES:
        cls.__hash__ = fn  # type: ignore[method-assign]  # deliberate monkey-patch for speed
    _Name._gslb_fast = True  # type: ignore[attr-defined]
