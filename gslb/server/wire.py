"""DNS wire constants and the small pieces of packet parsing the fast path does by hand.

Only what the hot path needs: the header flags, the OPT record (RFC 6891) with its NSID
(RFC 5001) and Client Subnet (RFC 7871) options. Everything else goes through dnspython.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from gslb.policy.client import ECS_OPTION_CODE, ClientSubnet

QR = 0x8000
AA = 0x0400
TC = 0x0200
RD = 0x0100
CD = 0x0010

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
RCODE_BADVERS = 16  # extended: upper 8 bits in the OPT TTL

OPT = 41
OPTION_NSID = 3
OPTION_ECS = ECS_OPTION_CODE
OPTION_COOKIE = 10  # RFC 7873

_OPT_HEAD = struct.Struct(">BHHBBHH")  # root name, type, udp size, ext-rcode, version, flags, rdlen


class FormErr(ValueError):
    """The query is malformed: answer FORMERR."""


def parse_ecs(data: bytes) -> ClientSubnet:
    """Validate an ECS option body per RFC 7871 section 6; FormErr when it is wrong."""
    if len(data) < 4:
        raise FormErr("ECS option shorter than 4 octets")
    family, source, scope = struct.unpack_from(">HBB", data)
    if family not in (1, 2):
        raise FormErr(f"ECS family {family} is neither IPv4 (1) nor IPv6 (2)")
    max_bits = 32 if family == 1 else 128
    if source > max_bits:
        raise FormErr(f"ECS source prefix /{source} too long for the family")
    if scope != 0:
        raise FormErr("ECS scope prefix must be 0 in queries")
    address = data[4:]
    if len(address) != (source + 7) // 8:
        raise FormErr(f"ECS address has {len(address)} octets, /{source} needs {(source + 7) // 8}")
    if source % 8 and address[-1] & (0xFF >> (source % 8)):
        raise FormErr("ECS address has bits set beyond the source prefix")
    return ClientSubnet(family, source, bytes(address), bytes(data))


@dataclass(slots=True)
class Edns:
    """The parts of a query's OPT record that change the response."""

    payload: int
    version: int
    do: bool
    nsid: bool = False
    ecs: ClientSubnet | None = None
    cookie: bytes | None = None  # the COOKIE option body: 8 octets, or 16..40 with a server cookie


def parse_opt(data: bytes, offset: int) -> tuple[Edns, int]:
    """Parse an OPT record at `offset`; returns it and the offset after it."""
    if len(data) < offset + 11:
        raise FormErr("truncated OPT record")
    root, rtype, payload, _ext, version, flags, rdlen = _OPT_HEAD.unpack_from(data, offset)
    if root != 0:
        raise FormErr("OPT owner name is not the root")
    if rtype != OPT:
        raise FormErr("additional record is not OPT")
    end = offset + 11 + rdlen
    if end > len(data):
        raise FormErr("OPT RDATA runs past the end of the packet")
    edns = Edns(payload=payload, version=version, do=bool(flags & 0x8000))
    pos = offset + 11
    while pos < end:
        if pos + 4 > end:
            raise FormErr("truncated EDNS option header")
        code, length = struct.unpack_from(">HH", data, pos)
        pos += 4
        if pos + length > end:
            raise FormErr("EDNS option runs past the OPT RDATA")
        if code == OPTION_ECS:
            if edns.ecs is not None:
                raise FormErr("more than one ECS option")
            edns.ecs = parse_ecs(data[pos:pos + length])
        elif code == OPTION_NSID:
            edns.nsid = True
        elif code == OPTION_COOKIE:  # RFC 7873 §5.2.2: a malformed or repeated COOKIE is FORMERR
            if edns.cookie is not None:
                raise FormErr("more than one COOKIE option")
            if length != 8 and not 16 <= length <= 40:
                raise FormErr(f"COOKIE option of {length} octets (8, or 16..40)")
            edns.cookie = bytes(data[pos:pos + length])
        pos += length
    return edns, end


def opt_record(udp_size: int, do: bool, options: bytes = b"", ext_rcode: int = 0) -> bytes:
    """A response OPT record: version 0, our UDP size, DO copied (RFC 3225 section 3)."""
    return struct.pack(">BHHBBHH", 0, OPT, udp_size, ext_rcode, 0, 0x8000 if do else 0, len(options)) + options


def nsid_option(identity: bytes) -> bytes:
    return struct.pack(">HH", OPTION_NSID, len(identity)) + identity


def question_end(data: bytes, offset: int = 12) -> int:
    """Offset just past the QNAME starting at `offset`; FormErr on pointers or overruns."""
    pos = offset
    total = 0
    while True:
        if pos >= len(data):
            raise FormErr("question name runs past the end of the packet")
        length = data[pos]
        if length == 0:
            return pos + 1
        if length > 63:
            raise FormErr("compression pointer or bad label length in the question")
        total += length + 1
        if total > 254:
            raise FormErr("question name longer than 255 octets")
        pos += length + 1
