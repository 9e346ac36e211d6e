"""BIRD 2 as the upstream router in a test namespace, and reading its routing table."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from dataclasses import dataclass, field


@dataclass
class Route:
    prefix: str
    protocol: str
    best: bool
    as_path: list[int] = field(default_factory=list)
    med: int | None = None
    communities: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Session:
    name: str
    local: str
    neighbor: str
    local_as: int
    peer_as: int
    password: str | None = None


def config(router_id: str, sessions: list[Session], log: str) -> str:
    """An upstream router that accepts everything its peers send and keeps it readable: short
    error wait so a peer that erred is retried within a second (the default keeps it out for a
    minute), `protocol device` (without it sessions stay Idle), 3 s hold (1-2 s are refused)."""
    out = [f"router id {router_id};", f'log "{log}" all;', "protocol device { scan time 1; }"]
    for s in sessions:
        family = "ipv6" if ":" in s.neighbor else "ipv4"
        password = f'\n  password "{s.password}";' if s.password else ""
        out.append(f"""protocol bgp {s.name} {{
  local {s.local} as {s.local_as};
  neighbor {s.neighbor} as {s.peer_as};{password}
  hold time 3;
  connect retry time 1;
  error wait time 1, 5;
  {family} {{ import all; export none; import keep filtered on; }};
}}""")
    return "\n".join(out) + "\n"


class Bird:
    def __init__(self, ns: str, workdir: str, conf: str) -> None:
        self.ns, self.workdir = ns, workdir
        self.conf = os.path.join(workdir, "bird.conf")
        self.sock = os.path.join(workdir, "bird.ctl")
        with open(self.conf, "w") as f:
            f.write(conf)
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns, "bird", "-f", "-c", self.conf, "-s", self.sock],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.sock):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError(f"bird did not start in {self.ns}")
            time.sleep(0.02)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if os.path.exists(self.sock):
            os.unlink(self.sock)

    def ask(self, command: str) -> str:
        """One command over BIRD's control socket (what birdc does, without a process per poll);
        returns the reply as birdc would print it."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(5)
            s.connect(self.sock)
            f = s.makefile("rwb")
            f.readline()  # 0001 BIRD x.y ready.
            f.write(command.encode() + b"\n")
            f.flush()
            lines = []
            while True:
                raw = f.readline()
                if not raw:
                    break
                line = raw.decode(errors="replace").rstrip("\n")
                if line[:4].isdigit() and len(line) >= 5:
                    lines.append(line[5:])
                    if line[4] == " ":  # the last line of the reply
                        break
                else:
                    lines.append(line[1:])
            return "\n".join(lines)

    def routes(self, prefix: str) -> list[Route]:
        out = self.ask(f"show route {prefix} all")
        routes: list[Route] = []
        for line in out.splitlines():
            m = re.match(r"^(\S+)?\s+unicast \[(\S+) [^\]]*\] (\*)?", line)
            if m and (m.group(1) or routes):
                routes.append(Route(m.group(1) or routes[-1].prefix, m.group(2), bool(m.group(3))))
                continue
            if not routes:
                continue
            line = line.strip()
            if line.startswith("BGP.as_path:"):
                routes[-1].as_path = [int(x) for x in line.split(":", 1)[1].split()]
            elif line.startswith("BGP.med:"):
                routes[-1].med = int(line.split(":", 1)[1])
            elif line.startswith("BGP.community:"):
                routes[-1].communities = re.findall(r"\((\d+),(\d+)\)", line)
                routes[-1].communities = [f"{a}:{b}" for a, b in routes[-1].communities]
        return routes

    def sessions(self) -> dict[str, str]:
        out = {}
        for line in self.ask("show protocols").splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[1] == "BGP":
                out[parts[0]] = parts[5]
        return out

