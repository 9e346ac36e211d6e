"""octoDNS `dynamic` records and the `octodns.gslb` extension: the model and its parsing.

Modelled beside the records (as octoDNS does), parsed while a record is built; the decision over
this model lives in `gslb.policy`, which depends on it and never the reverse.

The shape follows octoDNS's documentation exactly (pools with weighted values and status,
fallback chains, ordered rules with geos and subnets, a catch-all, the record's own values as
the last resort, `octodns.healthcheck`). Our additions live under `octodns.gslb`; see
`GslbOptions` for every key.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

import dns.name

from gslb.conf.collect import Problems, line_of

CONTINENTS = {"AF", "AN", "AS", "EU", "NA", "OC", "SA"}
POLICIES = ("geo", "weighted", "latency", "proximity")
_GEO = re.compile(r"^(?P<continent>[A-Z]{2})(-(?P<country>[A-Z]{2})(-(?P<province>[A-Z0-9]{1,3}))?)?$")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class PoolValue:
    value: str  # the answer (an address for A/AAAA, a name for CNAME)
    weight: int = 1
    status: str = "obey"  # up | down | obey (follow the health check)


@dataclass(frozen=True)
class Pool:
    name: str
    values: tuple[PoolValue, ...]
    fallback: str | None = None


@dataclass(frozen=True)
class Rule:
    pool: str
    geos: tuple[str, ...] = ()
    subnets: tuple[Network, ...] = ()

    @property
    def catch_all(self) -> bool:
        return not self.geos and not self.subnets

    def label(self, index: int) -> str:
        what = ",".join([*self.geos, *(str(s) for s in self.subnets)]) or "*"
        return f"rule {index + 1} ({what})"


@dataclass(frozen=True)
class HealthCheck:
    """`octodns.healthcheck` with octoDNS's defaults, plus our tuning from `octodns.gslb`."""

    protocol: str = "HTTPS"
    port: int = 443
    path: str = "/_dns"
    host: str = ""
    interval: float = 5.0
    timeout: float = 2.0
    rise: int = 5
    fall: int = 3
    expect_status: tuple[int, ...] = ()  # empty: any 2xx or 3xx
    body_match: str | None = None


@dataclass(frozen=True)
class GslbOptions:
    """Every `octodns.gslb` key (all optional)."""

    policy: str = "geo"  # geo | weighted | latency | proximity
    answers: int = 1  # how many values one answer carries
    pick: str = "hash"  # weighted pick: hashed on the client subnet ("hash") or per query ("random")
    ecs_scope: int | None = None  # fixed ECS scope prefix; default: derived from what decided
    degraded_ttl: int | None = None  # TTL while a pool is degraded or a fallback answers
    fail_open: bool = True  # everything down: answer as if all were up
    targets: dict[str, str] = field(default_factory=dict)  # value → address actually checked
    sites: dict[str, tuple[float, float] | str] = field(default_factory=dict)  # value → [lat, lon] or site


@dataclass(frozen=True)
class Dynamic:
    pools: dict[str, Pool]
    rules: tuple[Rule, ...]
    healthcheck: HealthCheck
    options: GslbOptions

    def values(self) -> set[str]:
        return {v.value for p in self.pools.values() for v in p.values}


def _int(value: Any, lo: int, hi: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if lo <= number <= hi and float(value) == number else None


@dataclass(frozen=True)
class Owner:
    """What parsing a record's dynamic part needs to know about the record."""

    name: dns.name.Name
    rtype: str
    line: int
    label: str  # the record's name as written in the file ('' for the apex spelled "''")


def parse_dynamic(owner: Owner, doc: dict, w: Problems, sites: Collection[str] | None = None) -> Dynamic | None:
    """Parse `dynamic` (+ `octodns`) of one record, reporting every problem with its line.

    `sites` are the site names `octodns.gslb.sites` may refer to (None: not checked)."""
    before = len(w.errors)
    base = f"{owner.label}.{owner.rtype}.dynamic"
    dyn = doc.get("dynamic")
    top = line_of(doc, "dynamic", owner.line)
    if owner.rtype not in ("A", "AAAA", "CNAME"):
        w.add(top, base, f"dynamic {owner.rtype} records are not supported (A, AAAA, CNAME)")
        return None
    if not isinstance(dyn, dict):
        w.add(top, base, "dynamic must be a mapping with pools and rules")
        return None
    pools = _parse_pools(dyn, base, top, owner, w)
    rules = _parse_rules(dyn, base, top, pools, w)
    octodns = doc.get("octodns") or {}
    healthcheck = _parse_healthcheck(octodns, f"{owner.label}.{owner.rtype}.octodns", owner, w)
    options = _parse_options(octodns, f"{owner.label}.{owner.rtype}.octodns.gslb", owner, pools, w, sites)
    if len(w.errors) > before:
        return None
    return Dynamic(pools, tuple(rules), healthcheck, options)


def _parse_pools(dyn: Any, base: str, top: int, owner: Owner, w: Problems) -> dict[str, Pool]:
    raw = dyn.get("pools")
    line = line_of(dyn, "pools", top)
    if not isinstance(raw, dict) or not raw:
        w.add(line, f"{base}.pools", "missing pools (a mapping of pool name → values)")
        return {}
    pools: dict[str, Pool] = {}
    for pname, pdoc in raw.items():
        pline = line_of(raw, pname, line)
        where = f"{base}.pools.{pname}"
        if not isinstance(pdoc, dict) or not isinstance(pdoc.get("values"), list) or not pdoc["values"]:
            w.add(pline, where, f'pool "{pname}" is missing values')
            continue
        values = []
        for i, vdoc in enumerate(pdoc["values"]):
            vline = line_of(pdoc["values"], i, pline)
            vwhere = f"{where}.values[{i}]"
            if not isinstance(vdoc, dict) or "value" not in vdoc:
                w.add(vline, vwhere, f'missing value in pool "{pname}" value {i + 1}')
                continue
            value = str(vdoc["value"])
            problem = _check_value(owner.rtype, value)
            if problem:
                w.add(line_of(vdoc, "value", vline), f"{vwhere}.value", problem)
            weight = _int(vdoc.get("weight", 1), 1, 100)
            if weight is None:
                w.add(line_of(vdoc, "weight", vline), f"{vwhere}.weight",
                      f'invalid weight "{vdoc.get("weight")}" (1..100)')
                weight = 1
            status = vdoc.get("status", "obey")
            if status not in ("up", "down", "obey"):
                w.add(line_of(vdoc, "status", vline), f"{vwhere}.status", f'invalid status "{status}" (up, down, obey)')
            values.append(PoolValue(_canonical(owner.rtype, value), weight, status))
        if len(values) == 1 and values[0].weight != 1:
            w.add(pline, where, f'pool "{pname}" has single value with weight!=1')
        fallback = pdoc.get("fallback")
        pools[str(pname)] = Pool(str(pname), tuple(values), str(fallback) if fallback is not None else None)
    for pool in pools.values():
        if pool.fallback is not None and pool.fallback not in pools:
            w.add(line_of(raw[pool.name], "fallback", line), f"{base}.pools.{pool.name}.fallback",
                  f'undefined fallback "{pool.fallback}" for pool "{pool.name}"')
    for pool in pools.values():
        seen = [pool.name]
        current = pool
        while current.fallback is not None and current.fallback in pools:
            if current.fallback in seen:
                w.add(line_of(raw[pool.name], "fallback", line), f"{base}.pools.{pool.name}.fallback",
                      f"loop in pool fallbacks: {' -> '.join([*seen, current.fallback])}")
                break
            seen.append(current.fallback)
            current = pools[current.fallback]
    return pools


def _check_value(rtype: str, value: str) -> str | None:
    if rtype in ("A", "AAAA"):
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            return f"{value!r} is not an IPv{4 if rtype == 'A' else 6} address"
        if ip.version != (4 if rtype == "A" else 6):
            return f"{value!r} is not an IPv{4 if rtype == 'A' else 6} address"
    elif not value.endswith("."):
        return f"{value!r} is missing the trailing dot"
    return None


def _canonical(rtype: str, value: str) -> str:
    if rtype in ("A", "AAAA"):
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            return value
    return value.lower()


def _parse_rules(dyn: Any, base: str, top: int, pools: dict[str, Pool], w: Problems) -> list[Rule]:
    raw = dyn.get("rules")
    line = line_of(dyn, "rules", top)
    if not isinstance(raw, list) or not raw:
        w.add(line, f"{base}.rules", "missing rules (a list; the last one without geos/subnets catches all)")
        return []
    rules: list[Rule] = []
    seen_geo_rule = False
    for i, rdoc in enumerate(raw):
        rline = line_of(raw, i, line)
        where = f"{base}.rules[{i}]"
        if not isinstance(rdoc, dict) or "pool" not in rdoc:
            w.add(rline, where, f"rule {i + 1} missing pool")
            continue
        pool = str(rdoc["pool"])
        if pools and pool not in pools:
            w.add(line_of(rdoc, "pool", rline), f"{where}.pool", f'rule {i + 1} undefined pool "{pool}"')
        geos = rdoc.get("geos") or []
        subnets = rdoc.get("subnets") or []
        if not isinstance(geos, list):
            w.add(line_of(rdoc, "geos", rline), f"{where}.geos", f"rule {i + 1} geos must be a list")
            geos = []
        if not isinstance(subnets, list):
            w.add(line_of(rdoc, "subnets", rline), f"{where}.subnets", f"rule {i + 1} subnets must be a list")
            subnets = []
        for geo in geos:
            m = _GEO.match(str(geo))
            if not m or m["continent"] not in CONTINENTS:
                w.add(line_of(rdoc, "geos", rline), f"{where}.geos", f'invalid geo code "{geo}" (EU, NA-US, NA-US-CA)')
        nets = []
        for subnet in subnets:
            try:
                nets.append(ipaddress.ip_network(str(subnet), strict=True))
            except ValueError as exc:
                w.add(line_of(rdoc, "subnets", rline), f"{where}.subnets", f'invalid subnet "{subnet}": {exc}')
        if subnets and not geos and seen_geo_rule:
            w.add(rline, where, f"rule {i + 1} with only subnet targeting should appear before all geo targeting rules")
        if geos:
            seen_geo_rule = True
        rules.append(Rule(pool, tuple(str(g) for g in geos), tuple(nets)))
    for i, rule in enumerate(rules[:-1]):
        if rule.catch_all:
            w.add(line_of(raw, i, line), f"{base}.rules[{i}]", f"rule {i + 1} catches all but is not the last rule")
    return rules


def _parse_healthcheck(octodns: Any, where: str, owner: Owner, w: Problems) -> HealthCheck:
    hc = octodns.get("healthcheck") or {}
    gslb = octodns.get("gslb") or {}
    line = line_of(octodns, "healthcheck", owner.line)
    if not isinstance(hc, dict) or not isinstance(gslb, dict):
        w.add(line, where, "healthcheck and gslb must be mappings")
        return HealthCheck()
    protocol = str(hc.get("protocol", "HTTPS")).upper()
    if protocol not in ("HTTP", "HTTPS", "TCP"):
        w.add(line_of(hc, "protocol", line), f"{where}.healthcheck.protocol",
              f"unsupported protocol {protocol!r} (HTTP, HTTPS, TCP)")
    port = _int(hc.get("port", 443), 1, 65535)
    if port is None:
        w.add(line_of(hc, "port", line), f"{where}.healthcheck.port", "port must be 1..65535")
        port = 443
    path = str(hc.get("path", "/_dns"))
    if not path.startswith("/"):
        w.add(line_of(hc, "path", line), f"{where}.healthcheck.path", "path must start with /")
    host = str(hc.get("host") or owner.name.to_text(omit_final_dot=True))
    gline = line_of(octodns, "gslb", line)
    tuning: dict[str, Any] = {}
    for key, lo, hi in (("interval", 0.1, 3600), ("timeout", 0.05, 60)):
        if key in gslb:
            value = gslb[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
                w.add(line_of(gslb, key, gline), f"{where}.gslb.{key}", f"{key} must be {lo}..{hi} seconds")
            else:
                tuning[key] = float(value)
    for key in ("rise", "fall"):
        if key in gslb:
            value = _int(gslb[key], 1, 100)
            if value is None:
                w.add(line_of(gslb, key, gline), f"{where}.gslb.{key}", f"{key} must be 1..100")
            else:
                tuning[key] = value
    expect = gslb.get("expect_status", [])
    expect = expect if isinstance(expect, list) else [expect]
    codes = []
    for code in expect:
        value = _int(code, 100, 599)
        if value is None:
            w.add(line_of(gslb, "expect_status", gline), f"{where}.gslb.expect_status", f"bad HTTP status {code!r}")
        else:
            codes.append(value)
    body = gslb.get("body_match")
    if body is not None:
        try:
            re.compile(str(body))
        except re.error as exc:
            w.add(line_of(gslb, "body_match", gline), f"{where}.gslb.body_match", f"bad regular expression: {exc}")
    return HealthCheck(protocol=protocol, port=port, path=path if protocol != "TCP" else "", host=host,
                       expect_status=tuple(codes), body_match=str(body) if body is not None else None, **tuning)


def _parse_sites(gslb: dict, where: str, line: int, owner: Owner, values: set[str], w: Problems,
                 known: Collection[str] | None) -> dict[str, tuple[float, float] | str]:
    """`sites`: value → a site name from the regions file, or [latitude, longitude]; checked like
    `targets` (the value must be in a pool) so the proximity policy never uses a typo."""
    raw = gslb.get("sites") or {}
    if not isinstance(raw, dict):
        w.add(line_of(gslb, "sites", line), f"{where}.sites", "a mapping of value → site name or [lat, lon]")
        return {}
    sites: dict[str, tuple[float, float] | str] = {}
    for value, site in raw.items():
        vline, vwhere = line_of(raw, value, line), f"{where}.sites.{value}"
        canonical = _canonical(owner.rtype, str(value))
        if canonical not in values:
            w.add(vline, f"{where}.sites", f"{value} is not a value of any pool")
        if isinstance(site, list) and len(site) == 2 and all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in site):
            lat, lon = float(site[0]), float(site[1])
            if not (-90 <= lat <= 90 and -180 <= lon <= 180):
                w.add(vline, vwhere, f"[{site[0]}, {site[1]}] is not a place: latitude -90..90, longitude -180..180")
                continue
            sites[canonical] = (lat, lon)
        elif isinstance(site, str):
            if known is not None and site not in known:
                w.add(vline, vwhere, f"unknown site {site!r} (known: {', '.join(sorted(known)) or 'none'})")
                continue
            sites[canonical] = site
        else:
            w.add(vline, vwhere, "a site name or [latitude, longitude]")
    return sites


_OPTION_KEYS = {"policy", "answers", "pick", "ecs_scope", "degraded_ttl", "fail_open", "targets", "sites",
                "interval", "timeout", "rise", "fall", "expect_status", "body_match"}


def _parse_options(octodns: Any, where: str, owner: Owner, pools: dict[str, Pool], w: Problems,
                   known_sites: Collection[str] | None) -> GslbOptions:
    gslb = octodns.get("gslb") or {}
    if not isinstance(gslb, dict):
        return GslbOptions()
    line = line_of(octodns, "gslb", owner.line)
    for key in gslb:
        if key not in _OPTION_KEYS:
            w.add(line_of(gslb, key, line), f"{where}.{key}", f"unknown key (one of {', '.join(sorted(_OPTION_KEYS))})")
    policy = gslb.get("policy", "geo")
    if policy not in POLICIES:
        w.add(line_of(gslb, "policy", line), f"{where}.policy", f"unknown policy {policy!r} ({', '.join(POLICIES)})")
        policy = "geo"
    answers = _int(gslb.get("answers", 1), 1, 64)
    if answers is None:
        w.add(line_of(gslb, "answers", line), f"{where}.answers", "answers must be 1..64")
        answers = 1
    pick = gslb.get("pick", "hash")
    if pick not in ("hash", "random"):
        w.add(line_of(gslb, "pick", line), f"{where}.pick", "pick must be hash or random")
    max_scope = 32 if owner.rtype == "A" else 128
    ecs_scope = gslb.get("ecs_scope")
    if ecs_scope is not None and _int(ecs_scope, 0, 128) is None:
        w.add(line_of(gslb, "ecs_scope", line), f"{where}.ecs_scope", f"ecs_scope must be 0..{max_scope}")
        ecs_scope = None
    degraded = gslb.get("degraded_ttl")
    if degraded is not None and _int(degraded, 0, 2**31 - 1) is None:
        w.add(line_of(gslb, "degraded_ttl", line), f"{where}.degraded_ttl", "degraded_ttl must be a TTL")
        degraded = None
    fail_open = gslb.get("fail_open", True)
    if not isinstance(fail_open, bool):
        w.add(line_of(gslb, "fail_open", line), f"{where}.fail_open", "fail_open must be true or false")
        fail_open = True
    values = {v.value for p in pools.values() for v in p.values}
    targets = {}
    for value, target in (gslb.get("targets") or {}).items():
        canonical = _canonical(owner.rtype, str(value))
        if canonical not in values:
            w.add(line_of(gslb["targets"], value, line), f"{where}.targets", f"{value} is not a value of any pool")
        try:
            targets[canonical] = str(ipaddress.ip_address(str(target)))
        except ValueError:
            w.add(line_of(gslb["targets"], value, line), f"{where}.targets.{value}", f"{target!r} is not an address")
    sites = _parse_sites(gslb, where, line, owner, values, w, known_sites)
    if policy == "proximity":
        missing = sorted(values - set(sites))
        if missing:
            w.add(line, f"{where}.sites", f"policy proximity needs a site per value; missing {', '.join(missing)}")
    return GslbOptions(policy=policy, answers=answers, pick=str(pick), ecs_scope=ecs_scope,
                       degraded_ttl=degraded, fail_open=fail_open, targets=targets, sites=sites)
