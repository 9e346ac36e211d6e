"""Demo endpoints for the example zones: tiny HTTP servers on 127.0.0.10-14:8080.

`make run` starts them so the embedded probe loop has something real to check. Each answers
GET /health with 200 while up; `curl -X POST 127.0.0.11:8080/down` makes it fail its checks
(503) and `/up` brings it back, to watch answers move (`dig @127.0.0.1 -p 5353 www.gslb.example.com`).
"""

from __future__ import annotations

import argparse
import asyncio
import logging

log = logging.getLogger("gslb.demo")
DEFAULT_ADDRESSES = [f"127.0.0.{i}" for i in range(10, 15)]


class Endpoint:
    def __init__(self, address: str, port: int) -> None:
        self.address, self.port, self.up = address, port, True

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path = request.split(b" ", 2)[:2]
            if method == b"POST" and path in (b"/down", b"/up"):
                self.up = path == b"/up"
                log.info("%s:%d is now %s", self.address, self.port, "up" if self.up else "down")
                status, body = "200 OK", f"{'up' if self.up else 'down'}\n"
            elif self.up:
                status, body = "200 OK", "ok\n"
            else:
                status, body = "503 Service Unavailable", "down\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}"
                         .encode())
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


async def serve(addresses: list[str], port: int) -> None:
    servers = []
    for address in addresses:
        endpoint = Endpoint(address, port)
        servers.append(await asyncio.start_server(endpoint.handle, address, port))
    log.info("demo endpoints up on %s (port %d)", ", ".join(addresses), port)
    await asyncio.gather(*(s.serve_forever() for s in servers))


def cmd_demo(args: argparse.Namespace) -> int:
    try:
        asyncio.run(serve(args.address or DEFAULT_ADDRESSES, args.port))
    except OSError as exc:
        log.error("cannot start the demo endpoints: %s", exc)
        return 1
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the local HTTP endpoints the example zones health-check")
    p.add_argument("--address", action="append", help="address to serve on (repeatable; default 127.0.0.10-14)")
    p.add_argument("--port", type=int, default=8080)
    p.set_defaults(func=cmd_demo)
