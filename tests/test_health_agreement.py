"""One health truth: DNS answers, the BGP controller, the XDP dataplane agent and the dashboard's
API agree on an endpoint's health under the quorum set once in gslb.yaml, and agree again after
it changes.

Real parts only: redis-server (on a Unix socket, so the dataplane agent reaches it from its
network namespace), three `gslb probe` agents in separate processes, each probing from its own
loopback source address, an HTTP endpoint that fails for one region's source, `gslb serve`,
the ExaBGP-side API process (`python -m bgp api`, with this test in ExaBGP's place on its
stdin/stdout), `gslb dataplane run` attached to a veth in a namespace, and `gslb web`.

With one region of three seeing the endpoint down, `quorum: 1` calls it down and the default
majority calls it up: a consumer that used its own default would disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import pytest
import yaml

from gslb.config import ServerConfig
from gslb.policy.checks import zone_checks
from gslb.store import DATAPLANE, SITE, open_store
from gslb.zone.load import load_zones
from tests.support import netns
from tests.support.dnsserver import ROOT, gslb_server
from tests.support.endpoints import Endpoint
from tests.support.procs import free_port, redis_server, stop, wait_for
from tests.support.xdp import why_no_bpf

pytestmark = pytest.mark.root

GOOD, FLAKY = "127.0.0.51", "127.0.0.52"  # FLAKY fails for region r1 only
SOURCES = {"r1": "127.0.0.61", "r2": "127.0.0.62", "r3": "127.0.0.63"}
PREFIX = "203.0.113.0/24"

ZONE = """---
'':
  type: NS
  value: ns1.example.net.
www:
  dynamic:
    pools:
      main:
        values:
        - value: 192.0.2.20
        - value: 192.0.2.21
    rules:
    - pool: main
  octodns:
    gslb:
      interval: 0.2
      timeout: 0.5
      rise: 1
      fall: 1
      targets:
        192.0.2.20: {good}
        192.0.2.21: {flaky}
    healthcheck:
      path: /health
      port: {port}
      protocol: HTTP
  ttl: 30
  type: A
  values:
  - 192.0.2.20
"""


def skip_reason() -> str | None:
    return netns.why_no_netns() or why_no_bpf()


class Fleet:
    """Everything that reads health, started against one store."""

    def __init__(self, store_url: str, workdir: str) -> None:
        self.store_url, self.workdir = store_url, workdir
        self.procs: list[subprocess.Popen] = []
        self.port = free_port()
        self.endpoints = [Endpoint(GOOD, self.port).start(), Endpoint(FLAKY, self.port).start()]
        self.endpoints[1].failing_sources = {SOURCES["r1"]}
        self.zones = os.path.join(workdir, "zones")
        os.makedirs(self.zones)
        with open(os.path.join(self.zones, "gslb.example.yaml"), "w") as f:
            f.write(ZONE.replace("{port}", str(self.port)).replace("{good}", GOOD).replace("{flaky}", FLAKY))
        zones, _ = load_zones(self.zones, ServerConfig(zones_dir=self.zones))
        self.check = next(k for k in zone_checks(zones) if FLAKY in k)
        for region, source in SOURCES.items():
            self.spawn([sys.executable, "-m", "gslb", "probe", "--region", region, "--redis", store_url,
                        "--zones", self.zones, "--heartbeat", "0.3", "--source", source], f"probe-{region}.log")
        self.bgp = self.spawn_bgp()
        self.web_port = free_port()
        self.spawn([sys.executable, "-m", "gslb", "web", "--redis", store_url, "--listen",
                    f"127.0.0.1:{self.web_port}"], "web.log")
        self.lab = netns.Lab("agree")
        self.dataplane_ns = self.start_dataplane()

    def spawn(self, cmd: list[str], log: str, ns: str | None = None, **kw) -> subprocess.Popen:
        out = open(os.path.join(self.workdir, log), "w")  # noqa: SIM115
        prefix = ["ip", "netns", "exec", ns] if ns else []
        proc = subprocess.Popen([*prefix, *cmd], cwd=ROOT, stdout=kw.pop("stdout", out), stderr=out, **kw)
        self.procs.append(proc)
        return proc

    def spawn_bgp(self) -> subprocess.Popen:
        site = {"site": "ams", "local_as": 65001, "router_id": "192.0.2.1", "store": self.store_url,
                "neighbors": [{"address": "192.0.2.2", "peer_as": 65000}],
                "prefixes": [{"prefix": PREFIX, "next_hop": "192.0.2.1", "signals": ["backends"],
                              "hold_down": 0}],
                "signals": {"backends": {"type": "health", "checks": [self.check], "min_up": 1,
                                         "on_fail": "withdraw"}},
                "allow_last_withdraw": True}
        path = os.path.join(self.workdir, "site.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(site, f)
        # This test stands where ExaBGP would: the API process's stdin stays open, its stdout
        # (the announce/withdraw commands) is drained into a file.
        return self.spawn([sys.executable, "-m", "bgp", "api", path], "bgp.log", stdin=subprocess.PIPE,
                          stdout=open(os.path.join(self.workdir, "bgp.out"), "w"))

    def start_dataplane(self) -> str:
        ns = self.lab.ns("lb")
        netns.sh("ip", "link", "add", "eth0", "type", "veth", "peer", "name", "eth1", ns=ns)
        for ifname in ("eth0", "eth1"):
            netns.sh("ip", "link", "set", ifname, "up", ns=ns)
        pin_root = os.path.join(self.workdir, "bpf")
        os.makedirs(pin_root)
        subprocess.run(["mount", "-t", "bpf", "bpf", pin_root], check=True)
        self.pin_root = pin_root
        host = "www.gslb.example"
        cfg = {"name": f"agree{self.lab.tag[:6]}", "interface": "eth0", "xdp_mode": "auto", "pin_root": pin_root,
               "store": self.store_url,
               "vips": [{"address": "198.51.100.1", "port": 80, "protocol": "tcp", "backends": [
                   {"address": a, "mac": m, "check": {"protocol": "http", "port": self.port, "path": "/health",
                                                       "host": host}}
                   for a, m in ((GOOD, "02:00:00:00:00:51"), (FLAKY, "02:00:00:00:00:52"))]}]}
        path = os.path.join(self.workdir, "dataplane.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        self.spawn([sys.executable, "-m", "gslb", "dataplane", "run", path], "dataplane.log", ns=ns)
        return ns

    def close(self) -> None:
        for proc in self.procs:
            stop(proc)
        for ep in self.endpoints:
            ep.stop()
        with contextlib.suppress(Exception):
            subprocess.run(["umount", self.pin_root], check=False)
        self.lab.close()


def store_doc(url: str, space: str, key: str) -> dict | None:
    async def read() -> dict | None:
        store = open_store(url)
        try:
            return await store.get(space, key)
        finally:
            await store.close()

    return asyncio.run(read())


def views(fleet: Fleet, dns_port: int) -> dict[str, bool | None]:
    """Is FLAKY up, as each consumer acts on it now? (None: that consumer has not said yet)."""
    reply = dns.query.udp(dns.message.make_query("www.gslb.example", "A"), "127.0.0.1", port=dns_port, timeout=1)
    addresses = {r.address for rrset in reply.answer for r in rrset}
    site = store_doc(fleet.store_url, SITE, "ams") or {}
    state = site.get("prefixes", {}).get(PREFIX, {}).get("state")
    dp = store_doc(fleet.store_url, DATAPLANE, next(iter_dataplane_names(fleet))) or {}
    backends = next(iter(dp.get("vips", {}).values()), {}).get("backends", {})
    with urllib.request.urlopen(f"http://127.0.0.1:{fleet.web_port}/api/health", timeout=2) as r:
        api = json.load(r)["quorum"].get(fleet.check)
    return {"dns": "192.0.2.21" in addresses,
            "bgp": None if state not in ("announced", "withdrawn") else state == "announced",
            "dataplane": backends[FLAKY]["up"] if FLAKY in backends else None,
            "web": None if api is None else bool(api["up"])}


def iter_dataplane_names(fleet: Fleet):
    with open(os.path.join(fleet.workdir, "dataplane.yaml")) as f:
        yield yaml.safe_load(f)["name"]


@pytest.mark.skipif(skip_reason() is not None, reason=str(skip_reason()))
def test_dns_bgp_dataplane_and_dashboard_agree_under_the_configured_quorum():
    workdir = tempfile.mkdtemp(prefix="gslb-agree-")
    with redis_server(unix=True) as url:
        fleet = Fleet(url, workdir)
        try:
            config = {"quorum": 1, "redis": url}
            with gslb_server(fleet.zones, config=config) as server:
                last: dict = {}

                def agree(up: bool) -> None:
                    def check() -> bool:
                        try:
                            last.update(views(fleet, server.port))
                        except (OSError, dns.exception.Timeout) as exc:  # a consumer still starting
                            last["error"] = repr(exc)
                            return False
                        last.pop("error", None)
                        return all(v is up for v in last.values())
                    try:
                        wait_for(check, timeout=20, interval=0.2)
                    except TimeoutError:
                        logs = {n: Path(workdir, n).read_text()[-1500:]
                                for n in ("bgp.log", "dataplane.log", "web.log")}
                        raise AssertionError(f"consumers disagree on {FLAKY} (want up={up}): {last}\n"
                                             f"{logs}\n{server.log()[-2000:]}") from None

                # quorum 1: r1's failure alone takes FLAKY down, everywhere
                agree(False)
                # the operator changes the quorum in gslb.yaml and reloads: everyone follows
                with open(os.path.join(server.workdir, "gslb.yaml"), "w") as f:
                    yaml.safe_dump({**config, "quorum": 2}, f)
                server.hup()
                agree(True)
        finally:
            fleet.close()
            shutil.rmtree(workdir, ignore_errors=True)
