"""Large plain zones kept in the native store (gslb/zone/_bulk.c, bulk_store.h), not as Python objects.

Why: the Python model and compiled entries cost about 4 KB per name, so a million-name zone
would need gigabytes and minutes. A file the native reader takes (plain names; A, AAAA,
CNAME, MX, TXT, PTR and apex NS; nothing the loader would warn about) is read straight into
one arena of wire records, about 100 octets per name, shared by every worker after the fork.
The answer engine answers its names from the arena; Python's answers come from the same
store (`Store.answer`), or, where it declines, from the resolver walking `BulkNodes`, which
makes a node's RRsets from the stored wire when it is asked. Everything else is the loader's:
a file the reader declines is loaded by gslb/zone/load.py, which words its problems.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.name import Name

from gslb.config import MAX_TTL, ZoneConfig
from gslb.zone.model import Record, Zone, bare_name, bare_rrset

try:
    from gslb.zone import _bulk  # type: ignore[attr-defined]
except ImportError:  # not built: every zone goes through the loader
    _bulk = None

log = logging.getLogger(__name__)

# Files smaller than this are loaded by the loader (their names then have compiled entries, and
# templates, as before); GSLB_BULK_MIN_BYTES moves the line (tests use small zones).
MIN_BYTES = 4_000_000
_IN = dns.rdataclass.IN
_WALK_CHUNK = 4096


def enabled() -> bool:
    return _bulk is not None and not os.environ.get("GSLB_NO_NATIVE")


def min_bytes() -> int:
    try:
        return int(os.environ.get("GSLB_BULK_MIN_BYTES", MIN_BYTES))
    except ValueError:
        return MIN_BYTES


def origin_wire(origin: Name) -> bytes:
    return b"".join(bytes((len(label),)) + label.lower() for label in origin.labels)


@dataclass(eq=False)
class BulkZone(Zone):
    """A Zone whose names below the apex live in `store`; `nodes` and `names` read it."""

    store: Any = None
    apex: dict[int, dns.rrset.RRset] = field(default_factory=dict)  # the origin's node, SOA included

    def index(self) -> None:
        self.apex = {dns.rdatatype.SOA: self.soa}
        for record in self.records:
            self.apex[record.rdtype] = record.rrset()
        self._views()
        self.cuts, self.dnames, self.dynamic, self.alias = set(), set(), {}, None

    def _views(self) -> None:
        self.nodes = BulkNodes(self)  # type: ignore[assignment]  # a read-only mapping of the same shape
        self.names = BulkNames(self)  # type: ignore[assignment]

    def relative(self, name: Name) -> bytes | None:
        """`name`'s lower-cased wire labels above the origin; None when not strictly below it."""
        labels = name.labels
        depth = len(self.origin.labels)
        if len(labels) <= depth or tuple(label.lower() for label in labels[-depth:]) != self._origin_low:
            return None
        return b"".join(bytes((len(label),)) + label.lower() for label in labels[:-depth])

    @property
    def _origin_low(self) -> tuple[bytes, ...]:
        low = self.__dict__.get("_low")
        if low is None:
            low = self.__dict__["_low"] = tuple(label.lower() for label in self.origin.labels)
        return low

    def has(self, name: object, data: bool) -> bool:
        """Whether `name` is one of the zone's names (with `data`: one that owns records)."""
        if not isinstance(name, Name):
            return False
        if name == self.origin:
            return True
        rel = self.relative(name)
        sets = self.store.node(rel) if rel is not None else None
        return bool(sets) if data else sets is not None

    def owner(self, rel: bytes) -> Name:
        labels = []
        pos = 0
        while pos < len(rel):
            labels.append(rel[pos + 1:pos + 1 + rel[pos]])
            pos += rel[pos] + 1
        return bare_name((*labels, *self.origin.labels))

    def node_of(self, owner: Name, sets: list[tuple[int, int, list[bytes]]]) -> dict[int, dns.rrset.RRset]:
        node: dict[int, dns.rrset.RRset] = {}
        for rdtype, ttl, wires in sets:
            rdtype = dns.rdatatype.RdataType.make(rdtype)
            rdatas = [dns.rdata.from_wire(_IN, rdtype, wire, 0, len(wire)) for wire in wires]
            node[rdtype] = bare_rrset(owner, rdtype, ttl, rdatas)
        return node

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the views (remade on load); the store pickles as its bytes."""
        state = dict(self.__dict__)
        for key in ("nodes", "names", "_low"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._views()


class BulkNodes(Mapping[Name, dict[int, dns.rrset.RRset]]):
    """`Zone.nodes` of a bulk zone: each node's RRsets made from the store when asked."""

    def __init__(self, zone: BulkZone) -> None:
        self.zone = zone

    def __getitem__(self, name: Name) -> dict[int, dns.rrset.RRset]:
        zone = self.zone
        if name == zone.origin:
            return zone.apex
        rel = zone.relative(name)
        sets = zone.store.node(rel) if rel is not None else None
        if not sets or rel is None:
            raise KeyError(name)
        return zone.node_of(zone.owner(rel), sets)

    def __contains__(self, name: object) -> bool:
        return self.zone.has(name, data=True)

    def __iter__(self) -> Iterator[Name]:
        for owner, _node in self.items():
            yield owner

    def items(self) -> Iterator[tuple[Name, dict[int, dns.rrset.RRset]]]:  # type: ignore[override]
        """Every owner and its node, in file order, read from the store a chunk at a time."""
        zone = self.zone
        yield zone.origin, zone.apex
        offset = 0
        while offset >= 0:
            chunk, offset = zone.store.walk(offset, _WALK_CHUNK)
            for rel, sets in chunk:
                if rel:
                    owner = zone.owner(rel)
                    yield owner, zone.node_of(owner, sets)

    def __len__(self) -> int:
        return int(self.zone.store.stats()["names"])


class BulkNames:
    """`Zone.names` of a bulk zone: membership only (empty non-terminals included)."""

    def __init__(self, zone: BulkZone) -> None:
        self.zone = zone

    def __contains__(self, name: object) -> bool:
        return self.zone.has(name, data=False)

    def __iter__(self) -> Iterator[Name]:
        raise TypeError("a bulk zone's names are not listed: ask for membership")


def load(data: bytes, path: str, origin: Name, zcfg: ZoneConfig, serial: int,
         soa_for: Any) -> BulkZone | None:
    """The zone read by the native reader, or None (logged, with why) for the loader to read."""
    if not enabled() or zcfg.dnssec is not None or len(data) < min_bytes():
        return None
    store = _bulk.parse(data, origin_wire(origin), zcfg.ttl, MAX_TTL)
    if isinstance(store, str):
        log.info("%s: read by the full loader (%s)", path, store)
        return None
    records = []
    for rdtype, ttl, wires in store.node(b"") or ():
        rdtype = dns.rdatatype.RdataType.make(rdtype)
        rdatas = [dns.rdata.from_wire(_IN, rdtype, wire, 0, len(wire)) for wire in wires]
        records.append(Record(origin, dns.rdatatype.to_text(rdtype), ttl, rdatas, 1))
    zone = BulkZone(origin=origin, file=path, config=zcfg, serial=serial, records=records,
                    soa=soa_for(origin, zcfg, records, serial), store=store)
    zone.index()
    soa = zone.soa
    rd = soa[0]
    store.set_soa(min(soa.ttl, rd.minimum), rd.mname.to_wire(), rd.rname.to_wire(),
                  rd.serial.to_bytes(4, "big") + rd.refresh.to_bytes(4, "big") + rd.retry.to_bytes(4, "big")
                  + rd.expire.to_bytes(4, "big") + rd.minimum.to_bytes(4, "big"))
    stats = store.stats()
    log.info("%s: %d names, %d records in the native store (%.1f MB)", path, stats["names"], stats["records"],
             (stats["arena"] + stats["index"]) / 1e6)
    return zone


def is_bulk(zone: Zone) -> TypeGuard[BulkZone]:
    return isinstance(zone, BulkZone)


def record_count(zone: Zone) -> int:
    return int(zone.store.stats()["records"]) if isinstance(zone, BulkZone) else len(zone.records)
