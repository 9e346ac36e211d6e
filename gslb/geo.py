"""Where a client is: GeoLite2/GeoIP2 databases (City or Country, optional ASN), and its region.

Lookups go through maxminddb directly (geoip2's own reader is a thin layer over it and would
only add object construction on the hot path); any MaxMind-layout City or Country database works.
"""

from __future__ import annotations

import ipaddress

import maxminddb

from gslb.policy.client import Location, Locator
from gslb.regions import Place, Regions, load_regions

__all__ = ["GeoLookup", "Place", "Regions", "load_regions", "locator_for"]


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


def locator_for(geodb_path: str | None, asndb_path: str | None, regions_path: str | None
                ) -> tuple[Locator, dict[str, tuple[float, float]]]:
    """The client locator and site coordinates a server uses (bundled test data by default)."""
    import geodb

    geo = GeoLookup(geodb_path or geodb.default_mmdb(), asndb_path)
    regions = load_regions(regions_path or geodb.REGIONS)
    return Locator(geo.locate, regions.region_of), regions.site_coordinates()
