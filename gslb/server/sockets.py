"""Listening sockets: one UDP and one TCP socket per `--listen ADDR:PORT`, SO_REUSEPORT shared."""

from __future__ import annotations

import ipaddress
import socket


class ListenError(ValueError):
    pass


def parse_listen(text: str) -> tuple[str, int]:
    """`127.0.0.1:5353`, `[::1]:5353`, `:5353` (all IPv4) or `5353` → (address, port)."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ListenError(f"{text!r}: IPv6 addresses are written [ADDR]:PORT")
    elif text.isdigit():
        host, port = "0.0.0.0", text
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ListenError(f"{text!r}: expected ADDR:PORT")
        host = host or "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ListenError(f"{text!r}: {host!r} is not an IP address") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ListenError(f"{text!r}: bad port {port!r}")
    return host, int(port)


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
