"""`ADDR:PORT` as every part of the system spells it: --listen, the dashboard, BGP DNS signals."""

from __future__ import annotations

import ipaddress


class ListenError(ValueError):
    """A listen address that cannot be parsed; the message names it."""


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


