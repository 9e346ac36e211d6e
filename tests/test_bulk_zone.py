"""Large plain zones from the native store (gslb/zone/bulk.py) against the loader's model, the reference.

Differential: one zone file, loaded once by the loader (Python model, compiled table,
templates) and once by the native reader into a store; the same random queries (every name,
random names below them, random case, qtypes, EDNS, ECS, DO, payload sizes, malformed ones)
through the engine (`Engine.answer_one`), through the bulk responder's Python path, and
through the reference; all three must be byte-identical, and so must the counters. Then the
reader's declines (a file the loader would warn about is the loader's, with its problems),
AXFR, and a real `gslb serve`.
"""

from __future__ import annotations

import os
import random
import struct

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.answers import Answers
from gslb.config import ServerConfig
from gslb.geo import locator_for
from gslb.server import native, xfr
from gslb.server.fastpath import Responder
from gslb.zone import bulk
from gslb.zone.load import load_zones
from tests.support import bigzone
from tests.support.dnsserver import ROOT
from tests.test_native_engine import CLIENTS, describe, queries, unshuffled, zone_names

pytestmark = pytest.mark.skipif(bulk._bulk is None or native._engine is None,
                                reason="the native reader (_bulk.c) or engine was not built")

ORIGIN = "big.example.org"

EXTRA = """\
'*.wild':
  - type: A
    value: 198.51.100.80
  - type: TXT
    value: wildcard text
'*.cn':
  type: CNAME
  value: h2.big.example.org.
deep.a.b.c:
  type: A
  value: 192.0.2.200
chain1:
  type: CNAME
  value: chain2.big.example.org.
chain2:
  type: CNAME
  value: Chain3.BIG.example.org.
chain3:
  type: CNAME
  value: h4.big.example.org.
loop1:
  type: CNAME
  value: loop2.big.example.org.
loop2:
  type: CNAME
  value: loop1.big.example.org.
dangling:
  type: CNAME
  value: nothing-here.big.example.org.
toempty:
  type: CNAME
  value: a.b.c.big.example.org.
towild:
  type: CNAME
  value: x.wild.big.example.org.
outside:
  type: CNAME
  value: www.example.net.
served:
  type: CNAME
  value: www.example.com.
toapex:
  type: CNAME
  value: big.example.org.
long-txt:
  type: TXT
  value: "%s"
escaped:
  type: TXT
  values: ['v=one\\\\; two', "quoted \\"inner\\" text"]
mail:
  type: MX
  values:
    - preference: 10
      exchange: MX1.big.example.org.
    - {preference: 20, exchange: mx.example.net.}
ptr-1:
  type: PTR
  values: [h1.big.example.org., Host.Example.NET.]
_sip._tcp:
  type: TXT
  value: underscore
7:
  type: A
  value: 192.0.2.7
1.2.3:
  type: AAAA
  value: 2001:db8::123
host-v6:
  type: AAAA
  values: [2001:db8::1, "2001:DB8:0:0:1::2", fe80::a]
ns1:
  type: A
  value: 192.0.2.53
""" % ("x" * 600)


def zone_text(names: int) -> str:
    text = bigzone.yaml_text(names).replace(".example.com.", f".{ORIGIN}.")
    text = text.replace("values: [ns1.example.net., ns2.example.net.]", f"values: [ns1.{ORIGIN}., ns2.example.net.]")
    return text + EXTRA


@pytest.fixture(scope="module")
def zone_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    d = tmp_path_factory.mktemp("bulk")
    with open(d / f"{ORIGIN}.yaml", "w") as f:
        f.write(zone_text(1500))
    return str(d), os.path.join(ROOT, "zones")


class Trio:
    """The reference (loader, pure Python), and the bulk zone through the engine and in Python."""

    def __init__(self, dirs: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
        unshuffled()
        cfg = ServerConfig()
        monkeypatch.setenv("GSLB_BULK_MIN_BYTES", str(1 << 40))
        self.ref_zones = [z for d in dirs for z in load_zones(d, cfg, 2026120201)[0]]
        monkeypatch.setenv("GSLB_BULK_MIN_BYTES", "0")
        self.bulk_zones = [z for z in load_zones(dirs[0], cfg, 2026120201)[0]]
        monkeypatch.setenv("GSLB_BULK_MIN_BYTES", str(1 << 40))
        self.bulk_zones += [z for z in load_zones(dirs[1], cfg, 2026120201)[0]]
        assert bulk.is_bulk(self.bulk_zones[0]) and not any(bulk.is_bulk(z) for z in self.ref_zones)
        self.ref, self.ref_answers = self.responder(self.ref_zones, False)
        self.nat, self.nat_answers = self.responder(self.bulk_zones, True)
        self.bpy, self.bpy_answers = self.responder(self.bulk_zones, False)

    @staticmethod
    def responder(zones: list, engine: bool) -> tuple[Responder, Answers]:
        locator, sites = locator_for(None, None, None)
        answers = Answers(zones, locator, sites)
        answers.random.seed(7)
        responder = Responder(answers.snapshot, "test-node", "gslb test", 1232)
        if not engine:
            responder.engine = None
        elif responder.engine is None:
            pytest.skip("the native engine is disabled here")
        return responder, answers

    def three(self, packet: bytes, client: bytes) -> tuple[bytes | None, bytes | None, bytes | None]:
        assert self.nat.engine is not None
        return (self.nat.engine.answer_one(packet, client, self.nat), self.bpy.answer(packet, client),
                self.ref.answer(packet, client))

    def names(self) -> list[str]:
        return zone_names(self.ref_zones)  # the loader's model lists every name


@pytest.fixture(scope="module")
def trio(zone_dirs: tuple[str, str]) -> Trio:
    with pytest.MonkeyPatch.context() as mp:
        return Trio(zone_dirs, mp)


def own(counts: dict) -> dict:
    return {k: n for k, n in counts.items() if k[:2] != ("", 0)}


@settings(max_examples=2500, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_differential(trio: Trio, data: st.DataObject) -> None:
    packet = data.draw(queries(trio.names()))
    client = data.draw(st.sampled_from(CLIENTS))
    nat, bpy, ref = trio.three(packet, client)
    assert nat == ref, (packet.hex(), describe(nat), describe(ref))
    assert bpy == ref, (packet.hex(), describe(bpy), describe(ref))


def test_every_name_and_type(trio: Trio) -> None:
    """Each owner, and each below it, with each common type, in random case: the engine
    answers (natively: no Python fallback for these), with the reference's bytes."""
    rng = random.Random(3)
    before = trio.nat.engine.stats()
    sent = 0
    for name in trio.names():
        if not name.endswith(ORIGIN + ".") or name == ORIGIN + ".":
            continue
        for qname in (name, "zz." + name):
            wire = b"".join(bytes([len(label)]) + "".join(c.upper() if rng.random() < 0.3 else c for c in label)
                            .encode() for label in qname.rstrip(".").split(".")) + b"\x00"
            for qtype in (1, 28, 5, 15, 16, 12, 6, 2, 99):
                packet = struct.pack(">HHHHHH", rng.randrange(65536), 0x0100, 1, 0, 0, 0) + wire + struct.pack(
                    ">HH", qtype, 1)
                nat, bpy, ref = trio.three(packet, CLIENTS[0])
                assert nat == ref == bpy, (qname, qtype, describe(nat), describe(ref))
                sent += 1
    after = trio.nat.engine.stats()
    fallback = after["fallback"] - before["fallback"]
    assert after["native"] - before["native"] >= sent - fallback
    assert fallback < sent * 0.02, f"{fallback} of {sent} went to Python"  # the chains into other zones
    assert after["misses"] == before["misses"], "bulk answers are not copied into the miss table"


def test_counters_agree(trio: Trio) -> None:
    """What the engine sent from the store is counted by zone, type and rcode like the reference."""
    ref_before, nat_before = own(trio.ref.counts()), own(trio.nat.counts())
    for i in range(300):
        qname = f"h{i}.{ORIGIN}." if i % 3 else f"missing{i}.{ORIGIN}."
        packet = dns.message.make_query(qname, "A" if i % 2 else "MX").to_wire()
        trio.three(packet, CLIENTS[1])

    def grown(now: dict, before: dict) -> dict:
        return {k: n - before.get(k, 0) for k, n in now.items() if n != before.get(k, 0)}

    assert grown(own(trio.nat.counts()), nat_before) == grown(own(trio.ref.counts()), ref_before)
    assert grown(own(trio.bpy.counts()), {}) != {}


def test_axfr_matches(trio: Trio) -> None:
    ref = next(z for z in trio.ref_zones if z.name == ORIGIN)
    big = next(z for z in trio.bulk_zones if z.name == ORIGIN)
    got = [(r.name, r.rdtype, r.ttl, sorted(rd.to_text() for rd in r)) for r in xfr.iter_rrsets(big)]
    want = [(r.name, r.rdtype, r.ttl, sorted(rd.to_text() for rd in r)) for r in xfr.iter_rrsets(ref)]
    assert got == want
    assert len(got) > 2500


@pytest.mark.parametrize("change, reason", [
    ("  - type: SRV\n    value: {priority: 1, weight: 1, port: 5060, target: sip.example.net.}\n", "value key"),
    ("  - type: A\n    value: 192.0.2.1\n    octodns: {ignored: true}\n", "record key"),
    ("  - type: A\n    values: [192.0.2.9, 192.0.2.9]\n", "duplicate"),
    ("  - type: TXT\n    value: bare;semicolon\n", "value"),
    ("  - type: A\n    value: 010.0.2.1\n", "value"),
    ("  - type: A\n    ttl: 0x10\n    value: 192.0.2.1\n", "TTL"),
])
def test_declined_files_go_to_the_loader(tmp_path, monkeypatch, change: str, reason: str) -> None:
    """A file the reader does not take is the loader's: the same zone, or the same problems."""
    text = zone_text(50) + "odd:\n" + change
    path = tmp_path / f"{ORIGIN}.yaml"
    path.write_text(text)
    data = path.read_bytes()
    why = bulk._bulk.parse(data, bulk.origin_wire(dns.name.from_text(ORIGIN)), 3600, 2**31 - 1)
    assert isinstance(why, str) and reason in why and why.startswith("line ")
    monkeypatch.setenv("GSLB_BULK_MIN_BYTES", "0")
    try:
        zones, problems = load_zones(str(tmp_path), ServerConfig())
    except Exception as exc:  # the loader's problems, file:line and all
        problems, zones = getattr(exc, "problems", []), []
        assert problems and all(str(tmp_path) in str(p) for p in problems)
    monkeypatch.setenv("GSLB_BULK_MIN_BYTES", str(1 << 40))
    try:
        ref_zones, ref_problems = load_zones(str(tmp_path), ServerConfig())
    except Exception as exc:
        ref_problems, ref_zones = getattr(exc, "problems", []), []
    assert [str(p) for p in problems] == [str(p) for p in ref_problems]
    assert not any(bulk.is_bulk(z) for z in zones) and len(zones) == len(ref_zones)


def test_served_over_udp_and_tcp(tmp_path) -> None:
    """A real `gslb serve` with the zone in its store: answers over UDP (the engine) and TCP
    (Python, from the same store) equal to what the zone says."""
    from tests.support.dnsserver import gslb_server

    with open(tmp_path / f"{ORIGIN}.yaml", "w") as f:
        f.write(zone_text(3000))
    env = {"GSLB_BULK_MIN_BYTES": "0"}
    with gslb_server(str(tmp_path), workers=2, env=env) as server:
        port = server.port
        for i in (0, 1, 2, 9, 1234, 2999):
            for qtype in ("A", "TXT"):
                q = dns.message.make_query(f"h{i}.{ORIGIN}.", qtype)
                for how in (dns.query.udp, dns.query.tcp):
                    r = how(q, "127.0.0.1", port=port, timeout=3)
                    want = [rec for rec in bigzone.records(i) if rec[0] in (qtype, "CNAME")]
                    owner = q.question[0].name
                    got = {(rr.rdtype, rd.to_text().strip('"')) for rr in r.answer for rd in rr if rr.name == owner}
                    expect = {(dns.rdatatype.from_text(t), v.replace(".example.com.", f".{ORIGIN}."))
                              for t, _ttl, vals in want for v in vals}
                    assert got == expect, (i, qtype, how.__name__, r)
        r = dns.query.udp(dns.message.make_query(f"nothing.{ORIGIN}.", "A"), "127.0.0.1", port=port, timeout=3)
        assert r.rcode() == 3 and r.authority[0].rdtype == dns.rdatatype.SOA


# -- the reader against the loader on generated and mangled files --------------------------------

# (taken forms, forms the reader declines): mostly taken, so acceptance is exercised too
_NAMES = (["a", "b.a", "x.y.z", "*", "*.w", "h-1", "_s._t", "7", "1.2.3", "ns1", "m.x.y.z", "c"],
          ["a.*", "A", "010", "1.5", "yes", "null", "0x1f", "1:20", "a..b", "-", "''", '"q"', "~", "a*b"])
_VALUES = {
    "A": (["192.0.2.1", "'192.0.2.2'", "[192.0.2.3, 192.0.2.4]"],
          ["010.0.2.1", "192.0.2.256", "1.2.3", "[192.0.2.5, 192.0.2.5]", "yes", "''"]),
    "AAAA": (["2001:db8::1", "'2001:DB8::2'", "fe80::a", "2001:db8:0:0:1::2"],
             ["::1", "1:20", "'::ffff:1.2.3.4'", "2001:db8::1:2:3:4:5:6:7"]),
    "CNAME": (["b.a.big.example.org.", "www.example.net.", "'Mixed.Case.Example.net.'", "big.example.org.",
               "m.x.y.z.big.example.org."], ["no-dot.example.org", "[a.example.net., b.example.net.]", "."]),
    "MX": (["{preference: 10, exchange: mx.example.net.}",
            "[{preference: 1, exchange: a.example.net.}, {preference: 2, exchange: B.big.example.org.}]"],
           ["{preference: '10', exchange: mx.example.net.}", "{priority: 10, value: mx.example.net.}",
            "{preference: 70000, exchange: mx.example.net.}"]),
    "TXT": (["hello", "'semi\\; colon'", "'x y z'", "'" + "t" * 300 + "'", "v=spf1 -all"],
            ["bare;semi", "'\"quoted\"'", "12345", "yes", "[one, two, one]"]),
    "PTR": (["h.example.net.", "[a.example.net., b.example.net.]"], ["h.example.net"]),
    "NS": ([], ["ns1.example.net.", "[ns1.big.example.org., ns2.example.net.]"]),
    "SRV": ([], ["{priority: 1, weight: 2, port: 3, target: s.example.net.}"]),
    "SOA": ([], ["x"]),
    "a": ([], ["192.0.2.1"]),
}
_TTLS = (["", "", "300", "0", "86400"], ["'300'", "0x10", "010", "-1", "yes", "2147483648"])


def _pick(draw: st.DrawFn, forms: tuple[list[str], list[str]]) -> str:
    good, bad = forms
    return draw(st.sampled_from(bad if not good or draw(st.integers(0, 11)) == 0 else good))


@st.composite
def zone_files(draw: st.DrawFn) -> str:
    apex = "[ns1.example.net., ns2.example.net.]" if draw(st.integers(0, 9)) else "[ns1.big.example.org.]"
    lines = ["'':", "  - type: NS", f"    values: {apex}"]
    for _ in range(draw(st.integers(1, 8))):
        lines.append(f"{_pick(draw, _NAMES)}:")
        types = (["A", "AAAA", "TXT", "MX", "PTR", "CNAME"], sorted(_VALUES))
        for _ in range(draw(st.integers(1, 2))):
            rtype = _pick(draw, types)
            lines.append(f"  - type: {rtype}")
            ttl = _pick(draw, _TTLS)
            if ttl:
                lines.append(f"    ttl: {ttl}")
            value = _pick(draw, _VALUES[rtype])
            key = "values" if value.startswith("[") or draw(st.booleans()) else "value"
            lines.append(f"    {key}: {value}")
            if draw(st.integers(0, 15)) == 0:
                lines.append(f"    {draw(st.sampled_from(['octodns: {}', 'geo: x', 'Type: A', 'value: x']))}")
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 9)) == 0:
        pos = draw(st.integers(0, len(text) - 1))
        junk = draw(st.sampled_from(["\t", ":", "- ", "&a ", "*a", "!!str ", "\n", "#", "{", "'"]))
        text = text[:pos] + junk + text[pos:]
    return text


def _content(zone) -> list:
    return [(r.name, r.rdtype, r.ttl, [rd.to_text() for rd in r]) for r in xfr.iter_rrsets(zone)]


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=zone_files())
def test_reader_takes_only_what_the_loader_takes_the_same(tmp_path_factory, text: str) -> None:
    """Whatever the reader accepts, the loader loads without a problem into the same records; it
    never crashes on what it declines."""
    origin = dns.name.from_text(ORIGIN)
    found = bulk._bulk.parse(text.encode(), bulk.origin_wire(origin), 3600, 2**31 - 1)
    if isinstance(found, str):
        return
    d = tmp_path_factory.mktemp("fuzz")
    (d / f"{ORIGIN}.yaml").write_text(text)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GSLB_BULK_MIN_BYTES", str(1 << 40))
        ref, problems = load_zones(str(d), ServerConfig(), 1)
        mp.setenv("GSLB_BULK_MIN_BYTES", "0")
        big, _ = load_zones(str(d), ServerConfig(), 1)
    assert problems == [], text
    assert bulk.is_bulk(big[0])
    assert _content(big[0]) == _content(ref[0]), text


def test_reader_accepts_the_plain_forms() -> None:
    """The generator above is not all declines: the common forms are taken."""
    text = "\n".join([
        "'':", "  type: NS", "  values: [ns1.example.net.]", "a:", "  - type: A", "    value: 192.0.2.1",
        "  - type: TXT", "    values: [hello, 'semi\\; colon']", "7:", "  type: AAAA", "  value: 2001:db8::7",
        "x.y.z:", "  type: MX", "  value: {preference: 10, exchange: mx.example.net.}",
        "'*.w':", "  type: CNAME", "  value: a.big.example.org."]) + "\n"
    found = bulk._bulk.parse(text.encode(), bulk.origin_wire(dns.name.from_text(ORIGIN)), 3600, 2**31 - 1)
    assert not isinstance(found, str), found
    assert found.stats()["names"] == 5 and found.node(b"\x01y\x01z") == []  # an empty non-terminal


def test_pickled_store_answers_the_same(trio: Trio) -> None:
    """A worker hands its zones back pickled (a failed roll): the store comes back whole."""
    import pickle

    zone = next(z for z in trio.bulk_zones if bulk.is_bulk(z))
    again = pickle.loads(pickle.dumps(zone))
    again.store.set_others([])  # what a swap sets (the h names' chains stay in this zone)
    for i in range(0, 1500, 7):
        for qtype in (1, 28, 15, 16, 99):
            key = bulk.origin_wire(dns.name.from_text(f"h{i}.{ORIGIN}")) + struct.pack(">HH", qtype, 1)
            assert again.store.answer(key) == zone.store.answer(key)
    assert _content(again) == _content(zone)


def test_axfr_messages_carry_the_same_records(trio: Trio) -> None:
    """The AXFR stream of the bulk zone (records from the store) holds what the loader's has."""
    def records(zone) -> list:
        query = dns.message.make_query(ORIGIN + ".", "AXFR")
        out = []
        for i, message in enumerate(xfr.transfer(query, zone)):
            assert len(message) <= 65535
            parsed = dns.message.from_wire(message, one_rr_per_rrset=True, question_only=False,
                                           ignore_trailing=False)
            assert len(parsed.question) == (1 if i == 0 else 0)
            # names compared without case: the loader's compression points names at earlier
            # spellings of their suffix, the store writes each as the file does
            out += [(rr.name, rr.rdtype, rr.ttl, rd.to_text().lower()) for rr in parsed.answer for rd in rr]
        return out

    big = next(z for z in trio.bulk_zones if z.name == ORIGIN)
    ref = next(z for z in trio.ref_zones if z.name == ORIGIN)
    got, want = records(big), records(ref)
    assert got[0][1] == got[-1][1] == dns.rdatatype.SOA
    assert got == want


ASAN_SCRIPT = r"""
import importlib.util, sys
sys.path.insert(0, sys.argv[3])
for name, path in (("gslb.zone._bulk", sys.argv[1]), ("gslb.server._engine", sys.argv[2])):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
import os, pickle, random, struct, tempfile, pathlib
from gslb.zone import bulk
from gslb.server import native
assert bulk._bulk is sys.modules["gslb.zone._bulk"] and native._engine is sys.modules["gslb.server._engine"]
from tests import test_bulk_zone as t, test_native_engine as ne
origin = bulk.origin_wire(t.dns.name.from_text(t.ORIGIN))
text = t.zone_text(300).encode()
rng = random.Random(5)
for _ in range(3000):  # the reader on mangled files: declines, never a fault
    data = bytearray(text)
    for _ in range(rng.randrange(1, 6)):
        i = rng.randrange(len(data))
        junk = bytes(rng.choice(b"-:'\"[]{}*&!#\n\t .aZ09;") for _ in range(rng.randrange(0, 3)))
        data[i:i + rng.randrange(1, 4)] = junk
    bulk._bulk.parse(bytes(data[:rng.randrange(len(data) // 2, len(data) + 1)]), origin, 3600, 2**31 - 1)
d = pathlib.Path(tempfile.mkdtemp())
(d / f"{t.ORIGIN}.yaml").write_text(t.zone_text(1500))
mp = t.pytest.MonkeyPatch()
trio = t.Trio((str(d), os.path.join(ne.ROOT, "zones")), mp)
names = trio.names()
for i in range(20000):
    name = rng.choice(names)
    if rng.random() < 0.3:
        name = "".join(rng.choice("abz09-_*") for _ in range(rng.randrange(1, 9))) + "." + name
    wire = ne.to_wire("".join(c.upper() if rng.random() < 0.2 else c for c in name))
    qtype = rng.choice([1, 28, 5, 15, 16, 12, 2, 6, 255, 99, 0, 65535, 128])
    packet = struct.pack(">HHHHHH", i & 0xFFFF, 0x0100, 1, 0, 0, 0) + wire + struct.pack(">HH", qtype, 1)
    nat, bpy, ref = trio.three(packet, ne.CLIENTS[i % len(ne.CLIENTS)])
    assert nat == ref == bpy, packet.hex()
for packet in ne.fuzz_packets(29, 4000):
    nat, bpy, ref = trio.three(packet, ne.CLIENTS[0])
    assert nat == ref, packet.hex()
zone = next(z for z in trio.bulk_zones if bulk.is_bulk(z))
again = pickle.loads(pickle.dumps(zone))
assert t._content(again) == t._content(zone)
assert sum(len(m) for m in t.xfr.transfer(t.dns.message.make_query(t.ORIGIN + ".", "AXFR"), zone)) > 0
del trio, zone, again
print("ASAN-OK")
"""


def test_under_address_sanitizer(tmp_path) -> None:
    """The reader (on mangled files) and the engine's bulk answers (on random queries), built with
    AddressSanitizer, in a subprocess."""
    import shutil
    import subprocess
    import sys
    import sysconfig

    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    libasan = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not libasan or not os.path.isabs(libasan) or not os.path.exists(libasan):
        pytest.skip("libasan is not installed (gcc -print-file-name=libasan.so)")
    flags = ["-shared", "-fPIC", "-g", "-O1", "-fsanitize=address", "-fno-omit-frame-pointer",
             f"-I{sysconfig.get_paths()['include']}"]
    libs = {"_bulk": ("gslb/zone/_bulk.c", ["-lyaml"]), "_engine": ("gslb/server/_engine.c", [])}
    for name, (source, extra) in libs.items():
        build = subprocess.run([cc, *flags, os.path.join(ROOT, source), "-o", str(tmp_path / f"{name}.so"), *extra],
                               capture_output=True, text=True)
        assert build.returncode == 0, build.stderr
    script = tmp_path / "asan_run.py"
    script.write_text(ASAN_SCRIPT)
    env = {**os.environ, "LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
           "PYTHONMALLOC": "malloc"}
    env.pop("GSLB_NO_NATIVE", None)
    run = subprocess.run([sys.executable, str(script), str(tmp_path / "_bulk.so"), str(tmp_path / "_engine.so"), ROOT],
                         capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    assert run.returncode == 0 and "ASAN-OK" in run.stdout, run.stdout[-3000:] + run.stderr[-6000:]
