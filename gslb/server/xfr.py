"""AXFR (RFC 5936) of a zone's static content to addresses on its allow-list."""

from __future__ import annotations

import ipaddress
import itertools
import struct
from collections.abc import Iterable, Iterator

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from gslb.server import encode
from gslb.zone.bulk import BulkZone, is_bulk
from gslb.zone.model import Zone

MESSAGE_LIMIT = 16384  # records per message are packed up to this many octets


def allowed(zone: Zone, client: str) -> bool:
    try:
        ip = ipaddress.ip_address(client.split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in zone.config.axfr_allow)


def canonical_key(name: dns.name.Name) -> tuple[bytes, ...]:
    """Sort key giving RFC 4034 6.1 canonical order (what sorting dns.name.Name does), in C."""
    return tuple(reversed([label.lower() for label in name.labels]))


def iter_rrsets(zone: Zone) -> Iterator[dns.rrset.RRset]:
    """Every RRset of the zone except the SOA, in canonical order; GSLB names as their `values`."""
    for owner in sorted(zone.nodes, key=canonical_key):
        for rdtype, rrset in sorted(zone.nodes[owner].items()):
            if owner == zone.origin and rdtype == dns.rdatatype.SOA:
                continue
            yield rrset


def zone_rrsets(zone: Zone) -> list[dns.rrset.RRset]:
    return list(iter_rrsets(zone))


def transfer(query: dns.message.Message, zone: Zone) -> Iterator[bytes]:
    """The AXFR response stream: SOA, every RRset, SOA, split into messages as they are sent.

    Each message is encoded as it is needed (gslb.server.encode): records go in until one would
    take the message past MESSAGE_LIMIT octets. dnspython makes the header, question and any OPT
    record (`make_response`), so those follow the query exactly as before."""
    shell = dns.message.make_response(query)
    shell.flags |= dns.flags.AA
    wire = shell.to_wire(max_size=65535)
    head = encode.Writer()
    for q in shell.question:
        head.question(q.name, q.rdtype, q.rdclass, lower=False)
    qsection = bytes(head.buf[12:])
    if not wire.startswith(qsection, 12):  # not expected: keep dnspython's bytes authoritative
        raise AssertionError("question encoding differs from dnspython's")
    extra = wire[12 + len(qsection):]  # the OPT record, if the query had EDNS
    id_flags = wire[:4]
    arcount = wire[10:12]

    def finish(w: encode.Writer, qd: int, an: int) -> bytes:
        w.buf[0:12] = id_flags + struct.pack(">HHH", qd, an, 0) + arcount
        return bytes(w.buf) + extra

    w, qd = head, len(shell.question)
    an = count = 0
    if is_bulk(zone):  # the names below the apex come as records from the store
        rrsets: Iterable[dns.rrset.RRset | tuple[bytes, int]] = itertools.chain(
            (zone.soa,), (zone.apex[t] for t in sorted(zone.apex) if t != dns.rdatatype.SOA),
            _store_records(zone), (zone.soa,))
    else:
        rrsets = itertools.chain((zone.soa,), iter_rrsets(zone), (zone.soa,))
    for rrset in rrsets:
        if isinstance(rrset, tuple):  # (uncompressed records, their count): they fit, or start a message
            records, n = rrset
            if len(w.buf) + len(records) + len(extra) > MESSAGE_LIMIT and count:
                yield finish(w, qd, an)
                w, qd = encode.Writer(), 0
                an = count = 0
            w.buf += records
            an += n
            count += 1
            continue
        mark = len(w.buf)
        n = w.rrset(rrset)
        if len(w.buf) + len(extra) > MESSAGE_LIMIT and count:
            w.rollback(mark)
            yield finish(w, qd, an)
            w, qd = encode.Writer(), 0  # only the first message repeats the question (RFC 5936 2.2)
            an = count = 0
            n = w.rrset(rrset)
        an += n
        count += 1
    yield finish(w, qd, an)


def _store_records(zone: BulkZone) -> Iterator[tuple[bytes, int]]:
    """A bulk zone's names below the apex, canonical order, a message's worth at a time."""
    index = 0
    while index >= 0:
        records, n, index = zone.store.axfr_chunk(index, MESSAGE_LIMIT // 2)
        if n:
            yield records, n


def find_zone(zones, qname: dns.name.Name) -> Zone | None:
    return zones.by_origin.get(qname)
