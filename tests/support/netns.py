"""Network namespaces and veth pairs for tests that need real routing (BGP, XDP).

Names are unique per test run so parallel suites never collide; everything is deleted on exit.
Only documentation addresses are ever configured.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator


def why_no_netns() -> str | None:
    """None when this machine can create namespaces, else the reason to skip."""
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "iproute2 (ip) is not installed"
    name = f"gslbprobe{uuid.uuid4().hex[:6]}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def sh(*cmd: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full = ["ip", "netns", "exec", ns, *cmd] if ns else list(cmd)
    r = subprocess.run(full, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(full)} failed ({r.returncode}): {r.stderr.strip()}")
    return r


class Lab:
    """A set of namespaces joined by veth pairs, torn down as one."""

    def __init__(self, tag: str = "") -> None:
        self.tag = (tag + uuid.uuid4().hex)[:8]
        self.namespaces: list[str] = []

    def ns(self, role: str) -> str:
        name = f"g{self.tag}-{role}"[:15]
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "link", "set", "lo", "up", ns=name)
        return name

    def link(self, ns_a: str, if_a: str, ns_b: str, if_b: str) -> None:
        """A veth pair created directly inside the two namespaces (nothing in the root one)."""
        sh("ip", "link", "add", if_a, "netns", ns_a, "type", "veth", "peer", "name", if_b, "netns", ns_b)
        sh("ip", "link", "set", if_a, "up", ns=ns_a)
        sh("ip", "link", "set", if_b, "up", ns=ns_b)

    def addr(self, ns: str, ifname: str, cidr: str) -> None:
        extra = ["nodad"] if ":" in cidr else []
        sh("ip", "addr", "add", cidr, "dev", ifname, *extra, ns=ns)

    def close(self) -> None:
        for name in reversed(self.namespaces):
            pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
            if pids:  # ask nicely first, so servers can clean up after themselves
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, ValueError):
                        os.kill(int(pid), 15)
                time.sleep(0.2)
                pids = sh("ip", "netns", "pids", name, check=False).stdout.split()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
            sh("ip", "netns", "del", name, check=False)
        self.namespaces.clear()


@contextlib.contextmanager
def lab(tag: str = "") -> Iterator[Lab]:
    the_lab = Lab(tag)
    try:
        yield the_lab
    finally:
        the_lab.close()
