"""The native engine answers DO queries of signed zones from the signed twin (Entry.signed), and
the Python responder stays the reference: byte for byte, counters included.

Differential (as test_native_engine.py, over zones/ with example.com signed by a CSK, alg 13,
and gslb.example.com by KSK+ZSK, alg 15; example.net unsigned; example.org, signed, with answers
of many sizes): random names and case, DO on and
off, EDNS payload sizes down to ones that truncate signed answers, ECS, GSLB names. Then: the
second DO query of a signed name (static, GSLB with ECS, a compiled miss) is answered natively,
and after a signature refresh (a reload with the signers' clock moved on) the engine sends the
new signatures.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import tempfile
from collections.abc import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.config import load_config
from gslb.dnssec import serve, state
from gslb.server import native
from tests.support.dnsserver import ROOT
from tests.test_native_engine import CLIENTS, Pair, describe, ecs_options, queries, random_case, to_wire

pytestmark = pytest.mark.skipif(native._engine is None, reason="the native engine (_engine.c) was not built")

ORIGIN = dns.name.from_text("example.com.")
GSLB = dns.name.from_text("gslb.example.com.")
GSLB_NAMES = ["api.gslb.example.com.", "edge.gslb.example.com.", "static.gslb.example.com.",
              "www.gslb.example.com.", "geo.gslb.example.com."]
PAYLOADS = [0, 100, 300, 511, 512, 513, 600, 700, 800, 1000, 1232, 1400, 4096, 65535]


BIG = dns.name.from_text("example.org.")
BIG_ZONE = """---
# Signed answers of every size around the payload limits: truncated at 512, 600, 1232 ...
'':
  - type: NS
    values: [ns1.example.com., ns2.example.com.]
"""
BIG_ZONE += "".join(f"""big{n}:
  - type: TXT
    values: [{", ".join(f'"record {i} of {n}: {"x" * 40}"' for i in range(n))}]
  - type: A
    values: [{", ".join(f"192.0.2.{i + 1}" for i in range(n))}]
""" for n in (4, 8, 12, 20, 30))


def signed_pair(workdir: str, decision_cap: int = 1000) -> Pair:
    cfg_path = os.path.join(workdir, "gslb.yaml")
    with open(cfg_path, "w") as f:
        f.write("zones:\n  example.com:\n    dnssec: true\n  example.org:\n    dnssec: true\n"
                "  gslb.example.com:\n    dnssec: {algorithm: 15, scheme: ksk+zsk}\n")
    os.makedirs(os.path.join(workdir, "zones"))
    with open(os.path.join(workdir, "zones", "example.org.yaml"), "w") as f:
        f.write(BIG_ZONE)
    state.keygen(os.path.join(workdir, "keys"), ORIGIN)
    state.keygen(os.path.join(workdir, "keys"), BIG)
    state.keygen(os.path.join(workdir, "keys"), GSLB, algorithm=15, split=True)
    return Pair([os.path.join(ROOT, "zones"), os.path.join(workdir, "zones")], decision_cap=decision_cap,
                cfg=load_config(cfg_path))


def _pair() -> Iterator[Pair]:
    workdir = tempfile.mkdtemp(prefix="gslb-nsig-")
    try:
        p = signed_pair(workdir)
        assert set(serve.signers()) == {ORIGIN, GSLB, BIG}
        yield p
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def pair() -> Iterator[Pair]:
    """Shared by the differential examples (its native miss table, 64 entries, fills and empties)."""
    yield from _pair()


@pytest.fixture
def fresh() -> Iterator[Pair]:
    """Its own keys and tables: the signers of the pair made last are the ones in service."""
    yield from _pair()


def query(name: str, qtype: int = 1, do: bool = True, payload: int = 1232, ecs: bytes = b"", qid: int = 0x1234,
          flags: int = 0x0100) -> bytes:
    packet = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, 1) + to_wire(name) + struct.pack(">HH", qtype, 1)
    return packet + struct.pack(">BHHBBHH", 0, 41, payload, 0, 0, 0x8000 if do else 0, len(ecs)) + ecs


@st.composite
def do_queries(draw: st.DrawFn, names: list[str]) -> bytes:
    """Mostly DO queries of the signed zones' names: every path that has a signed twin."""
    name = draw(st.sampled_from(names + GSLB_NAMES))
    if draw(st.integers(0, 4)) == 0:  # a never-seen name: a compact denial, or a wildcard expansion
        name = draw(st.text("abcXYZ019-", min_size=1, max_size=10)) + "." + name
    qtype = draw(st.sampled_from([1, 1, 28, 5, 15, 16, 2, 6, 33, 43, 48, 257, 65, 99]))
    ecs = draw(ecs_options()) if draw(st.booleans()) else b""
    do = draw(st.integers(0, 3)) > 0
    payload = draw(st.sampled_from(PAYLOADS))
    flags = draw(st.sampled_from([0, 0x0100, 0x0010, 0x0110]))
    return query(random_case(draw, name), qtype, do=do, payload=payload, ecs=ecs, qid=draw(st.integers(0, 0xFFFF)),
                 flags=flags)


def same(pair: Pair, packet: bytes, client: bytes) -> bytes | None:
    for _ in range(2):  # the first may fill the native tables, the second is then native
        nat, py = pair.both(packet, client)
        assert nat == py, (packet.hex(), client.hex(), describe(nat), describe(py))
    return nat


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_differential_signed(pair: Pair, data: st.DataObject) -> None:
    names = pair.names()
    packet = data.draw(do_queries(names) if data.draw(st.booleans()) else queries(names))
    same(pair, packet, data.draw(st.sampled_from(CLIENTS)))
    pair.check_counters()


def _native_delta(pair: Pair, packets: list[tuple[bytes, bytes]]) -> int:
    for packet, client in packets:
        same(pair, packet, client)  # fills the tables (misses, decisions)
    before = pair.engine.stats()["native"]
    for packet, client in packets:
        nat, py = pair.both(packet, client)
        assert nat == py
    return pair.engine.stats()["native"] - before


def test_signed_answers_are_native(fresh: Pair) -> None:
    """DO answers with RRSIGs come from the engine, not Python: static names, compiled misses
    (a denial, a wildcard expansion), GSLB names with and without ECS."""
    pair = fresh
    ecs = [b"", dns.edns.ECSOption("198.51.100.0", 24).to_wire(), dns.edns.ECSOption("203.0.113.0", 24).to_wire()]
    packets = [(query(n, t, ecs=(struct.pack(">HH", 8, len(e)) + e) if e else b""), c)
               for n in ["www.example.com.", "example.com.", "nope.example.com.", "x.apps.example.com.",
                         *GSLB_NAMES]
               for t in (1, 28) for e in ecs for c in CLIENTS[:3]]
    for packet, client in packets[:4]:
        reply = dns.message.from_wire(same(pair, packet, client))
        assert reply.ednsflags & dns.flags.DO
        assert any(r.rdtype == dns.rdatatype.RRSIG for r in reply.answer + reply.authority), reply
    assert _native_delta(pair, packets) == len(packets)
    pair.check_counters()


def test_signed_answers_truncate_as_python_does(fresh: Pair) -> None:
    """A signed answer longer than the payload size gets TC and no records, natively."""
    pair = fresh
    packets = [(query(f"big{n}.example.org.", t, payload=p), CLIENTS[0])
               for n in (4, 8, 12, 20, 30) for t in (1, 16) for p in (0, 512, 600, 1232, 4096)]
    packets += [(query("api.gslb.example.com.", 1, payload=p), CLIENTS[1]) for p in (0, 512, 4096)]
    before = pair.nat.stats.truncated
    assert _native_delta(pair, packets) == len(packets)
    tc = dns.message.from_wire(same(pair, query("big30.example.org.", 16, payload=1232), CLIENTS[0]))
    assert tc.flags & dns.flags.TC and not tc.answer and tc.ednsflags & dns.flags.DO
    pair.check_counters()
    assert pair.nat.stats.truncated > before


def test_health_change_reaches_signed_gslb_answers(fresh: Pair) -> None:
    """Health moves the decisions; the engine's DO answers follow (each decision's signed twin)."""
    rng = random.Random(9)
    battery = []
    for name in GSLB_NAMES:
        for client in CLIENTS:
            for do in (True, False):
                battery.append((query(name, do=do), client))
                net = f"{rng.choice(['192.0.2', '198.51.100', '203.0.113'])}.0"
                option = dns.edns.ECSOption(net, rng.choice([0, 16, 24])).to_wire()
                battery.append((query(name, do=do, ecs=struct.pack(">HH", 8, len(option)) + option), client))
    checks = fresh.checks()
    for _round in range(8):
        assert _native_delta(fresh, battery) > len(battery) // 2
        fresh.set_health({key: (rng.random() < 0.6, {"ams": rng.uniform(1, 90), "nyc": rng.uniform(1, 90)})
                          for key in checks})
    fresh.check_counters()


def test_refreshed_signatures_reach_the_engine(fresh: Pair) -> None:
    """A refresh recompiles the answers (a reload); the engine sends the new signatures."""
    p = fresh
    packets = [(query(n), CLIENTS[0]) for n in ("www.example.com.", "api.gslb.example.com.")]
    old = [same(p, packet, client) for packet, client in packets]
    signers = list(serve.signers().values())
    later = max(s.refresh_due() or 0 for s in signers) + 7200
    clocks = [s.clock for s in signers]
    try:
        for signer in signers:
            signer.clock = lambda: later
        for answers, responder in ((p.nat_answers, p.nat), (p.py_answers, p.py)):
            responder._retire([answers.answer_cache])
            answers.load(p.zones)
            responder.swap(answers.snapshot)
        new = [same(p, packet, client) for packet, client in packets]
        assert all(a != b for a, b in zip(old, new, strict=True))
        assert _native_delta(p, packets) == len(packets)
        p.check_counters()
    finally:
        for signer, clock in zip(signers, clocks, strict=True):
            signer.clock = clock
