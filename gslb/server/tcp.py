"""DNS over TCP per RFC 7766: length-prefixed messages, pipelining, idle timeout, connection cap."""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Iterable

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from gslb.server import xfr
from gslb.server.fastpath import Responder

log = logging.getLogger(__name__)


class TcpServer:
    def __init__(self, responder: Responder, idle_timeout: float, max_connections: int) -> None:
        self.responder = responder
        self.idle_timeout = idle_timeout
        self.max_connections = max_connections
        self.connections = 0

    async def serve(self, sock: socket.socket) -> asyncio.AbstractServer:
        return await asyncio.start_server(self._connection, sock=sock, limit=65536 + 2)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("0.0.0.0", 0)
        sock = writer.get_extra_info("socket")
        family = sock.family if sock is not None else socket.AF_INET
        client = socket.inet_pton(family, peer[0].split("%", 1)[0])
        client_text = peer[0]
        if self.connections >= self.max_connections:
            writer.close()
            return
        self.connections += 1
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), self.idle_timeout)
                    (length,) = struct.unpack(">H", head)
                    data = await asyncio.wait_for(reader.readexactly(length), self.idle_timeout)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
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
            self.connections -= 1
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
