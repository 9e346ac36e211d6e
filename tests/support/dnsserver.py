"""Run the real `gslb serve` as a subprocess for tests, and talk to it."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import dns.message
import dns.query
import dns.rdataclass
import yaml

from tests.support.procs import free_port, stop, wait_for

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Server:
    host: str
    port: int
    proc: subprocess.Popen
    control: str
    log_path: str
    workdir: str

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def query(self, qname: str, rdtype: str = "A", tcp: bool = False, timeout: float = 2.0,
              **make_query_args) -> dns.message.Message:
        q = dns.message.make_query(qname, rdtype, **make_query_args)
        if tcp:
            return dns.query.tcp(q, self.host, port=self.port, timeout=timeout)
        return dns.query.udp(q, self.host, port=self.port, timeout=timeout, ignore_unexpected=True)

    def raw_udp(self, packet: bytes, timeout: float = 1.0) -> bytes | None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            s.sendto(packet, (self.host, self.port))
            try:
                return s.recv(65535)
            except TimeoutError:
                return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def status(self) -> dict:
        """The node's counters from its control socket (`gslb serve --control`)."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.control)
            s.sendall(b"status\n")
            return json.loads(s.makefile().readline())

    def settled_status(self) -> dict:
        """`status` once what was asked so far (the start-up probe's query included) is in it:
        the workers ship their counters once a second."""
        time.sleep(1.2)
        return self.status()

    def status_after(self, before: dict, queries: int, timeout: float = 10.0) -> dict:
        """`status` once it counts `queries` more than `before` (or the timeout has passed)."""
        deadline = time.monotonic() + timeout
        while (now := self.status())["queries"] - before["queries"] < queries and time.monotonic() < deadline:
            time.sleep(0.2)
        return now

    def hup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)


def answers(server: Server) -> bool:
    try:
        r = server.query("id.server.", "TXT", rdclass=dns.rdataclass.CH, timeout=0.3)
        return bool(r.answer)
    except (dns.exception.Timeout, dns.query.BadResponse, OSError):
        # BadResponse: a late answer to an earlier probe that timed out, reaching a reused port
        return False


@contextlib.contextmanager
def gslb_server(zones_dir: str, *, config: dict | None = None, workers: int = 1, listen: list[str] | None = None,
                extra_args: tuple[str, ...] = (), host: str = "127.0.0.1", env: dict | None = None,
                start_timeout: float = 60.0) -> Iterator[Server]:
    """Start `gslb serve` on a free port, wait until it answers, stop it afterwards."""
    workdir = tempfile.mkdtemp(prefix="gslb-test-")
    if listen:
        port = int(listen[0].rsplit(":", 1)[1])
    else:
        port = free_port()
        listen = [f"{host}:{port}" if ":" not in host else f"[{host}]:{port}"]
    control = os.path.join(workdir, "control.sock")
    args = [sys.executable, "-m", "gslb", "serve", "--zones", zones_dir, "--workers", str(workers),
            "--control", control, "--identity", "test-node"]
    for item in listen:
        args += ["--listen", item]
    if config is not None:
        cfg_path = os.path.join(workdir, "gslb.yaml")
        with open(cfg_path, "w") as f:
            yaml.safe_dump(config, f)
        args += ["--config", cfg_path]
    args += list(extra_args)
    log_path = os.path.join(workdir, "server.log")
    with open(log_path, "w") as logf:
        proc = subprocess.Popen(args, stdout=logf, stderr=subprocess.STDOUT, cwd=ROOT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
    server = Server(host, port, proc, control, log_path, workdir)
    try:
        try:
            wait_for(lambda: answers(server) or proc.poll() is not None, timeout=start_timeout, what="gslb serve")
        except TimeoutError:
            raise RuntimeError(f"gslb serve did not answer:\n{server.log()}") from None
        if proc.poll() is not None:
            raise RuntimeError(f"gslb serve exited with {proc.returncode}:\n{server.log()}")
        yield server
    finally:
        stop(proc, timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)



def wait_until(predicate, timeout: float = 5.0, what: str = "condition"):
    return wait_for(predicate, timeout=timeout, interval=0.05, what=what)
