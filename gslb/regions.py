"""The regions file: probe regions (with the client geos each speaks for) and the sites GSLB
values can live in. Read by the DNS node, the zone loader (`octodns.gslb.sites` names) and the
dashboard; it depends on nothing but the config layer."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from gslb.conf import located
from gslb.conf.collect import Problems, line_of
from gslb.conf.problems import ConfigError, Problem


class Located(Protocol):
    codes: Sequence[str]  # geo codes, most specific first (EU-DE-BE, EU-DE, EU)


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

    def region_of(self, location: Located) -> str | None:
        for code in location.codes:  # most specific first
            for name, place in self.regions.items():
                if code in place.covers:
                    return name
        return self.default

    def site_coordinates(self) -> dict[str, tuple[float, float]]:
        places = {**self.regions, **self.sites}
        return {name: (p.latitude, p.longitude) for name, p in places.items()}


def _place(doc: object, where: str, line: int, out: Problems) -> Place | None:
    if not isinstance(doc, dict):
        out.add(line, where, "expected latitude and longitude")
        return None
    out.keys(doc, ("latitude", "longitude", "covers"), where, line)
    before = len(out.items)
    lat = out.number(doc, "latitude", where, line, -90, 90, None)
    lon = out.number(doc, "longitude", where, line, -180, 180, None)
    for key, value in (("latitude", lat), ("longitude", lon)):
        if value is None and key not in doc:
            out.add(line, f"{where}.{key}", "required")
    covers = doc.get("covers") or []
    if not isinstance(covers, list):
        out.add(line_of(doc, "covers", line), f"{where}.covers", "a list of geo codes")
        covers = []
    if len(out.items) > before or lat is None or lon is None:
        return None
    return Place(float(lat), float(lon), tuple(str(c) for c in covers))


def load_regions(path: str) -> Regions:
    """Read a regions file; raises ConfigError with every problem."""
    doc = located.load_file(path, "regions")
    if not isinstance(doc, dict):
        raise ConfigError([Problem(path, 1, "regions", "expected a mapping with regions, sites, default")])
    out = Problems(path)
    out.keys(doc, ("regions", "sites", "default"), "", doc.line)
    regions = Regions()
    for section in ("regions", "sites"):
        items = out.mapping(doc.get(section) or {}, section, line_of(doc, section, doc.line),
                            "a mapping of name → place")
        for name, place_doc in items.items():
            place = _place(place_doc, f"{section}.{name}", line_of(items, name, doc.line), out)
            if place is not None:
                getattr(regions, section)[str(name)] = place
    default = doc.get("default")
    if default is not None:
        if default not in regions.regions:
            out.add(line_of(doc, "default", doc.line), "default", f"{default!r} is not a region")
        regions.default = str(default)
    out.raise_if_any()
    return regions
