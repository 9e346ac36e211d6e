"""Random and mutated packets never raise out of the handler and never get a wrong-shaped reply.

Property: for any input, `Responder.answer` returns None (drop) or a message that dnspython
parses, with the query's ID, QR set, and one of the rcodes a query can earn. Then the same
garbage goes to a running server, which must still answer afterwards.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import struct
import tempfile

import dns.message
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.config import ServerConfig
from gslb.server.fastpath import Responder, Snapshot
from gslb.server.resolve import Zones
from gslb.zone.load import load_zones
from tests.support.dnsserver import ROOT, gslb_server

ALLOWED_RCODES = {dns.rcode.NOERROR, dns.rcode.FORMERR, dns.rcode.SERVFAIL, dns.rcode.NXDOMAIN, dns.rcode.NOTIMP,
                  dns.rcode.REFUSED, dns.rcode.NOTAUTH}


@pytest.fixture(scope="module")
def responder() -> Responder:
    zones, _ = load_zones(os.path.join(ROOT, "zones"), ServerConfig())
    extra, _ = load_zones(os.path.join(ROOT, "tests/data/zones"), ServerConfig())
    return Responder(Snapshot.build(Zones(zones + extra)), "fuzz-node", "gslb test")


SEEDS = [
    dns.message.make_query(name, rtype, use_edns=edns, want_dnssec=do, options=opts).to_wire()
    for name, rtype in [("www.example.com", "A"), ("x.apps.example.com", "A"), ("nope.example.com", "TXT"),
                        ("foo.lab.example.com", "NS"), ("big.example", "TXT"), ("example.com", "ANY")]
    for edns, do, opts in [(False, False, None), (0, True, None),
                           (0, False, [dns.edns.ECSOption("198.51.100.0", 24)]),
                           (0, False, [dns.edns.GenericOption(3, b"")])]
]


def check_reply(query: bytes, reply: bytes | None) -> None:
    if reply is None:
        return
    assert len(reply) >= 12
    assert reply[:2] == query[:2]  # same ID
    assert reply[2] & 0x80  # QR
    if (reply[2] >> 3) & 0xF:  # not a QUERY: NOTIMP/FORMERR, header (and question) only
        assert reply[3] & 0xF in (dns.rcode.NOTIMP, dns.rcode.FORMERR)
        assert reply[6:10] == b"\x00\x00\x00\x00"  # no answer, no authority
        return
    msg = dns.message.from_wire(reply, ignore_trailing=False)
    assert msg.rcode() in ALLOWED_RCODES or msg.rcode() == 16  # BADVERS


def mutate(data: bytes, rnd: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.random()
        if op < 0.4 and b:
            b[rnd.randrange(len(b))] = rnd.randrange(256)
        elif op < 0.6 and b:
            del b[rnd.randrange(len(b)):]
        elif op < 0.8:
            pos = rnd.randrange(len(b) + 1)
            b[pos:pos] = bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 8)))
        elif len(b) > 13:
            b[rnd.randrange(12, len(b))] = rnd.choice([0xC0, 0x3F, 0x40, 0x00, 0xFF])
    return bytes(b)


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=0, max_size=600))
def test_random_bytes(responder, data):
    for tcp in (False, True):
        check_reply(data, responder.answer(data, bytes([198, 51, 100, 7]), tcp=tcp))


@settings(max_examples=5000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(SEEDS), st.integers(min_value=0, max_value=2**32 - 1))
def test_mutated_queries(responder, seed, salt):
    data = mutate(seed, random.Random(salt))
    check_reply(data, responder.answer(data, bytes.fromhex("20010db8000000000000000000000007")))


def test_label_loops_and_oversized_names(responder):
    head = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0)
    cases = [
        head + b"\xc0\x0c\x00\x01\x00\x01",  # pointer to itself
        head + b"\x01a\xc0\x0c\x00\x01\x00\x01",
        head + (b"\x3f" + b"a" * 63) * 5 + b"\x00\x00\x01\x00\x01",  # 320-octet name
        head + b"\x01a" * 130 + b"\x00\x00\x01\x00\x01",
        head + b"\x00",
    ]
    for data in cases:
        reply = responder.answer(data, bytes([192, 0, 2, 9]))
        check_reply(data, reply)
        assert reply is not None and dns.message.from_wire(reply).rcode() == dns.rcode.FORMERR


def test_live_server_survives_garbage():
    zones = tempfile.mkdtemp(prefix="gslb-fuzz-")
    shutil.copytree(os.path.join(ROOT, "zones"), zones, dirs_exist_ok=True)
    rnd = random.Random(1234)
    try:
        with gslb_server(zones, workers=2) as server:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for i in range(3000):
                    data = mutate(rnd.choice(SEEDS), rnd) if i % 2 else rnd.randbytes(rnd.randrange(0, 300))
                    s.sendto(data, ("127.0.0.1", server.port))
            for _ in range(50):  # and over TCP, some with lengths that lie
                with socket.create_connection(("127.0.0.1", server.port), timeout=2) as t:
                    body = mutate(rnd.choice(SEEDS), rnd)
                    t.sendall(struct.pack(">H", len(body) + rnd.choice([0, 0, 5, -1 if body else 0])) + body)
            assert server.alive()
            assert server.query("www.example.com").rcode() == dns.rcode.NOERROR
            assert server.query("www.example.com", tcp=True).answer
            assert "Traceback" not in server.log()
    finally:
        shutil.rmtree(zones, ignore_errors=True)
