"""DNS over TCP per RFC 7766: length-prefixed messages, pipelining, and limits that keep a flood of
idle or half-sent connections from shutting anyone else out:

- a cap on connections per worker; when it is reached the connection idle the longest is closed
  to make room (RFC 7766 §6.2.3), and only when none is idle is the new one refused;
- a cap on connections from one client address;
- an idle timeout between messages, and a deadline for receiving a whole message once its first
  octet arrived (slowloris: a client that trickles a message is cut off at the deadline).

UDP runs in other threads and never waits on any of this.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Iterable

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from gslb.server import xfr
from gslb.server.fastpath import Responder

log = logging.getLogger(__name__)


class _Conn:
    __slots__ = ("idle_since", "writer")

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.idle_since: float | None = time.monotonic()  # None while a message is being read or answered


class TcpServer:
    def __init__(self, responder: Responder, idle_timeout: float, max_connections: int,
                 per_client: int | None = None, message_timeout: float | None = None) -> None:
        limits = getattr(getattr(responder, "abuse", None), "tcp", None)  # set by abuse_config.install
        if limits is not None:
            idle_timeout = limits.idle_timeout if limits.idle_timeout is not None else idle_timeout
            max_connections = limits.max_connections if limits.max_connections is not None else max_connections
            per_client = limits.per_client if per_client is None else per_client
            message_timeout = limits.message_timeout if message_timeout is None else message_timeout
        self.responder = responder
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.per_client = per_client or 16
        self.message_timeout = message_timeout or 5.0
        self.open: dict[_Conn, None] = {}  # insertion order = age
        self.by_client: dict[bytes, int] = {}
        # counters for /metrics (tcp_<name>)
        self.stats = {"accepted": 0, "refused_total": 0, "refused_per_client": 0, "closed_idle_evicted": 0,
                      "closed_idle_timeout": 0, "closed_message_timeout": 0}
        responder.tcp_stats = self.stats  # type: ignore[attr-defined]  # abuse_config.stats reads it

    @property
    def connections(self) -> int:
        return len(self.open)

    async def serve(self, sock: socket.socket) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._connection, sock=sock, limit=65536 + 2)

    def _evict_idle(self) -> bool:
        """Close the connection idle the longest; False when every connection is busy."""
        oldest = None
        oldest_since = 0.0
        for conn in self.open:
            if conn.idle_since is not None and (oldest is None or conn.idle_since < oldest_since):
                oldest, oldest_since = conn, conn.idle_since
        if oldest is None:
            return False
        self.stats["closed_idle_evicted"] += 1
        del self.open[oldest]
        oldest.idle_since = None
        oldest.writer.transport.abort()
        return True

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("0.0.0.0", 0)
        sock = writer.get_extra_info("socket")
        family = sock.family if sock is not None else socket.AF_INET
        client = socket.inet_pton(family, peer[0].split("%", 1)[0])
        client_text = peer[0]
        if self.by_client.get(client, 0) >= self.per_client:
            self.stats["refused_per_client"] += 1
            writer.transport.abort()
            return
        if len(self.open) >= self.max_connections and not self._evict_idle():
            self.stats["refused_total"] += 1
            writer.transport.abort()
            return
        conn = _Conn(writer)
        self.open[conn] = None
        self.by_client[client] = self.by_client.get(client, 0) + 1
        self.stats["accepted"] += 1
        try:
            while True:
                conn.idle_since = time.monotonic()
                try:
                    first = await asyncio.wait_for(reader.readexactly(1), self.idle_timeout)
                except TimeoutError:
                    self.stats["closed_idle_timeout"] += 1
                    return
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                if conn not in self.open:
                    return  # evicted while idle
                conn.idle_since = None
                try:  # the rest of the message, whole, within the deadline
                    async with asyncio.timeout(self.message_timeout):
                        second = await reader.readexactly(1)
                        length = (first[0] << 8) | second[0]
                        data = await reader.readexactly(length)
                except TimeoutError:
                    self.stats["closed_message_timeout"] += 1
                    return
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                self.responder.stats.tcp += 1
                out = self.responder.answer(data, client, tcp=True)
                if out is None:
                    messages = self._transfer(data, client_text)
                    if messages is None:
                        continue
                else:
                    messages = [out]
                for msg in messages:  # a transfer's messages are made as they go out
                    writer.write(struct.pack(">H", len(msg)) + msg)
                    if writer.transport.get_write_buffer_size() > 65536:
                        await writer.drain()
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self.open.pop(conn, None)
            left = self.by_client.get(client, 1) - 1
            if left:
                self.by_client[client] = left
            else:
                self.by_client.pop(client, None)
            writer.close()

    def _transfer(self, data: bytes, client: str) -> Iterable[bytes] | None:
        """AXFR/IXFR (IXFR answered with a full transfer, which RFC 1995 allows)."""
        try:
            query = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None
        if not query.question or query.question[0].rdtype not in (dns.rdatatype.AXFR, dns.rdatatype.IXFR):
            return None
        qname = query.question[0].name
        zone = xfr.find_zone(self.responder.snapshot.zones, qname)
        if zone is None or not xfr.allowed(zone, client):
            reply = dns.message.make_response(query)
            reply.set_rcode(dns.rcode.NOTAUTH if zone is None else dns.rcode.REFUSED)
            log.info("AXFR of %s refused to %s", qname, client)
            return [reply.to_wire()]
        kind = dns.rdatatype.to_text(query.question[0].rdtype)
        if query.question[0].rdtype == dns.rdatatype.IXFR and _up_to_date(query, zone.soa[0].serial):
            # RFC 1995 section 2: a client as new as we are gets our SOA alone
            log.info("IXFR of %s (serial %d) to %s: up to date", qname, zone.soa[0].serial, client)
            reply = dns.message.make_response(query)
            reply.flags |= dns.flags.AA
            reply.answer.append(zone.soa)
            return [reply.to_wire(max_size=65535)]
        log.info("%s of %s (serial %d) to %s%s", kind, qname, zone.serial, client,
                 " (a full transfer: no incremental history)" if kind == "IXFR" else "")
        return xfr.transfer(query, zone)  # for IXFR the AXFR-style response of RFC 1995 section 4


def _up_to_date(query: dns.message.Message, serial: int) -> bool:
    """Whether the IXFR client's SOA serial (authority section) is ours or newer (RFC 1982)."""
    for rrset in query.authority:
        if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
            return (rrset[0].serial - serial) % 2**32 < 2**31
    return False
