"""Crafting test packets (Ethernet/IPv4/IPv6/TCP/UDP) for BPF_PROG_TEST_RUN and benchmarks."""

from __future__ import annotations

import ipaddress
import socket
import struct

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac(text: str) -> bytes:
    return bytes(int(x, 16) for x in text.split(":"))


def l4(proto: str, sport: int, dport: int, payload: bytes = b"x" * 16, syn: bool = True) -> tuple[int, bytes]:
    if proto == "tcp":
        flags = 0x02 if syn else 0x10
        return socket.IPPROTO_TCP, struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0) + payload
    return socket.IPPROTO_UDP, struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def packet(src: str, dst: str, proto: str = "tcp", sport: int = 40000, dport: int = 80,
           dst_mac: str = "02:00:00:00:00:01", src_mac: str = "02:00:00:00:00:02", payload: bytes = b"x" * 16,
           frag: int = 0) -> bytes:
    """An Ethernet frame; `frag` sets the IPv4 fragment field (offset/MF) for fragment tests."""
    number, segment = l4(proto, sport, dport, payload)
    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    if s.version == 4:
        header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(segment), 1, frag, 64, number, 0, s.packed, d.packed)
        header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
        return mac(dst_mac) + mac(src_mac) + struct.pack("!H", ETH_P_IP) + header + segment
    header = struct.pack("!IHBB16s16s", 0x60000000, len(segment), number, 64, s.packed, d.packed)
    return mac(dst_mac) + mac(src_mac) + struct.pack("!H", ETH_P_IPV6) + header + segment


def flow_of(src: str, dst: str, proto: str, sport: int, dport: int) -> tuple[bytes, bytes, int, int, int]:
    """The flow as dataplane.maglev.flow_hash takes it."""
    s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    number = socket.IPPROTO_TCP if proto == "tcp" else socket.IPPROTO_UDP
    return s + bytes(16 - len(s)), d + bytes(16 - len(d)), sport, dport, number
