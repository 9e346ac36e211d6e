"""The server config (`gslb.yaml`): what octoDNS zone files leave to the provider.

Per-zone SOA fields, the default TTL, the AXFR allow-list and the node's identity, plus the
server's own settings. Every key has a default, so `gslb serve --zones DIR` needs no file.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field, replace
from typing import Any

from gslb import __version__
from gslb.conf import located
from gslb.conf.collect import Problems, line_of
from gslb.conf.problems import ConfigError, Problem
from gslb.dnssec.config import DnssecConfig, parse_dnssec
from gslb.health.model import Quorum, parse_quorum
from gslb.server import abuse_config

MAX_TTL = 2**31 - 1  # RFC 2181 section 8


@dataclass(frozen=True)
class SoaConfig:
    """SOA fields; `mname`/`rname` None means derive from the zone (first NS / hostmaster.<zone>)."""

    mname: str | None = None
    rname: str | None = None
    refresh: int = 3600
    retry: int = 600
    expire: int = 1209600
    minimum: int = 300  # negative-caching TTL cap (RFC 2308)
    ttl: int = 3600


@dataclass(frozen=True)
class ZoneConfig:
    ttl: int = 3600  # octoDNS's default record TTL
    soa: SoaConfig = field(default_factory=SoaConfig)
    axfr_allow: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = (
        ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
    dnssec: DnssecConfig | None = None  # None: unsigned (see gslb.dnssec.config)


@dataclass(frozen=True)
class ServerConfig:
    listen: tuple[str, ...] = ("127.0.0.1:5353",)
    workers: int = 0  # 0: one per core
    zones_dir: str = "zones"
    geodb: str | None = None
    asndb: str | None = None
    regions: str | None = None
    redis: str | None = None
    identity: str = field(default_factory=socket.gethostname)  # NSID, id.server, hostname.bind
    version: str | None = f"gslb {__version__}"  # version.bind; None hides it
    edns_udp_size: int = 1232  # DNS flag day 2020 default
    tcp_idle_timeout: float = 10.0  # RFC 7766 suggests seconds, not minutes
    tcp_max_connections: int = 1024
    watch: bool = True  # reload when files under zones_dir change
    web: str | None = None  # ADDR:PORT for the dashboard/metrics/admin API
    web_token: str | None = None
    region: str | None = None  # this node's probe region when it runs the embedded probe loop
    quorum: Quorum | None = None  # None: follow the store's published quorum (majority if none)
    defaults: ZoneConfig = field(default_factory=ZoneConfig)
    zones: dict[str, ZoneConfig] = field(default_factory=dict)
    control: str = field(default_factory=lambda: default_control_path())
    path: str | None = None
    abuse: abuse_config.AbuseConfig = field(default_factory=abuse_config.AbuseConfig)  # cookies, rrl, limits
    flags: tuple[tuple[str, Any], ...] = ()  # command-line overrides, re-applied when the file is re-read

    def reread(self) -> ServerConfig:
        """The config file as it is now, with the same command-line flags on top (ConfigError)."""
        return replace(load_config(self.path), flags=self.flags, **dict(self.flags)) if self.path else self

    def zone(self, name: str) -> ZoneConfig:
        return self.zones.get(name.rstrip(".").lower(), self.defaults)


def default_control_path() -> str:
    """Where `gslb serve` listens for `gslb reload`: /run/gslb as root, else a per-user path."""
    if os.geteuid() == 0:
        return "/run/gslb/control.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, "gslb.sock") if runtime else f"/tmp/gslb-{os.geteuid()}.sock"


SOA_TIMERS = ("refresh", "retry", "expire", "minimum", "ttl")


def _zone_config(doc: Any, base: ZoneConfig, where: str, line: int, out: Problems) -> ZoneConfig:
    """One zone's settings (or `defaults`), on top of `base`."""
    doc = out.mapping(doc, where, line)
    out.keys(doc, ("ttl", "soa", "axfr_allow", "dnssec"), where, line)
    zc = base
    if "ttl" in doc:
        zc = replace(zc, ttl=out.integer(doc, "ttl", where, line, 0, MAX_TTL, base.ttl))
    if "soa" in doc:
        swhere, sline = f"{where}.soa", line_of(doc, "soa", line)
        sdoc = out.mapping(doc["soa"], swhere, sline)
        out.keys(sdoc, ("mname", "rname", *SOA_TIMERS), swhere, sline)
        soa = zc.soa
        names: dict[str, Any] = {key: out.string(sdoc, key, swhere, sline, getattr(soa, key), what="a name")
                                 for key in ("mname", "rname")}
        timers: dict[str, Any] = {key: out.integer(sdoc, key, swhere, sline, 0, MAX_TTL, getattr(soa, key))
                                  for key in SOA_TIMERS}
        soa = replace(soa, **names, **timers)
        zc = replace(zc, soa=soa)
    if "axfr_allow" in doc:
        zc = replace(zc, axfr_allow=out.networks(doc, "axfr_allow", where, line))
    if "dnssec" in doc:
        zc = replace(zc, dnssec=parse_dnssec(doc["dnssec"], zc.dnssec, f"{where}.dnssec", out.path,
                                             line_of(doc, "dnssec", line), out.items))
    return zc


# Server settings: key → reader. Numbers are range-checked: a value outside its range would
# silently break service (a negative TCP idle timeout closes every connection at once).
PATHS = ("zones_dir", "geodb", "asndb", "regions")
SERVER_KEYS = ("listen", "workers", "zones_dir", "geodb", "asndb", "regions", "redis", "identity", "version",
               "edns_udp_size", "tcp_idle_timeout", "tcp_max_connections", "watch", "web", "web_token", "region",
               "quorum", "control")


def _server_settings(doc: dict, base_dir: str, out: Problems) -> dict[str, Any]:
    top = doc.line if isinstance(doc, located.Located) else 1
    found: dict[str, Any] = {}
    d = ServerConfig()
    readers: dict[str, Any] = {
        "workers": lambda: out.integer(doc, "workers", "", top, 0, 1024, d.workers),
        "edns_udp_size": lambda: out.integer(doc, "edns_udp_size", "", top, 512, 65535, d.edns_udp_size),
        "tcp_idle_timeout": lambda: out.seconds(doc, "tcp_idle_timeout", "", top, 0.1, 3600, d.tcp_idle_timeout),
        "tcp_max_connections": lambda: out.integer(doc, "tcp_max_connections", "", top, 1, 1_000_000,
                                                   d.tcp_max_connections),
        "watch": lambda: out.boolean(doc, "watch", "", top, d.watch),
        "redis": lambda: out.store_url(doc, "redis", "", top),
        "web": lambda: out.listen(doc, "web", "", top, "127.0.0.1:8053"),
    }
    for key in doc:
        if key not in SERVER_KEYS:
            continue
        line = line_of(doc, key, top)
        value = doc[key]
        if key in readers:
            found[key] = readers[key]()
        elif key == "listen":
            items = value if isinstance(value, list) else [value]
            for i, _item in enumerate(items):
                out.listen({key: items[i]}, key, "", line_of(value, i, line), "127.0.0.1:5353")
            found[key] = tuple(str(x) for x in items)
        elif key == "quorum":
            try:
                found[key] = parse_quorum(value)
            except ValueError as exc:
                out.add(line, key, str(exc))
        elif key == "version":
            found[key] = None if value is False else out.string(doc, key, "", top, d.version)
        elif key in PATHS:
            text = out.string(doc, key, "", top, None, what="a path")
            if text is not None:
                found[key] = os.path.join(base_dir, text)
        else:  # identity, web_token, region, control
            found[key] = out.string(doc, key, "", top, getattr(d, key))
    return found


def load_config(path: str | None) -> ServerConfig:
    """Read `gslb.yaml`; raises ConfigError listing every problem. None → all defaults."""
    if path is None:
        return ServerConfig()
    doc = located.load_file(path, "config") or located.Located()
    out = Problems(path)
    if not isinstance(doc, located.Located):
        raise ConfigError([Problem(path, 1, "config", "expected a mapping at the top level")])
    out.keys(doc, (*SERVER_KEYS, *abuse_config.KEYS, "defaults", "zones"), "", doc.line)
    cfg = replace(ServerConfig(path=path), **_server_settings(doc, os.path.dirname(os.path.abspath(path)), out))
    # defaults first: zone entries inherit them wherever they are written
    if "defaults" in doc:
        cfg = replace(cfg, defaults=_zone_config(doc["defaults"], cfg.defaults, "defaults", doc.line_of("defaults"),
                                                 out))
    if "zones" in doc:
        zdoc = out.mapping(doc["zones"], "zones", doc.line_of("zones"), "a mapping of zone name → settings")
        cfg = replace(cfg, zones={str(name).rstrip(".").lower(): _zone_config(
            zone, cfg.defaults, f"zones.{name}", line_of(zdoc, name, doc.line), out) for name, zone in zdoc.items()})
    abuse, problems = abuse_config.parse(doc, path)  # cookies:, rrl:, query_limits:, tcp:
    out.items.extend(problems)
    cfg = replace(cfg, abuse=abuse)
    out.raise_if_any()
    return cfg
