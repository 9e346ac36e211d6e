"""Listening sockets: one UDP and one TCP socket per `--listen ADDR:PORT`, SO_REUSEPORT shared."""

from __future__ import annotations

import ipaddress
import socket

from gslb.conf.listen import ListenError, parse_listen

__all__ = ["ListenError", "parse_listen"]


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


IP_PKTINFO = 8  # Linux values (not all exported by the socket module)
IPV6_RECVPKTINFO = 49
IPV6_PKTINFO = 50


def is_wildcard(host: str) -> bool:
    return ipaddress.ip_address(host).is_unspecified


def udp_socket(host: str, port: int) -> socket.socket:
    """A UDP socket; a wildcard one also reports each query's destination address (PKTINFO), so
    replies leave from the address the client asked: anycast nodes hold several addresses."""
    sock = socket.socket(_family(host), socket.SOCK_DGRAM)
    if is_wildcard(host):
        if sock.family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        else:
            sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    except OSError:
        pass
    sock.bind((host, port))
    return sock


def tcp_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(_family(host), socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if sock.family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((host, port))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


def check_bindable(listen: list[tuple[str, int]]) -> None:
    """Bind and release every address once, so a busy port fails loudly before workers start."""
    for host, port in listen:
        for make, kind in ((udp_socket, "UDP"), (tcp_socket, "TCP")):
            try:
                make(host, port).close()
            except OSError as exc:
                raise ListenError(f"cannot listen on {kind} {host}:{port}: {exc.strerror}") from None
