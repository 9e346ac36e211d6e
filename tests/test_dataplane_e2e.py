"""The XDP balancer end to end: real TCP from a client namespace to a VIP, balanced by the
program attached (native XDP) to the balancer's veth, to three backends that answer directly
(L2 direct server return). All namespaces share one bridge; documentation addresses only.

    client 192.0.2.100 ─┐
    lb     192.0.2.1   ─┼─ br0 (switch namespace)
    b1..b3 192.0.2.11-13┘  (each holds the VIP 198.51.100.1 on lo)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
import yaml

from dataplane import maglev
from dataplane.packets import flow_of
from dataplane.structs import RING_SIZE
from tests.support import netns
from tests.support.dnsserver import ROOT
from tests.support.procs import wait_for
from tests.support.xdp import why_no_bpf

pytestmark = pytest.mark.root  # BPF programs: root and a kernel that loads them

VIP = "198.51.100.1"
BACKENDS = {"b1": ("192.0.2.11", "02:00:00:00:00:11", 1), "b2": ("192.0.2.12", "02:00:00:00:00:12", 1),
            "b3": ("192.0.2.13", "02:00:00:00:00:13", 2)}


def config(backends: dict, name: str, pin_root: str) -> dict:
    return {"name": name, "interface": "eth0", "xdp_mode": "native", "pin_root": pin_root,
            "vips": [{"address": VIP, "port": 80, "protocol": "tcp",
                      "backends": [{"address": a, "mac": m, "weight": w} for a, m, w in backends.values()]}]}


class XdpLab:
    def __init__(self) -> None:
        self.lab = netns.Lab("xdp")
        self.workdir = tempfile.mkdtemp(prefix="gslb-xdp-")
        self.procs: list[subprocess.Popen] = []
        self.name = f"e2e{self.lab.tag[:6]}"
        # `ip netns exec` gives each command a fresh /sys: pin on a bpffs of our own instead
        self.pin_root = os.path.join(self.workdir, "bpf")
        os.makedirs(self.pin_root)
        subprocess.run(["mount", "-t", "bpf", "bpf", self.pin_root], check=True)
        sw = self.sw = self.lab.ns("sw")
        netns.sh("ip", "link", "add", "br0", "type", "bridge", ns=sw)
        netns.sh("ip", "link", "set", "br0", "up", ns=sw)
        hosts = {"cl": ("192.0.2.100", "02:00:00:00:00:64"), "lb": ("192.0.2.1", "02:00:00:00:00:01")}
        hosts.update({n: (a, m) for n, (a, m, _) in BACKENDS.items()})
        self.ns = {}
        for role, (address, mac) in hosts.items():
            ns = self.ns[role] = self.lab.ns(role)
            self.lab.link(ns, "eth0", sw, f"p_{role}")
            netns.sh("ip", "link", "set", "eth0", "address", mac, ns=ns)
            netns.sh("ip", "link", "set", f"p_{role}", "master", "br0", ns=sw)
            self.lab.addr(ns, "eth0", f"{address}/24")
        for role in BACKENDS:
            ns = self.ns[role]
            netns.sh("ip", "addr", "add", f"{VIP}/32", "dev", "lo", ns=ns)
            for key, value in (("net.ipv4.conf.all.arp_ignore", "1"), ("net.ipv4.conf.all.arp_announce", "2"),
                               ("net.ipv4.conf.all.rp_filter", "0"), ("net.ipv4.conf.eth0.rp_filter", "0")):
                netns.sh("sysctl", "-qw", f"{key}={value}", ns=ns)
            self.spawn(ns, [sys.executable, os.path.join(ROOT, "tests/support/namedserver.py"), role, VIP, "80"])
        netns.sh("ip", "route", "add", f"{VIP}/32", "via", "192.0.2.1", ns=self.ns["cl"])
        # A veth hands TCP checksums over unfinished (offload); XDP_TX re-sends the frame as raw
        # bytes, so the client must finish its checksums itself, as a real NIC's sender would.
        netns.sh("ethtool", "-K", "eth0", "tx", "off", ns=self.ns["cl"])
        # the switch end of the balancer's veth must take XDP_TX frames: give it an XDP program
        netns.sh(sys.executable, "-m", "gslb", "dataplane", "pass", "p_lb", ns=sw)
        self.config_path = os.path.join(self.workdir, "dataplane.yaml")
        self.write(BACKENDS)
        self.agent = self.spawn(self.ns["lb"], [sys.executable, "-m", "gslb", "dataplane", "run", self.config_path],
                                log="agent.log")
        self.client = subprocess.Popen(["ip", "netns", "exec", self.ns["cl"], sys.executable,
                                        os.path.join(ROOT, "tests/support/lbclient.py"), VIP, "80"],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def write(self, backends: dict) -> None:
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            yaml.safe_dump(config(backends, self.name, self.pin_root), f)
        os.replace(tmp, self.config_path)

    def spawn(self, ns: str, cmd: list[str], log: str | None = None) -> subprocess.Popen:
        out = open(os.path.join(self.workdir, log), "w") if log else subprocess.DEVNULL  # noqa: SIM115
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs.append(proc)
        return proc

    def log(self) -> str:
        with open(os.path.join(self.workdir, "agent.log")) as f:
            return f.read()

    def client_do(self, op: str, ports: list[int] | None = None) -> dict[int, str | None]:
        self.client.stdin.write(json.dumps({"op": op, "ports": ports or []}) + "\n")
        self.client.stdin.flush()
        return {int(k): v for k, v in json.loads(self.client.stdout.readline()).items()}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._stop_all()
        self.lab.close()
        subprocess.run(["umount", self.pin_root], check=False)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def _stop_all(self) -> None:
        if self.client.poll() is None:
            self.client.stdin.close()
            self.client.terminate()
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
        netns.sh(sys.executable, "-m", "gslb", "dataplane", "detach", self.config_path, ns=self.ns["lb"], check=False)


@pytest.fixture(scope="module")
def lab():
    reason = netns.why_no_netns() or why_no_bpf()
    if reason:
        pytest.skip(reason)
    the_lab = XdpLab()
    try:
        wait_for(lambda: "attached to eth0" in the_lab.log() or the_lab.agent.poll() is not None, timeout=20,
                 what="dataplane agent")
        assert the_lab.agent.poll() is None, the_lab.log()
        yield the_lab
    finally:
        the_lab.close()


def predicted(backends: dict, sport: int) -> str:
    names = list(backends)
    table = maglev.build_table([(backends[n][0], backends[n][2]) for n in names])
    h = maglev.flow_hash(*flow_of("192.0.2.100", VIP, "tcp", sport, 80))
    return names[table[h % RING_SIZE]]


def test_real_tcp_reaches_every_backend_by_weight_and_survives_a_removal(lab):
    held_ports = list(range(30000, 30300))
    answers = lab.client_do("open", held_ports)
    counts = {n: sum(1 for v in answers.values() if v == n) for n in BACKENDS}
    print(f"\n300 connections: {counts} (weights 1:1:2)")
    assert None not in answers.values()
    assert all(answers[p] == predicted(BACKENDS, p) for p in held_ports)  # the kernel chose as Maglev says
    assert 0.40 < counts["b3"] / 300 < 0.60 and counts["b1"] > 45 and counts["b2"] > 45

    fresh_ports = list(range(31000, 31600))
    remaining = {k: v for k, v in BACKENDS.items() if k != "b1"}
    lab.write(remaining)  # b1 leaves the pool
    wait_for(lambda: lab.log().count("config changed") >= 1, timeout=10, what="agent applied the new config")
    time.sleep(0.2)
    still = lab.client_do("ask")
    for port, backend in answers.items():
        if backend != "b1":
            assert still[port] == backend, port  # established connections keep working on their backend

    after = lab.client_do("once", fresh_ports)
    assert all(v in remaining for v in after.values()), set(after.values())
    before = {p: predicted(BACKENDS, p) for p in fresh_ports}
    moved = sum(1 for p in fresh_ports if after[p] != before[p])
    on_removed = sum(1 for p in fresh_ports if before[p] == "b1")
    print(f"removing b1 (weight 1 of 4): {moved / len(fresh_ports):.1%} of new flows moved, "
          f"{on_removed / len(fresh_ports):.1%} were on b1")
    assert moved >= on_removed  # those had to move
    assert moved - on_removed <= 0.02 * len(fresh_ports)  # hardly any other flow did (Maglev)


def test_counters_count_real_packets(lab):
    out = subprocess.run(["ip", "netns", "exec", lab.ns["lb"], sys.executable, "-m", "gslb", "dataplane", "stats",
                          lab.config_path], capture_output=True, text=True, cwd=ROOT, timeout=30)
    stats = json.loads(out.stdout)
    vip = stats[f"{VIP}:80/tcp"]
    assert vip["packets"] > 1000
    # b1 left the config in the test above: the listed backends carry the rest
    assert set(vip["backends"]) == {"192.0.2.12", "192.0.2.13"}
    assert all(b["packets"] > 100 for b in vip["backends"].values())
    assert sum(b["packets"] for b in vip["backends"].values()) < vip["packets"]
