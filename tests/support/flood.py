"""Paced UDP floods from many loopback source addresses, for the abuse tests and bench/dns_abuse.

Every 127.0.0.0/8 address is local on Linux, so binding a client socket to 127.0.0.x (or
127.0.y.x) gives a source in a chosen prefix without namespaces.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Tally:
    sent: int = 0
    bytes_sent: int = 0
    answers: int = 0  # full responses (TC clear)
    truncated: int = 0  # TC=1 (slipped) responses
    other: int = 0  # anything else (REFUSED, BADCOOKIE ...)
    bytes_received: int = 0
    rcodes: dict[int, int] = field(default_factory=dict)

    @property
    def received(self) -> int:
        return self.answers + self.truncated + self.other


def _drain(sel: selectors.BaseSelector, tally: Tally, timeout: float) -> None:
    for key, _ in sel.select(timeout):
        sock = key.fileobj
        while True:
            try:
                data = sock.recv(65535)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            tally.bytes_received += len(data)
            rcode = data[3] & 0x0F
            tally.rcodes[rcode] = tally.rcodes.get(rcode, 0) + 1
            if data[2] & 0x02:
                tally.truncated += 1
            elif rcode == 0 or rcode == 3:
                tally.answers += 1
            else:
                tally.other += 1


def flood(host: str, port: int, packets: list[bytes], sources: list[str], rate: float, seconds: float,
          settle: float = 0.5, stop: threading.Event | None = None) -> Tally:
    """Send packets[i % len] from sources[i % len] at `rate` per second for `seconds`, counting replies."""
    socks = []
    sel = selectors.DefaultSelector()
    for src in sources:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        s.bind((src, 0))
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    tally = Tally()
    start = time.monotonic()
    total = int(rate * seconds)
    try:
        for i in range(total):
            if stop is not None and stop.is_set():
                break
            due = start + i / rate
            while True:
                now = time.monotonic()
                if now >= due:
                    break
                _drain(sel, tally, due - now)
            pkt = packets[i % len(packets)]
            pkt = (i & 0xFFFF).to_bytes(2, "big") + pkt[2:]
            try:
                socks[i % len(socks)].sendto(pkt, (host, port))
                tally.sent += 1
                tally.bytes_sent += len(pkt)
            except BlockingIOError:
                pass
            if i % 64 == 0:
                _drain(sel, tally, 0)
        end = time.monotonic() + settle
        while time.monotonic() < end:
            _drain(sel, tally, 0.05)
    finally:
        for s in socks:
            sel.unregister(s)
            s.close()
    return tally


class Background(threading.Thread):
    """`flood` in a thread; `.tally` when joined."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(daemon=True)
        self.args = args
        self.kwargs = kwargs
        self.tally: Tally | None = None

    def run(self) -> None:
        self.tally = flood(*self.args, **self.kwargs)
