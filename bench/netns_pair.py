"""Two network namespaces joined by a veth pair, for benches that need a real link (kxdpgun).

kxdpgun sends and receives through XDP, which loopback cannot carry; a veth pair between a server
namespace and a client namespace can (native XDP on the client's end). Addresses are documentation
ranges only: the link is 198.51.100.0/24 (server .1, client .2), and the server namespace routes
203.0.113.0/24 back through the client's address so kxdpgun may send from many source addresses
(`-l 203.0.113.0/24`) without anything having to answer ARP for them.

Everything created is removed by `close()` (deleting a namespace deletes the veth end inside it,
and with it the peer), which `with VethPair(...)` runs on any exit, exceptions and Ctrl-C included;
SIGTERM is turned into SystemExit while the pair exists so that it is cleaned up too.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType

CLONE_NEWNET = 0x40000000
SERVER_ADDR = "198.51.100.1"
CLIENT_ADDR = "198.51.100.2"
CLIENT_RANGE = "203.0.113.0/24"  # extra client source addresses, routed via CLIENT_ADDR

Runner = Callable[[list[str]], None]


def run_ip(args: list[str]) -> None:
    """`ip ARGS`, raising with ip's own message when it fails."""
    r = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")


class VethPair:
    """Server and client namespaces (`server`, `client`) with veth ends `server_if` / `client_if`."""

    def __init__(self, tag: str | None = None, runner: Runner = run_ip) -> None:
        tag = tag or str(os.getpid())
        self.server, self.client = f"gslbb-s{tag}", f"gslbb-c{tag}"
        self.server_if, self.client_if = f"gbs{tag}"[:15], f"gbc{tag}"[:15]  # IFNAMSIZ - 1
        self._run = runner
        self._created: list[str] = []  # namespaces to delete, in creation order
        self._old_term: signal.Handlers | Callable[[int, FrameType | None], object] | int | None = None

    def open(self) -> VethPair:
        """Create both namespaces and the link; on any failure remove what was made and re-raise."""
        self._old_term = signal.signal(signal.SIGTERM, _exit_on_term)
        try:
            for ns in (self.server, self.client):
                self._run(["netns", "add", ns])
                self._created.append(ns)
            self._run(["link", "add", self.server_if, "netns", self.server, "type", "veth",
                       "peer", "name", self.client_if, "netns", self.client])
            for ns, dev, addr in ((self.server, self.server_if, SERVER_ADDR),
                                  (self.client, self.client_if, CLIENT_ADDR)):
                self._run(["-n", ns, "addr", "add", f"{addr}/24", "dev", dev])
                self._run(["-n", ns, "link", "set", dev, "up"])
                self._run(["-n", ns, "link", "set", "lo", "up"])
            self._run(["-n", self.server, "route", "add", CLIENT_RANGE, "via", CLIENT_ADDR])
        except BaseException:
            self.close()
            raise
        return self

    def mac(self, ns: str, dev: str) -> str:
        """The MAC address of `dev` in `ns` (kxdpgun is told both ends rather than guessing them)."""
        out = subprocess.run(["ip", "-n", ns, "-j", "link", "show", "dev", dev], capture_output=True,
                             text=True, check=True).stdout
        return str(json.loads(out)[0]["address"])

    def close(self) -> None:
        """Delete what `open` created (idempotent; each deletion is tried even if one fails)."""
        errors = []
        while self._created:
            ns = self._created.pop()
            try:
                self._run(["netns", "del", ns])
            except RuntimeError as e:
                errors.append(str(e))
        if self._old_term is not None:
            signal.signal(signal.SIGTERM, self._old_term)
            self._old_term = None
        if errors:
            raise RuntimeError("; ".join(errors))

    def __enter__(self) -> VethPair:
        return self.open()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _exit_on_term(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


@contextlib.contextmanager
def inside(ns: str | None) -> Iterator[None]:
    """Run the block's socket calls in network namespace `ns` (None: stay where we are). Sockets
    keep the namespace they were made in, so the bench's probes can reach a server in `ns`; the
    calling thread returns to its own namespace afterwards (and /sys then shows ours again)."""
    if ns is None:
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        _setns(target)
        try:
            yield
        finally:
            _setns(own)
    finally:
        os.close(own)
        os.close(target)
