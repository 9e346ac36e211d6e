"""Listening sockets: UDP and TCP per `--listen ADDR:PORT`, SO_REUSEPORT shared by the workers
(`SocketSet`: made by the supervisor, steered to the serving generation)."""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys
from dataclasses import dataclass, field

from gslb.conf.listen import ListenError, parse_listen
from gslb.server import steering

__all__ = ["ListenError", "parse_listen"]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


IP_PKTINFO = 8  # Linux values (not all exported by the socket module)
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50


def is_wildcard(host: str) -> bool:
    return ipaddress.ip_address(host).is_unspecified


# <linux/in.h>, <linux/in6.h> (Python 3.11's socket module has not all of them)
IP_MTU_DISCOVER, IPV6_MTU_DISCOVER, IPV6_DONTFRAG = 10, 23, 62
PMTUDISC_PROBE, PMTUDISC_OMIT = 3, 5  # the same values for IPv4 and IPv6
UNFRAGMENTED_PAYLOAD = 1232  # a response this long fits in 1280 octets (IPv6's minimum MTU) with its headers


def limit_fragmentation(sock: socket.socket, udp_size: int) -> None:
    """Responses are never fragmented by us, and a forged "fragmentation needed" cannot make us
    (RFC 9715 section 3.1; the off-path cache poisoning it prevents). When every response fits in
    1280 octets (`edns_udp_size` at most 1232, the default) IPv4 responses carry DF and IPv6 ones
    never a fragment header, path MTU ignored (PMTUDISC_PROBE): a DF packet also needs no IP ID,
    which the kernel otherwise draws per packet. A larger `edns_udp_size` keeps fragments for
    what exceeds the interface MTU, still ignoring path MTU news (PMTUDISC_OMIT, as Knot does)."""
    fits = udp_size <= UNFRAGMENTED_PAYLOAD
    try:
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_MTU_DISCOVER, PMTUDISC_PROBE if fits else PMTUDISC_OMIT)
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_DONTFRAG, int(fits))
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_MTU_DISCOVER, PMTUDISC_PROBE if fits else PMTUDISC_OMIT)
    except OSError:  # not Linux, or a kernel before 3.15: its defaults stay
        pass


def udp_socket(host: str, port: int) -> socket.socket:
    """A UDP socket; a wildcard one also reports each query's destination address (PKTINFO), so
    replies leave from the address the client asked: anycast nodes hold several addresses."""
    sock = socket.socket(_family(host), socket.SOCK_DGRAM)
    if is_wildcard(host):
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    except OSError:
        pass
    sock.bind((host, port))
    return sock


def tcp_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def _format(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _exclusive(host: str, port: int, kind: str) -> None:
    """Bind (and release) `host:port` without SO_REUSEPORT: fails with EADDRINUSE while any other
    socket holds the address, SO_REUSEPORT ones included. TCP keeps SO_REUSEADDR, which only
    passes over TIME_WAIT leftovers, never over a listener."""
    sock = socket.socket(_family(host), socket.SOCK_DGRAM if kind == "UDP" else socket.SOCK_STREAM)
    try:
        if kind == "TCP":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
    finally:
        sock.close()


_CLAIMS: list[socket.socket] = []  # held for the life of the server (and its forked workers)


def _claim(host: str, port: int) -> socket.socket:
    """An abstract Unix socket named after the address: two `gslb serve` starting at the same
    moment both pass the bind check (neither has workers yet), only one gets this name."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(f"\0gslb-listen {host} {port}")
    except OSError:
        sock.close()
        raise
    return sock


def check_bindable(listen: list[tuple[str, int]]) -> None:
    """Fail loudly, before any worker starts, when an address is taken: by another program or by
    another `gslb serve` (whose SO_REUSEPORT sockets ours would otherwise join, splitting the
    queries between the two). On success the addresses stay claimed by this process, so only
    our own workers ever share them."""
    claims = []
    try:
        for host, port in listen:
            try:
                claims.append(_claim(host, port))
            except OSError as exc:
                holder = _holder_of_claim(host, port)
                raise ListenError(f"cannot listen on {_format(host, port)}: address already in use by another "
                                  f"gslb serve{holder}" if exc.errno == errno.EADDRINUSE else
                                  f"cannot listen on {_format(host, port)}: {exc.strerror}") from None
            for kind in ("UDP", "TCP"):
                try:
                    _exclusive(host, port, kind)
                except OSError as exc:
                    if exc.errno != errno.EADDRINUSE:
                        raise ListenError(f"cannot listen on {kind} {_format(host, port)}: {exc.strerror}") from None
                    raise ListenError(f"cannot listen on {kind} {_format(host, port)}: address already in use"
                                      + (_holders(host, port, kind) or "")) from None
    except ListenError:
        for sock in claims:
            sock.close()
        raise
    _CLAIMS.extend(claims)


# -- who holds an address (best effort: /proc/net and the /proc/PID/fd we may read) -----------

def _proc_addr(text: str) -> tuple[str, int]:
    """`0100007F:14E9` (IPv4, host order) or 32 hex digits (IPv6, four host-order words)."""
    addr, port = text.split(":")
    raw = bytes.fromhex(addr)
    packed = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)) if sys.byteorder == "little" else raw
    return str(ipaddress.ip_address(packed)), int(port, 16)


def _overlaps(held: str, wanted: str) -> bool:
    a, b = ipaddress.ip_address(held), ipaddress.ip_address(wanted)
    if a.version != b.version:
        return a.version == 6 and a.is_unspecified  # a dual-stack [::] listener covers IPv4 too
    return a == b or a.is_unspecified or b.is_unspecified


def _inodes(host: str, port: int, kind: str) -> set[str]:
    out = set()
    for table in (f"/proc/net/{kind.lower()}", f"/proc/net/{kind.lower()}6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if len(fields) < 10:
                        continue
                    addr, lport = _proc_addr(fields[1])
                    if kind == "TCP" and fields[3] != "0A":  # LISTEN only
                        continue
                    if lport == port and _overlaps(addr, host):
                        out.add(fields[9])
        except (OSError, ValueError, StopIteration):
            continue
    return out


def _pids_holding(inodes: set[str]) -> dict[int, str]:
    """pid → command line of each process with one of these socket inodes open."""
    wanted = {f"socket:[{inode}]" for inode in inodes if inode != "0"}
    out: dict[int, str] = {}
    if not wanted:
        return out
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            for fd in os.listdir(f"/proc/{entry}/fd"):
                if os.readlink(f"/proc/{entry}/fd/{fd}") in wanted:
                    out[int(entry)] = _cmdline(int(entry))
                    break
        except OSError:
            continue
    return out


def _cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode(errors="replace").strip()


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _describe(pids: dict[int, str]) -> str:
    """` (held by pid 10 (workers 11 12): gslb serve ...)`: forked workers named by their parent."""
    if not pids:
        return ""
    groups: dict[tuple[int, str], list[int]] = {}
    for pid, cmd in sorted(pids.items()):
        main = pid
        try:
            parent = _parent(pid)
            if parent > 1 and _cmdline(parent) == cmd:
                main = parent
        except (OSError, ValueError, IndexError):
            pass
        groups.setdefault((main, cmd), []).append(pid)
    shown = []
    for (main, cmd), members in sorted(groups.items())[:3]:
        workers = [p for p in members if p != main]
        shown.append(f"pid {main}" + (f" (workers {' '.join(map(str, workers))})" if workers else "")
                     + f": {cmd[:300] or '?'}")
    return " (held by " + "; ".join(shown) + (f"; {len(groups) - 3} more" if len(groups) > 3 else "") + ")"


def _holders(host: str, port: int, kind: str) -> str:
    try:
        return _describe(_pids_holding(_inodes(host, port, kind)))
    except OSError:
        return ""


def _holder_of_claim(host: str, port: int) -> str:
    name = f"@gslb-listen {host} {port}"
    try:
        with open("/proc/net/unix") as f:
            inodes = {line.split()[6] for line in f if line.rstrip("\n").endswith(name) and len(line.split()) > 7}
        pids = _pids_holding(inodes)
    except OSError:
        return ""
    return _describe(pids)


# -- the node's listening sockets, made once by the supervisor -------------------------------

@dataclass
class Listener:
    """One `--listen` address: `banks` x `slots` UDP and TCP sockets, index bank * slots + slot."""

    text: str
    host: str
    port: int
    udp: list[socket.socket] = field(default_factory=list)
    tcp: list[socket.socket] = field(default_factory=list)

    @property
    def wildcard(self) -> bool:
        return is_wildcard(self.host)


class SocketSet:
    """Every listening socket of a node, made by the supervisor before any worker and kept for its
    life: per listen address, two banks of one UDP and one TCP socket per worker slot.

    Why: a worker that is replaced (a reload's new generation, a respawn) inherits its slot's
    socket, so the kernel queue it drains is never closed. A reuseport program sends every new
    packet and connection to the active bank only; a reload's new workers start on the idle bank,
    the program flips when they are ready, and the old workers answer what they already queued
    and leave. Nothing is dropped and no old worker competes for new queries."""

    BANKS = 2

    def __init__(self, listen: list[str], slots: int, by_prefix: tuple[int, int] | None = None) -> None:
        self.slots = slots
        self.bank = 0
        self.by_prefix = by_prefix  # (v4, v6 bits): UDP steered by client prefix (RRL, query limits)
        self.listeners: list[Listener] = []
        try:
            for text in listen:
                host, port = parse_listen(text)
                self.listeners.append(Listener(text, host, port))
            for listener in self.listeners:  # join order = group index: bank-major, then slot
                for _ in range(self.BANKS * slots):
                    listener.udp.append(udp_socket(listener.host, listener.port))
                    listener.tcp.append(tcp_socket(listener.host, listener.port))
            self.steer(0)
        except OSError:
            self.close()
            raise

    def steer(self, bank: int, slots: list[int] | None = None) -> None:
        """New packets and connections to `bank` from now on (what is queued elsewhere stays),
        to the given slots only (default: all; a dead worker's slot is left out until it is back).
        UDP goes by client prefix when `by_prefix` is set (each limiter account in one worker),
        else at random; TCP connections at random."""
        targets = [bank * self.slots + slot for slot in (slots if slots else range(self.slots))]
        for listener in self.listeners:
            steering.steer(listener.udp[0], targets, self.by_prefix)
            steering.steer(listener.tcp[0], targets)
        self.bank = bank

    def idle_bank(self) -> int:
        return 1 - self.bank

    def for_worker(self, bank: int, slot: int) -> list[tuple[Listener, socket.socket, socket.socket]]:
        i = bank * self.slots + slot
        return [(listener, listener.udp[i], listener.tcp[i]) for listener in self.listeners]

    def close(self) -> None:
        for listener in self.listeners:
            for sock in (*listener.udp, *listener.tcp):
                sock.close()
