"""Load and validate octoDNS YAML zone files, reporting every problem with file:line: field."""

from __future__ import annotations

import functools
import hashlib
import os
import time
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import Any, cast

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import yaml
from dns.rdtypes.ANY.NS import NS

from gslb import gctools
from gslb import names as _names
from gslb.conf import located
from gslb.conf.collect import Problems
from gslb.conf.problems import ConfigError, Problem
from gslb.config import MAX_TTL, ServerConfig, ZoneConfig
from gslb.zone import bulk, stream
from gslb.zone.dynamic import Owner, parse_dynamic
from gslb.zone.model import Record, Zone, fast_absolute
from gslb.zone.rdata import CONVERTERS, ValueProblem, to_rdata

# Zones are dicts and sets of dnspython names: hash and compare them at C speed (gslb/names.py)
_names.install()

# The options of every record without `octodns` (most of a large zone): one shared mapping,
# read only like every record's options.
_NO_OPTIONS: dict[str, Any] = {}

# Record keys octoDNS defines; anything else on a record is a typo we should point at.
RECORD_KEYS = {"type", "ttl", "value", "values", "octodns", "dynamic", "geo"}
SINGLE_VALUE_TYPES = {"CNAME", "DNAME", "ALIAS"}


def zone_name_from_path(path: str) -> str:
    """`zones/example.com.yaml` → `example.com` (octoDNS's YamlProvider naming)."""
    base = os.path.basename(path)
    for ext in (".yaml", ".yml"):
        if base.endswith(ext):
            base = base[: -len(ext)]
    return base.rstrip(".").lower()


def zone_files(directory: str) -> list[str]:
    return sorted(str(p) for p in Path(directory).iterdir()
                  if p.suffix in (".yaml", ".yml") and p.is_file() and not p.name.startswith("."))


def _parse_record(name: str, doc: Any, line: int, origin: dns.name.Name, zcfg: ZoneConfig,
                  out: Problems, sites: Collection[str] | None, owner: dns.name.Name) -> Record | None:
    if not isinstance(doc, located.Located):
        out.add(line, name or "''", "a record must be a mapping with type and value(s)")
        return None
    where = f"{name or chr(39) * 2}"
    rtype = doc.get("type")
    if not isinstance(rtype, str) or not rtype:
        out.add(doc.line, f"{where}.type", "missing record type")
        return None
    if rtype != rtype.upper():  # octoDNS rejects lower-case types; so do we, naming the fix
        out.add(doc.line_of("type"), f"{where}.type", f"record types are upper case: {rtype.upper()!r}, not {rtype!r}")
        return None
    ok = True
    for key in doc:
        if key not in RECORD_KEYS:
            out.add(doc.line_of(key), f"{where}.{key}", f"unknown record key (one of {', '.join(sorted(RECORD_KEYS))})")
            ok = False
    if rtype == "SOA":
        out.add(doc.line_of("type"), where, "SOA comes from gslb.yaml (zones.<name>.soa), not the zone file")
        return None
    if rtype not in CONVERTERS:
        out.add(doc.line_of("type"), f"{where}.type",
                f"unknown or unsupported record type {rtype!r} (supported: {', '.join(sorted(CONVERTERS))})")
        return None
    where = f"{where}.{rtype}"
    ttl = _ttl(doc, zcfg, where, out)
    ok = ok and ttl is not None
    values = _values(doc, where, out)
    if values is None:
        return None
    if rtype in SINGLE_VALUE_TYPES and len(values) > 1:
        out.add(doc.line_of("values"), f"{where}.values", f"{rtype} takes exactly one value")
        ok = False
    rdatas, values_ok = _rdatas(rtype, values, doc, origin, where, out)
    ok = ok and values_ok
    octodns = doc.get("octodns") or _NO_OPTIONS
    if not isinstance(octodns, dict):
        out.add(doc.line_of("octodns"), f"{where}.octodns", "expected a mapping")
        ok = False
        octodns = {}
    if not rdatas:
        return None
    # With bad values the record still joins the zone-wide checks (CNAME conflicts and such);
    # the errors already recorded keep the zone from being served.
    dynamic = None
    if "dynamic" in doc:
        dynamic = parse_dynamic(Owner(owner, rtype, doc.line, name or "''"), doc, out, sites)
    elif octodns:
        _check_static_options(octodns, f"{where}.octodns", doc.line_of("octodns"), out)
    return Record(owner, rtype, ttl if ok and ttl is not None else zcfg.ttl, rdatas, doc.line, options=octodns,
                  dynamic=dynamic)


def _ttl(doc: located.Located, zcfg: ZoneConfig, where: str, out: Problems) -> int | None:
    """The record's TTL (the zone's default when absent); None, reported, when it is not one."""
    ttl = doc.get("ttl", zcfg.ttl)
    if isinstance(ttl, str) and ttl.strip().isdigit():  # octoDNS takes int(ttl): "300" is 300
        ttl = int(ttl)
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= MAX_TTL:
        out.add(doc.line_of("ttl"), f"{where}.ttl", f"TTL must be an integer 0..{MAX_TTL}, got {ttl!r}")
        return None
    return ttl


def _values(doc: located.Located, where: str, out: Problems) -> located.LocatedList | None:
    """`value` or `values` as one located list; None, reported, when neither or both are there."""
    if "value" in doc and "values" in doc:
        out.add(doc.line_of("values"), where, "give value or values, not both")
        return None
    if "values" in doc:
        values = doc["values"]
        vline = doc.line_of("values")
        if not isinstance(values, list):
            values = located.LocatedList([values])
            values.line, values.item_lines = vline, [vline]
    elif "value" in doc:
        values = located.LocatedList([doc["value"]])
        values.line, values.item_lines = doc.line_of("value"), [doc.line_of("value")]
    else:
        out.add(doc.line, where, "missing value or values")
        return None
    if not values:
        out.add(doc.line_of("values"), where, "values is empty")
        return None
    return values


def _rdatas(rtype: str, values: Any, doc: located.Located, origin: dns.name.Name, where: str,
            out: Problems) -> tuple[list[dns.rdata.Rdata], bool]:
    """Each value as rdata (duplicates dropped with a warning); whether every value was good."""
    rdatas = []
    seen = set()
    ok = True
    for i, value in enumerate(values):
        vline = values.line_of(i) if isinstance(values, located.LocatedList) else doc.line
        try:
            rdata = to_rdata(rtype, value, origin)
        except ValueProblem as exc:
            field = f"{where}.value" + (f"[{i}]" if len(values) > 1 else "") + (f".{exc.field}" if exc.field else "")
            if isinstance(value, located.Located) and exc.field in value:
                vline = value.line_of(exc.field)
            out.add(vline, field, str(exc))
            ok = False
            continue
        if len(values) > 1:
            if rdata in seen:
                out.add(vline, f"{where}.values", f"duplicate value {rdata.to_text()!r}", "warning")
                continue
            seen.add(rdata)
        rdatas.append(rdata)
    return rdatas, ok


# Keys under `octodns` that only mean something on a dynamic record; octoDNS's own keys
# (ignored_, excluded, …) pass.
_DYNAMIC_ONLY = {"healthcheck", "gslb"}


def _check_static_options(octodns: dict, where: str, line: int, out: Problems) -> None:
    """A health check or GSLB setting on a record without `dynamic` would silently do nothing."""
    for key in _DYNAMIC_ONLY & set(octodns):
        out.add(octodns.line_of(key) if isinstance(octodns, located.Located) else line, f"{where}.{key}",
                "only used by dynamic records: this record has no `dynamic` pools, so it is ignored", "warning")


def _soa(origin: dns.name.Name, zcfg: ZoneConfig, records: list[Record], serial: int) -> dns.rrset.RRset:
    ns = [r for r in records if r.name == origin and r.rtype == "NS"]
    soa = zcfg.soa
    mname = soa.mname or (cast(NS, ns[0].rdatas[0]).target.to_text() if ns else f"ns1.{origin.to_text()}")
    rname = soa.rname or f"hostmaster.{origin.to_text()}"
    text = f"{mname} {rname} {serial} {soa.refresh} {soa.retry} {soa.expire} {soa.minimum}"
    rdata = dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.SOA, text, origin=origin, relativize=False)
    rrset = dns.rrset.RRset(origin, dns.rdataclass.IN, dns.rdatatype.SOA)
    rrset.add(rdata, soa.ttl)
    return rrset


def _check_types(name: dns.name.Name, recs: list[Record], origin: dns.name.Name, rel: Callable[[dns.name.Name], str],
                 out: Problems) -> None:
    """One name's types: duplicates, CNAME exclusivity, ALIAS placement."""
    if len(recs) == 1:
        r = recs[0]
        if r.rtype == "CNAME" and name == origin:
            out.add(r.line, f"{rel(name)}.CNAME", "CNAME is not allowed at the zone apex (use ALIAS)")
        elif r.rtype == "ALIAS" and name != origin:
            out.add(r.line, f"{rel(name)}.ALIAS", "ALIAS is only allowed at the zone apex")
    else:
        types = [r.rtype for r in recs]
        for r in recs:
            if types.count(r.rtype) > 1:
                out.add(r.line, f"{rel(name)}.{r.rtype}", f"{r.rtype} defined more than once for this name")
        if "CNAME" in types:
            cname = recs[types.index("CNAME")]
            if name == origin:
                out.add(cname.line, f"{rel(name)}.CNAME", "CNAME is not allowed at the zone apex (use ALIAS)")
            elif len(set(types)) > 1:
                others = ", ".join(sorted(set(types) - {"CNAME"}))
                out.add(cname.line, f"{rel(name)}.CNAME",
                        f"CNAME cannot sit beside other data ({others}) (RFC 1034 3.6.2)")
        if "ALIAS" in types:
            alias = recs[types.index("ALIAS")]
            if name != origin:
                out.add(alias.line, f"{rel(name)}.ALIAS", "ALIAS is only allowed at the zone apex")
            elif {"A", "AAAA"} & set(types):
                out.add(alias.line, f"{rel(name)}.ALIAS", "ALIAS cannot sit beside A or AAAA at the apex")


def _check_dnames(by_name: dict[dns.name.Name, list[Record]], origin: dns.name.Name,
                  rel: Callable[[dns.name.Name], str], out: Problems) -> None:
    """RFC 6672 2.4: no names below a DNAME owner (found by walking each name's ancestors)."""
    depth = len(origin.labels)
    dnames = [name for name, recs in by_name.items() if name != origin and any(r.rtype == "DNAME" for r in recs)]
    if not dnames:
        return
    below: dict[dns.name.Name, dns.name.Name] = {}  # an ancestor → one name under it
    for name in by_name:
        for i in range(1, len(name.labels) - depth):
            below.setdefault(dns.name.Name(name.labels[i:]), name)
    for name in dnames:
        if name in below:
            dname = next(r for r in by_name[name] if r.rtype == "DNAME")
            out.add(dname.line, f"{rel(name)}.DNAME",
                    f"DNAME owner has names below it ({below[name].relativize(origin)}) (RFC 6672 2.4)")


def _check_below_cuts(r: Record, cuts: set[dns.name.Name], depth: int, origin: dns.name.Name,
                      rel: Callable[[dns.name.Name], str], out: Problems) -> None:
    """Occlusion below a delegation, and what may sit at one."""
    labels = r.name.labels
    above = None
    for i in range(len(labels) - depth - 1, 0, -1):  # the highest cut strictly above
        candidate = dns.name.Name(labels[i:])
        if candidate in cuts:
            above = candidate
            break
    if above is not None and r.rtype not in ("A", "AAAA"):
        out.add(r.line, f"{rel(r.name)}.{r.rtype}", f"occluded by the delegation at {above.relativize(origin)}")
    if r.name in cuts and r.rtype not in ("NS", "DS", "A", "AAAA"):
        out.add(r.line, f"{rel(r.name)}.{r.rtype}", "only NS and DS (and glue) may sit at a delegation point")


def _check_targets(r: Record, addresses: set[dns.name.Name], origin: dns.name.Name,
                   rel: Callable[[dns.name.Name], str], out: Problems) -> None:
    """In-zone name servers need glue; SRV owners look like _service._proto."""
    if r.rtype == "NS":
        for rdata in r.rdatas:
            target = cast(NS, rdata).target
            if target.is_subdomain(origin) and target not in addresses:
                out.add(r.line, f"{rel(r.name)}.NS", f"name server {target} is inside the zone but has no A/AAAA "
                                                     "record (glue-less in-zone NS)")
    elif r.rtype == "SRV" and r.name != origin and not (
            len(r.name.labels) >= 2 and r.name.labels[0].startswith(b"_") and r.name.labels[1].startswith(b"_")):
        out.add(r.line, f"{rel(r.name)}.SRV", "SRV names are _service._proto.name (RFC 2782)", "warning")


def _check_zone(zone: Zone, out: Problems) -> None:
    """Rules that need the whole zone: CNAME exclusivity, occlusion, glue, ALIAS placement.

    Linear in the zone: delegations and DNAMEs are found by walking each name's ancestors
    (a few labels), never by scanning the zone per name."""
    origin = zone.origin
    depth = len(origin.labels)

    def rel(name: dns.name.Name) -> str:
        return name.relativize(origin).to_text() if name != origin else "''"

    by_name: dict[dns.name.Name, list[Record]] = {}
    for r in zone.records:
        by_name.setdefault(r.name, []).append(r)
    for name, recs in by_name.items():
        _check_types(name, recs, origin, rel, out)
        if b"*" in name.labels[1:len(name.labels) - depth]:
            out.add(recs[0].line, rel(name), "'*' is only a wildcard as the leftmost label (RFC 4592)", "warning")
    _check_dnames(by_name, origin, rel, out)
    cuts = {r.name for r in zone.records if r.rtype == "NS" and r.name != origin}
    addresses = {r.name for r in zone.records if r.rtype in ("A", "AAAA")}
    for r in zone.records:
        if cuts:
            _check_below_cuts(r, cuts, depth, origin, rel, out)
        _check_targets(r, addresses, origin, rel, out)
    if not any(r.name == origin and r.rtype == "NS" for r in by_name.get(origin, ())):
        out.add(1, "''.NS", "no NS records at the apex: resolvers will still use the parent's, but "
                            "secondaries and `dig NS` will find none", "warning")


def _parse_names(entries: Iterable[tuple[Any, int, Any]], origin: dns.name.Name, zcfg: ZoneConfig,
                 sites: Collection[str] | None, out: Problems) -> list[Record]:
    """The records of every top-level (name, line, value) of a zone file."""
    records: list[Record] = []
    for key, line, value in entries:
        rname = str(key)
        if rname != rname.strip() or rname.endswith(".") or ".." in rname:
            out.add(line, rname, "record names are relative to the zone, without a trailing dot")
            continue
        try:
            fast_absolute(rname, origin)
        except dns.exception.DNSException as exc:
            out.add(line, rname, f"bad record name: {exc}")
            continue
        if rname != rname.lower():
            out.add(line, rname, "record names should be lower case (octoDNS rejects upper case)", "warning")
        lower = rname.lower()
        try:  # one name object for all of the name's records
            owner = fast_absolute(lower, origin)
        except dns.exception.DNSException as exc:
            out.add(line, lower, f"bad record name: {exc}")
            continue
        items = value if isinstance(value, list) else [value]
        for i, item in enumerate(items):
            iline = value.line_of(i) if isinstance(value, located.LocatedList) else line
            record = _parse_record(lower, item, iline, origin, zcfg, out, sites, owner)
            if record is not None:
                records.append(record)
    return records


def _parse_streaming(text: str, origin: dns.name.Name, zcfg: ZoneConfig, sites: Collection[str] | None,
                     out: Problems) -> list[Record]:
    """Records straight from libyaml's events, one name at a time (gslb/zone/stream.py: a
    small peak, a compact model); raises NotLean for what only the full loader reads."""
    entries, duplicates, _line = stream.names(text)
    records = _parse_names(entries, origin, zcfg, sites, out)
    for dup in duplicates:
        out.add(dup.line, "yaml", str(dup))
    return records


def _parse_tree(text: str, path: str, origin: dns.name.Name, zcfg: ZoneConfig, sites: Collection[str] | None,
                out: Problems) -> list[Record] | Problem:
    """Records from the whole located document (every YAML feature); a Problem when the text
    is not a mapping of names."""
    try:
        doc, duplicates = located.load_collecting(text)
    except yaml.YAMLError as exc:
        return Problem(path, located.error_line(exc), "yaml", str(exc).replace("\n", " "))
    for dup in duplicates:
        out.add(dup.line, "yaml", str(dup))
    if doc is None:
        doc = located.Located()
        doc.line, doc.key_lines = 1, {}
    if not isinstance(doc, located.Located):
        return Problem(path, 1, "zone", "expected a mapping of record names at the top level")
    return _parse_names(((key, doc.line_of(key), value) for key, value in doc.items()), origin, zcfg, sites, out)


def load_zone_text(text: str, path: str, cfg: ServerConfig, serial: int | None = None,
                   name: str | None = None) -> tuple[Zone | None, list[Problem]]:
    """Parse one zone; returns the zone (None if any error) and every problem found."""
    out = Problems(path)
    zname = name or zone_name_from_path(path)
    try:
        origin = dns.name.from_text(zname)
    except dns.exception.DNSException as exc:
        return None, [Problem(path, 1, "zone", f"file name does not give a valid zone name {zname!r}: {exc}")]
    zcfg = cfg.zone(zname)
    sites = known_sites(cfg.regions)
    try:
        records = _parse_streaming(text, origin, zcfg, sites, out)
    except stream.NotLean:
        out = Problems(path)  # start again: the full loader reads (or words the error of) the whole file
        parsed = _parse_tree(text, path, origin, zcfg, sites, out)
        if isinstance(parsed, Problem):
            return None, [parsed]
        records = parsed
    serial = serial or int(time.time())  # read once: the zone's serial and its SOA's must agree
    zone = Zone(origin=origin, file=path, config=zcfg, serial=serial, records=records,
                soa=_soa(origin, zcfg, records, serial))
    _check_zone(zone, out)
    if any(p.severity == "error" for p in out.items):
        return None, sorted(out.items)
    zone.index()
    return zone, sorted(out.items)


@functools.lru_cache(maxsize=8)
def known_sites(regions_path: str | None) -> frozenset[str] | None:
    """Site names `octodns.gslb.sites` may use: the regions file's sites and regions. None when
    that file does not load (its own problems are reported by whatever loads it for serving)."""
    import geodb
    from gslb.regions import load_regions

    try:
        return frozenset(load_regions(regions_path or geodb.REGIONS).site_coordinates())
    except ConfigError:
        return None


class ZoneCache:
    """The zones parsed last time, by file: a reload parses again only the files whose text (or
    whose settings in gslb.yaml) changed; an unchanged zone is the same object, serial included,
    so what was compiled from it can be reused too. Signed zones are always parsed again (their
    keys live outside the file)."""

    def __init__(self) -> None:
        self.entries: dict[str, tuple[bytes, Any, Zone, list[Problem]]] = {}

    def get(self, path: str, data: bytes, cfg: ServerConfig) -> tuple[bytes, Any, tuple[Zone, list[Problem]] | None]:
        digest = hashlib.blake2b(data, digest_size=16).digest()
        key = (cfg.zone(zone_name_from_path(path)), cfg.regions)
        hit = self.entries.get(path)
        if hit is not None and hit[0] == digest and hit[1] == key:
            return digest, key, (hit[2], hit[3])
        return digest, key, None

    def put(self, path: str, digest: bytes, key: Any, zone: Zone, problems: list[Problem]) -> None:
        if zone.config.dnssec is None:
            self.entries[path] = (digest, key, zone, problems)

    def keep_only(self, paths: Collection[str]) -> None:
        for path in set(self.entries) - set(paths):
            del self.entries[path]


def load_zone(path: str, cfg: ServerConfig, serial: int | None = None,
              cache: ZoneCache | None = None) -> tuple[Zone | None, list[Problem]]:
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return None, [Problem(path, 1, "file", f"cannot read: {exc}")]
    if cache is not None:
        digest, key, hit = cache.get(path, data, cfg)
        if hit is not None:
            return hit
    with gctools.paused():
        zone, problems = _load_data(data, path, cfg, serial)
    if zone is not None and cache is not None:
        cache.put(path, digest, key, zone, problems)
    return zone, problems


def _load_data(data: bytes, path: str, cfg: ServerConfig, serial: int | None) -> tuple[Zone | None, list[Problem]]:
    """A large plain file through the native reader (gslb/zone/bulk.py), the rest (and any file
    it declines) through `load_zone_text`."""
    zname = zone_name_from_path(path)
    if len(data) >= bulk.min_bytes():
        try:
            origin = dns.name.from_text(zname)
        except dns.exception.DNSException:
            origin = None
        if origin is not None:
            zone = bulk.load(data, path, origin, cfg.zone(zname), serial or int(time.time()), _soa)
            if zone is not None:
                return zone, []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(path, 1, "file", f"cannot read: {exc}")]
    return load_zone_text(text, path, cfg, serial)


def load_zones(directory: str, cfg: ServerConfig, serial: int | None = None,
               cache: ZoneCache | None = None) -> tuple[list[Zone], list[Problem]]:
    """Every zone file of a folder; raises ConfigError when any file has an error. With a
    `cache`, unchanged files give the zones parsed before."""
    try:
        files = zone_files(directory)
    except OSError as exc:
        raise ConfigError([Problem(directory, 1, "zones", f"cannot list: {exc.strerror}")]) from None
    zones, problems = [], []
    seen: dict[dns.name.Name, str] = {}
    for path in files:
        zone, found = load_zone(path, cfg, serial, cache)
        problems.extend(found)
        if zone is not None:
            if zone.origin in seen:
                problems.append(Problem(path, 1, "zone", f"zone {zone.name} is also defined by {seen[zone.origin]}"))
                continue
            seen[zone.origin] = path
            if zone.config.dnssec is not None:  # keys missing or unreadable: refused here, with the file
                from gslb.dnssec.serve import check_zone

                problems.extend(check_zone(zone))
            zones.append(zone)
    if not files:
        problems.append(Problem(directory, 1, "zones", "no zone files (*.yaml) here: nothing will be served",
                                "warning"))
    for name in sorted(set(cfg.zones) - {z.name for z in zones} - {zone_name_from_path(p) for p in files}):
        problems.append(Problem(cfg.path or "gslb.yaml", 1, f"zones.{name}",
                                f"configured but {directory} has no {name}.yaml: nothing is served for it", "warning"))
    if any(p.severity == "error" for p in problems):
        raise ConfigError(problems)
    if cache is not None:
        cache.keep_only(files)
    return zones, problems

