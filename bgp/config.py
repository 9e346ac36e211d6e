"""The site YAML: who we peer with, what we announce, and which health signals gate it.

```yaml
site: ams
local_as: 65001
router_id: 192.0.2.1
neighbors:
  - {address: 192.0.2.2, peer_as: 65000, hold_time: 9, md5: secret, local_address: 192.0.2.1}
prefixes:
  - prefix: 203.0.113.0/24
    next_hop: self
    communities: ["65001:100"]
    signals: [dns]               # default: every signal
    degrade: {prepend: 3, med: 500}
    drain_seconds: 30
signals:
  dns: {type: dns, address: "127.0.0.1:53", name: www.example.com, qtype: A,
        interval: 0.5, timeout: 0.5, rise: 3, fall: 2, on_fail: withdraw}
  backends: {type: health, checks: ["tcp://192.0.2.10:80"], min_up: 1, on_fail: degrade}
store: redis://192.0.2.254:6379/0
allow_last_withdraw: false       # the global guard: never withdraw the last announcement
```
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from gslb.dns.sockets import ListenError, parse_listen
from gslb.zone import yamlsrc
from gslb.zone.problems import Problem, ZoneError

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Neighbor:
    address: Address
    peer_as: int
    local_address: Address | None = None
    hold_time: int = 9
    md5: str | None = None


@dataclass(frozen=True)
class Signal:
    name: str
    type: str  # "dns" | "health"
    on_fail: str = "withdraw"  # or "degrade"
    interval: float = 0.5
    timeout: float = 0.5
    rise: int = 3
    fall: int = 2
    address: str = "127.0.0.1:53"  # dns: the local DNS service to ask
    qname: str = ""
    qtype: str = "A"
    checks: tuple[str, ...] = ()  # health: check keys from the store
    min_up: int = 1


@dataclass(frozen=True)
class Degrade:
    prepend: int = 3
    med: int | None = None


@dataclass(frozen=True)
class Prefix:
    prefix: Network
    next_hop: str = "self"
    communities: tuple[str, ...] = ()
    med: int | None = None
    signals: tuple[str, ...] = ()
    degrade: Degrade = field(default_factory=Degrade)
    drain_seconds: float = 30.0


@dataclass(frozen=True)
class SiteConfig:
    site: str
    local_as: int
    router_id: str
    neighbors: tuple[Neighbor, ...]
    prefixes: tuple[Prefix, ...]
    signals: dict[str, Signal]
    store: str | None = None
    allow_last_withdraw: bool = False
    path: str = ""

    def neighbors_for(self, prefix: Prefix) -> list[Neighbor]:
        """Sessions of the prefix's address family."""
        return [n for n in self.neighbors if n.address.version == prefix.prefix.version]


class _Problems:
    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[Problem] = []

    def add(self, line: int, where: str, message: str) -> None:
        self.items.append(Problem(self.path, line, where, message))


def _line(doc: Any, key: Any, default: int) -> int:
    return doc.line_of(key) if isinstance(doc, yamlsrc.Located | yamlsrc.LocatedList) else default


def _asn(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 4294967295 else None


def _community(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 2 and all(p.isdigit() and int(p) <= 65535 for p in parts)


def _parse_signal(name: str, doc: Any, line: int, out: _Problems) -> Signal | None:
    where = f"signals.{name}"
    if not isinstance(doc, dict):
        out.add(line, where, "expected a mapping with a type")
        return None
    kind = doc.get("type")
    if kind not in ("dns", "health"):
        out.add(_line(doc, "type", line), f"{where}.type", "type must be dns or health")
        return None
    on_fail = doc.get("on_fail", "withdraw")
    if on_fail not in ("withdraw", "degrade"):
        out.add(_line(doc, "on_fail", line), f"{where}.on_fail", "on_fail must be withdraw or degrade")
    kwargs: dict[str, Any] = {}
    for key, lo, hi in (("interval", 0.05, 3600.0), ("timeout", 0.01, 60.0)):
        if key in doc:
            v = doc[key]
            if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
                out.add(_line(doc, key, line), f"{where}.{key}", f"must be {lo}..{hi} seconds")
            else:
                kwargs[key] = float(v)
    for key in ("rise", "fall", "min_up"):
        if key in doc:
            v = doc[key]
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1000:
                out.add(_line(doc, key, line), f"{where}.{key}", "must be a positive integer")
            else:
                kwargs[key] = v
    if kind == "dns":
        try:
            parse_listen(str(doc.get("address", "127.0.0.1:53")))
        except ListenError as exc:
            out.add(_line(doc, "address", line), f"{where}.address", str(exc))
        if not doc.get("name"):
            out.add(line, f"{where}.name", "the name to query (a name the local server answers)")
        kwargs.update(address=str(doc.get("address", "127.0.0.1:53")), qname=str(doc.get("name", "")),
                      qtype=str(doc.get("qtype", "A")).upper())
    else:
        checks = doc.get("checks")
        if not isinstance(checks, list) or not checks:
            out.add(_line(doc, "checks", line), f"{where}.checks", "a list of check keys (see gslb explain)")
            checks = []
        kwargs["checks"] = tuple(str(c) for c in checks)
    return Signal(name=name, type=kind, on_fail=str(on_fail), **kwargs)


def load_site(path: str) -> SiteConfig:
    """Read and validate a site file; raises ZoneError listing every problem."""
    out = _Problems(path)
    doc = yamlsrc.load_file(path, "site")
    if not isinstance(doc, dict):
        raise ZoneError([Problem(path, 1, "site", "expected a mapping")])
    known = {"site", "local_as", "router_id", "neighbors", "prefixes", "signals", "store", "allow_last_withdraw"}
    for key in doc:
        if key not in known:
            out.add(doc.line_of(key), str(key), f"unknown key (one of {', '.join(sorted(known))})")
    site = doc.get("site")
    if not isinstance(site, str) or not site:
        out.add(doc.line, "site", "the site's name is required")
    local_as = _asn(doc.get("local_as"))
    if local_as is None:
        out.add(_line(doc, "local_as", doc.line), "local_as", "an AS number 1..4294967295")
    router_id = str(doc.get("router_id", ""))
    try:
        if ipaddress.ip_address(router_id).version != 4:
            raise ValueError
    except ValueError:
        out.add(_line(doc, "router_id", doc.line), "router_id", "an IPv4 address (the BGP identifier)")
    signals: dict[str, Signal] = {}
    sdoc = doc.get("signals") or {}
    if not isinstance(sdoc, dict):
        out.add(_line(doc, "signals", doc.line), "signals", "a mapping of name → signal")
        sdoc = {}
    for name, sig in sdoc.items():
        parsed = _parse_signal(str(name), sig, sdoc.line_of(name), out)
        if parsed:
            signals[str(name)] = parsed
    neighbors = []
    ndoc = doc.get("neighbors")
    if not isinstance(ndoc, list) or not ndoc:
        out.add(_line(doc, "neighbors", doc.line), "neighbors", "at least one neighbor")
        ndoc = []
    for i, n in enumerate(ndoc):
        line, where = ndoc.line_of(i), f"neighbors[{i}]"
        if not isinstance(n, dict):
            out.add(line, where, "a mapping with address and peer_as")
            continue
        try:
            address = ipaddress.ip_address(str(n.get("address")))
        except ValueError:
            out.add(_line(n, "address", line), f"{where}.address", f"{n.get('address')!r} is not an IP address")
            continue
        peer_as = _asn(n.get("peer_as"))
        if peer_as is None:
            out.add(_line(n, "peer_as", line), f"{where}.peer_as", "an AS number")
            continue
        hold = n.get("hold_time", 9)
        if not isinstance(hold, int) or not (hold == 0 or 3 <= hold <= 65535):
            out.add(_line(n, "hold_time", line), f"{where}.hold_time", "0 or 3..65535 seconds (RFC 4271)")
            hold = 9
        local = None
        if n.get("local_address") is not None:
            try:
                local = ipaddress.ip_address(str(n["local_address"]))
            except ValueError:
                out.add(_line(n, "local_address", line), f"{where}.local_address", "not an IP address")
        neighbors.append(Neighbor(address, peer_as, local, hold, str(n["md5"]) if n.get("md5") else None))
    prefixes = []
    pdoc = doc.get("prefixes")
    if not isinstance(pdoc, list) or not pdoc:
        out.add(_line(doc, "prefixes", doc.line), "prefixes", "at least one prefix to announce")
        pdoc = []
    for i, p in enumerate(pdoc):
        line, where = pdoc.line_of(i), f"prefixes[{i}]"
        if not isinstance(p, dict):
            out.add(line, where, "a mapping with prefix")
            continue
        try:
            net = ipaddress.ip_network(str(p.get("prefix")), strict=True)
        except ValueError as exc:
            out.add(_line(p, "prefix", line), f"{where}.prefix", f"bad prefix: {exc}")
            continue
        next_hop = str(p.get("next_hop", "self"))
        if next_hop != "self":
            try:
                if ipaddress.ip_address(next_hop).version != net.version:
                    out.add(_line(p, "next_hop", line), f"{where}.next_hop", "next hop of another address family")
            except ValueError:
                out.add(_line(p, "next_hop", line), f"{where}.next_hop", "self or an IP address")
        if not any(n.address.version == net.version for n in neighbors):
            out.add(line, where, f"no IPv{net.version} neighbor to announce {net} to")
        communities = tuple(str(c) for c in (p.get("communities") or []))
        for c in communities:
            if not _community(c):
                out.add(_line(p, "communities", line), f"{where}.communities", f"{c!r} is not ASN:VALUE")
        names = tuple(str(s) for s in (p.get("signals") if p.get("signals") is not None else signals))
        for name in names:
            if name not in signals and name in sdoc:
                continue  # already reported
            if name not in signals:
                out.add(_line(p, "signals", line), f"{where}.signals", f"unknown signal {name!r}")
        dg = p.get("degrade") or {}
        degrade = Degrade(prepend=int(dg.get("prepend", 3)), med=dg.get("med"))
        if not 0 <= degrade.prepend <= 10:
            out.add(_line(p, "degrade", line), f"{where}.degrade.prepend", "0..10 extra AS-path entries")
        drain = p.get("drain_seconds", 30)
        if isinstance(drain, bool) or not isinstance(drain, int | float) or not 0 <= drain <= 3600:
            out.add(_line(p, "drain_seconds", line), f"{where}.drain_seconds", "0..3600 seconds")
            drain = 30
        prefixes.append(Prefix(net, next_hop, communities, p.get("med"), names, degrade, float(drain)))
    allow = doc.get("allow_last_withdraw", False)
    if not isinstance(allow, bool):
        out.add(_line(doc, "allow_last_withdraw", doc.line), "allow_last_withdraw", "true or false")
        allow = False
    if out.items:
        raise ZoneError(out.items)
    return SiteConfig(site=str(site), local_as=int(local_as or 0), router_id=router_id, neighbors=tuple(neighbors),
                      prefixes=tuple(prefixes), signals=signals, store=doc.get("store"), allow_last_withdraw=allow,
                      path=path)
