"""The native answer engine (gslb/server/_engine.c) against the Python responder, its reference.

Differential: the same random queries (zone names and random ones, random case, qtypes and
classes, with and without EDNS, ECS, DO, RD, CD, small and large payload sizes, malformed ones)
go through `Engine.answer_one` (the code path `Engine.serve` runs per packet: native when the
engine can, else `Responder.answer`) on one responder and through the pure-Python
`Responder.answer` on an identical one; the bytes must be equal, and so must the counters
(answers per zone/type/rcode, truncations, GSLB decision counts). A health change is seen by
the next answer. Fuzz: malformed packets never crash the parser and get Python's reply. ASan:
the extension rebuilt with -fsanitize=address runs the same fuzz in a subprocess. Real sockets:
`gslb serve` answers with the same bytes a local Python responder makes. The protocol suite
runs once more with GSLB_NO_NATIVE=1.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

import dns.edns
import dns.message
import dns.name
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.answers import Answers
from gslb.config import ServerConfig
from gslb.geo import locator_for
from gslb.server import native
from gslb.server.fastpath import Responder
from gslb.zone.load import load_zones
from tests.support.dnsserver import ROOT, gslb_server

pytestmark = pytest.mark.skipif(native._engine is None, reason="the native engine (_engine.c) was not built")

UDP_SIZE = 1232


def unshuffled() -> None:
    """dnspython shuffles each RRset's records when it renders one (so each compile of the same
    data may differ): turn that off, so two responders compile the very same bytes."""
    if getattr(dns.rdataset.Rdataset.to_wire, "unshuffled", False):
        return
    original = dns.rdataset.Rdataset.to_wire

    def to_wire(self, *args, **kwargs):
        kwargs["want_shuffle"] = False
        return original(self, *args, **kwargs)

    to_wire.unshuffled = True
    dns.rdataset.Rdataset.to_wire = to_wire


class Pair:
    """Two identical responders: `nat` answers through the engine, `py` in pure Python."""

    def __init__(self, zone_dirs: list[str], serial: int | None = None, udp_size: int = UDP_SIZE,
                 decision_cap: int = 1000, cfg: ServerConfig | None = None) -> None:
        unshuffled()
        cfg = cfg or ServerConfig()  # a gslb.yaml's config: signed zones (test_native_dnssec.py)
        zones = []
        for d in zone_dirs:
            zones += load_zones(d, cfg, serial)[0]
        self.zones = zones
        sides = []
        for _ in range(2):
            locator, sites = locator_for(None, None, None)
            answers = Answers(zones, locator, sites)
            answers.random.seed(7)
            sides.append((answers, Responder(answers.snapshot, "test-node", "gslb test", udp_size)))
        (self.nat_answers, self.nat), (self.py_answers, self.py) = sides
        self.engine = native._engine.Engine(udp_size, self.nat._opt_head, self.nat._opt_head_do, 64, decision_cap)
        self.nat.engine = self.engine
        self.nat.swap(self.nat_answers.snapshot)
        self.py.engine = None

    def both(self, packet: bytes, client: bytes) -> tuple[bytes | None, bytes | None]:
        return self.engine.answer_one(packet, client, self.nat), self.py.answer(packet, client)

    def set_health(self, health: dict) -> None:
        for answers, responder in ((self.nat_answers, self.nat), (self.py_answers, self.py)):
            if answers.set_health(health):
                responder.invalidate()

    def check_counters(self) -> None:
        """Same counters both ways. The header-only entries (REFUSED, NOTIMP, FORMERR: zone "",
        type 0) are module globals every responder in the process counts into: left out."""
        def own(counts: dict) -> dict:
            return {k: n for k, n in counts.items() if k[:2] != ("", 0)}

        assert own(self.nat.counts([self.nat_answers.answer_cache])) == own(
            self.py.counts([self.py_answers.answer_cache]))
        assert self.nat.stats.by_rcode == self.py.stats.by_rcode
        assert self.nat.stats.truncated == self.py.stats.truncated
        assert self.nat_answers.decisions == self.py_answers.decisions

    def names(self) -> list[str]:
        return zone_names(self.zones)

    def checks(self) -> list[str]:
        keys = set()
        for policy in self.nat_answers.policies.values():
            keys |= {check.key for check in policy.checks.values()}
        return sorted(keys)


def zone_names(zones: list) -> list[str]:
    """Names to ask the differential tests about: every name of the zones (from the loader's
    model), names below their wildcards, NXDOMAIN names, and a few outside or in CHAOS."""
    out = set()
    for zone in zones:
        for name in set(zone.nodes) | zone.names:
            text = name.to_text()
            if text.startswith("*."):
                out.add("random-label" + text[1:])
                out.add("a.b" + text[1:])
            out.add(text)
        out.add("nope." + zone.origin.to_text())
        out.add("x.y.nope." + zone.origin.to_text())
    out |= {"www.example.org.", "example.", ".", "id.server.", "version.bind.", "hostname.bind."}
    return sorted(out)


@pytest.fixture(scope="module")
def pair() -> Pair:
    return Pair([os.path.join(ROOT, "zones"), os.path.join(ROOT, "tests/data/zones")])


QTYPES = [1, 28, 5, 15, 16, 2, 6, 33, 65, 257, 255, 12, 64, 252, 251, 41, 99, 0, 65535, 46, 48, 43]
CLIENTS = [bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7]), bytes([203, 0, 113, 99]), bytes([127, 0, 0, 1]),
           bytes(10) + b"\xff\xff" + bytes([198, 51, 100, 9]),
           bytes.fromhex("20010db8000000000000000000000001"), bytes.fromhex("20010db8abcd00000000000000000002")]


def ecs_option(family: int, source: int, addr: bytes, scope: int = 0) -> bytes:
    body = struct.pack(">HBB", family, source, scope) + addr
    return struct.pack(">HH", 8, len(body)) + body


@st.composite
def ecs_options(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["v4", "v6", "zero", "bad", "empty"]))
    if kind == "empty":
        return struct.pack(">HH", 8, 0)
    if kind == "bad":
        return ecs_option(draw(st.integers(0, 3)), draw(st.integers(0, 255)),
                          draw(st.binary(max_size=17)), draw(st.integers(0, 2)))
    family = 2 if kind == "v6" else 1
    width = 128 if family == 2 else 32
    source = 0 if kind == "zero" else draw(st.integers(1, width))
    base = draw(st.sampled_from(CLIENTS[:3] if family == 1 else CLIENTS[5:]))
    addr = int.from_bytes(base[-(width // 8):], "big") ^ draw(st.integers(0, 255))
    addr &= ~((1 << (width - source)) - 1) & ((1 << width) - 1)
    raw = addr.to_bytes(width // 8, "big")[:(source + 7) // 8]
    return ecs_option(family, source, raw)


def random_case(draw: st.DrawFn, name: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return "".join(c.upper() if f else c for c, f in zip(name, flips, strict=True))


def to_wire(name: str) -> bytes:
    if name == ".":
        return b"\x00"
    out = b""
    for label in name.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


@st.composite
def queries(draw: st.DrawFn, names: list[str]) -> bytes:
    if draw(st.integers(0, 9)) < 3:  # random names: under wildcards, NXDOMAIN, NODATA, referrals (templates)
        labels = draw(st.lists(st.text("abcXYZ019-*_", min_size=1, max_size=12), min_size=1, max_size=4))
        suffix = draw(st.sampled_from(names))
        name = ".".join(labels) + "." + suffix if suffix != "." else ".".join(labels) + "."
    else:
        name = draw(st.sampled_from(names))
    qname = to_wire(random_case(draw, name))
    qtype = draw(st.sampled_from(QTYPES) | st.integers(0, 65535))
    qclass = draw(st.sampled_from([1, 1, 1, 1, 3, 254, 255, 4]))
    flags = draw(st.sampled_from([0, 0x0100, 0x0010, 0x0110]))
    if draw(st.integers(0, 19)) == 0:
        flags |= draw(st.integers(0, 0xFFFF))
    edns = draw(st.sampled_from(["none", "none", "opt", "opt", "ecs", "ecs", "other", "ecs+other", "v1"]))
    additional = b""
    arcount = 0
    if edns != "none":
        arcount = 1
        payload = draw(st.sampled_from([0, 100, 511, 512, 513, 600, 1000, 1232, 1400, 4096, 65535]))
        do = draw(st.booleans())
        options = b""
        if "ecs" in edns:
            options += draw(ecs_options())
        if "other" in edns:
            options += struct.pack(">HH", draw(st.sampled_from([3, 10, 12, 15])), 2) + b"\x00\x01"
        version = 1 if edns == "v1" else 0
        additional = struct.pack(">BHHBBHH", 0, 41, payload, 0, version, 0x8000 if do else 0,
                                 len(options)) + options
    qid = draw(st.integers(0, 0xFFFF))
    packet = struct.pack(">HHHHHH", qid, flags, 1, 0, 0, arcount) + qname + struct.pack(">HH", qtype, qclass)
    packet += additional
    mangle = draw(st.integers(0, 29))
    if mangle == 0:
        packet = packet[:draw(st.integers(0, len(packet)))]
    elif mangle == 1:
        packet += draw(st.binary(min_size=1, max_size=8))
    elif mangle == 2:
        pos = draw(st.integers(0, len(packet) - 1))
        packet = packet[:pos] + bytes([draw(st.integers(0, 255))]) + packet[pos + 1:]
    return packet


def describe(reply: bytes | None) -> str:
    try:
        return str(dns.message.from_wire(reply)) if reply else repr(reply)
    except Exception as exc:
        return f"{reply.hex()} ({exc})"


@settings(max_examples=3000, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_differential(pair: Pair, data: st.DataObject) -> None:
    packet = data.draw(queries(pair.names()))
    client = data.draw(st.sampled_from(CLIENTS))
    for _ in range(2):  # the first may fill the native tables, the second is then native
        nat, py = pair.both(packet, client)
        assert nat == py, (packet.hex(), client.hex(), describe(nat), describe(py))
    pair.check_counters()


def test_native_share(pair: Pair) -> None:
    """Known questions really are answered natively (not all handed back to Python)."""
    before = pair.engine.stats()
    packets = [dns.message.make_query(n, "A", use_edns=e).to_wire() for n in pair.names() for e in (False, 0)]
    for packet in packets * 2:
        nat, py = pair.both(packet, CLIENTS[0])
        assert nat == py
    after = pair.engine.stats()
    assert after["native"] - before["native"] >= len(packets)
    pair.check_counters()


def gslb_queries() -> list[tuple[bytes, bytes]]:
    out = []
    rng = random.Random(3)
    for name in ("api.gslb.example.com", "edge.gslb.example.com", "static.gslb.example.com",
                 "www.gslb.example.com", "geo.gslb.example.com"):
        for client in CLIENTS:
            out.append((dns.message.make_query(name, "A").to_wire(), client))
            for _ in range(3):
                net = f"{rng.choice(['192.0.2', '198.51.100', '203.0.113'])}.0"
                q = dns.message.make_query(name, "A", use_edns=0, options=[
                    dns.edns.ECSOption(net, rng.choice([0, 8, 16, 24, 32]))])
                out.append((q.to_wire(), client))
    return out


def test_health_change_reaches_native_answers(pair: Pair) -> None:
    """Decisions cached natively are forgotten when health changes (Responder.invalidate)."""
    rng = random.Random(5)
    checks = pair.checks()
    assert checks
    battery = gslb_queries()
    for _round in range(12):
        for packet, client in battery * 2:
            nat, py = pair.both(packet, client)
            assert nat == py
        health = {key: (rng.random() < 0.6, {"ams": rng.uniform(1, 90), "nyc": rng.uniform(1, 90)})
                  for key in checks}
        pair.set_health(health)
    assert pair.engine.stats()["picks"] > 0
    pair.check_counters()


def test_bounded_and_swap() -> None:
    """The miss table (64 here) and the decision cache (16) are capped, and a zone swap empties
    every native table."""
    # its own pair: swapping retires the hits of the shared header-only entries (REFUSED...)
    pair = Pair([os.path.join(ROOT, "zones"), os.path.join(ROOT, "tests/data/zones")], decision_cap=16)
    for packet, client in gslb_queries() * 2:
        nat, py = pair.both(packet, client)
        assert nat == py
    assert 0 < pair.engine.stats()["decisions"] <= 16
    for i in range(500):
        packet = dns.message.make_query(f"n{i}.nope.example.com", "A").to_wire()
        nat, py = pair.both(packet, CLIENTS[1])
        assert nat == py
    assert pair.engine.stats()["misses"] <= 64
    pair.check_counters()
    for side_answers, side in ((pair.nat_answers, pair.nat), (pair.py_answers, pair.py)):
        side._retire([side_answers.answer_cache])
        side_answers.load(pair.zones)
        side.swap(side_answers.snapshot)
    stats = pair.engine.stats()
    assert stats["misses"] == 0 and stats["decisions"] == 0
    for packet, client in gslb_queries():
        nat, py = pair.both(packet, client)
        assert nat == py
    pair.check_counters()


def fuzz_packets(seed: int, count: int) -> list[bytes]:
    rng = random.Random(seed)
    seeds = [dns.message.make_query(n, t, use_edns=e, want_dnssec=d, options=o).to_wire()
             for n in ("www.example.com", "x.apps.example.com", "nope.example.com", "api.gslb.example.com")
             for t in ("A", "TXT", "ANY")
             for e, d, o in ((False, False, None), (0, True, None),
                             (0, False, [dns.edns.ECSOption("198.51.100.0", 24)]))]
    out = []
    for _ in range(count):
        kind = rng.randrange(6)
        if kind == 0:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randrange(40))))
            continue
        p = bytearray(rng.choice(seeds))
        if kind == 1:
            p = p[:rng.randrange(len(p) + 1)]
        elif kind == 2:  # bad label lengths and compression pointers in the question
            p[12 + rng.randrange(4)] = rng.choice([0xC0, 0x3F, 0x40, 0xFF, 0, 1])
        elif kind == 3:  # bogus OPT fields: RDLENGTH, option length, version, ECS family/prefix
            if len(p) > 30 and p[11] == 1:
                i = len(p) - rng.randrange(1, 12)
                p[i] = rng.randrange(256)
        elif kind == 4:
            for _ in range(rng.randrange(1, 5)):
                p[rng.randrange(len(p))] = rng.randrange(256)
        else:
            p += bytes(rng.randrange(256) for _ in range(rng.randrange(1, 300)))
        out.append(bytes(p))
    return out


def test_fuzz_native_parser(pair: Pair) -> None:
    for packet in fuzz_packets(11, 20000):
        client = CLIENTS[len(packet) % len(CLIENTS)]
        nat, py = pair.both(packet, client)
        assert nat == py, packet.hex()
    # a long name at the limits and packets larger than the receive buffer
    long_name = (b"\x3f" + b"a" * 63) * 4
    for packet in [b"\x00\x01\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00" + long_name + b"\x00\x00\x01\x00\x01",
                   b"\x00" * 5000]:
        nat, py = pair.both(packet, CLIENTS[0])
        assert nat == py
    pair.check_counters()


ASAN_SCRIPT = r"""
import importlib.util, sys
sys.path.insert(0, sys.argv[2])
spec = importlib.util.spec_from_file_location("gslb.server._engine", sys.argv[1])
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
from gslb.server import native
native._engine = mod
from tests import test_native_engine as t
pair = t.Pair([t.os.path.join(t.ROOT, "zones"), t.os.path.join(t.ROOT, "tests/data/zones")])
assert type(pair.engine).__module__ == "gslb.server._engine" and pair.engine.__class__ is mod.Engine
for packet in t.fuzz_packets(23, 6000):
    nat, py = pair.both(packet, t.CLIENTS[len(packet) % len(t.CLIENTS)])
    assert nat == py, packet.hex()
from tests import test_templates as tt
for packet in tt.flood(3000, 5) * 2:  # random names: answered from templates
    nat, py = pair.both(packet, t.CLIENTS[0])
    assert nat == py, packet.hex()
assert pair.engine.stats()["templates"] > 0
tzone = tt.zone_dir.__wrapped__()  # the templates' own zone: a GSLB wildcard, per prefix length pickers
tpair = t.Pair([tzone, t.os.path.join(t.ROOT, "zones")])
for packet, _where in tt.gslb_wildcard_queries(2000, 3) * 2:
    nat, py = tpair.both(packet, t.CLIENTS[0])
    assert nat == py, packet.hex()
tpair.set_health({})
del tpair
for round_ in range(3):
    for packet, client in t.gslb_queries() * 2:
        nat, py = pair.both(packet, client)
        assert nat == py
    pair.set_health({key: (round_ % 2 == 0, {}) for key in pair.checks()})
pair.check_counters()
del pair
import pathlib, tempfile
t.test_random_pick_drawn_natively(pathlib.Path(tempfile.mkdtemp()))  # weighted draws, flushed and freed
t.test_tables_replaced_while_serving()  # tables swapped and freed beside a serving thread
print("ASAN-OK")
"""


def test_under_address_sanitizer(tmp_path) -> None:
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    libasan = subprocess.run([cc, "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not libasan or not os.path.isabs(libasan) or not os.path.exists(libasan):
        pytest.skip("libasan is not installed (gcc -print-file-name=libasan.so)")
    so = tmp_path / "_engine_asan.so"
    build = subprocess.run([cc, "-shared", "-fPIC", "-g", "-O1", "-fsanitize=address", "-fno-omit-frame-pointer",
                            f"-I{sysconfig.get_paths()['include']}", os.path.join(ROOT, "gslb/server/_engine.c"),
                            "-o", str(so)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    script = tmp_path / "asan_run.py"
    script.write_text(ASAN_SCRIPT)
    env = {**os.environ, "LD_PRELOAD": libasan, "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
           "PYTHONMALLOC": "malloc"}
    env.pop("GSLB_NO_NATIVE", None)
    run = subprocess.run([sys.executable, str(script), str(so), ROOT], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=600)
    assert run.returncode == 0 and "ASAN-OK" in run.stdout, run.stdout[-3000:] + run.stderr[-6000:]


def test_real_udp_same_bytes() -> None:
    """`gslb serve` (native engine in its worker) sends the bytes a local Python responder makes."""
    if os.environ.get("GSLB_NO_NATIVE"):
        pytest.skip("GSLB_NO_NATIVE is set: the server runs the Python path")
    zones_dir = tempfile.mkdtemp(prefix="gslb-native-")
    try:
        for name in ("example.com.yaml", "example.net.yaml"):
            shutil.copy(os.path.join(ROOT, "zones", name), zones_dir)
        with gslb_server(zones_dir) as server:
            soa = server.query("example.com.", "SOA")
            serial = soa.answer[0][0].serial
            pair = Pair([zones_dir], serial)
            names = [n for n in pair.names() if n.endswith(("example.com.", "example.net."))]
            rng = random.Random(9)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.settimeout(2)
                s.bind(("127.0.0.1", 0))
                for i in range(600):
                    name = "".join(c.upper() if rng.random() < 0.3 else c for c in rng.choice(names))
                    if rng.random() < 0.3:
                        name = f"r{rng.randrange(10**9)}.{name}"
                    q = dns.message.make_query(name, rng.choice(["A", "AAAA", "TXT", "MX", "NS", "SOA", "ANY", "SRV"]),
                                               use_edns=rng.choice([False, 0]), want_dnssec=rng.random() < 0.3,
                                               payload=rng.choice([512, 1232, 4096]))
                    q.id = i
                    if rng.random() < 0.5:
                        q.flags &= ~dns.flags.RD
                    packet = q.to_wire()
                    replies = []
                    for _ in range(2):  # the second is the engine's, from what the first filled in
                        s.sendto(packet, ("127.0.0.1", server.port))
                        replies.append(s.recv(65535))
                    assert replies[0] == replies[1], name
                    # the server compiled its own copy: records within an RRset may be in another
                    # order (dnspython shuffles them once, at compile time), so compare parsed
                    want = pair.py.answer(packet, bytes([127, 0, 0, 1]))
                    assert replies[0][:12] == want[:12], name
                    assert dns.message.from_wire(replies[0]) == dns.message.from_wire(want), name
    finally:
        shutil.rmtree(zones_dir, ignore_errors=True)


def test_protocol_suite_without_native() -> None:
    """tests/test_dns_protocol.py once more on the pure-Python path (GSLB_NO_NATIVE=1)."""
    if os.environ.get("GSLB_NO_NATIVE"):
        pytest.skip("this run already is the pure-Python path")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                          "tests/test_dns_protocol.py"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "GSLB_NO_NATIVE": "1"}, timeout=900)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def test_worker_udp_loop_serves_natively() -> None:
    """`worker.udp_loop` runs the engine's recvmmsg/sendmmsg loop: answers are native and, on a
    wildcard socket, leave from the address each query was sent to."""
    if os.environ.get("GSLB_NO_NATIVE"):
        pytest.skip("GSLB_NO_NATIVE is set")
    import threading

    from gslb import worker
    from gslb.server import sockets
    from tests.support.procs import free_port

    pair = Pair([os.path.join(ROOT, "zones")])
    for host, target in (("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.2")):
        port = free_port()
        sock = sockets.udp_socket(host, port)
        thread = threading.Thread(target=worker.udp_loop, args=(sock, pair.nat, sockets.is_wildcard(host)),
                                  daemon=True)
        thread.start()
        before = pair.engine.stats()["native"]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(2)
            for i in range(50):
                q = dns.message.make_query("WWW.example.com" if i % 2 else "nope.example.com", "A",
                                           use_edns=0 if i % 3 else False)
                q.id = i
                packet = q.to_wire()
                s.sendto(packet, (target, port))
                reply, source = s.recvfrom(65535)
                assert source == (target, port)
                assert reply == pair.py.answer(packet, bytes([127, 0, 0, 1]))
        assert pair.engine.stats()["native"] - before >= 45
        # the loop keeps serving this socket until the process ends (closing the descriptor
        # under a blocked recvmmsg could hand its number to another socket of this process)
        _SERVING.append(sock)


_SERVING: list[socket.socket] = []


def test_random_pick_drawn_natively(tmp_path) -> None:
    """`pick: random` stays native: Python decides once per client prefix (rule, pool, healthy
    candidates, scope) and the engine draws one weighted answer per query itself. Every native
    reply is byte for byte one of the answers Python sends, drawn in the configured proportion,
    counted like Python counts, and a health change is seen by the next answer."""
    from tests.test_policy import ZONE

    (tmp_path / "test.example.yaml").write_text(
        textwrap.dedent(ZONE).replace("gslb: {degraded_ttl: 15}", "gslb: {degraded_ttl: 15, pick: random}"))
    pair = Pair([str(tmp_path)])
    query = dns.message.make_query("www.test.example", "A", use_edns=0,
                                   options=[dns.edns.ECSOption("198.51.100.64", 26)])  # GB: the eu pool
    packet = query.to_wire()
    python_replies = {pair.py.answer(packet, CLIENTS[0]) for _ in range(400)}
    assert len(python_replies) == 2  # 192.0.2.10 (weight 3) and 192.0.2.11 (weight 1)
    before = pair.engine.stats()
    seen: dict[bytes, int] = {}
    for _ in range(4000):
        reply = pair.engine.answer_one(packet, CLIENTS[0], pair.nat)
        assert reply in python_replies
        seen[reply] = seen.get(reply, 0) + 1
    after = pair.engine.stats()
    assert after["picks"] - before["picks"] == 1  # decided once in Python ...
    assert after["native"] - before["native"] == 4000  # ... and every answer built in C,
    assert after["fallback"] == before["fallback"]  # none by the Python responder
    heavy = next(r for r in seen if "192.0.2.10" in dns.message.from_wire(r).answer[0].to_text())
    share = seen[heavy] / 4000
    print(f"weights 3:1 drawn natively → {share:.3f} : {1 - share:.3f}")
    assert abs(share - 0.75) < 0.03
    pair.nat.counts([pair.nat_answers.answer_cache])  # harvest: native counts folded into Python's
    assert sum(pair.nat_answers.decisions.values()) == 4000
    pair.set_health({"tcp://192.0.2.10:80": (False, {})})
    for _ in range(50):
        reply = pair.engine.answer_one(packet, CLIENTS[0], pair.nat)
        assert reply is not None and dns.message.from_wire(reply).answer[0][0].address == "192.0.2.11"


def test_tables_replaced_while_serving() -> None:
    """The serve loop keeps answering, with the right bytes, while another thread reloads the
    table, empties the miss cache and the templates, forgets the decisions and harvests the
    counts over and over (tables are swapped out under the engine's mutex and freed after it):
    no wrong answer, no answer lost, no deadlock."""
    if os.environ.get("GSLB_NO_NATIVE"):
        pytest.skip("GSLB_NO_NATIVE is set")
    import threading

    from gslb import worker
    from gslb.generation import share
    from gslb.server import sockets
    from tests.support.procs import free_port

    pair = Pair([os.path.join(ROOT, "zones")])
    share(pair.nat_answers.snapshot.table)  # as in a worker: entries whose `hits` is Python code
    pair.nat.swap(pair.nat_answers.snapshot)
    port = free_port()
    sock = sockets.udp_socket("127.0.0.1", port)
    threading.Thread(target=worker.udp_loop, args=(sock, pair.nat, False), daemon=True).start()
    _SERVING.append(sock)
    rng = random.Random(11)
    packets = []
    for i in range(400):
        name = rng.choice(["www.example.com", f"nx{i}.example.com", f"r{i}.apps.example.com",
                           "www.gslb.example.com", "example.com"])
        ecs = [dns.edns.ECSOption(rng.choice(["192.0.2.0", "198.51.100.0", "203.0.113.0"]), 24)] if i % 2 else []
        q = dns.message.make_query(name, rng.choice(["A", "AAAA", "TXT"]), use_edns=0, options=ecs)
        q.id = i
        packets.append(q.to_wire())
    client = bytes([127, 0, 0, 1])
    expected = {p: pair.py.answer(p, client) for p in packets}
    stop = threading.Event()
    churned = [0]

    def churn() -> None:
        while not stop.is_set():
            pair.nat.swap(pair.nat_answers.snapshot)  # engine.load + stops: every table replaced
            pair.engine.clear_misses()
            pair.engine.clear_templates()
            pair.engine.flush_decisions()
            pair.engine.harvest()
            churned[0] += 1

    mutator = threading.Thread(target=churn)
    mutator.start()
    answered = 0
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(5)
            for _round in range(5):
                for packet in packets:
                    s.sendto(packet, ("127.0.0.1", port))
                    reply, _ = s.recvfrom(65535)
                    assert reply == expected[packet], describe(reply)
                    answered += 1
    finally:
        stop.set()
        mutator.join()
    assert answered == 5 * len(packets) and churned[0] > 5, (answered, churned[0])


GEO_ZONE = """---
'':
  type: NS
  value: ns1.example.com.
static:
  type: A
  value: 192.0.2.53
www:
  type: A
  value: 198.51.100.10
  dynamic:
    pools:
      eu:
        values:
        - value: 192.0.2.10
          status: up  # no health check: no health change can empty the decision cache meanwhile
      us:
        values:
        - value: 198.51.100.10
          status: up
    rules:
    - geos: [EU]
      pool: eu
    - pool: us
"""


@pytest.mark.parametrize("native", [True, False], ids=["engine", "python"])
def test_status_says_what_stayed_out_of_python(tmp_path, native: bool) -> None:
    """The node's counters (control socket `status`, /metrics) say how many answers the engine
    wrote and how many GSLB decisions it asked Python for: one per new client prefix, none
    for a prefix asked again; with GSLB_NO_NATIVE=1 nothing is native."""
    if native and os.environ.get("GSLB_NO_NATIVE"):
        pytest.skip("GSLB_NO_NATIVE is set")
    from tests.support.dnsserver import gslb_server

    (tmp_path / "gslb.example.org.yaml").write_text(GEO_ZONE)
    env = {} if native else {"GSLB_NO_NATIVE": "1"}
    def counters(status: dict) -> tuple[int, int, int]:
        return status["queries"], status["native_answers"], status["python_decisions"]

    with gslb_server(str(tmp_path), env=env) as server:
        start_status = server.settled_status()
        subnets = [f"203.0.{i}.0" for i in range(20)]
        for subnet in subnets:  # 20 prefixes, each asked once: 20 decisions
            server.query("www.gslb.example.org", use_edns=0, options=[dns.edns.ECSOption(subnet, 24)])
        first_status = server.status_after(start_status, 20)
        for subnet in subnets * 2:  # the same prefixes again, and a static name
            server.query("www.gslb.example.org", use_edns=0, options=[dns.edns.ECSOption(subnet, 24)])
            server.query("static.gslb.example.org")
        again_status = server.status_after(first_status, 80)
    start, first, again = counters(start_status), counters(first_status), counters(again_status)
    assert again[0] - start[0] == 100
    if native:
        assert first[2] - start[2] == 20 and first[1] - start[1] == 20  # answered by C after Python decided
        assert again[2] == first[2] and again[1] - first[1] == 80
    else:
        assert again[1] == again[2] == 0
