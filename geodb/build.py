"""Write a GeoLite2-City-layout .mmdb from a YAML list of prefixes (for tests and the demo).

    python -m geodb.build geodb/networks.yaml out.mmdb

Each entry: prefix, continent, country, subdivision (optional), latitude, longitude (optional),
asn and organization (optional). The result opens with geoip2's `Reader.city()` and maxminddb.
"""

from __future__ import annotations

import ipaddress
import sys
from typing import Any

import yaml
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from gslb.conf import located
from gslb.conf.problems import ConfigError, Problem

CONTINENT_NAMES = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
                   "OC": "Oceania", "SA": "South America"}


def _record(entry: dict[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "continent": {"code": entry["continent"], "names": {"en": CONTINENT_NAMES[entry["continent"]]}},
        "country": {"iso_code": entry["country"], "names": {"en": entry["country"]}},
    }
    if entry.get("subdivision"):
        doc["subdivisions"] = [{"iso_code": str(entry["subdivision"]), "names": {"en": str(entry["subdivision"])}}]
    if entry.get("latitude") is not None:
        doc["location"] = {"latitude": float(entry["latitude"]), "longitude": float(entry["longitude"]),
                           "accuracy_radius": int(entry.get("accuracy", 50))}
    if entry.get("asn"):
        doc["autonomous_system_number"] = int(entry["asn"])
        doc["autonomous_system_organization"] = str(entry.get("organization", ""))
    return doc


def load_networks(path: str) -> list[dict[str, Any]]:
    """Read and validate the networks file; every problem at once."""
    with open(path) as f:
        doc = located.load(f.read())
    problems = []
    entries = doc.get("networks") if isinstance(doc, dict) else None
    if not isinstance(entries, located.LocatedList):
        raise ConfigError([Problem(path, 1, "networks", "expected a list under `networks`")])
    for i, entry in enumerate(entries):
        line = entries.line_of(i)
        if not isinstance(entry, dict):
            problems.append(Problem(path, line, f"networks[{i}]", "expected a mapping"))
            continue
        try:
            ipaddress.ip_network(str(entry.get("prefix")))
        except ValueError:
            problems.append(Problem(path, line, f"networks[{i}].prefix", f"bad prefix {entry.get('prefix')!r}"))
        if entry.get("continent") not in CONTINENT_NAMES:
            problems.append(Problem(path, line, f"networks[{i}].continent", "one of " + ", ".join(CONTINENT_NAMES)))
        if not isinstance(entry.get("country"), str) or len(entry["country"]) != 2:
            problems.append(Problem(path, line, f"networks[{i}].country", "a two-letter ISO code"))
    if problems:
        raise ConfigError(problems)
    return [dict(e) for e in entries]


def build(entries: list[dict[str, Any]], out: str, description: str = "gslb test geography") -> None:
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoLite2-City", languages=["en"],
                        description=description)
    for entry in entries:
        writer.insert_network(IPSet([str(entry["prefix"])]), _record(entry))
    writer.to_db_file(out)


def build_file(networks_yaml: str, out: str) -> None:
    build(load_networks(networks_yaml), out)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m geodb.build NETWORKS.yaml OUT.mmdb", file=sys.stderr)
        return 2
    try:
        build_file(args[0], args[1])
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except (OSError, yaml.YAMLError) as exc:
        print(f"{args[0]}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args[1]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
