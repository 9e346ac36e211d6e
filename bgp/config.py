"""The site YAML: who we peer with, what we announce, and which health signals gate it.

```yaml
site: ams
local_as: 65001
router_id: 192.0.2.1
store: redis://192.0.2.254:6379/0
neighbors:
  - {address: 192.0.2.2, peer_as: 65000, hold_time: 9, md5: secret, local_address: 192.0.2.1}
prefixes:
  - prefix: 203.0.113.0/24
    next_hop: self
    communities: ["65001:100"]
    signals: [dns]               # default: every signal
    degrade: {prepend: 3, med: 500}
    drain_seconds: 30
    hold_down: 2                 # flap damping: seconds before coming back, doubling per flap
    max_hold_down: 120
signals:
  dns: {type: dns, address: "127.0.0.1:53", name: www.example.com, qtype: A,
        interval: 0.5, timeout: 0.5, rise: 3, fall: 2, on_fail: withdraw}
  backends: {type: health, checks: ["tcp://192.0.2.10:80"], min_up: 1, on_fail: degrade}
allow_last_withdraw: false       # the global guard: never withdraw the last announcement
guard_settle: 0.3                # seconds a withdraw waits for the other sites' view to settle
```

Every problem in the file is reported at once as `file:line: field: message`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.name
import dns.rdatatype

from gslb.conf import located
from gslb.conf.collect import Problems, line_of
from gslb.conf.problems import ConfigError, Problem

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_AS = 4294967295
MAX_MED = 4294967295


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
    hold_down: float = 2.0
    max_hold_down: float = 120.0


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
    guard_settle: float = 0.3
    path: str = ""

    def neighbors_for(self, prefix: Prefix) -> list[Neighbor]:
        """Sessions of the prefix's address family."""
        return [n for n in self.neighbors if n.address.version == prefix.prefix.version]


TOP_KEYS = ("site", "local_as", "router_id", "store", "neighbors", "prefixes", "signals", "allow_last_withdraw",
            "guard_settle")
NEIGHBOR_KEYS = ("address", "peer_as", "local_address", "hold_time", "md5")
PREFIX_KEYS = ("prefix", "next_hop", "communities", "med", "signals", "degrade", "drain_seconds", "hold_down",
               "max_hold_down")
DEGRADE_KEYS = ("prepend", "med")
SIGNAL_KEYS = {
    "dns": ("type", "on_fail", "interval", "rise", "fall", "address", "name", "qtype", "timeout"),
    "health": ("type", "on_fail", "interval", "rise", "fall", "checks", "min_up"),
}


def _asn(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_AS else None


def _community(text: str) -> bool:
    parts = text.split(":")
    return len(parts) == 2 and all(p.isdigit() and int(p) <= 65535 for p in parts)


def _ip(value: Any) -> Address | None:
    try:
        return ipaddress.ip_address(str(value))
    except ValueError:
        return None


def _parse_signal(name: str, doc: Any, line: int, out: Problems) -> Signal | None:
    where = f"signals.{name}"
    if not isinstance(doc, dict):
        out.add(line, where, "a mapping with a type (dns or health)")
        return None
    kind = doc.get("type")
    if kind not in SIGNAL_KEYS:
        out.add(line_of(doc, "type", line), f"{where}.type", f"type must be dns or health, not {kind!r}")
        return None
    out.keys(doc, SIGNAL_KEYS[kind], where, line)
    on_fail = doc.get("on_fail", "withdraw")
    if on_fail not in ("withdraw", "degrade"):
        out.add(line_of(doc, "on_fail", line), f"{where}.on_fail", f"withdraw or degrade, not {on_fail!r}")
        on_fail = "withdraw"
    # A health signal follows the probes' quorum decisions, which already carry the probes' own
    # rise/fall: by default it moves on the first decision; a dns signal is a probe itself.
    first = 1 if kind == "health" else None
    kwargs: dict[str, Any] = {
        "interval": float(out.number(doc, "interval", where, line, 0.05, 3600, 0.5, unit=" seconds")),
        "rise": int(out.number(doc, "rise", where, line, 1, 1000, first or 3, integer=True)),
        "fall": int(out.number(doc, "fall", where, line, 1, 1000, first or 2, integer=True)),
    }
    if kind == "dns":
        kwargs["timeout"] = float(out.number(doc, "timeout", where, line, 0.01, 60, 0.5, unit=" seconds"))
        address = out.listen(doc, "address", where, line, "127.0.0.1:53")
        qname = doc.get("name")
        if not qname or not isinstance(qname, str):
            out.add(line, f"{where}.name", "the name to ask (one the local server answers authoritatively)")
            qname = ""
        else:
            try:
                dns.name.from_text(qname)
            except dns.exception.DNSException as exc:
                out.add(line_of(doc, "name", line), f"{where}.name", f"{qname!r}: {exc}")
        qtype = str(doc.get("qtype", "A")).upper()
        try:
            dns.rdatatype.from_text(qtype)
        except dns.exception.DNSException:
            out.add(line_of(doc, "qtype", line), f"{where}.qtype", f"{qtype!r} is not a record type")
        kwargs.update(address=address, qname=qname, qtype=qtype)
    else:
        checks = doc.get("checks")
        if not isinstance(checks, list) or not checks:
            out.add(line_of(doc, "checks", line), f"{where}.checks", "a list of check keys (see `gslb explain`)")
            checks = []
        kwargs["checks"] = tuple(str(c) for c in checks)
        kwargs["min_up"] = int(out.number(doc, "min_up", where, line, 1, 10000, 1, integer=True))
        if checks and kwargs["min_up"] > len(checks):
            out.add(line_of(doc, "min_up", line), f"{where}.min_up", f"more than the {len(checks)} check(s) listed")
    return Signal(name=name, type=kind, on_fail=str(on_fail), **kwargs)


def _parse_neighbor(i: int, n: Any, line: int, out: Problems) -> Neighbor | None:
    where = f"neighbors[{i}]"
    if not isinstance(n, dict):
        out.add(line, where, "a mapping with address and peer_as")
        return None
    out.keys(n, NEIGHBOR_KEYS, where, line)
    address = _ip(n.get("address"))
    if address is None:
        out.add(line_of(n, "address", line), f"{where}.address", f"{n.get('address')!r} is not an IP address")
    peer_as = _asn(n.get("peer_as"))
    if peer_as is None:
        out.add(line_of(n, "peer_as", line), f"{where}.peer_as", f"an AS number 1..{MAX_AS}, not {n.get('peer_as')!r}")
    hold = n.get("hold_time", 9)
    if isinstance(hold, bool) or not isinstance(hold, int) or not (hold == 0 or 3 <= hold <= 65535):
        out.add(line_of(n, "hold_time", line), f"{where}.hold_time", "0 or 3..65535 seconds (RFC 4271)")
        hold = 9
    local = None
    if n.get("local_address") is not None:
        local = _ip(n["local_address"])
        if local is None:
            out.add(line_of(n, "local_address", line), f"{where}.local_address", "not an IP address")
        elif address is not None and local.version != address.version:
            out.add(line_of(n, "local_address", line), f"{where}.local_address",
                    f"IPv{local.version} for an IPv{address.version} neighbor")
    md5 = n.get("md5")
    if md5 is not None and (not isinstance(md5, str) or not 1 <= len(md5) <= 80 or '"' in md5):
        out.add(line_of(n, "md5", line), f"{where}.md5", "a password of 1..80 characters without '\"' (TCP MD5)")
        md5 = None
    if address is None or peer_as is None:
        return None
    return Neighbor(address, peer_as, local, hold, md5 or None)


def _next_hop(p: Any, net: Any, where: str, line: int, out: Problems) -> str:
    next_hop = str(p.get("next_hop", "self"))
    if next_hop != "self":
        hop = _ip(next_hop)
        if hop is None:
            out.add(line_of(p, "next_hop", line), f"{where}.next_hop", f"self or an IP address, not {next_hop!r}")
        elif hop.version != net.version:
            out.add(line_of(p, "next_hop", line), f"{where}.next_hop", f"an IPv{hop.version} next hop for {net}")
    return next_hop


def _communities(p: Any, where: str, line: int, out: Problems) -> tuple[str, ...]:
    raw = p.get("communities") or []
    if not isinstance(raw, list):
        out.add(line_of(p, "communities", line), f"{where}.communities", 'a list like ["65001:100"]')
        raw = []
    communities = tuple(str(c) for c in raw)
    for c in communities:
        if not _community(c):
            out.add(line_of(p, "communities", line), f"{where}.communities", f"{c!r} is not ASN:VALUE (0..65535 each)")
    return communities


def _med(doc: Any, key: str, where: str, line: int, out: Problems) -> int | None:
    med = doc.get(key)
    if med is not None and (isinstance(med, bool) or not isinstance(med, int) or not 0 <= med <= MAX_MED):
        out.add(line_of(doc, key, line), where, f"0..{MAX_MED}")
        return None
    return med


def _prefix_signals(p: Any, signal_names: list[str], where: str, line: int, out: Problems) -> tuple[str, ...]:
    """The signals gating a prefix: those listed, or every signal of the site."""
    listed = p.get("signals")
    if listed is not None and not isinstance(listed, list):
        out.add(line_of(p, "signals", line), f"{where}.signals", "a list of signal names")
        listed = None
    names = tuple(str(s) for s in (listed if listed is not None else signal_names))
    for name in names:
        if name not in signal_names:
            out.add(line_of(p, "signals", line), f"{where}.signals",
                    f"unknown signal {name!r} (defined: {', '.join(sorted(signal_names)) or 'none'})")
    return names


def _degrade(p: Any, names: tuple[str, ...], signals: dict[str, Signal], where: str, line: int,
             out: Problems) -> Degrade:
    dg = p.get("degrade") or {}
    dline = line_of(p, "degrade", line)
    if not isinstance(dg, dict):
        out.add(dline, f"{where}.degrade", "a mapping {prepend: N, med: M}")
        dg = {}
    out.keys(dg, DEGRADE_KEYS, f"{where}.degrade", dline)
    prepend = int(out.number(dg, "prepend", f"{where}.degrade", dline, 0, 10, 3, integer=True))
    dmed = _med(dg, "med", f"{where}.degrade.med", dline, out)
    gated_by_degrade = [n for n in names if n in signals and signals[n].on_fail == "degrade"]
    if gated_by_degrade and prepend == 0 and dmed is None:
        out.add(dline, f"{where}.degrade", f"degrading changes nothing (prepend 0, no med) but "
                f"{', '.join(gated_by_degrade)} degrade(s) this prefix")
    return Degrade(prepend, dmed)


def _parse_prefix(i: int, p: Any, line: int, signals: dict[str, Signal], signal_names: list[str],
                  neighbors: list[Neighbor], out: Problems) -> Prefix | None:
    where = f"prefixes[{i}]"
    if not isinstance(p, dict):
        out.add(line, where, "a mapping with prefix")
        return None
    out.keys(p, PREFIX_KEYS, where, line)
    try:
        net = ipaddress.ip_network(str(p.get("prefix")), strict=True)
    except ValueError as exc:
        out.add(line_of(p, "prefix", line), f"{where}.prefix", f"bad prefix: {exc}")
        return None
    next_hop = _next_hop(p, net, where, line, out)
    if neighbors and not any(n.address.version == net.version for n in neighbors):
        out.add(line, where, f"no IPv{net.version} neighbor to announce {net} to")
    communities = _communities(p, where, line, out)
    med = _med(p, "med", f"{where}.med", line, out)
    names = _prefix_signals(p, signal_names, where, line, out)
    degrade = _degrade(p, names, signals, where, line, out)
    drain = out.number(p, "drain_seconds", where, line, 0, 3600, 30.0, unit=" seconds")
    hold = out.number(p, "hold_down", where, line, 0, 3600, 2.0, unit=" seconds")
    max_hold = out.number(p, "max_hold_down", where, line, 0, 86400, max(120.0, hold), unit=" seconds")
    if max_hold < hold:
        out.add(line_of(p, "max_hold_down", line), f"{where}.max_hold_down", f"less than hold_down ({hold:g})")
        max_hold = hold
    return Prefix(net, next_hop, communities, med, names, degrade, float(drain), float(hold), float(max_hold))


def _parse_signals(doc: located.Located, out: Problems) -> tuple[dict[str, Signal], list[str]]:
    """The parsed signals, and every name defined (a broken one is reported once, not as unknown)."""
    sdoc = doc.get("signals") or {}
    if not isinstance(sdoc, located.Located):
        out.add(line_of(doc, "signals", doc.line), "signals", "a mapping of name → signal")
        sdoc = {}
    signals: dict[str, Signal] = {}
    for name, sig in sdoc.items():
        if str(name) == "drain":
            out.add(line_of(sdoc, name, doc.line), "signals.drain",
                    "reserved: the operator drain (`gslb bgp drain`) is always a signal")
            continue
        parsed = _parse_signal(str(name), sig, line_of(sdoc, name, doc.line), out)
        if parsed:
            signals[str(name)] = parsed
    return signals, [str(n) for n in sdoc if str(n) != "drain"]


def load_site(path: str) -> SiteConfig:
    """Read and validate a site file; raises ConfigError listing every problem."""
    out = Problems(path)
    doc = located.load_file(path, "site")
    if not isinstance(doc, located.Located):
        raise ConfigError([Problem(path, 1, "site", "expected a mapping (see docs/bgp.md)")])
    out.keys(doc, TOP_KEYS, "", doc.line)
    site = doc.get("site")
    if not isinstance(site, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", site):
        out.add(line_of(doc, "site", doc.line), "site", "the site's name (letters, digits, . _ -) is required")
        site = ""
    local_as = _asn(doc.get("local_as"))
    if local_as is None:
        out.add(line_of(doc, "local_as", doc.line), "local_as",
                f"an AS number 1..{MAX_AS}, not {doc.get('local_as')!r}")
    router_id = str(doc.get("router_id", ""))
    rid = _ip(router_id)
    if rid is None or rid.version != 4:
        out.add(line_of(doc, "router_id", doc.line), "router_id", "an IPv4 address (the BGP identifier)")
    store = out.store_url(doc, "store", "", doc.line)

    signals, signal_names = _parse_signals(doc, out)

    neighbors: list[Neighbor] = []
    for i, n, line in out.entries(doc, "neighbors", doc.line, "at least one neighbor"):
        parsed_n = _parse_neighbor(i, n, line, out)
        if parsed_n is None:
            continue
        if any(x.address == parsed_n.address for x in neighbors):
            out.add(line, f"neighbors[{i}].address", f"{parsed_n.address} is listed twice")
            continue
        neighbors.append(parsed_n)

    prefixes: list[Prefix] = []
    for i, p, line in out.entries(doc, "prefixes", doc.line, "at least one prefix to announce"):
        parsed_p = _parse_prefix(i, p, line, signals, signal_names, neighbors, out)
        if parsed_p is None:
            continue
        if any(x.prefix == parsed_p.prefix for x in prefixes):
            out.add(line, f"prefixes[{i}].prefix", f"{parsed_p.prefix} is listed twice")
            continue
        prefixes.append(parsed_p)

    allow = out.boolean(doc, "allow_last_withdraw", "", doc.line, False)
    settle = out.number(doc, "guard_settle", "", doc.line, 0, 10, 0.3, unit=" seconds")
    out.raise_if_any()
    return SiteConfig(site=str(site), local_as=int(local_as or 0), router_id=router_id, neighbors=tuple(neighbors),
                      prefixes=tuple(prefixes), signals=signals, store=store, allow_last_withdraw=allow,
                      guard_settle=float(settle), path=path)
