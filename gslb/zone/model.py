"""The plain zone model: records as octoDNS wrote them, indexed the way RFC 1034 looks them up."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.name import Name
from dns.rdata import Rdata

from gslb.config import ZoneConfig


@dataclass(slots=True)
class Record:
    """One octoDNS record: a name, a type and its values (an RRset), plus GSLB settings.
    (Slots: a large zone keeps hundreds of thousands of them.)"""

    name: Name  # absolute
    rtype: str  # octoDNS type name; ALIAS included
    ttl: int
    rdatas: list[Rdata]
    line: int
    options: dict[str, Any] = field(default_factory=dict)  # the `octodns` mapping
    dynamic: Any = None  # the `dynamic` mapping (GSLB pools and rules), parsed by gslb.policy

    @property
    def rdtype(self) -> dns.rdatatype.RdataType:
        rdtype = _RDTYPES.get(self.rtype)
        if rdtype is None:
            rdtype = dns.rdatatype.CNAME if self.rtype == "ALIAS" else dns.rdatatype.from_text(self.rtype)
            _RDTYPES[self.rtype] = rdtype
        return rdtype

    def rrset(self, owner: Name | None = None) -> dns.rrset.RRset:
        rdtype = self.rdtype
        rdatas = self.rdatas
        if (len(rdatas) == 1 or not dns.rdatatype.is_singleton(rdtype)) and all(
                rd.rdtype == rdtype and rd.rdclass == _IN for rd in rdatas):
            return bare_rrset(owner or self.name, rdtype, self.ttl, rdatas)
        rrset = dns.rrset.RRset(owner or self.name, dns.rdataclass.IN, self.rdtype)
        rrset.update_ttl(self.ttl)
        for rdata in self.rdatas:
            rrset.add(rdata)
        return rrset


_RDTYPES: dict[str, dns.rdatatype.RdataType] = {}
_IN = dns.rdataclass.IN
_NONE = dns.rdatatype.NONE


def bare_rrset(name: Name, rdtype: dns.rdatatype.RdataType, ttl: int, rdatas: list[Rdata]) -> dns.rrset.RRset:
    """An IN RRset of rdatas of its type (duplicates dropped, as `add` would), made without the
    constructors: `RRset(...)`, `update_ttl` and an `add` per rdata cost several times this at
    hundreds of thousands of RRsets. The same object, field for field."""
    rrset: dns.rrset.RRset = object.__new__(dns.rrset.RRset)
    rrset.items = dict.fromkeys(rdatas)
    rrset.rdclass = _IN
    rrset.rdtype = rdtype
    rrset.covers = _NONE
    rrset.ttl = ttl
    rrset.name = name
    rrset.deleting = None
    return rrset


@dataclass
class Zone:
    origin: Name
    file: str
    config: ZoneConfig
    serial: int
    records: list[Record]
    soa: dns.rrset.RRset
    nodes: dict[Name, dict[int, dns.rrset.RRset]] = field(default_factory=dict)  # static RRsets by owner
    names: set[Name] = field(default_factory=set)  # every name that exists, empty non-terminals too
    cuts: set[Name] = field(default_factory=set)  # delegation points (NS below the apex)
    dnames: set[Name] = field(default_factory=set)
    alias: Name | None = None  # apex ALIAS target
    dynamic: dict[tuple[Name, int], Record] = field(default_factory=dict)

    @property
    def name(self) -> str:
        name = self.__dict__.get("_name")
        if name is None:  # asked once per compiled answer: made once
            name = self.__dict__["_name"] = self.origin.to_text(omit_final_dot=True)
        return name

    def index(self) -> None:
        """Build `nodes`, `names`, `cuts` from `records` and the SOA."""
        self.nodes = {self.origin: {dns.rdatatype.SOA: self.soa}}
        for record in self.records:
            if record.rtype == "ALIAS":
                self.alias = record.rdatas[0].target  # type: ignore[attr-defined]  # a CNAME-like rdata
                continue
            self.nodes.setdefault(record.name, {})[record.rdtype] = record.rrset()
            if record.dynamic is not None:
                self.dynamic[(record.name, record.rdtype)] = record
        self.names = set()
        depth = len(self.origin.labels)
        names = self.names
        for owner in self.nodes:
            name = owner
            while name not in names and len(name.labels) > depth:
                names.add(name)
                name = bare_name(name.labels[1:])  # name.parent(), without the constructor
        self.names.add(self.origin)
        if self.alias is not None:
            self.nodes.setdefault(self.origin, {})
        self.cuts = {n for n, node in self.nodes.items() if n != self.origin and dns.rdatatype.NS in node}
        self.dnames = {n for n, node in self.nodes.items() if dns.rdatatype.DNAME in node}

    def cut_above(self, qname: Name, qtype: int) -> Name | None:
        """The delegation point at or above `qname` that makes the answer a referral, if any."""
        if not self.cuts:
            return None
        labels = len(qname) - len(self.origin)
        for depth in range(1, labels + 1):
            candidate = qname.split(len(self.origin) + depth)[1]
            if candidate in self.cuts:
                if candidate == qname and qtype == dns.rdatatype.DS:
                    return None  # DS lives on the parent side of the cut
                return candidate
        return None


def absolute(relative: str, origin: Name) -> Name:
    return origin if relative == "" else dns.name.from_text(relative, origin)


_PLAIN = re.compile(r"[a-z0-9_*-]{1,63}(?:\.[a-z0-9_-]{1,63})*")


def fast_absolute(relative: str, origin: Name) -> Name:
    """`absolute` without the text parser for plain lower-case names (the usual zone key)."""
    if _PLAIN.fullmatch(relative):
        # labels of 1..63 octets (the pattern): only the total length is left to check
        size = _WIRE_SIZES.get(origin.labels)
        if size is None:
            size = _WIRE_SIZES[origin.labels] = sum(len(label) + 1 for label in origin.labels)
        if len(relative) + 1 + size <= 255:
            return bare_name((*relative.encode().split(b"."), *origin.labels))
        return Name((*relative.encode().split(b"."), *origin.labels))  # raises NameTooLong
    return absolute(relative, origin)


_set = object.__setattr__
_WIRE_SIZES: dict[tuple[bytes, ...], int] = {}  # zone origins' wire lengths (few)


def bare_name(labels: tuple[bytes, ...]) -> Name:
    """A Name of labels already known valid, without the constructor's checks and immutability
    guard (most of the cost of making one). The same object as `Name(labels)` makes."""
    name: Name = object.__new__(Name)
    _set(name, "labels", labels)
    return name
