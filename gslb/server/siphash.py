"""SipHash-2-4 (Aumasson and Bernstein), the keyed hash of interoperable DNS cookies (RFC 9018).

A plain Python rendering of the reference implementation: 64-bit words, little-endian, a 16-octet
key, an 8-octet result (the reference's byte order). Small fixed state, no allocation beyond ints,
so the same function is easy to do in C for the native engine.
"""

from __future__ import annotations

import os

_M = 0xFFFFFFFFFFFFFFFF


def _rotl(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & _M


def siphash24_py(key: bytes, data: bytes) -> bytes:
    """The 8-octet SipHash-2-4 of `data` under the 16-octet `key`."""
    if len(key) != 16:
        raise ValueError("SipHash needs a 16-octet key")
    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    v0 = k0 ^ 0x736F6D6570736575
    v1 = k1 ^ 0x646F72616E646F6D
    v2 = k0 ^ 0x6C7967656E657261
    v3 = k1 ^ 0x7465646279746573
    n = len(data)
    end = n - (n % 8)
    for i in range(0, end + 8, 8):
        if i < end:
            m = int.from_bytes(data[i:i + 8], "little")
        else:  # the last block: the remaining octets and the length in the top octet
            m = int.from_bytes(data[end:], "little") | ((n & 0xFF) << 56)
        v3 ^= m
        for _ in range(2):
            v0 = (v0 + v1) & _M
            v1 = ((v1 << 13) | (v1 >> 51)) & _M
            v1 ^= v0
            v0 = ((v0 << 32) | (v0 >> 32)) & _M
            v2 = (v2 + v3) & _M
            v3 = ((v3 << 16) | (v3 >> 48)) & _M
            v3 ^= v2
            v0 = (v0 + v3) & _M
            v3 = ((v3 << 21) | (v3 >> 43)) & _M
            v3 ^= v0
            v2 = (v2 + v1) & _M
            v1 = ((v1 << 17) | (v1 >> 47)) & _M
            v1 ^= v2
            v2 = ((v2 << 32) | (v2 >> 32)) & _M
        v0 ^= m
    v2 ^= 0xFF
    for _ in range(4):
        v0 = (v0 + v1) & _M
        v1 = _rotl(v1, 13) ^ v0
        v0 = _rotl(v0, 32)
        v2 = (v2 + v3) & _M
        v3 = _rotl(v3, 16) ^ v2
        v0 = (v0 + v3) & _M
        v3 = _rotl(v3, 21) ^ v0
        v2 = (v2 + v1) & _M
        v1 = _rotl(v1, 17) ^ v2
        v2 = _rotl(v2, 32)
    return ((v0 ^ v1 ^ v2 ^ v3) & _M).to_bytes(8, "little")


try:  # the C rendering (gslb/server/_siphash.c), ~100x faster; this module is the reference
    if os.environ.get("GSLB_NO_NATIVE"):  # pure Python everywhere (debugging, tests)
        raise ImportError
    from gslb.server._siphash import siphash24
except ImportError:
    siphash24 = siphash24_py
