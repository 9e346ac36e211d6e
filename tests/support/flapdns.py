"""A real UDP DNS responder that answers (authoritatively) only while `up`: a DNS service to flap.

In-process: `FlappingDns()` and flip `.up`. In a network namespace, as its own process:
`python -m tests.support.flapdns --listen 127.0.0.1:PORT --period 0.2 --for 10 --wait-signal`
answers until SIGUSR1 (or for `--after` seconds), flips every `--period` seconds for `--for`
seconds, then answers until killed; it prints when the flapping starts and stops.
"""

from __future__ import annotations

import argparse
import signal
import socket
import sys
import threading
import time

import dns.flags
import dns.message
import dns.rrset


class FlappingDns:
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.up = True
        self.running = True
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(512)
            except (TimeoutError, OSError):
                continue
            if not self.up:
                continue
            try:
                q = dns.message.from_wire(data)
            except Exception:  # not a query: ignore it like a server would
                continue
            r = dns.message.make_response(q)
            r.flags |= dns.flags.AA
            r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.80"))
            self.sock.sendto(r.to_wire(), addr)

    def close(self) -> None:
        self.running = False
        self.thread.join(1)
        self.sock.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:5300")
    ap.add_argument("--period", type=float, default=0.2)
    ap.add_argument("--for", dest="duration", type=float, default=10.0)
    ap.add_argument("--after", type=float, default=0.0)
    ap.add_argument("--wait-signal", action="store_true", help="start flapping on SIGUSR1")
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(":")
    go = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: go.set())
    server = FlappingDns(host.strip("[]"), int(port))
    print(f"answering on {args.listen}", flush=True)
    if args.wait_signal:
        while not go.wait(0.05):
            pass
    time.sleep(args.after)
    print(f"flapping {time.time():.3f}", flush=True)
    end = time.monotonic() + args.duration
    while time.monotonic() < end:
        server.up = not server.up
        time.sleep(args.period)
    server.up = True
    print(f"steady {time.time():.3f}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
