"""Where a client is: GeoLite2/GeoIP2 databases (City or Country, optional ASN) and regions.

Lookups go through maxminddb directly (geoip2's own reader is a thin layer over it and would
only add object construction on the hot path); any MaxMind-layout City or Country database works.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

import maxminddb

from gslb.conf import located
from gslb.conf.problems import ConfigError, Problem
from gslb.policy.client import Location, Locator


class GeoLookup:
    def __init__(self, city_db: str | None, asn_db: str | None = None) -> None:
        self.path = city_db
        self._city = maxminddb.open_database(city_db, maxminddb.MODE_AUTO) if city_db else None
        self._asn = maxminddb.open_database(asn_db, maxminddb.MODE_AUTO) if asn_db else None
        if self._city is not None:
            kind = self._city.metadata().database_type
            if "City" not in kind and "Country" not in kind:
                raise ValueError(f"{city_db}: database type {kind!r} is neither a City nor a Country database")

    def locate(self, ip: str) -> Location:
        """The client's geo codes, coordinates, ASN and the network the answer holds for."""
        addr = ipaddress.ip_address(ip)
        if addr.version == 6 and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if self._city is None:
            return Location()
        record, prefix = self._city.get_with_prefix_len(addr)
        network = ipaddress.ip_network(f"{addr}/{prefix}", strict=False)
        asn = None
        if self._asn is not None:
            a, _ = self._asn.get_with_prefix_len(addr)
            asn = a.get("autonomous_system_number") if a else None
        if not record:
            return Location(network=network, asn=asn)
        continent = (record.get("continent") or {}).get("code")
        country = (record.get("country") or record.get("registered_country") or {}).get("iso_code")
        subdivisions = record.get("subdivisions") or []
        subdivision = subdivisions[0].get("iso_code") if subdivisions else None
        codes: list[str] = []
        if continent:
            if country:
                if subdivision:
                    codes.append(f"{continent}-{country}-{subdivision}")
                codes.append(f"{continent}-{country}")
            codes.append(continent)
        location = record.get("location") or {}
        return Location(codes=tuple(codes), network=network, latitude=location.get("latitude"),
                        longitude=location.get("longitude"), asn=asn)


@dataclass(frozen=True)
class Place:
    latitude: float
    longitude: float
    covers: tuple[str, ...] = ()


@dataclass
class Regions:
    """Probe regions with the client geos they speak for, and the sites values can live in."""

    regions: dict[str, Place] = field(default_factory=dict)
    sites: dict[str, Place] = field(default_factory=dict)
    default: str | None = None

    def region_of(self, location: Location) -> str | None:
        for code in location.codes:  # most specific first
            for name, place in self.regions.items():
                if code in place.covers:
                    return name
        return self.default

    def site_coordinates(self) -> dict[str, tuple[float, float]]:
        places = {**self.regions, **self.sites}
        return {name: (p.latitude, p.longitude) for name, p in places.items()}


def load_regions(path: str) -> Regions:
    """Read a regions file; raises ConfigError with every problem."""
    doc = located.load_file(path, "regions")
    problems: list[Problem] = []
    out = Regions()
    if not isinstance(doc, dict):
        raise ConfigError([Problem(path, 1, "regions", "expected a mapping with regions, sites, default")])
    for section in ("regions", "sites"):
        items = doc.get(section) or {}
        if not isinstance(items, dict):
            problems.append(Problem(path, doc.line_of(section), section, "expected a mapping of name → place"))
            continue
        for name, place in items.items():
            line = items.line_of(name)
            if not isinstance(place, dict):
                problems.append(Problem(path, line, f"{section}.{name}", "expected latitude and longitude"))
                continue
            lat, lon = place.get("latitude"), place.get("longitude")
            if not isinstance(lat, int | float) or not -90 <= lat <= 90:
                problems.append(Problem(path, line, f"{section}.{name}.latitude", "must be -90..90"))
                continue
            if not isinstance(lon, int | float) or not -180 <= lon <= 180:
                problems.append(Problem(path, line, f"{section}.{name}.longitude", "must be -180..180"))
                continue
            covers = place.get("covers") or []
            if not isinstance(covers, list):
                problems.append(Problem(path, line, f"{section}.{name}.covers", "a list of geo codes"))
                covers = []
            getattr(out, section)[str(name)] = Place(float(lat), float(lon), tuple(str(c) for c in covers))
    default = doc.get("default")
    if default is not None:
        if default not in out.regions:
            problems.append(Problem(path, doc.line_of("default"), "default", f"{default!r} is not a region"))
        out.default = str(default)
    if problems:
        raise ConfigError(problems)
    return out


def locator_for(geodb_path: str | None, asndb_path: str | None, regions_path: str | None
                ) -> tuple[Locator, dict[str, tuple[float, float]]]:
    """The client locator and site coordinates a server uses (bundled test data by default)."""
    import geodb

    geo = GeoLookup(geodb_path or geodb.default_mmdb(), asndb_path)
    regions = load_regions(regions_path or geodb.REGIONS)
    return Locator(geo.locate, regions.region_of), regions.site_coordinates()
