"""kxdpgun as the load generator of bench/dns_qps (`--driver kxdpgun`).

dnsperf on one core saturates near 100-160k QPS; kxdpgun (Knot's XDP traffic generator, package
knot-dnsutils) sends 400k+ from one core because it bypasses the kernel on its side. It needs a
real link with XDP, so the bench runs every server in the server namespace of a veth pair
(bench/netns_pair.py) and kxdpgun in the client namespace, native XDP on the client's veth end.

What kxdpgun cannot do, and what the bench does instead:
- no latency figures: the p50/p99 columns come from dnsperf run in the client namespace over the
  same veth;
- no EDNS options in its query file ("name type [E|D]"): the GSLB mix sends the same names (80%
  the geo-routed one) without Client Subnet, half with EDNS, from the 256 source addresses of
  203.0.113.0/24 (`-l`), which the test geo database splits over four continents.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import time
from dataclasses import dataclass

import netns_pair

RATE = 1_000_000  # asked of kxdpgun: more than any server here answers, so the reply rate is the peak


def unavailable() -> str | None:
    """Why kxdpgun cannot run here, or None."""
    if os.geteuid() != 0:
        return "kxdpgun and the namespaces need root (CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_NET_RAW, CAP_IPC_LOCK)"
    for tool in ("kxdpgun", "ip"):
        if shutil.which(tool) is None and not os.path.exists(f"/usr/sbin/{tool}"):
            return f"{tool} is not installed (kxdpgun: Debian package knot-dnsutils)"
    return None


def text_queries(dnsperf_file: str, out: str, flag: str = "") -> str:
    """kxdpgun's query file from a dnsperf text file: fully qualified names, `flag` (E: EDNS,
    D: DO) on every line."""
    with open(dnsperf_file) as src, open(out, "w") as dst:
        for line in src:
            parts = line.split()
            if len(parts) >= 2:
                name = parts[0] if parts[0].endswith(".") else parts[0] + "."
                dst.write(f"{name} {parts[1]}{' ' + flag if flag else ''}\n")
    return out


def gslb_queries(zone: str, out: str, dnssec: bool, count: int = 50000, seed: int = 5) -> str:
    """The GSLB mix for kxdpgun: 80% the geo-routed name, the rest a static one; EDNS on half
    (DO on all with --dnssec); no Client Subnet (see the module docstring)."""
    rnd = random.Random(seed)
    with open(out, "w") as f:
        for i in range(count):
            name = f"www.{zone}." if rnd.random() < 0.8 else f"static.{zone}."
            flag = " D" if dnssec else (" E" if i % 2 else "")
            f.write(f"{name} A{flag}\n")
    return out


@dataclass
class Shot:
    """One kxdpgun run: what it sent and what came back."""
    sent: int
    replied: int
    reply_rate: float  # replies per second, as kxdpgun computes it over its own sending time
    output: str


def fire(pair: netns_pair.VethPair, port: int, queries: str, seconds: float, cpu: str,
         rate: int = RATE) -> Shot:
    """Run kxdpgun in the client namespace against the server end, pinned to `cpu`."""
    cmd = ["ip", "netns", "exec", pair.client, "kxdpgun", "-t", f"{seconds:g}", "-Q", str(rate), "-p", str(port),
           "-F", cpu, "-I", pair.client_if, "-l", netns_pair.CLIENT_RANGE,
           "-L", pair.mac(pair.client, pair.client_if), "-R", pair.mac(pair.server, pair.server_if),
           "-i", queries, netns_pair.SERVER_ADDR]
    for _ in range(20):  # the previous run's XDP socket may still be going away ("resource is busy")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60, check=False)
        out = r.stdout + r.stderr
        if "busy" not in out:
            break
        time.sleep(0.5)
    sent = re.search(r"total queries:\s+(\d+)", out)
    replied = re.search(r"total replies:\s+(\d+) \((\d+) pps\)", out)
    if r.returncode != 0 or sent is None or replied is None or "error:" in out:
        raise RuntimeError(f"kxdpgun failed (exit {r.returncode}): {' '.join(cmd)}\n{out.strip()}")
    return Shot(int(sent.group(1)), int(replied.group(1)), float(replied.group(2)), out)
