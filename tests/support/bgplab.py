"""A BGP lab: BIRD 2 upstream in a `core` namespace, two sites with ExaBGP + our API process +
a real `gslb serve`, and a redis-server, all in namespaces with documentation addresses only.

    core (BIRD AS65000, redis) ── a0/eth0 ── site a (ExaBGP AS65001, gslb serve)
                               └─ b0/eth0 ── site b (ExaBGP AS65001, gslb serve)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile

import yaml

from bgp.config import load_site
from bgp.exabgp_conf import EXABGP_ENV, render
from tests.support import netns
from tests.support.bird import Bird, config
from tests.support.dnsserver import ROOT

V4, V6 = "203.0.113.0/24", "2001:db8:ffff::/48"
CHECK = "tcp://192.0.2.10:80"
SITES = {
    "a": {"v4": ("192.0.2.1", "192.0.2.2"), "v6": ("2001:db8:0:1::1", "2001:db8:0:1::2"), "core_if": "a0"},
    "b": {"v4": ("192.0.2.5", "192.0.2.6"), "v6": ("2001:db8:0:2::1", "2001:db8:0:2::2"), "core_if": "b0"},
}
ZONE = "---\n'':\n  type: NS\n  value: ns1.example.net.\nwww:\n  type: A\n  value: 192.0.2.80\n"


class BgpLab:
    def __init__(self) -> None:
        self.lab = netns.Lab("bgp")
        self.workdir = tempfile.mkdtemp(prefix="gslb-bgp-")
        self.procs: dict[str, subprocess.Popen] = {}
        self.core = self.lab.ns("core")
        self.ns = {s: self.lab.ns(f"s{s}") for s in SITES}
        for site, a in SITES.items():
            self.lab.link(self.ns[site], "eth0", self.core, a["core_if"])
            self.lab.addr(self.ns[site], "eth0", a["v4"][0] + "/30")
            self.lab.addr(self.core, a["core_if"], a["v4"][1] + "/30")
            self.lab.addr(self.ns[site], "eth0", a["v6"][0] + "/64")
            self.lab.addr(self.core, a["core_if"], a["v6"][1] + "/64")
        self.redis_port = 16379
        self.start("redis", self.core, ["redis-server", "--bind", "0.0.0.0", "--port", str(self.redis_port),
                                        "--save", "", "--appendonly", "no", "--protected-mode", "no"])
        sessions = []
        for site, a in SITES.items():
            sessions.append((f"site_{site}", a["v4"][1], a["v4"][0], 65000, 65001))
            sessions.append((f"site_{site}6", a["v6"][1], a["v6"][0], 65000, 65001))
        self.bird = Bird(self.core, self.workdir, config("192.0.2.254", sessions, f"{self.workdir}/bird.log"))
        self.bird.start()
        self.zones = os.path.join(self.workdir, "zones")
        os.makedirs(self.zones)
        with open(os.path.join(self.zones, "example.com.yaml"), "w") as f:
            f.write(ZONE)
        for site in SITES:
            self.start_dns(site)
            self.write_site(site)
            self.start_exabgp(site)

    def store_url(self, site: str) -> str:
        return f"redis://{SITES[site]['v4'][1]}:{self.redis_port}/0"

    def start(self, name: str, ns: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(os.path.join(self.workdir, f"{name}.log"), "w")  # noqa: SIM115 - lives with the process
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, **(env or {})})
        self.procs[name] = proc
        return proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def start_dns(self, site: str) -> None:
        self.start(f"dns-{site}", self.ns[site], [sys.executable, "-m", "gslb", "serve", "--zones", self.zones,
                                                  "--listen", "127.0.0.1:5300", "--workers", "1", "--control",
                                                  f"{self.workdir}/dns-{site}.sock"])

    def write_site(self, site: str, **overrides) -> str:
        a = SITES[site]
        doc = {
            "site": site, "local_as": 65001, "router_id": a["v4"][0], "store": self.store_url(site),
            "neighbors": [{"address": a["v4"][1], "peer_as": 65000, "hold_time": 3},
                          {"address": a["v6"][1], "peer_as": 65000, "hold_time": 3}],
            "prefixes": [{"prefix": V4, "degrade": {"prepend": 2, "med": 500}, "drain_seconds": 2,
                          "signals": ["dns", "backend"] if site == "a" else ["dns"]},
                         {"prefix": V6, "next_hop": a["v6"][0], "signals": ["dns"]}],
            "signals": {"dns": {"type": "dns", "address": "127.0.0.1:5300", "name": "www.example.com",
                                "interval": 0.1, "timeout": 0.2, "rise": 2, "fall": 2},
                        "backend": {"type": "health", "checks": [CHECK], "on_fail": "degrade"}},
        }
        doc.update(overrides)
        path = os.path.join(self.workdir, f"site-{site}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        return path

    def start_exabgp(self, site: str) -> None:
        cfg = load_site(os.path.join(self.workdir, f"site-{site}.yaml"))
        conf = os.path.join(self.workdir, f"exabgp-{site}.conf")
        with open(conf, "w") as f:
            f.write(render(cfg, log_file=os.path.join(self.workdir, f"api-{site}.log")))
        exabgp = os.path.join(os.path.dirname(sys.executable), "exabgp")
        self.start(f"exabgp-{site}", self.ns[site], [exabgp, conf], env={**EXABGP_ENV, "PYTHONPATH": ROOT})

    def redis(self, *args: str) -> str:
        return subprocess.run(["ip", "netns", "exec", self.core, "redis-cli", "-p", str(self.redis_port), *args],
                              capture_output=True, text=True, timeout=5).stdout.strip()

    def site_doc(self, site: str) -> dict:
        raw = self.redis("GET", f"gslb:site:{site}")
        return json.loads(raw) if raw else {}

    def from_site(self, prefix: str, site: str) -> list:
        return [r for r in self.bird.routes(prefix) if r.protocol.startswith(f"site_{site}")]

    def close(self) -> None:
        """Tear everything down even when a step fails: leaked routers outlive the tests."""
        for name in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(name)
        with contextlib.suppress(Exception):
            self.bird.stop()
        self.lab.close()  # kills whatever still runs in the namespaces, then deletes them
        shutil.rmtree(self.workdir, ignore_errors=True)
