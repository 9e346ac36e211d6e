"""AXFR (RFC 5936) of a zone's static content to addresses on its allow-list."""

from __future__ import annotations

import ipaddress

import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rrset

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


def zone_rrsets(zone: Zone) -> list[dns.rrset.RRset]:
    """Every RRset of the zone except the SOA, in canonical order; GSLB names as their `values`."""
    out = []
    for owner in sorted(zone.nodes):
        for rdtype, rrset in sorted(zone.nodes[owner].items()):
            if owner == zone.origin and rdtype == dns.rdatatype.SOA:
                continue
            out.append(rrset)
    return out


def transfer(query: dns.message.Message, zone: Zone) -> list[bytes]:
    """The AXFR response stream: SOA, every RRset, SOA, split into messages."""
    rrsets = [zone.soa, *zone_rrsets(zone), zone.soa]
    messages: list[bytes] = []
    current = dns.message.make_response(query)
    current.flags |= dns.flags.AA
    for rrset in rrsets:
        current.answer.append(rrset)
        if len(current.to_wire(max_size=65535)) > MESSAGE_LIMIT and len(current.answer) > 1:
            current.answer.pop()
            messages.append(current.to_wire(max_size=65535))
            current = dns.message.make_response(query)
            current.flags |= dns.flags.AA
            current.question = []  # only the first message repeats the question (RFC 5936 2.2)
            current.answer.append(rrset)
    messages.append(current.to_wire(max_size=65535))
    return messages


def find_zone(zones, qname: dns.name.Name) -> Zone | None:
    return zones.by_origin.get(qname)
