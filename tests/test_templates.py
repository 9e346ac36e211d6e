"""Answers for names not in the table come from templates (gslb/server/table.py `Template`).

Three responders answer the same random names (random labels under wildcards, random NXDOMAIN
names, NODATA from wildcards and empty non-terminals, in random case, with and without EDNS,
ECS, DO, RD, CD): the engine (`Engine.answer_one`), the pure-Python responder (templates), and
a responder that compiles every such name for itself as the server did before templates (the
per-name reference, whose bytes are dnspython's compression). All three must agree byte for
byte, and the counters must too. A zone made for it has what can make a template go wrong:
labels equal to the SOA's mname/rname and to an MX exchange that does not exist, a CNAME at a
wildcard, a wildcard under a delegation, a DNAME, empty non-terminals, a GSLB wildcard, a GSLB CNAME wildcard
(one of its targets below it) and a wildcard CNAME to a GSLB name (per-client answers, one picker
per prefix length).
"""

from __future__ import annotations

import os
import random
import struct
import tempfile

import dns.edns
import dns.message
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.answers import Answers
from gslb.config import ServerConfig
from gslb.geo import locator_for
from gslb.server import native
from gslb.server.fastpath import Responder
from gslb.server.table import Entry
from gslb.zone.load import load_zones
from tests.support.dnsserver import ROOT
from tests.test_native_engine import CLIENTS, Pair, ecs_options, to_wire

ZONE = """\
---
'':
- type: NS
  values:
  - ns1.t.example.net.
  - ns.example.com.
'*':
- type: MX
  value:
    exchange: mail.t.example.net.
    preference: 10
- type: TXT
  value: a wildcard
'*.cn':
  type: CNAME
  value: www.t.example.net.
'*.ext':
  type: CNAME
  value: target.example.com.
'*.geo':
  type: A
  value: 192.0.2.70
  dynamic:
    pools:
      eu:
        values:
        - value: 192.0.2.71
        - value: 192.0.2.72
          weight: 2
      us:
        values:
        - value: 198.51.100.71
    rules:
    - geos: [EU]
      pool: eu
    - pool: us
'*.gcn':
  type: CNAME
  value: www.gslb.example.com.
'*.gw':
  type: CNAME
  value: cdn.example.com.
  dynamic:
    pools:
      eu:
        values:
        - value: q.gw.t.example.net.
      us:
        values:
        - value: www.t.example.net.
        - value: edge.us.example.org.
    rules:
    - geos: [EU]
      pool: eu
    - pool: us
'*.any':
- type: A
  value: 192.0.2.60
- type: AAAA
  value: 2001:db8::60
a.b.c:
  type: A
  value: 192.0.2.4
del:
  type: NS
  values:
  - ns.del.t.example.net.
  - ns.example.com.
'*.del':
  type: A
  value: 192.0.2.9
ns.del:
  type: A
  value: 192.0.2.3
dn:
  type: DNAME
  value: example.com.
ns1:
  type: A
  value: 192.0.2.1
www:
  type: A
  value: 192.0.2.2
"""

# labels that collide with names the answers write (SOA mname/rname, MX exchange, glue) and
# with the sample labels templates are compiled for
LABELS = ["hostmaster", "ns1", "mail", "www", "ns", "del", "0", "1", "7", "*", "c", "b", "dn", "apps", "x-y",
          "geo", "gcn", "gw", "q", "00", "000"]
SERIAL = 2026120101
QTYPES = [1, 28, 5, 15, 16, 2, 6, 33, 43, 255, 12, 99, 65, 257, 46, 48]


class PerName(Responder):
    """The server before templates: every name not in the table compiled for itself."""

    def _from_template(self, key: bytes) -> Entry | None:
        return None


@pytest.fixture(scope="module")
def zone_dir() -> str:
    d = tempfile.mkdtemp(prefix="gslb-templates-")
    with open(os.path.join(d, "t.example.net.yaml"), "w") as f:
        f.write(ZONE)
    return d


@pytest.fixture(scope="module")
def sides(zone_dir: str) -> tuple[Pair | None, Responder, Responder, list[str]]:
    dirs = [zone_dir, os.path.join(ROOT, "zones"), os.path.join(ROOT, "tests/data/zones")]
    pair = Pair(dirs, SERIAL) if native._engine is not None else None
    zones = []
    for d in dirs:
        zones += load_zones(d, ServerConfig(), SERIAL)[0]  # one serial: the SOAs are the same bytes
    out = []
    for cls in (Responder, PerName):
        locator, site_list = locator_for(None, None, None)
        answers = Answers(zones, locator, site_list)
        answers.random.seed(7)
        responder = cls(answers.snapshot, "test-node", "gslb test", 1232)
        responder.engine = None
        out.append(responder)
    enclosers = sorted({n.to_text() for z in zones for n in z.names} | {"example.org.", "."})
    return pair, out[0], out[1], enclosers


@st.composite
def random_names(draw: st.DrawFn, enclosers: list[str]) -> bytes:
    labels = draw(st.lists(st.sampled_from(LABELS) | st.text("abcXYZ019-_", min_size=1, max_size=20),
                           min_size=1, max_size=3))
    base = draw(st.sampled_from(enclosers))
    name = ".".join(labels) + ("." + base if base != "." else ".")
    name = "".join(c.upper() if draw(st.booleans()) else c for c in name)
    qtype = draw(st.sampled_from(QTYPES) | st.integers(0, 65535))
    qclass = draw(st.sampled_from([1, 1, 1, 1, 3, 255]))
    flags = draw(st.sampled_from([0, 0x0100, 0x0010, 0x0110]))
    edns = draw(st.sampled_from(["none", "opt", "ecs", "do"]))
    additional, arcount = b"", 0
    if edns != "none":
        arcount = 1
        options = draw(ecs_options()) if edns == "ecs" else b""
        payload = draw(st.sampled_from([0, 512, 1232, 4096]))
        additional = struct.pack(">BHHBBHH", 0, 41, payload, 0, 0, 0x8000 if edns == "do" else 0,
                                 len(options)) + options
    qid = draw(st.integers(0, 0xFFFF))
    return struct.pack(">HHHHHH", qid, flags, 1, 0, 0, arcount) + to_wire(name) + struct.pack(
        ">HH", qtype, qclass) + additional


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_templates_equal_per_name_answers(sides, data: st.DataObject) -> None:
    pair, templated, per_name, enclosers = sides
    packet = data.draw(random_names(enclosers))
    if len(packet) > 12 + 255 + 4 + 40:
        return
    client = data.draw(st.sampled_from(CLIENTS))
    want = per_name.answer(packet, client)
    assert templated.answer(packet, client) == want, packet.hex()
    if pair is not None:
        for _ in range(2):  # the first may fill the engine's templates, the second is then native
            nat, py = pair.both(packet, client)
            assert nat == py == want, packet.hex()
        pair.check_counters()
    templated_counts = {k: n for k, n in templated.counts().items() if k[:2] != ("", 0)}
    assert templated_counts == {k: n for k, n in per_name.counts().items() if k[:2] != ("", 0)}


def flood(count: int, seed: int) -> list[bytes]:
    """Random-subdomain queries: random labels under wildcards and random NXDOMAIN names."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        label = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(6, 30)))
        if rng.random() < 0.3:
            label = label.upper()
        base = rng.choice(["apps.example.com", "example.com", "nope.example.com", "t.example.net",
                           "cn.t.example.net", "b.c.t.example.net", "del.t.example.net", "example"])
        q = dns.message.make_query(f"{label}.{base}", rng.choice(["A", "AAAA", "MX", "TXT"]),
                                   use_edns=rng.choice([False, 0]))
        q.id = i & 0xFFFF
        out.append(q.to_wire())
    return out


@pytest.mark.skipif(native._engine is None, reason="the native engine (_engine.c) was not built")
def test_random_names_are_native_and_bounded(zone_dir: str) -> None:
    """After the first of each encloser and type, random names are answered by the engine; no
    per-name entry is kept on either side, and the templates stay few."""
    pair = Pair([zone_dir, os.path.join(ROOT, "zones"), os.path.join(ROOT, "tests/data/zones")])
    warm = flood(400, 1)
    for packet in warm:
        nat, py = pair.both(packet, CLIENTS[0])
        assert nat == py
    before = pair.engine.stats()
    packets = flood(4000, 2)
    for packet in packets:
        nat, py = pair.both(packet, CLIENTS[1])
        assert nat == py
        assert nat[12:12 + len(packet) - 12 - (11 if packet[11] else 0)] == packet[
            12:len(packet) - (11 if packet[11] else 0)]  # the question as asked: case kept
    after = pair.engine.stats()
    assert after["native"] - before["native"] == len(packets)
    assert after["misses"] == before["misses"] and len(pair.py.misses) == len(pair.nat.misses) == 0
    assert after["templates"] == before["templates"] <= 100
    assert sum(len(t.by_plen) for t in pair.py.templates.values() if t is not None) <= 100 * 256
    pair.check_counters()


def test_template_cases(sides) -> None:
    """What each awkward case is answered with (and by which path)."""
    _pair, templated, per_name, _ = sides
    cases = [("x.cn.t.example.net", "A", "www.t.example.net."),  # CNAME at a wildcard, chased
             ("x.y.del.t.example.net", "A", None),  # below a delegation: a referral
             ("r.any.t.example.net", "ANY", None),
             ("r.t.example.net", "DS", None),
             ("zz.b.c.t.example.net", "A", None),  # below an empty non-terminal
             ("q.dn.t.example.net", "A", None),  # below a DNAME: compiled per name
             ("Hostmaster.T.example.NET", "MX", None),
             ("q.hostmaster.t.example.net", "MX", None),
             ("q.mail.t.example.net", "MX", None)]
    for name, rtype, target in cases:
        wire = dns.message.make_query(name, rtype).to_wire()
        got = templated.answer(wire, CLIENTS[0])
        assert got == per_name.answer(wire, CLIENTS[0]), name
        msg = dns.message.from_wire(got)
        assert msg.question[0].name.to_text().rstrip(".") == name.rstrip(".")  # case kept
        if target is not None:
            assert any(r.rdtype == 5 and r[0].target.to_text() == target for r in msg.answer)
    referral = dns.message.from_wire(templated.answer(dns.message.make_query("x.y.del.t.example.net", "A")
                                                      .to_wire(), CLIENTS[0]))
    assert not referral.answer and referral.authority[0].rdtype == 2
    below_dname = dns.message.make_query("q.dn.t.example.net", "A").to_wire()
    key = below_dname[12:-4].lower() + below_dname[-4:]
    assert key in templated.misses  # not templated: the CNAME it synthesises depends on the name


@pytest.mark.skipif(native._engine is None, reason="the native engine (_engine.c) was not built")
def test_template_caches_are_bounded(zone_dir: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many types and prefix lengths: the templates and their relocated answers are capped
    (8 and 50 here) and emptied when full, on both sides, and the answers and counts still agree."""
    from gslb.server import fastpath
    monkeypatch.setattr(fastpath, "TEMPLATE_MAX", 8)
    monkeypatch.setattr(fastpath, "RELOCATED_MAX", 50)
    pair = Pair([zone_dir])
    rng = random.Random(4)
    for i in range(3000):
        name = "r" * rng.randint(1, 60) + rng.choice([".t.example.net", ".x.cn.t.example.net", ".nope.t.example.net"])
        packet = struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0) + to_wire(name) + struct.pack(
            ">HH", rng.choice([1, 15, 16, 28, 99]) if i % 2 else rng.randint(1, 400), 1)
        for _ in range(2):
            nat, py = pair.both(packet, CLIENTS[0])
            assert nat == py, packet.hex()
        for side in (pair.nat, pair.py):
            assert len(side.templates) <= 8 and side._relocated <= 50 and not side.misses
        assert pair.engine.stats()["templates"] <= 8
    pair.check_counters()


def gslb_wildcard_queries(count: int, seed: int) -> list[tuple[bytes, str]]:
    """Random names below the GSLB wildcard, the GSLB CNAME wildcard and the wildcard CNAME to a
    GSLB name, from a client in Europe or elsewhere (ECS), each name asked once."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        label = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(rng.randint(4, 12)))
        base = rng.choice(["geo.t.example.net", "gcn.t.example.net", "gw.t.example.net"])
        where, subnet = rng.choice([("eu", "198.51.100.64"), ("elsewhere", "203.0.113.0")])
        rtype = rng.choice(["A", "CNAME"]) if base.startswith("gw") else "A"
        q = dns.message.make_query(f"{label}.{base}", rtype, use_edns=0,
                                   options=[dns.edns.ECSOption(subnet, 26 if where == "eu" else 24)])
        q.id = i & 0xFFFF
        out.append((q.to_wire(), where))
    return out


@pytest.mark.skipif(native._engine is None, reason="the native engine (_engine.c) was not built")
def test_gslb_wildcard_names_are_native(sides, zone_dir: str) -> None:
    """Random names below a GSLB wildcard get the per-client answer of a per-name compile, byte
    for byte, from the engine: after one picker per prefix length and one decision per client
    prefix, none needs Python, and nothing is kept per name."""
    _pair, _templated, per_name, _ = sides
    pair = Pair([zone_dir, os.path.join(ROOT, "zones"), os.path.join(ROOT, "tests/data/zones")], SERIAL)
    for packet, _where in gslb_wildcard_queries(1000, 1):  # every prefix length, type and client prefix
        pair.both(packet, CLIENTS[0])
    before = pair.engine.stats()
    pools = {"eu": {"192.0.2.71", "192.0.2.72"}, "elsewhere": {"198.51.100.71"}}
    targets = {"eu": {"q.gw.t.example.net."}, "elsewhere": {"www.t.example.net.", "edge.us.example.org."}}
    for packet, where in gslb_wildcard_queries(3000, 2):
        nat, py = pair.both(packet, CLIENTS[0])
        assert nat == py == per_name.answer(packet, CLIENTS[0]), packet.hex()
        msg = dns.message.from_wire(nat)
        if ".geo." in msg.question[0].name.to_text():
            assert {r.address for r in msg.answer[-1]} <= pools[where], msg
        if ".gw." in msg.question[0].name.to_text():
            cname = msg.answer[0]
            assert cname.name == msg.question[0].name and {r.target.to_text() for r in cname} <= targets[where], msg
            # a target in our zones is chased (www: its A); one below the GSLB wildcard itself,
            # or outside our zones, is not
            chased = cname[0].target.to_text() == "www.t.example.net." and msg.question[0].rdtype == 1
            assert [r.to_text() for r in msg.answer[1:]] == (["www.t.example.net. 3600 IN A 192.0.2.2"] if chased
                                                             else []), msg
    after = pair.engine.stats()
    assert after["native"] - before["native"] == 3000 and after["picks"] == before["picks"]
    assert after["misses"] == before["misses"] and len(pair.nat.misses) == len(pair.py.misses) == 0
    # a target below the wildcard (q.gw): a name ending in it compresses the CNAME into the
    # question, so it is a stop name and answered for itself
    for name in ("q.gw.t.example.net", "Q.Gw.t.example.net", "a.q.gw.t.example.net", "0.q.gw.t.example.net",
                 "qq.gw.t.example.net", "a.b.gw.t.example.net"):
        for subnet, bits in (("198.51.100.64", 26), ("203.0.113.0", 24)):
            for rtype in ("A", "CNAME"):
                packet = dns.message.make_query(name, rtype, use_edns=0,
                                                options=[dns.edns.ECSOption(subnet, bits)]).to_wire()
                for _ in range(2):
                    nat, py = pair.both(packet, CLIENTS[0])
                    assert nat == py == per_name.answer(packet, CLIENTS[0]), (name, subnet, rtype)
    pair.check_counters()


@pytest.mark.parametrize("native", [True, False], ids=["engine", "python"])
def test_a_real_server_counts_template_answers(native: bool) -> None:
    """Random names under a wildcard and random NXDOMAIN names are counted in the node's
    counters (control `status`, /metrics) by rcode, like every other answer: a random-subdomain
    flood must show in the query rate."""
    if native and native_reason():
        pytest.skip(native_reason())
    from tests.support.dnsserver import gslb_server

    with gslb_server(os.path.join(ROOT, "zones"), env={} if native else {"GSLB_NO_NATIVE": "1"}) as server:
        before = server.settled_status()
        rng = random.Random(3)
        for i in range(200):
            label = rng.randrange(10**9)
            server.query(f"r{label}.apps.example.com" if i % 2 else f"nx{label}.example.com")
        after = server.status_after(before, 200)
    assert after["queries"] - before["queries"] == 200
    by_rcode = {rcode: after["by_rcode"].get(rcode, 0) - before["by_rcode"].get(rcode, 0) for rcode in ("0", "3")}
    assert by_rcode == {"0": 100, "3": 100}
    if native:
        assert after["native_answers"] - before["native_answers"] >= 190  # the first of each kind: Python's


def native_reason() -> str:
    if native._engine is None:
        return "the native engine (_engine.c) was not built"
    return "GSLB_NO_NATIVE is set" if os.environ.get("GSLB_NO_NATIVE") else ""
