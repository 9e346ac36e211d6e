"""Who is asking: the client's subnet (ECS first, else the source address), located once.

Locating costs a database lookup, so results are cached per client prefix: a source address
counts whole for IPv4 (geo databases split networks finer than /24) and by its /64 for IPv6
(finer when a subnet rule needs it); an ECS option counts by the prefix it reveals.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass

V4_BITS = 32
V6_BITS = 64
CACHE_MAX = 500_000
ECS_OPTION_CODE = 8  # EDNS Client Subnet (RFC 7871)


@dataclass(slots=True)
class ClientSubnet:
    """A validated ECS option from a query."""

    family: int  # 1 = IPv4, 2 = IPv6
    source: int  # SOURCE PREFIX-LENGTH
    address: bytes  # as sent: ceil(source / 8) octets
    raw: bytes = b""  # the option body as received (the fast path's cache key)

    def network(self) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
        size = 4 if self.family == 1 else 16
        raw = self.address + bytes(size - len(self.address))
        addr = ipaddress.ip_address(raw)
        return ipaddress.ip_network(f"{addr}/{self.source}")

    def ip(self) -> str:
        size = 4 if self.family == 1 else 16
        return str(ipaddress.ip_address(self.address + bytes(size - len(self.address))))

    def option(self, scope: int) -> bytes:
        """This option echoed in a response with the SCOPE PREFIX-LENGTH we decided."""
        body = struct.pack(">HBB", self.family, self.source, scope) + self.address
        return struct.pack(">HH", ECS_OPTION_CODE, len(body)) + body


@dataclass(frozen=True)
class Location:
    """What the geo data says about an address (all optional: unknown addresses are empty)."""

    codes: tuple[str, ...] = ()  # octoDNS geo codes, most specific first: ("NA-US-CA", "NA-US", "NA")
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None  # where this answer holds
    latitude: float | None = None
    longitude: float | None = None
    asn: int | None = None


@dataclass(frozen=True)
class Client:
    version: int  # 4 or 6
    address: int  # the prefix's first address, as an integer
    prefix: int  # how many leading bits identify this client (the cache key width)
    location: Location
    region: str | None  # probe region whose measurements speak for this client

    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        return ipaddress.ip_address(self.address) if self.version == 4 else ipaddress.IPv6Address(self.address)

    def subnet_hash(self) -> int:
        """Identity for sticky weighted picks: the /24 (IPv4) or /48 (IPv6) the client sits in."""
        bits = 24 if self.version == 4 else 48
        width = 32 if self.version == 4 else 128
        return (self.address >> (width - bits)) | (self.version << 120)


ClientKey = tuple[int, int, int]  # (version, prefix bits, address >> (width - bits))


class Locator:
    def __init__(self, locate: Callable[[str], Location] | None = None,
                 region_of: Callable[[Location], str | None] | None = None,
                 v4_bits: int = V4_BITS, v6_bits: int = V6_BITS) -> None:
        self._locate = locate or (lambda _ip: Location())
        self._region_of = region_of or (lambda _loc: None)
        self.v4_bits = v4_bits
        self.v6_bits = v6_bits
        self._cache: dict[ClientKey, Client] = {}

    def resize(self, v4_bits: int, v6_bits: int) -> None:
        if (v4_bits, v6_bits) != (self.v4_bits, self.v6_bits):
            self.v4_bits, self.v6_bits = v4_bits, v6_bits
            self._cache = {}

    def key(self, source: bytes, ecs: ClientSubnet | None) -> ClientKey:
        """The cache key for one query: cheap, no allocation beyond the tuple."""
        if ecs is not None and ecs.source > 0:
            width = 32 if ecs.family == 1 else 128
            bits = min(ecs.source, self.v4_bits if width == 32 else self.v6_bits)
            raw = ecs.address + bytes(width // 8 - len(ecs.address))
            return (4 if width == 32 else 6, bits, int.from_bytes(raw, "big") >> (width - bits))
        if len(source) == 16 and source[:12] == b"\x00" * 10 + b"\xff\xff":  # IPv4-mapped
            source = source[12:]
        if len(source) == 4:
            return (4, self.v4_bits, int.from_bytes(source, "big") >> (32 - self.v4_bits))
        return (6, self.v6_bits, int.from_bytes(source, "big") >> (128 - self.v6_bits))

    def client(self, key: ClientKey) -> Client:
        found = self._cache.get(key)
        if found is not None:
            return found
        version, bits, high = key
        width = 32 if version == 4 else 128
        address = high << (width - bits)
        text = str(ipaddress.ip_address(address) if version == 4 else ipaddress.IPv6Address(address))
        location = self._locate(text)
        found = Client(version, address, bits, location, self._region_of(location))
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[key] = found
        return found

    def locate_int(self, address: int, version: int) -> Location:
        text = str(ipaddress.IPv4Address(address) if version == 4 else ipaddress.IPv6Address(address))
        return self._locate(text)

    def region_of(self, location: Location) -> str | None:
        return self._region_of(location)

    def synthetic(self, location: Location, region: str | None) -> Client:
        """A stand-in client for a region (the dashboard's "answer per region")."""
        return Client(4, 0, 0, location, region)
