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
        for address_type in (dns.rdatatype.A, dns.rdatatype.AAAA):
            if address_type in zone.nodes[zone.alias]:
                apex[address_type] = zone.nodes[zone.alias][address_type]
        nodes[zone.origin] = apex
    for owner in sorted(nodes, key=lambda n: (n != zone.origin, n)):
        for rdtype, rrset in sorted(nodes[owner].items(), key=lambda kv: (kv[0] != dns.rdatatype.SOA, kv[0])):
            if rdtype == dns.rdatatype.DS and not ds_at_cuts:
                continue
            tname = dns.rdatatype.to_text(dns.rdatatype.RdataType.make(rdtype))
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


def ask(port: int, qname: str, rdtype: str = "A", timeout: float = 0.3) -> dns.message.Message | None:
    """One UDP query on a connected socket, so that a port nobody listens on yet fails at once
    (ICMP port unreachable) instead of after `timeout`: load times are not rounded up to it."""
    q = dns.message.make_query(qname, rdtype)
    try:
        with netns_pair.inside(NETNS), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.connect((HOST, port))
            s.send(q.to_wire())
            deadline = time.monotonic() + timeout
            while True:
                r = dns.message.from_wire(s.recv(65535))
                if q.is_response(r):
                    return r
                s.settimeout(max(0.001, deadline - time.monotonic()))
    except Exception:
        return None


def answers(port: int, qname: str = "www.example.com", want: str | None = None) -> bool:
    """Whether the server answers `qname` A (with the address `want` among the answer's, if given:
    a large zone is only loaded once its last names answer right)."""
    r = ask(port, qname)
    if r is None:
        return False
    if want is None:
        return bool(r.answer)
    return any(rd.address == want for rrset in r.answer if rrset.rdtype == dns.rdatatype.A for rd in rrset)


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
    load_seconds: float = 0.0  # from starting the process to the probe's (correct) answer

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

    def pss_mb(self) -> float:
        """Memory of the server as PSS summed over its processes (shared pages counted once overall)."""
        total = 0
        for pid in self.tree():
            try:
                with open(f"/proc/{pid}/smaps_rollup") as f:
                    total += sum(int(line.split()[1]) for line in f if line.startswith("Pss:"))
            except OSError:
                pass
        return total / 1024

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


@dataclass
class Wait:
    """How long a starter waits for the probe answer, and the address it must have (None: any answer).
    The default suits the small zones; a million-name zone takes minutes for some servers."""
    seconds: float = 30
    want: str | None = None


def _start(name: str, cmd: list[str], workdir: str, port: int, cpus: str | None, probe: str,
           env: dict | None = None, wait: Wait | None = None) -> Running:
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    if NETNS:
        cmd = ["ip", "netns", "exec", NETNS, *cmd]  # ip execs the command: proc.pid is the server
    wait = wait or Wait()
    log = open(os.path.join(workdir, "server.log"), "w")  # noqa: SIM115 - lives with the process
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                            env={**os.environ, **(env or {})})
    deadline = started + wait.seconds
    while not answers(port, probe, wait.want):
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            with open(os.path.join(workdir, "server.log")) as f:
                raise RuntimeError(f"{name} did not start within {wait.seconds:.0f} s:\n{f.read()[-3000:]}")
        time.sleep(0.02)
    running = Running(name, port, proc, workdir, time.monotonic() - started)
    if cpus and REPIN:
        running.pin(cpus)
    return running


def start_gslb(zones_dir: str, cpus: str | None, workers: int, probe: str, extra: list[str] | None = None,
               env: dict | None = None, wait: Wait | None = None) -> Running:
    workdir = os.path.realpath(os.path.join("/tmp", f"bench-gslb-{os.getpid()}-{time.monotonic_ns()}"))
    os.makedirs(workdir)
    port = free_port()
    cmd = [sys.executable, "-m", "gslb", "serve", "--zones", os.path.abspath(zones_dir),
           "--listen", f"{HOST}:{port}", "--workers", str(workers), "--control", f"{workdir}/ctl.sock",
           *(extra or [])]
    return _start("gslb", cmd, workdir, port, cpus, probe, {"PYTHONPATH": ROOT, **(env or {})}, wait)


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
               zone_conf: str = "", server_conf: str = "", files: list[tuple[str, str]] | None = None,
               wait: Wait | None = None) -> Running:
    """`files`: (zone name, zone file path) pairs served as they are instead of `zones` rendered."""
    workdir = os.path.realpath(os.path.join("/tmp", f"bench-knot-{os.getpid()}-{time.monotonic_ns()}"))
    os.makedirs(workdir)
    port = free_port()
    files = files if files is not None else _write_zones(zones, workdir)
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
    return _start("knot", ["knotd", "-c", os.path.join(workdir, "knot.conf")], workdir, port, cpus, probe,
                  wait=wait)


def start_pdns(zones: list[Zone], cpus: str | None, threads: int, probe: str, extra: list[str] | None = None,
               launch: str = "bind", secure: list[str] | None = None, files: list[tuple[str, str]] | None = None,
               wait: Wait | None = None) -> Running:
    """`secure`: zones PowerDNS signs live (keys made with `pdnsutil secure-zone`, kept in a
    bind-dnssec-db for the bind backend, a key folder for the geoip backend). `files`: zone files
    served as they are (bind backend) instead of `zones` rendered."""
    workdir = os.path.realpath(os.path.join("/tmp", f"bench-pdns-{os.getpid()}-{time.monotonic_ns()}"))
    os.makedirs(workdir)
    port = free_port()
    files = files if files is not None else _write_zones(zones, workdir)
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
    return _start("pdns", ["pdns_server", f"--config-dir={workdir}"], workdir, port, cpus, probe, wait=wait)


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
                zone_texts: dict[str, str] | None = None, files: list[tuple[str, str]] | None = None,
                wait: Wait | None = None) -> Running:
    """`files`: (zone name, zone file path) pairs linked into gdnsd's zones folder as they are."""
    workdir = os.path.realpath(os.path.join("/tmp", f"bench-gdnsd-{os.getpid()}-{time.monotonic_ns()}"))
    os.makedirs(os.path.join(workdir, "zones"))
    os.makedirs(os.path.join(workdir, "run"))
    os.makedirs(os.path.join(workdir, "state"))
    port = free_port()
    for z in zones:
        with open(os.path.join(workdir, "zones", z.name), "w") as f:
            f.write((zone_texts or {}).get(z.name) or zone_text(z, GDNSD_TYPES, ds_at_cuts=False))
    for name, path in files or []:
        _link_or_copy(path, os.path.join(workdir, "zones", name))
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
    return _start("gdnsd", ["gdnsd", "-c", workdir, "start"], workdir, port, cpus, probe, wait=wait)


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link where both are on one filesystem (a million-name file is ~80 MB), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy(src, dst)


def start_nsd(files: list[tuple[str, str]], cpus: str | None, threads: int, probe: str,
              wait: Wait | None = None) -> Running:
    """NSD on (zone name, zone file path) pairs: no nsd.db (NSD reads the text files at start), a
    control socket in its folder so that `nsd-control -c <workdir>/nsd.conf reload` works, and
    `server-count` processes answering (NSD forks rather than threads), rate limiting off."""
    workdir = os.path.realpath(os.path.join("/tmp", f"bench-nsd-{os.getpid()}-{time.monotonic_ns()}"))
    os.makedirs(workdir)
    port = free_port()
    conf = [
        "server:", f"    ip-address: {HOST}@{port}", f"    server-count: {threads}", '    username: ""',
        f'    zonesdir: "{workdir}"', f'    pidfile: "{workdir}/nsd.pid"', '    database: ""',
        f'    xfrdfile: "{workdir}/xfrd.state"', f'    zonelistfile: "{workdir}/zone.list"', "    verbosity: 0",
        # Debian's NSD has response rate limiting on (200 QPS per source): off, as for every peer.
        "    rrl-ratelimit: 0", "    rrl-whitelist-ratelimit: 0",
        "remote-control:", "    control-enable: yes", f'    control-interface: "{workdir}/nsd.sock"',
    ]
    for name, path in files:
        conf += ["zone:", f"    name: {name}", f'    zonefile: "{path}"']
    with open(os.path.join(workdir, "nsd.conf"), "w") as f:
        f.write("\n".join(conf) + "\n")
    return _start("nsd", ["nsd", "-d", "-c", os.path.join(workdir, "nsd.conf")], workdir, port, cpus, probe,
                  wait=wait)
