"""A real UDP DNS responder that answers only while `up`: a DNS service to flap."""

from __future__ import annotations

import socket
import threading

import dns.flags
import dns.message
import dns.rrset


class FlappingDns:
    """A real UDP DNS responder that answers only while `up`."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.up = True
        self.running = True
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(512)
            except (TimeoutError, OSError):
                continue
            if self.up:
                q = dns.message.from_wire(data)
                r = dns.message.make_response(q)
                r.flags |= dns.flags.AA
                r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.80"))
                self.sock.sendto(r.to_wire(), addr)
