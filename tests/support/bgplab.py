"""A BGP lab: BIRD 2 upstream in a `core` namespace, two sites with ExaBGP + our API process +
a real `gslb serve`, and a redis-server, all in namespaces with documentation addresses only.

    core (BIRD AS65000, redis) ── a0/eth0 ── site a (ExaBGP AS65001, gslb serve)
                               └─ b0/eth0 ── site b (ExaBGP AS65001, gslb serve)

Site b's IPv4 session uses TCP MD5. Every process is started (and stopped) by this object; the
namespaces go with `close()`, which also kills whatever is left inside them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import yaml

from bgp.config import load_site
from bgp.exabgp_conf import EXABGP_ENV, render
from tests.support import netns
from tests.support.bird import Bird, Route, Session, config
from tests.support.dnsserver import ROOT
from tests.support.procs import free_port, wait_for

V4, V6 = "203.0.113.0/24", "2001:db8:ffff::/48"
CHECK = "tcp://192.0.2.10:80"
MD5 = "lab-md5-secret"
SITES = {
    "a": {"v4": ("192.0.2.1", "192.0.2.2"), "v6": ("2001:db8:0:1::1", "2001:db8:0:1::2"), "core_if": "a0"},
    "b": {"v4": ("192.0.2.5", "192.0.2.6"), "v6": ("2001:db8:0:2::1", "2001:db8:0:2::2"), "core_if": "b0"},
}
ZONE = "---\n'':\n  type: NS\n  value: ns1.example.net.\nwww:\n  type: A\n  value: 192.0.2.80\n"
# The lab's timers: quick checks, short hold-down and settling, so the suite stays short.
DNS_SIGNAL = {"type": "dns", "name": "www.example.com", "interval": 0.1, "timeout": 0.2, "rise": 2, "fall": 2}
HOLD_DOWN, MAX_HOLD_DOWN, GUARD_SETTLE = 0.5, 4, 0.2


class BgpLab:
    def __init__(self) -> None:
        self.lab = netns.Lab("bgp")
        self.workdir = tempfile.mkdtemp(prefix="gslb-bgp-")
        self.procs: dict[str, subprocess.Popen] = {}
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _build(self) -> None:
        self.core = self.lab.ns("core")
        self.ns = {s: self.lab.ns(f"s{s}") for s in SITES}
        for site, a in SITES.items():
            self.lab.link(self.ns[site], "eth0", self.core, a["core_if"])
            self.lab.addr(self.ns[site], "eth0", a["v4"][0] + "/30")
            self.lab.addr(self.core, a["core_if"], a["v4"][1] + "/30")
            self.lab.addr(self.ns[site], "eth0", a["v6"][0] + "/64")
            self.lab.addr(self.core, a["core_if"], a["v6"][1] + "/64")
        self.redis_port, self.dns_port = free_port(), free_port()
        self.start("redis", self.core, ["redis-server", "--bind", "0.0.0.0", "--port", str(self.redis_port),
                                        "--save", "", "--appendonly", "no", "--protected-mode", "no"])
        sessions = []
        for site, a in SITES.items():
            password = MD5 if site == "b" else None
            sessions.append(Session(f"site_{site}", a["v4"][1], a["v4"][0], 65000, 65001, password))
            sessions.append(Session(f"site_{site}6", a["v6"][1], a["v6"][0], 65000, 65001))
        self.bird = Bird(self.core, self.workdir, config("192.0.2.254", sessions, f"{self.workdir}/bird.log"))
        self.bird.start()
        self.zones = os.path.join(self.workdir, "zones")
        os.makedirs(self.zones)
        with open(os.path.join(self.zones, "example.com.yaml"), "w") as f:
            f.write(ZONE)
        wait_for(lambda: self.redis("PING") == "PONG", timeout=10, what="redis in the core namespace")
        for site in SITES:
            self.start_dns(site)
            self.write_site(site)
            self.start_exabgp(site)

    # -- processes -------------------------------------------------------------------------

    def start(self, name: str, ns: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        """`ip netns exec` execs the command, so the Popen's pid is the command's own."""
        log = open(os.path.join(self.workdir, f"{name}.log"), "a")  # noqa: SIM115 - lives with the process
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
                                                  "--listen", f"127.0.0.1:{self.dns_port}", "--workers", "1",
                                                  "--control", f"{self.workdir}/dns-{site}.sock"])

    def start_flapping_dns(self, site: str, port: int, period: float, seconds: float) -> subprocess.Popen:
        """A DNS responder that answers until SIGUSR1, then flips every `period` for `seconds`."""
        return self.start(f"flapdns-{site}", self.ns[site],
                          [sys.executable, "-m", "tests.support.flapdns", "--listen", f"127.0.0.1:{port}",
                           "--period", str(period), "--for", str(seconds), "--wait-signal"])

    def write_site(self, site: str, dns: dict | None = None, **overrides) -> str:
        a = SITES[site]
        doc = {
            "site": site, "local_as": 65001, "router_id": a["v4"][0], "store": self.store_url(site),
            "guard_settle": GUARD_SETTLE,
            "neighbors": [{"address": a["v4"][1], "peer_as": 65000, "hold_time": 3,
                           **({"md5": MD5} if site == "b" else {})},
                          {"address": a["v6"][1], "peer_as": 65000, "hold_time": 3}],
            "prefixes": [{"prefix": V4, "degrade": {"prepend": 2, "med": 500}, "drain_seconds": 2,
                          "hold_down": HOLD_DOWN, "max_hold_down": MAX_HOLD_DOWN,
                          "signals": ["dns", "backend"] if site == "a" else ["dns"]},
                         {"prefix": V6, "next_hop": a["v6"][0], "signals": ["dns"], "hold_down": HOLD_DOWN,
                          "max_hold_down": MAX_HOLD_DOWN}],
            "signals": {"dns": dns or {**DNS_SIGNAL, "address": f"127.0.0.1:{self.dns_port}"},
                        "backend": {"type": "health", "checks": [CHECK], "on_fail": "degrade"}},
        }
        doc.update(overrides)
        path = os.path.join(self.workdir, f"site-{site}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        return path

    def start_exabgp(self, site: str) -> None:
        """Generate the ExaBGP config from the site file (as `gslb bgp config` does) and run it."""
        cfg = load_site(os.path.join(self.workdir, f"site-{site}.yaml"))
        conf = os.path.join(self.workdir, f"exabgp-{site}.conf")
        with open(conf, "w") as f:
            f.write(render(cfg, log_file=os.path.join(self.workdir, f"api-{site}.log")))
        exabgp = os.path.join(os.path.dirname(sys.executable), "exabgp")
        self.start(f"exabgp-{site}", self.ns[site], [exabgp, conf], env={**EXABGP_ENV, "PYTHONPATH": ROOT})

    def signal_tree(self, name: str, sig: int) -> None:
        """Signal one of our processes and its descendants (`gslb serve` answers from workers)."""
        pids = [self.procs[name].pid]
        for pid in pids:  # grows while we walk it
            out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
            pids += [int(p) for p in out.split()]
        for pid in pids:
            os.kill(pid, sig)

    def api_pid(self, site: str) -> int | None:
        """The pid of the API process ExaBGP runs for `site` (a child of our ExaBGP)."""
        proc = self.procs.get(f"exabgp-{site}")
        if proc is None:
            return None
        out = subprocess.run(["pgrep", "-P", str(proc.pid), "-f", "bgp api"], capture_output=True, text=True)
        pids = [int(p) for p in out.stdout.split()]
        return pids[0] if pids else None

    def kill_api(self, site: str, sig: int = signal.SIGKILL) -> int:
        pid = self.api_pid(site)
        assert pid, f"no API process under exabgp-{site}"
        os.kill(pid, sig)
        return pid

    # -- looking -----------------------------------------------------------------------------

    def store_url(self, site: str) -> str:
        return f"redis://{SITES[site]['v4'][1]}:{self.redis_port}/0"

    def redis(self, *args: str) -> str:
        return subprocess.run(["ip", "netns", "exec", self.core, "redis-cli", "-p", str(self.redis_port), *args],
                              capture_output=True, text=True, timeout=5).stdout.strip()

    def site_doc(self, site: str) -> dict:
        raw = self.redis("GET", f"gslb:site:{site}")
        return json.loads(raw) if raw else {}

    def from_site(self, prefix: str, site: str) -> list[Route]:
        return [r for r in self.bird.routes(prefix) if r.protocol.startswith(f"site_{site}")]

    def announcing(self, prefix: str) -> set[str]:
        return {r.protocol.removeprefix("site_").rstrip("6") for r in self.bird.routes(prefix)}

    def api_log(self, site: str) -> str:
        with open(os.path.join(self.workdir, f"api-{site}.log")) as f:
            return f.read()

    def wait_all_routes(self, timeout: float = 30) -> None:
        """Every site announces both prefixes plainly (not guarded, not degraded) with every signal up,
        and BIRD has the routes: the steady state each test starts from."""
        def steady(site: str) -> bool:
            doc = self.site_doc(site)
            prefixes = doc.get("prefixes", {})
            return (bool(prefixes) and all(s.get("up") for s in doc.get("signals", {}).values())
                    and all(p["state"] == "announced" and not p["guarded"] for p in prefixes.values())
                    and all(self.from_site(p, site) for p in (V4, V6)))

        wait_for(lambda: all(steady(s) for s in SITES), timeout=timeout, what="both sites steady, routes in BIRD")

    def close(self) -> None:
        """Tear everything down even when a step fails: leaked routers outlive the tests."""
        for name in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(name)
        with contextlib.suppress(Exception):
            if getattr(self, "bird", None):
                self.bird.stop()
        self.lab.close()  # kills whatever still runs in the namespaces, then deletes them
        if os.environ.get("GSLB_KEEP_LAB_LOGS"):
            shutil.copytree(self.workdir, os.environ["GSLB_KEEP_LAB_LOGS"], dirs_exist_ok=True)
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class FlapResult:
    seconds: float
    period: float
    hold: float
    signal_downs: int  # the DNS signal's down decisions (after rise/fall)
    route_changes: int  # what BIRD saw
    withdraws: int

    @property
    def allowed_withdraws(self) -> int:
        """Departures are at least hold, 2·hold, 4·hold, ... apart: 1 + log2(T/hold + 1) fit in T."""
        return 1 + math.floor(math.log2(self.seconds / self.hold + 1))


def flap_site_a(lab: BgpLab, hold: float = 1.0, seconds: float = 10.0, period: float = 0.2) -> FlapResult:
    """Point site a's DNS signal at a responder flipping every `period` for `seconds` (rise/fall 2
    at a 0.1 s interval: each flip gets through the hysteresis), count what BIRD sees, and put the
    site back as it was."""
    port = free_port()
    flapper = lab.start_flapping_dns("a", port, period, seconds)
    lab.stop("exabgp-a")
    lab.write_site("a", dns={**DNS_SIGNAL, "address": f"127.0.0.1:{port}", "timeout": 0.05}, guard_settle=0,
                   prefixes=[{"prefix": V4, "signals": ["dns"], "hold_down": hold, "max_hold_down": 30}])
    lab.start_exabgp("a")
    try:
        wait_for(lambda: lab.from_site(V4, "a"), timeout=20, what="site a announcing with the flapping DNS")
        log_before = len(lab.api_log("a"))
        flapper.send_signal(signal.SIGUSR1)
        seen = poll_changes(lambda: bool(lab.from_site(V4, "a")), seconds + 1, interval=0.01)
        return FlapResult(seconds, period, hold, lab.api_log("a")[log_before:].count("signal dns is DOWN"),
                          len(seen) - 1, sum(1 for _, present in seen[1:] if not present))
    finally:
        lab.stop("exabgp-a")
        lab.stop("flapdns-a")
        lab.write_site("a")
        lab.start_exabgp("a")


def poll_changes(probe, seconds: float, interval: float = 0.01) -> list[tuple[float, object]]:
    """Sample `probe()` for `seconds`; returns (time, value) each time the value changed."""
    out: list[tuple[float, object]] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        value = probe()
        if not out or out[-1][1] != value:
            out.append((time.monotonic(), value))
        time.sleep(interval)
    return out
