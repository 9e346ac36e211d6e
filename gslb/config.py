"""The server config (`gslb.yaml`): what octoDNS zone files leave to the provider.

Per-zone SOA fields, the default TTL, the AXFR allow-list and the node's identity, plus the
server's own settings. Every key has a default, so `gslb serve --zones DIR` needs no file.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from gslb import __version__
from gslb.conf import located
from gslb.conf.problems import ConfigError, Problem
from gslb.dnssec.config import DnssecConfig, parse_dnssec

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
    quorum: int | str = "majority"
    defaults: ZoneConfig = field(default_factory=ZoneConfig)
    zones: dict[str, ZoneConfig] = field(default_factory=dict)
    control: str = field(default_factory=lambda: default_control_path())
    path: str | None = None

    def zone(self, name: str) -> ZoneConfig:
        return self.zones.get(name.rstrip(".").lower(), self.defaults)


def default_control_path() -> str:
    """Where `gslb serve` listens for `gslb reload`: /run/gslb as root, else a per-user path."""
    if os.geteuid() == 0:
        return "/run/gslb/control.sock"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    return os.path.join(runtime, "gslb.sock") if runtime else f"/tmp/gslb-{os.geteuid()}.sock"


def _networks(value: Any, where: str, problems: list[Problem], path: str, line: int) -> tuple:
    nets = []
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        try:
            nets.append(ipaddress.ip_network(str(item), strict=False))
        except ValueError:
            ln = value.line_of(i) if isinstance(value, located.LocatedList) else line
            problems.append(Problem(path, ln, where, f"{item!r} is not an address or prefix"))
    return tuple(nets)


def _int_in(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value <= hi


def _zone_config(doc: Any, base: ZoneConfig, where: str, path: str, problems: list[Problem]) -> ZoneConfig:
    if not isinstance(doc, dict):
        problems.append(Problem(path, getattr(doc, "line", 1), where, "expected a mapping"))
        return base
    out = base
    for key, value in doc.items():
        line = doc.line_of(key) if isinstance(doc, located.Located) else 1
        if key == "ttl":
            if not _int_in(value, 0, MAX_TTL):
                problems.append(Problem(path, line, f"{where}.ttl", f"TTL must be 0..{MAX_TTL}, got {value!r}"))
            else:
                out = replace(out, ttl=value)
        elif key == "soa":
            soa = out.soa
            if not isinstance(value, dict):
                problems.append(Problem(path, line, f"{where}.soa", "expected a mapping"))
                continue
            for skey, sval in value.items():
                sline = value.line_of(skey) if isinstance(value, located.Located) else line
                if skey in ("mname", "rname"):
                    if not isinstance(sval, str) or not sval:
                        problems.append(Problem(path, sline, f"{where}.soa.{skey}", "expected a name"))
                    else:
                        soa = replace(soa, **{skey: sval})
                elif skey in ("refresh", "retry", "expire", "minimum", "ttl"):
                    if not _int_in(sval, 0, MAX_TTL):
                        problems.append(Problem(path, sline, f"{where}.soa.{skey}", f"must be 0..{MAX_TTL}"))
                    else:
                        soa = replace(soa, **{skey: sval})
                else:
                    problems.append(Problem(path, sline, f"{where}.soa.{skey}", "unknown SOA field"))
            out = replace(out, soa=soa)
        elif key == "axfr_allow":
            out = replace(out, axfr_allow=_networks(value or [], f"{where}.axfr_allow", problems, path, line))
        elif key == "dnssec":
            out = replace(out, dnssec=parse_dnssec(value, out.dnssec, f"{where}.dnssec", path, line, problems))
        else:
            problems.append(Problem(path, line, f"{where}.{key}", "unknown key (ttl, soa, axfr_allow, dnssec)"))
    return out


_SERVER_KEYS = {
    "listen": "listen", "workers": "workers", "zones_dir": "zones_dir", "geodb": "geodb", "asndb": "asndb",
    "regions": "regions", "redis": "redis", "identity": "identity", "version": "version",
    "edns_udp_size": "edns_udp_size", "tcp_idle_timeout": "tcp_idle_timeout",
    "tcp_max_connections": "tcp_max_connections", "watch": "watch", "web": "web", "web_token": "web_token",
    "region": "region", "quorum": "quorum", "control": "control",
}


def load_config(path: str | None) -> ServerConfig:
    """Read `gslb.yaml`; raises ConfigError listing every problem. None → all defaults."""
    if path is None:
        return ServerConfig()
    problems: list[Problem] = []
    try:
        text = Path(path).read_text()
        doc = located.load(text) or located.Located()
    except OSError as exc:
        raise ConfigError([Problem(path, 1, "config", f"cannot read: {exc.strerror}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(path, located.error_line(exc), "config", f"not valid YAML: {exc}")]) from None
    if not isinstance(doc, dict):
        raise ConfigError([Problem(path, 1, "config", "expected a mapping at the top level")])
    cfg = ServerConfig(path=path)
    base_dir = os.path.dirname(os.path.abspath(path))
    # defaults first: zone entries inherit them wherever they are written
    for key, value in sorted(doc.items(), key=lambda kv: kv[0] != "defaults"):
        line = doc.line_of(key)
        if key == "defaults":
            cfg = replace(cfg, defaults=_zone_config(value, cfg.defaults, "defaults", path, problems))
        elif key == "zones":
            if not isinstance(value, dict):
                problems.append(Problem(path, line, "zones", "expected a mapping of zone name → settings"))
                continue
            zones = {}
            for zname, zdoc in value.items():
                zones[str(zname).rstrip(".").lower()] = _zone_config(
                    zdoc, cfg.defaults, f"zones.{zname}", path, problems)
            cfg = replace(cfg, zones=zones)
        elif key in _SERVER_KEYS:
            if key == "listen":
                value = tuple(value) if isinstance(value, list) else (value,)
            if key in ("zones_dir", "geodb", "asndb", "regions") and isinstance(value, str):
                value = os.path.join(base_dir, value)
            if key == "version" and value is False:
                value = None
            if key == "workers" and not _int_in(value, 0, 1024):
                problems.append(Problem(path, line, key, "must be 0 (one per core) .. 1024"))
                continue
            if key == "edns_udp_size" and not _int_in(value, 512, 65535):
                problems.append(Problem(path, line, key, "must be 512..65535"))
                continue
            cfg = replace(cfg, **{_SERVER_KEYS[key]: value})
        else:
            known = ", ".join(sorted([*_SERVER_KEYS, "defaults", "zones"]))
            problems.append(Problem(path, line, str(key), f"unknown key (one of {known})"))
    if problems:
        raise ConfigError(problems)
    return cfg
