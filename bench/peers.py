"""Peer DNS servers for the benchmarks: Knot, PowerDNS (bind backend) and gdnsd from Debian.

Each peer gets the same zone content (rendered from our zone model as RFC 1035 zone files), the
same port kind and the same CPU set as gslb. Everything runs on loopback (or, with `NETNS` set, on
the server end of a veth pair in that namespace: bench/netns_pair.py) and is torn down after.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import dns.message
import dns.query
import dns.rdatatype
import netns_pair

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from gslb.config import ServerConfig  # noqa: E402
from gslb.zone.load import load_zones  # noqa: E402
from gslb.zone.model import Zone  # noqa: E402

# Where servers listen and the network namespace they run in: loopback in the host's namespace,
# unless bench/dns_qps --driver kxdpgun moves them to the server end of a veth pair (netns_pair).
HOST = "127.0.0.1"
NETNS: str | None = None

# Types gdnsd parses in presentation form; it gets anything else in RFC 3597 generic form.
GDNSD_TYPES = {"A", "AAAA", "NS", "CNAME", "MX", "TXT", "SRV", "PTR", "SOA", "NAPTR"}


def free_port() -> int:
    while True:
        with socket.socket() as t:
            t.bind(("127.0.0.1", 0))
            port = t.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue


def zone_text(zone: Zone, plain: set[str] | None = None, ds_at_cuts: bool = True) -> str:
    """An RFC 1035 zone file with the same RRsets we serve (ALIAS rendered as its target's A/AAAA)."""
    lines = [f"$ORIGIN {zone.origin}"]
    nodes = dict(zone.nodes)
    if zone.alias is not None and zone.alias in zone.nodes:
        apex = dict(nodes.get(zone.origin, {}))
        for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            if rdtype in zone.nodes[zone.alias]:
                apex[rdtype] = zone.nodes[zone.alias][rdtype]
        nodes[zone.origin] = apex
    for owner in sorted(nodes, key=lambda n: (n != zone.origin, n)):
        for rdtype, rrset in sorted(nodes[owner].items(), key=lambda kv: (kv[0] != dns.rdatatype.SOA, kv[0])):
            if rdtype == dns.rdatatype.DS and not ds_at_cuts:
                continue
            tname = dns.rdatatype.to_text(rdtype)
            for rdata in rrset:
                if plain is None or tname in plain:
                    text = rdata.to_text(origin=None, relativize=False)
                    lines.append(f"{owner} {rrset.ttl} IN {tname} {text}")
                else:
                    lines.append(f"{owner} {rrset.ttl} IN TYPE{int(rdtype)} {rdata.to_generic().to_text()}")
    return "\n".join(lines) + "\n"


def load(zones_dir: str) -> list[Zone]:
    zones, _ = load_zones(zones_dir, ServerConfig(), serial=2026112401)
    return zones


def answers(port: int, qname: str = "www.example.com") -> bool:
    try:
        with netns_pair.inside(NETNS):
            r = dns.query.udp(dns.message.make_query(qname, "A"), HOST, port=port, timeout=0.3)
        return bool(r.answer)
    except Exception:
        return False


def signs(port: int, qname: str = "www.example.com") -> bool:
    """Whether a DO query for `qname` gets an RRSIG: a "signed" server that does not is a setup error,
    never a figure in the table."""
    try:
        q = dns.message.make_query(qname, "A", want_dnssec=True)
        with netns_pair.inside(NETNS):
            r = dns.query.udp(q, HOST, port=port, timeout=1)
    except Exception:
        return False
    return any(rrset.rdtype == dns.rdatatype.RRSIG for rrset in r.answer)


def require_signed(running: Running, probe: str) -> Running:
    if not signs(running.port, probe):
        running.stop()
        raise RuntimeError(f"{running.name} answers {probe} without an RRSIG on DO: DNSSEC is not on")
    return running


@dataclass
class Running:
    name: str
    port: int
    proc: subprocess.Popen
    workdir: str

    def tree(self) -> list[int]:
        """The server's processes (supervisor and forked workers)."""
        pids = {self.proc.pid}
        changed = True
        while changed:
            changed = False
            for entry in os.listdir("/proc"):
                if entry.isdigit() and int(entry) not in pids:
                    try:
                        with open(f"/proc/{entry}/stat") as f:
                            ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    except (OSError, ValueError, IndexError):
                        continue
                    if ppid in pids:
                        pids.add(int(entry))
                        changed = True
        return sorted(pids)

    def cpu_split(self) -> tuple[float, float]:
        """User and system CPU seconds of the server's processes so far (from /proc)."""
        user = system = 0
        tick = os.sysconf("SC_CLK_TCK")
        for pid in self.tree():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                user += int(fields[11])
                system += int(fields[12])
            except (OSError, ValueError, IndexError):
                pass
        return user / tick, system / tick

    def pin(self, cpus: str) -> None:
        """Pin every thread of every process to `cpus` once the server runs. `taskset` at exec is
        not enough: Knot pins its UDP worker threads itself (thread i to CPU i), which put Knot's
        only UDP thread on dnsperf's core and made its latency and CPU figures incomparable."""
        for pid in self.tree():
            subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], capture_output=True, check=False)

    def counters(self) -> dict | None:
        """gslb's own counters (queries, dnssec_signatures, …) from its control socket; None for peers."""
        path = os.path.join(self.workdir, "ctl.sock")
        if not os.path.exists(path):
            return None
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(path)
                s.sendall(b"status\n")
                return json.loads(s.makefile().readline())
        except (OSError, ValueError):
            return None

    def cpus_used(self) -> str:
        """The CPUs the server's threads may run on, as `taskset` lists them (a pin check)."""
        found: set[str] = set()
        for pid in self.tree():
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with open(f"/proc/{pid}/task/{tid}/status") as f:
                        found.update(line.split(":", 1)[1].strip() for line in f
                                     if line.startswith("Cpus_allowed_list"))
            except OSError:
                pass
        return ",".join(sorted(found))

    def cpu_seconds(self) -> float:
        return sum(self.cpu_split())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.workdir, ignore_errors=True)


REPIN = True  # bench/dns_qps --no-repin: leave servers' own thread pinning as it is (to show its effect)


def _start(name: str, cmd: list[str], workdir: str, port: int, cpus: str | None, probe: str,
           env: dict | None = None) -> Running:
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    if NETNS:
        cmd = ["ip", "netns", "exec", NETNS, *cmd]  # ip execs the command: proc.pid is the server
    log = open(os.path.join(workdir, "server.log"), "w")  # noqa: SIM115 - lives with the process
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 30
    while not answers(port, probe):
        if proc.poll() is not None or time.monotonic() > deadline:
            with open(os.path.join(workdir, "server.log")) as f:
                raise RuntimeError(f"{name} did not start:\n{f.read()[-3000:]}")
        time.sleep(0.1)
    running = Running(name, port, proc, workdir)
    if cpus and REPIN:
        running.pin(cpus)
    return running


def start_gslb(zones_dir: str, cpus: str | None, workers: int, probe: str, extra: list[str] | None = None,
               env: dict | None = None) -> Running:
    workdir = os.path.realpath(os.path.join("/tmp", f"bench-gslb-{os.getpid()}-{time.monotonic_ns()}"))
    os.makedirs(workdir)
    port = free_port()
    cmd = [sys.executable, "-m", "gslb", "serve", "--zones", os.path.abspath(zones_dir),
           "--listen", f"{HOST}:{port}", "--workers", str(workers), "--control", f"{workdir}/ctl.sock",
           *(extra or [])]
    return _start("gslb", cmd, workdir, port, cpus, probe, {"PYTHONPATH": ROOT, **(env or {})})


def signed_config(workdir: str, zones: list[str]) -> str:
    """A gslb.yaml that signs every zone (ECDSA P-256 CSK, the defaults), with keys made by
    `gslb dnssec keygen` in `workdir`/keys; returns its path."""
    cfg = os.path.join(workdir, "gslb-dnssec.yaml")
    with open(cfg, "w") as f:
        f.write("defaults:\n  dnssec: {keys_dir: keys}\n")
    for zone in zones:
        subprocess.run([sys.executable, "-m", "gslb", "dnssec", "keygen", zone, "--config", cfg], check=True,
                       capture_output=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT})
    return cfg


def _write_zones(zones: list[Zone], directory: str, suffix: str = ".zone") -> list[tuple[str, str]]:
    out = []
    for z in zones:
        path = os.path.join(directory, z.name + suffix)
        with open(path, "w") as f:
            f.write(zone_text(z))
        out.append((z.name, path))
    return out


def start_knot(zones: list[Zone], cpus: str | None, threads: int, probe: str, extra_conf: str = "",
               zone_conf: str = "", server_conf: str = "") -> Running:
    workdir = os.path.realpath(os.path.join("/tmp", f"bench-knot-{os.getpid()}-{time.monotonic_ns()}"))
    os.makedirs(workdir)
    port = free_port()
    files = _write_zones(zones, workdir)
    conf = [
        "server:", f"    rundir: {workdir}", f"    listen: {HOST}@{port}", f"    udp-workers: {threads}",
        "    tcp-workers: 1", "    background-workers: 1", server_conf,
        "database:", f"    storage: {workdir}",
        "log:", "  - target: stderr", "    any: warning",
        extra_conf,
        "template:", "  - id: default", f"    storage: {workdir}", "    zonefile-sync: -1",
        "    journal-content: none", zone_conf,
        "zone:",
    ]
    for name, path in files:
        conf += [f"  - domain: {name}", f"    file: {path}"]
    with open(os.path.join(workdir, "knot.conf"), "w") as f:
        f.write("\n".join(conf) + "\n")
    return _start("knot", ["knotd", "-c", os.path.join(workdir, "knot.conf")], workdir, port, cpus, probe)


def start_pdns(zones: list[Zone], cpus: str | None, threads: int, probe: str, extra: list[str] | None = None,
               launch: str = "bind", secure: list[str] | None = None) -> Running:
    """`secure`: zones PowerDNS signs live (keys made with `pdnsutil secure-zone`, kept in a
    bind-dnssec-db for the bind backend, a key folder for the geoip backend)."""
    workdir = os.path.realpath(os.path.join("/tmp", f"bench-pdns-{os.getpid()}-{time.monotonic_ns()}"))
    os.makedirs(workdir)
    port = free_port()
    files = _write_zones(zones, workdir)
    with open(os.path.join(workdir, "named.conf"), "w") as f:
        for name, path in files:
            f.write(f'zone "{name}" {{ type master; file "{path}"; }};\n')
    conf = [f"launch={launch}", *([f"bind-config={workdir}/named.conf"] if "bind" in launch else []),
            f"local-address={HOST}",
            f"local-port={port}", "daemon=no", "guardian=no", f"socket-dir={workdir}",
            f"receiver-threads={threads}", "distributor-threads=1", "disable-syslog=yes", "loglevel=3",
            "webserver=no", "api=no", *(extra or [])]
    if secure:
        conf += _pdns_dnssec(workdir, launch)
    with open(os.path.join(workdir, "pdns.conf"), "w") as f:
        f.write("\n".join(conf) + "\n")
    for zone in secure or []:
        _pdnsutil(workdir, "secure-zone", zone)
    return _start("pdns", ["pdns_server", f"--config-dir={workdir}"], workdir, port, cpus, probe)


def _pdns_dnssec(workdir: str, launch: str) -> list[str]:
    if "bind" in launch:
        db = os.path.join(workdir, "dnssec.db")
        _pdnsutil(workdir, "create-bind-db", db, conf=[f"launch={launch}"])
        return [f"bind-dnssec-db={db}"]
    keydir = os.path.join(workdir, "keys")
    os.makedirs(keydir)
    return [f"geoip-dnssec-keydir={keydir}"]


def _pdnsutil(workdir: str, *args: str, conf: list[str] | None = None) -> None:
    if conf is not None:  # before pdns.conf exists
        with open(os.path.join(workdir, "pdns.conf"), "w") as f:
            f.write("\n".join(conf) + "\n")
    r = subprocess.run(["pdnsutil", f"--config-dir={workdir}", *args], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"pdnsutil {' '.join(args)}: {r.stdout}{r.stderr}")


def start_gdnsd(zones: list[Zone], cpus: str | None, threads: int, probe: str, plugins: str = "",
                zone_texts: dict[str, str] | None = None) -> Running:
    workdir = os.path.realpath(os.path.join("/tmp", f"bench-gdnsd-{os.getpid()}-{time.monotonic_ns()}"))
    os.makedirs(os.path.join(workdir, "zones"))
    os.makedirs(os.path.join(workdir, "run"))
    os.makedirs(os.path.join(workdir, "state"))
    port = free_port()
    for z in zones:
        with open(os.path.join(workdir, "zones", z.name), "w") as f:
            f.write((zone_texts or {}).get(z.name) or zone_text(z, GDNSD_TYPES, ds_at_cuts=False))
    conf = f"""options => {{
  listen => [ {HOST}:{port} ]
  udp_threads => {threads}
  tcp_threads => 1
  run_dir => {workdir}/run
  state_dir => {workdir}/state
}}
{plugins}
"""
    with open(os.path.join(workdir, "config"), "w") as f:
        f.write(conf)
    return _start("gdnsd", ["gdnsd", "-c", workdir, "start"], workdir, port, cpus, probe)
