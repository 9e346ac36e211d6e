"""DNS cookies (RFC 7873) with interoperable server cookies (RFC 9018).

A server cookie is VERSION(1) | RESERVED(3) | TIMESTAMP(4) | HASH(8) where HASH is SipHash-2-4,
under a 16-octet secret, of CLIENT-COOKIE | VERSION | RESERVED | TIMESTAMP | CLIENT-IP. Every node
of an anycast fleet configured with the same secret makes and accepts the same cookies. A server
cookie is valid for one hour after its timestamp and up to five minutes before it (RFC 9018 §4.3).

Everything here is a pure function of the option bytes, the client address, the time and a small
fixed state (two secrets, a cutoff), so the native engine can do the same in C.
"""

from __future__ import annotations

import logging
import os
import struct
import time

from gslb.server.siphash import siphash24

log = logging.getLogger(__name__)

OPTION_COOKIE = 10
RCODE_BADCOOKIE = 23  # extended: 23 >> 4 = 1 in the OPT TTL, 23 & 15 = 7 in the header
VALID_PAST = 3600  # RFC 9018 §4.3: older than one hour is invalid
VALID_FUTURE = 300  # ... as is more than five minutes in the future
_HEAD = b"\x01\x00\x00\x00"  # version 1, reserved

# what a query's COOKIE option said (the order is the metrics' label order)
NONE, CLIENT_ONLY, VALID, BAD = 0, 1, 2, 3
STATUS_NAMES = ("none", "client_only", "valid", "bad")

_MAPPED = b"\x00" * 10 + b"\xff\xff"


def client_ip(client: bytes) -> bytes:
    """The address bytes the hash covers: IPv4-mapped IPv6 reduced to the IPv4 address, so a
    dual-stack socket and an IPv4 one make the same cookie."""
    if len(client) == 16 and client[:12] == _MAPPED:
        return client[12:]
    return client


def check_length(length: int) -> bool:
    """RFC 7873 §5.2.2: 8 octets (client cookie only) or 16..40 (with a server cookie)."""
    return length == 8 or 16 <= length <= 40


class Cookies:
    """Makes and checks server cookies; counts what queries carried."""

    def __init__(self, secret: bytes, previous: bytes | None = None, previous_until: float = 0.0,
                 badcookie: bool = True, enabled: bool = True, clock=time.time) -> None:
        if len(secret) != 16 or (previous is not None and len(previous) != 16):
            raise ValueError("cookie secrets are 16 octets")
        self.secret = secret
        self.previous = previous
        self.previous_until = previous_until  # wall-clock seconds; the previous secret is accepted before it
        self.badcookie = badcookie  # answer BADCOOKIE (UDP) to a bad server cookie, else answer normally
        self.enabled = enabled  # False: ignore COOKIE options altogether (no echo, never valid)
        self.clock = clock
        self.seen = [0, 0, 0, 0]  # queries by status: none (not counted here), client only, valid, bad
        self.badcookie_sent = 0
        self._made: tuple[int, bytes, bytes, bytes] = (0, b"", b"", b"")  # last (ts, cc, ip, cookie)

    @classmethod
    def random(cls, **kwargs) -> Cookies:
        return cls(os.urandom(16), **kwargs)

    def make(self, client_cookie: bytes, client: bytes, now: float | None = None) -> bytes:
        """A fresh 16-octet server cookie for this client cookie and address."""
        ts = int(self.clock() if now is None else now) & 0xFFFFFFFF
        ip = client_ip(client)
        made = self._made
        if made[0] == ts and made[1] == client_cookie and made[2] == ip:
            return made[3]
        head = _HEAD + struct.pack(">I", ts)
        cookie = head + siphash24(self.secret, client_cookie + head + ip)
        self._made = (ts, client_cookie, ip, cookie)
        return cookie

    def valid(self, client_cookie: bytes, server_cookie: bytes, client: bytes, now: float | None = None) -> bool:
        """Whether `server_cookie` is one of ours for this client, within its time window."""
        if len(server_cookie) != 16 or server_cookie[:4] != _HEAD:
            return False
        now = self.clock() if now is None else now
        ts = int.from_bytes(server_cookie[4:8], "big")
        age = (int(now) - ts) & 0xFFFFFFFF  # serial-number arithmetic (RFC 1982), as RFC 9018 says
        if age >= 0x80000000:
            age -= 0x100000000
        if age > VALID_PAST or age < -VALID_FUTURE:
            return False
        msg = client_cookie + server_cookie[:8] + client_ip(client)
        if siphash24(self.secret, msg) == server_cookie[8:]:
            return True
        return self.previous is not None and now < self.previous_until and \
            siphash24(self.previous, msg) == server_cookie[8:]

    def respond(self, option: bytes, client: bytes) -> tuple[int, bytes]:
        """For a query's COOKIE option body: its status and the option to put in the response
        (the client cookie and a fresh server cookie, header included)."""
        client_cookie = option[:8]
        now = self.clock()
        if len(option) == 8:
            status = CLIENT_ONLY
        else:
            status = VALID if self.valid(client_cookie, option[8:], client, now) else BAD
        self.seen[status] += 1
        body = client_cookie + self.make(client_cookie, client, now)
        return status, struct.pack(">HH", OPTION_COOKIE, len(body)) + body


def find_option(data: bytes) -> bytes | None:
    """The COOKIE option body of a plain query (one question, an OPT last), or None.

    A cheap scan for the rate limiter, which asks only about responses it is about to limit."""
    if len(data) < 17 or data[10:12] != b"\x00\x01":
        return None
    pos = 12
    n = len(data)
    while pos < n and data[pos]:
        if data[pos] > 63:
            return None
        pos += data[pos] + 1
    pos += 5
    if pos + 11 > n or data[pos] != 0 or data[pos + 1:pos + 3] != b"\x00\x29":
        return None
    end = pos + 11 + ((data[pos + 9] << 8) | data[pos + 10])
    pos += 11
    while pos + 4 <= end <= n:
        code = (data[pos] << 8) | data[pos + 1]
        length = (data[pos + 2] << 8) | data[pos + 3]
        if code == OPTION_COOKIE:
            return data[pos + 4:pos + 4 + length] if pos + 4 + length <= end and check_length(length) else None
        pos += 4 + length
    return None


def has_valid_cookie(cookies: Cookies, data: bytes, client: bytes) -> bool:
    option = find_option(data)
    return option is not None and len(option) > 8 and cookies.valid(option[:8], option[8:], client)
