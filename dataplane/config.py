"""The dataplane YAML: which interface, which VIPs, which backends, how to forward.

```yaml
name: lb1                   # names the pinned maps (/sys/fs/bpf/gslb-lb1) and the stats
interface: eth0             # where VIP traffic arrives (and leaves again: XDP_TX)
xdp_mode: auto              # native | generic | auto (native, else generic)
ipip_source: 192.0.2.1      # outer source address for mode: ipip
store: redis://192.0.2.254:6379/0   # backend health (quorum of probes); none: all up
pin_root: /sys/fs/bpf       # a bpffs mount for the pinned maps (mounted when it is not)
vips:
  - address: 198.51.100.1
    port: 80
    protocol: tcp
    mode: dsr               # dsr: rewrite the MAC (backends hold the VIP on lo); ipip: encapsulate
    conntrack: true         # false: no connection table (stateless UDP services such as DNS)
    backends:
      - {address: 192.0.2.11, mac: "02:00:00:00:00:11", weight: 1}
      - {address: 192.0.2.12, mac: "02:00:00:00:00:12", weight: 2,
         check: {protocol: http, port: 8080, path: /health}}   # default: TCP to the VIP port
```
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from gslb.conf import located
from gslb.conf.collect import Problems
from gslb.conf.problems import ConfigError, Problem
from gslb.health import check_key

_MAC = re.compile(r"^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$")


@dataclass(frozen=True)
class BackendSpec:
    address: str
    mac: str
    weight: int = 1
    check: str = ""  # the store key of the health check that decides this backend


@dataclass(frozen=True)
class VipSpec:
    address: str
    port: int
    protocol: str  # tcp | udp
    mode: str = "dsr"  # dsr | ipip
    backends: tuple[BackendSpec, ...] = ()
    conntrack: bool = True  # false: stateless, every packet by Maglev (UDP services)

    @property
    def label(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}/{self.protocol}"


@dataclass(frozen=True)
class DataplaneConfig:
    name: str
    interface: str
    vips: tuple[VipSpec, ...]
    xdp_mode: str = "auto"
    ipip_source: str | None = None
    store: str | None = None
    pin_root: str = "/sys/fs/bpf"
    path: str = ""


TOP_KEYS = ("name", "interface", "xdp_mode", "ipip_source", "store", "pin_root", "vips")


def _parse_vip(v: Any, line: int, where: str, ipip_source: str | None, out: Problems) -> VipSpec | None:
    add = out.add
    if not isinstance(v, located.Located):
        add(line, where, "a mapping with address, port, protocol, backends")
        return None
    try:
        address = str(ipaddress.ip_address(str(v.get("address"))))
    except ValueError:
        add(v.line_of("address") if "address" in v else line, f"{where}.address", f"{v.get('address')!r} is not "
            "an IP address")
        return None
    port = v.get("port")
    if not isinstance(port, int) or not 1 <= port <= 65535:
        add(v.line_of("port") if "port" in v else line, f"{where}.port", "1..65535")
        return None
    proto = str(v.get("protocol", "tcp")).lower()
    if proto not in ("tcp", "udp"):
        add(v.line_of("protocol"), f"{where}.protocol", "tcp or udp")
    vmode = v.get("mode", "dsr")
    if vmode not in ("dsr", "ipip"):
        add(v.line_of("mode"), f"{where}.mode", "dsr or ipip")
    if vmode == "ipip" and (ipip_source is None or ":" in address):
        add(v.line_of("mode"), f"{where}.mode", "ipip needs an IPv4 VIP and `ipip_source`")
    braw = v.get("backends") or located.LocatedList()
    if not isinstance(braw, located.LocatedList):
        add(v.line_of("backends"), f"{where}.backends", "a list")
        braw = located.LocatedList()
    parsed = (_parse_backend(b, braw.line_of(j), f"{where}.backends[{j}]", port, out) for j, b in enumerate(braw))
    backends = [b for b in parsed if b is not None]
    conntrack = v.get("conntrack", True)
    if not isinstance(conntrack, bool):
        add(v.line_of("conntrack"), f"{where}.conntrack", "true or false")
        conntrack = True
    return VipSpec(address, port, proto, str(vmode), tuple(backends), conntrack)


def _parse_backend(b: Any, bline: int, bwhere: str, port: int, out: Problems) -> BackendSpec | None:
    add = out.add
    if not isinstance(b, located.Located):
        add(bline, bwhere, "a mapping with address and mac")
        return None
    try:
        baddr = ipaddress.ip_address(str(b.get("address")))
    except ValueError:
        add(bline, f"{bwhere}.address", f"{b.get('address')!r} is not an IP address")
        return None
    bmac = str(b.get("mac", ""))
    if not _MAC.match(bmac):
        add(b.line_of("mac") if "mac" in b else bline, f"{bwhere}.mac", "the backend's MAC, aa:bb:cc:dd:ee:ff")
    weight = b.get("weight", 1)
    if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= 1000:
        add(b.line_of("weight"), f"{bwhere}.weight", "0..1000 (0 drains the backend)")
        weight = 1
    check = b.get("check") or {}
    cproto = str(check.get("protocol", "tcp")).lower()
    if cproto not in ("tcp", "http", "https"):
        add(bline, f"{bwhere}.check.protocol", "tcp, http or https")
    key_text = check_key(cproto, str(baddr), int(check.get("port", port)), str(check.get("path", "")),
                         str(check.get("host", "")))
    return BackendSpec(str(baddr), bmac.lower(), weight, key_text)


def load(path: str) -> DataplaneConfig:
    """Read and validate; raises ConfigError with every problem (file:line: field: message)."""
    doc = located.load_file(path, "dataplane")
    out = Problems(path)
    add = out.add
    if not isinstance(doc, located.Located):
        raise ConfigError([Problem(path, 1, "dataplane", "expected a mapping")])
    out.keys(doc, TOP_KEYS, "", doc.line)
    name = str(doc.get("name", "default"))
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", name):
        add(doc.line_of("name"), "name", "letters, digits, . _ - (it names the pinned maps)")
    interface = out.string(doc, "interface", "", doc.line, what="the interface VIP traffic arrives on")
    mode = out.one_of(doc, "xdp_mode", "", doc.line, ("auto", "native", "generic"), "auto")
    store = out.store_url(doc, "store", "", doc.line)
    ipip = out.address(doc, "ipip_source", "", doc.line, version=4, required=False)
    ipip_source = str(ipip) if ipip else None
    vips = []
    seen: dict[tuple, int] = {}
    for i, v, vline in out.entries(doc, "vips", doc.line, "a list of VIPs"):
        vip = _parse_vip(v, vline, f"vips[{i}]", ipip_source, out)
        if vip is None:
            continue
        key = (vip.address, vip.port, vip.protocol)
        if key in seen:
            add(vline, f"vips[{i}]", f"the same VIP as vips[{seen[key]}]")
        seen[key] = i
        vips.append(vip)
    out.raise_if_any()
    return DataplaneConfig(name=name, interface=str(interface), vips=tuple(vips), xdp_mode=str(mode),
                           ipip_source=ipip_source, store=store,
                           pin_root=str(doc.get("pin_root", "/sys/fs/bpf")), path=path)
