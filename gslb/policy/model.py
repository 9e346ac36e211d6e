"""octoDNS `dynamic` records and the `octodns.gslb` extension, parsed and validated.

The shape follows octoDNS's documentation exactly (pools with weighted values and status,
fallback chains, ordered rules with geos and subnets, a catch-all, the record's own values as
the last resort, `octodns.healthcheck`). Our additions live under `octodns.gslb`; see
`GslbOptions` for every key.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from gslb.conf import located
from gslb.conf.problems import Problem
from gslb.zone.model import Record

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


class _Where:
    def __init__(self, path: str, record: Record, problems: list[Problem]) -> None:
        self.path, self.problems = path, problems

    def add(self, line: int, field_: str, message: str) -> None:
        self.problems.append(Problem(self.path, line, field_, message))


def _line(doc: Any, key: Any, default: int) -> int:
    return doc.line_of(key) if isinstance(doc, located.Located | located.LocatedList) else default


def _int(value: Any, lo: int, hi: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if lo <= number <= hi and float(value) == number else None


def parse_dynamic(record: Record, doc: Any, path: str, name: str) -> tuple[Dynamic | None, list[Problem]]:
    """Parse `dynamic` (+ `octodns`) of one record; every problem with its line."""
    problems: list[Problem] = []
    w = _Where(path, record, problems)
    base = f"{name}.{record.rtype}.dynamic"
    dyn = doc.get("dynamic")
    top = _line(doc, "dynamic", record.line)
    if record.rtype not in ("A", "AAAA", "CNAME"):
        w.add(top, base, f"dynamic {record.rtype} records are not supported (A, AAAA, CNAME)")
        return None, problems
    if not isinstance(dyn, dict):
        w.add(top, base, "dynamic must be a mapping with pools and rules")
        return None, problems
    pools = _parse_pools(dyn, base, top, record, w)
    rules = _parse_rules(dyn, base, top, pools, w)
    octodns = doc.get("octodns") or {}
    healthcheck = _parse_healthcheck(octodns, f"{name}.{record.rtype}.octodns", record, w)
    options = _parse_options(octodns, f"{name}.{record.rtype}.octodns.gslb", record, pools, w)
    if problems:
        return None, problems
    return Dynamic(pools, tuple(rules), healthcheck, options), problems


def _parse_pools(dyn: Any, base: str, top: int, record: Record, w: _Where) -> dict[str, Pool]:
    raw = dyn.get("pools")
    line = _line(dyn, "pools", top)
    if not isinstance(raw, dict) or not raw:
        w.add(line, f"{base}.pools", "missing pools (a mapping of pool name → values)")
        return {}
    pools: dict[str, Pool] = {}
    for pname, pdoc in raw.items():
        pline = _line(raw, pname, line)
        where = f"{base}.pools.{pname}"
        if not isinstance(pdoc, dict) or not isinstance(pdoc.get("values"), list) or not pdoc["values"]:
            w.add(pline, where, f'pool "{pname}" is missing values')
            continue
        values = []
        for i, vdoc in enumerate(pdoc["values"]):
            vline = _line(pdoc["values"], i, pline)
            vwhere = f"{where}.values[{i}]"
            if not isinstance(vdoc, dict) or "value" not in vdoc:
                w.add(vline, vwhere, f'missing value in pool "{pname}" value {i + 1}')
                continue
            value = str(vdoc["value"])
            problem = _check_value(record.rtype, value)
            if problem:
                w.add(_line(vdoc, "value", vline), f"{vwhere}.value", problem)
            weight = _int(vdoc.get("weight", 1), 1, 100)
            if weight is None:
                w.add(_line(vdoc, "weight", vline), f"{vwhere}.weight",
                      f'invalid weight "{vdoc.get("weight")}" (1..100)')
                weight = 1
            status = vdoc.get("status", "obey")
            if status not in ("up", "down", "obey"):
                w.add(_line(vdoc, "status", vline), f"{vwhere}.status", f'invalid status "{status}" (up, down, obey)')
            values.append(PoolValue(_canonical(record.rtype, value), weight, status))
        if len(values) == 1 and values[0].weight != 1:
            w.add(pline, where, f'pool "{pname}" has single value with weight!=1')
        fallback = pdoc.get("fallback")
        pools[str(pname)] = Pool(str(pname), tuple(values), str(fallback) if fallback is not None else None)
    for pool in pools.values():
        if pool.fallback is not None and pool.fallback not in pools:
            w.add(_line(raw[pool.name], "fallback", line), f"{base}.pools.{pool.name}.fallback",
                  f'undefined fallback "{pool.fallback}" for pool "{pool.name}"')
    for pool in pools.values():
        seen = [pool.name]
        current = pool
        while current.fallback is not None and current.fallback in pools:
            if current.fallback in seen:
                w.add(_line(raw[pool.name], "fallback", line), f"{base}.pools.{pool.name}.fallback",
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


def _parse_rules(dyn: Any, base: str, top: int, pools: dict[str, Pool], w: _Where) -> list[Rule]:
    raw = dyn.get("rules")
    line = _line(dyn, "rules", top)
    if not isinstance(raw, list) or not raw:
        w.add(line, f"{base}.rules", "missing rules (a list; the last one without geos/subnets catches all)")
        return []
    rules: list[Rule] = []
    seen_geo_rule = False
    for i, rdoc in enumerate(raw):
        rline = _line(raw, i, line)
        where = f"{base}.rules[{i}]"
        if not isinstance(rdoc, dict) or "pool" not in rdoc:
            w.add(rline, where, f"rule {i + 1} missing pool")
            continue
        pool = str(rdoc["pool"])
        if pools and pool not in pools:
            w.add(_line(rdoc, "pool", rline), f"{where}.pool", f'rule {i + 1} undefined pool "{pool}"')
        geos = rdoc.get("geos") or []
        subnets = rdoc.get("subnets") or []
        if not isinstance(geos, list):
            w.add(_line(rdoc, "geos", rline), f"{where}.geos", f"rule {i + 1} geos must be a list")
            geos = []
        if not isinstance(subnets, list):
            w.add(_line(rdoc, "subnets", rline), f"{where}.subnets", f"rule {i + 1} subnets must be a list")
            subnets = []
        for geo in geos:
            m = _GEO.match(str(geo))
            if not m or m["continent"] not in CONTINENTS:
                w.add(_line(rdoc, "geos", rline), f"{where}.geos", f'invalid geo code "{geo}" (EU, NA-US, NA-US-CA)')
        nets = []
        for subnet in subnets:
            try:
                nets.append(ipaddress.ip_network(str(subnet), strict=True))
            except ValueError as exc:
                w.add(_line(rdoc, "subnets", rline), f"{where}.subnets", f'invalid subnet "{subnet}": {exc}')
        if subnets and not geos and seen_geo_rule:
            w.add(rline, where, f"rule {i + 1} with only subnet targeting should appear before all geo targeting rules")
        if geos:
            seen_geo_rule = True
        rules.append(Rule(pool, tuple(str(g) for g in geos), tuple(nets)))
    for i, rule in enumerate(rules[:-1]):
        if rule.catch_all:
            w.add(_line(raw, i, line), f"{base}.rules[{i}]", f"rule {i + 1} catches all but is not the last rule")
    return rules


def _parse_healthcheck(octodns: Any, where: str, record: Record, w: _Where) -> HealthCheck:
    hc = octodns.get("healthcheck") or {}
    gslb = octodns.get("gslb") or {}
    line = _line(octodns, "healthcheck", record.line)
    if not isinstance(hc, dict) or not isinstance(gslb, dict):
        w.add(line, where, "healthcheck and gslb must be mappings")
        return HealthCheck()
    protocol = str(hc.get("protocol", "HTTPS")).upper()
    if protocol not in ("HTTP", "HTTPS", "TCP"):
        w.add(_line(hc, "protocol", line), f"{where}.healthcheck.protocol",
              f"unsupported protocol {protocol!r} (HTTP, HTTPS, TCP)")
    port = _int(hc.get("port", 443), 1, 65535)
    if port is None:
        w.add(_line(hc, "port", line), f"{where}.healthcheck.port", "port must be 1..65535")
        port = 443
    path = str(hc.get("path", "/_dns"))
    if not path.startswith("/"):
        w.add(_line(hc, "path", line), f"{where}.healthcheck.path", "path must start with /")
    host = str(hc.get("host") or record.name.to_text(omit_final_dot=True))
    gline = _line(octodns, "gslb", line)
    tuning: dict[str, Any] = {}
    for key, lo, hi in (("interval", 0.1, 3600), ("timeout", 0.05, 60)):
        if key in gslb:
            value = gslb[key]
            if isinstance(value, bool) or not isinstance(value, int | float) or not lo <= value <= hi:
                w.add(_line(gslb, key, gline), f"{where}.gslb.{key}", f"{key} must be {lo}..{hi} seconds")
            else:
                tuning[key] = float(value)
    for key in ("rise", "fall"):
        if key in gslb:
            value = _int(gslb[key], 1, 100)
            if value is None:
                w.add(_line(gslb, key, gline), f"{where}.gslb.{key}", f"{key} must be 1..100")
            else:
                tuning[key] = value
    expect = gslb.get("expect_status", [])
    expect = expect if isinstance(expect, list) else [expect]
    codes = []
    for code in expect:
        value = _int(code, 100, 599)
        if value is None:
            w.add(_line(gslb, "expect_status", gline), f"{where}.gslb.expect_status", f"bad HTTP status {code!r}")
        else:
            codes.append(value)
    body = gslb.get("body_match")
    if body is not None:
        try:
            re.compile(str(body))
        except re.error as exc:
            w.add(_line(gslb, "body_match", gline), f"{where}.gslb.body_match", f"bad regular expression: {exc}")
    return HealthCheck(protocol=protocol, port=port, path=path if protocol != "TCP" else "", host=host,
                       expect_status=tuple(codes), body_match=str(body) if body is not None else None, **tuning)


_OPTION_KEYS = {"policy", "answers", "pick", "ecs_scope", "degraded_ttl", "fail_open", "targets", "sites",
                "interval", "timeout", "rise", "fall", "expect_status", "body_match"}


def _parse_options(octodns: Any, where: str, record: Record, pools: dict[str, Pool], w: _Where) -> GslbOptions:
    gslb = octodns.get("gslb") or {}
    if not isinstance(gslb, dict):
        return GslbOptions()
    line = _line(octodns, "gslb", record.line)
    for key in gslb:
        if key not in _OPTION_KEYS:
            w.add(_line(gslb, key, line), f"{where}.{key}", f"unknown key (one of {', '.join(sorted(_OPTION_KEYS))})")
    policy = gslb.get("policy", "geo")
    if policy not in POLICIES:
        w.add(_line(gslb, "policy", line), f"{where}.policy", f"unknown policy {policy!r} ({', '.join(POLICIES)})")
        policy = "geo"
    answers = _int(gslb.get("answers", 1), 1, 64)
    if answers is None:
        w.add(_line(gslb, "answers", line), f"{where}.answers", "answers must be 1..64")
        answers = 1
    pick = gslb.get("pick", "hash")
    if pick not in ("hash", "random"):
        w.add(_line(gslb, "pick", line), f"{where}.pick", "pick must be hash or random")
    max_scope = 32 if record.rtype == "A" else 128
    ecs_scope = gslb.get("ecs_scope")
    if ecs_scope is not None and _int(ecs_scope, 0, 128) is None:
        w.add(_line(gslb, "ecs_scope", line), f"{where}.ecs_scope", f"ecs_scope must be 0..{max_scope}")
        ecs_scope = None
    degraded = gslb.get("degraded_ttl")
    if degraded is not None and _int(degraded, 0, 2**31 - 1) is None:
        w.add(_line(gslb, "degraded_ttl", line), f"{where}.degraded_ttl", "degraded_ttl must be a TTL")
        degraded = None
    fail_open = gslb.get("fail_open", True)
    if not isinstance(fail_open, bool):
        w.add(_line(gslb, "fail_open", line), f"{where}.fail_open", "fail_open must be true or false")
        fail_open = True
    values = {v.value for p in pools.values() for v in p.values}
    targets = {}
    for value, target in (gslb.get("targets") or {}).items():
        canonical = _canonical(record.rtype, str(value))
        if canonical not in values:
            w.add(_line(gslb["targets"], value, line), f"{where}.targets", f"{value} is not a value of any pool")
        try:
            targets[canonical] = str(ipaddress.ip_address(str(target)))
        except ValueError:
            w.add(_line(gslb["targets"], value, line), f"{where}.targets.{value}", f"{target!r} is not an address")
    sites: dict[str, tuple[float, float] | str] = {}
    for value, site in (gslb.get("sites") or {}).items():
        canonical = _canonical(record.rtype, str(value))
        if isinstance(site, list) and len(site) == 2 and all(isinstance(x, int | float) for x in site):
            sites[canonical] = (float(site[0]), float(site[1]))
        elif isinstance(site, str):
            sites[canonical] = site
        else:
            w.add(_line(gslb["sites"], value, line), f"{where}.sites.{value}", "a site name or [latitude, longitude]")
    if policy == "proximity":
        missing = sorted(values - set(sites))
        if missing:
            w.add(line, f"{where}.sites", f"policy proximity needs a site per value; missing {', '.join(missing)}")
    return GslbOptions(policy=policy, answers=answers, pick=str(pick), ecs_scope=ecs_scope,
                       degraded_ttl=degraded, fail_open=fail_open, targets=targets, sites=sites)
