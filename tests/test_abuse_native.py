"""The native limiter (gslb/server/rrl.h, inside the engine) against the reference (rrl.py):
the same (time, client, response) sequences give the same decisions and the same bytes; and the
steering program sends every query of a prefix to one socket of a reuseport group."""

from __future__ import annotations

import ipaddress
import os
import socket

import dns.edns
import dns.message
import dns.rcode
import dns.rrset
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from gslb.server import abuse_config, cookies, native, rrl, steering

pytestmark = pytest.mark.skipif(not native.enabled(), reason="the native engine is not built (scripts/setup) "
                                "or GSLB_NO_NATIVE is set")

SECRET = bytes.fromhex("e5e973e5a6b2a43f48e7dc849e37bfcf")
OLD = bytes.fromhex("00112233445566778899aabbccddeeff")
WALL = 1_800_000_000.0
SOA = ("example.com.", 60, "IN", "SOA", "ns1.example.com. h.example.com. 1 2 3 4 5")


def _engine():
    return native.new_engine(1232, bytes(9), bytes(9))


def _response(name: str, rtype: str, rcode: int = 0, answer: bool = True, aa: bool = True,
              authority: tuple | None = None, tc: bool = False) -> bytes:
    q = dns.message.make_query(name, rtype)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    r.flags = (r.flags | dns.flags.AA) if aa else (r.flags & ~dns.flags.AA)
    if tc:
        r.flags |= dns.flags.TC
    if answer:
        r.answer.append(dns.rrset.from_text(name, 60, "IN", rtype, "192.0.2.1" if rtype == "A" else "x."))
    if authority:
        r.authority.append(dns.rrset.from_text(*authority))
    return r.to_wire()


RESPONSES = [
    _response("www.example.com.", "A"),
    _response("WWW.Example.com.", "A"),  # the same account, case folded
    _response("www.example.com.", "TXT"),
    _response("mail.example.com.", "A"),
    _response("nope.example.com.", "A", rcode=3, answer=False, authority=SOA),
    _response("other.example.com.", "A", rcode=3, answer=False, authority=SOA),
    _response("www.example.com.", "MX", answer=False, authority=SOA),
    _response("a.lab.example.com.", "A", answer=False, aa=False,
              authority=("lab.example.com.", 60, "IN", "NS", "ns.lab.example.com.")),
    _response("big.example.", "TXT", answer=False, tc=True),
    _response("www.example.com.", "A", rcode=5, answer=False),
    _response("www.example.com.", "A", rcode=2, answer=False),
    b"\x12\x34\x81",  # too short to classify: an error
]

CLIENTS = [socket.inet_aton(a) for a in ("192.0.2.1", "192.0.2.200", "198.51.100.7", "203.0.113.9")] + [
    socket.inet_pton(socket.AF_INET6, a) for a in ("2001:db8:1:2ff::1", "2001:db8:1:200::2", "2001:db8:2::1",
                                                   "::ffff:192.0.2.77")]


def _query(client: bytes, kind: int, py_cookies: cookies.Cookies) -> bytes:
    """A query with no OPT, an OPT without cookie, a client cookie, a valid server cookie (made by
    the current or previous secret), or a forged one."""
    if kind == 0:
        return dns.message.make_query("www.example.com", "A").to_wire()
    cc = bytes(range(8))
    opts = []
    if kind == 2:
        opts = [dns.edns.GenericOption(10, cc)]
    elif kind == 3:
        opts = [dns.edns.GenericOption(10, cc + py_cookies.make(cc, client, WALL - 5))]
    elif kind == 4:
        prev = cookies.Cookies(OLD)
        opts = [dns.edns.GenericOption(10, cc + prev.make(cc, client, WALL - 5))]
    elif kind == 5:
        opts = [dns.edns.GenericOption(10, cc + b"\x01\x00\x00\x00" + bytes(12))]
    return dns.message.make_query("www.example.com", "A", use_edns=0, options=opts).to_wire()


def _pair(cfg: rrl.RrlConfig, ql: rrl.QueryLimitConfig | None = None, until: float = WALL + 100):
    """The reference limiters (clock from the list returned) and an engine set the same way."""
    now = [0.0]
    ck = cookies.Cookies(SECRET, OLD, until, clock=lambda: WALL)
    lim = rrl.Limiter(cfg, lambda q, c: cookies.has_valid_cookie(ck, q, c), clock=lambda: now[0])
    qlim = rrl.QueryLimiter(ql, clock=lambda: now[0]) if ql is not None and ql.enabled else None
    abuse = abuse_config.AbuseConfig(rrl=cfg, query_limits=ql or rrl.QueryLimitConfig())
    eng = _engine()
    spec = abuse_config.native_limits(abuse, ck, 1)
    assert spec is not None
    eng.set_limits(spec)
    return now, ck, lim, qlim, eng


steps = st.lists(st.tuples(st.floats(0, 0.4), st.integers(0, len(CLIENTS) - 1),
                           st.integers(0, len(RESPONSES) - 1), st.integers(0, 5)), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.integers(1, 8), st.integers(0, 3), st.integers(1, 4), st.booleans(), st.booleans(),
       st.sampled_from([(24, 56), (22, 48), (32, 128), (8, 16)]))
# found by a clean-clone run: the too-short response slipped (the reference raised IndexError)
@example(seq=[(0.0, 0, 9, 0), (0.0, 0, 9, 0), (0.0, 0, 11, 0)], rate=1, slip=1, window=1, exempt=False,
         log_only=False, bits=(24, 56))
def test_native_rrl_makes_the_reference_decisions(seq, rate, slip, window, exempt, log_only, bits):
    cfg = rrl.RrlConfig(enabled=True, rate=rate, nxdomain_rate=max(1, rate // 2), error_rate=rate + 1, slip=slip,
                        window=window, ipv4_prefix=bits[0], ipv6_prefix=bits[1], log_only=log_only,
                        exempt=(ipaddress.ip_network("198.51.100.0/24"),
                                ipaddress.ip_network("2001:db8:2::/48")) if exempt else ())
    now, ck, lim, _, eng = _pair(cfg)
    for dt, ci, ri, kind in seq:
        now[0] += dt
        client, out = CLIENTS[ci], RESPONSES[ri]
        q = _query(client, kind, ck)
        want = lim.filter(q, client, out)
        got = eng.limit_one(q, client, out, now[0], WALL)
        assert got == want, (now[0], ci, ri, kind)
    ours = eng.limit_stats()
    for kind in ("limited", "dropped", "slipped", "would_limit"):
        assert ours[kind] == getattr(lim.stats, kind), kind
        assert ours[kind + "6"] == getattr(lim.stats, kind + "6"), kind
    assert (ours["exempt"], ours["cookie_passed"]) == (lim.stats.exempt, lim.stats.cookie_passed)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps, st.integers(1, 6), st.sampled_from(["refuse", "drop"]), st.booleans())
def test_native_query_limits_make_the_reference_decisions(seq, rate, action, exempt):
    ql = rrl.QueryLimitConfig(prefix_rate=rate, action=action,
                              exempt=(ipaddress.ip_network("192.0.2.0/25"),) if exempt else ())
    now, ck, _, qlim, eng = _pair(rrl.RrlConfig(enabled=False), ql)
    assert qlim is not None
    for dt, ci, _ri, kind in seq:
        now[0] += dt
        client = CLIENTS[ci]
        q = _query(client, kind, ck)
        over = qlim.over(q, client)
        want = (rrl.refused(q) or b"") if over and qlim.refuse else (b"" if over else None)
        assert eng.limit_one(q, client, None, now[0], WALL) == want
    ours = eng.limit_stats()
    assert (ours["prefix_refused"], ours["prefix_dropped"]) == (qlim.stats.prefix_refused, qlim.stats.prefix_dropped)


def test_refused_and_truncated_bytes_match_for_odd_packets():
    ql = rrl.QueryLimitConfig(prefix_rate=1)
    now, _, _, qlim, eng = _pair(rrl.RrlConfig(enabled=False), ql)
    assert qlim is not None
    client = CLIENTS[0]
    for q in (b"\x00\x01" + bytes(10), b"\xab\xcd\x01\x00\x00\x01" + bytes(6) + b"\x03abc",
              b"\xab\xcd\x01\x00\x00\x02" + bytes(6) + b"\x00\x00\x01\x00\x01", os.urandom(40),
              dns.message.make_query("x.example.com", "AAAA").to_wire()):
        now[0] += 10
        assert eng.limit_one(q, client, None, now[0], WALL) is None and not qlim.over(q, client)  # the first passes
        over = qlim.over(q, client)
        assert over
        assert eng.limit_one(q, client, None, now[0], WALL) == (rrl.refused(q) or b"")


def test_rotation_cutoff_and_forged_cookies():
    cfg = rrl.RrlConfig(enabled=True, rate=1, slip=0)
    for until in (WALL + 100, WALL - 100):  # before the cutoff the previous secret's cookies count
        now, ck, lim, _, eng = _pair(cfg, until=until)
        for kind in (3, 4, 5, 2):
            q = _query(CLIENTS[0], kind, ck)
            for _ in range(3):
                now[0] += 0.01
                assert eng.limit_one(q, CLIENTS[0], RESPONSES[0], now[0], WALL) == lim.filter(q, CLIENTS[0],
                                                                                             RESPONSES[0])
        assert eng.limit_stats()["cookie_passed"] == lim.stats.cookie_passed


def test_asn_limits_stay_in_python():
    abuse = abuse_config.AbuseConfig(query_limits=rrl.QueryLimitConfig(asn_rate=10))
    assert abuse_config.native_limits(abuse, cookies.Cookies(SECRET), 1) is None


def test_table_is_bounded_and_reconfigurable():
    cfg = rrl.RrlConfig(enabled=True, rate=1, slip=0, table_size=64)
    eng = _pair(cfg)[4]
    for i in range(20_000):  # many prefixes through a 64-slot table: no growth, collisions restart a bucket
        eng.limit_one(b"", i.to_bytes(4, "big"), RESPONSES[0], 1.0, WALL)
    eng.set_limits(None)
    assert eng.limit_one(b"", CLIENTS[0], RESPONSES[0], 1.0, WALL) == RESPONSES[0]  # off: everything passes


# -- steering --------------------------------------------------------------------------------

@pytest.mark.parametrize("family,base", [(socket.AF_INET, "127.0.{}.{}"), (socket.AF_INET6, None)])
def test_steering_sends_a_prefix_to_one_socket(family, base):
    """Four sockets in one reuseport group with the program attached: queries from many source
    addresses and ports of a /24 all reach the socket `index_of` names, for several /24s."""
    workers = 4
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    socks = []
    for _ in range(workers):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((host, socks[0].getsockname()[1] if socks else 0))
        s.settimeout(2)
        socks.append(s)
    port = socks[0].getsockname()[1]
    try:
        steering.attach_program(socks[0], workers)
        if family == socket.AF_INET6:  # only ::1 is local: one prefix, many ports
            sources = [("::1", [("::1", 0)] * 40)]
        else:
            sources = [(f"127.0.{p}.0", [(base.format(p, h), 0) for h in range(1, 41)]) for p in range(1, 9)]
        for _prefix, addrs in sources:
            want = steering.index_of(socket.inet_pton(family, addrs[0][0]), workers)
            for addr in addrs:
                c = socket.socket(family, socket.SOCK_DGRAM)
                c.bind(addr)
                c.sendto(b"x", (host, port))
                got = socks[want].recvfrom(16)
                assert got[0] == b"x"
                c.close()
        for s in socks:  # nothing went elsewhere
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recvfrom(16)
    finally:
        for s in socks:
            s.close()


def test_steering_index_matches_the_program_shape():
    assert len(steering.program(socket.AF_INET, 4)) % 8 == 0
    same = {steering.index_of(bytes((192, 0, 2, h)), 4) for h in range(256)}
    assert len(same) == 1  # a /24 is one worker
    spread = {steering.index_of(bytes((192, 0, p, 1)), 4) for p in range(64)}
    assert spread == {0, 1, 2, 3}  # prefixes spread over the workers


def test_steered_workers_enforce_the_whole_rate(monkeypatch):
    """install arms steering when a limiter is on; once a socket is steered the limiters stop
    dividing the rates by the worker count (each prefix reaches one worker)."""
    monkeypatch.setattr(steering, "_state", {"workers": 0, "v4": 24, "v6": 56, "attached": 0})

    class Cfg:
        abuse = abuse_config.AbuseConfig(rrl=rrl.RrlConfig(enabled=True, rate=40, ipv4_prefix=22),
                                         query_limits=rrl.QueryLimitConfig(prefix_rate=100, ipv4_prefix=24))
        workers = 4
        asndb = None

    class Resp:
        cookies = cookies.Cookies(SECRET)
        engine = None

    r = Resp()
    abuse_config.install(r, Cfg())
    assert steering._state["workers"] == 4 and steering._state["v4"] == 22  # the coarser prefix
    assert abuse_config._share(r) == 4 and not steering.active()  # no socket steered yet: rate/4
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    s.bind(("127.0.0.1", 0))
    try:
        assert steering.attach(s) and steering.active()
        assert abuse_config._share(r) == 1
        spec = abuse_config.native_limits(Cfg.abuse, r.cookies, abuse_config._share(r))
        assert spec is not None and spec["rates"][0] == 40 and spec["ql_rate"] == 100
    finally:
        s.close()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.binary(min_size=0, max_size=80), st.integers(0, len(CLIENTS) - 1)), min_size=1,
                max_size=40),
       st.sampled_from(RESPONSES[:3]))
def test_random_response_bytes_are_classified_alike(items, head):
    """Arbitrary bytes after a valid header and question (broken names, pointer loops, short
    packets): the C classifier puts each in the bucket rrl.py does (rate 1, no slip)."""
    now, ck, lim, _, eng = _pair(rrl.RrlConfig(enabled=True, rate=1, slip=0))
    for tail, ci in items:
        out = head[:12] + tail if len(tail) % 2 else head[:len(head) - 10] + tail
        now[0] += 0.001
        q = _query(CLIENTS[ci], 0, ck)
        assert eng.limit_one(q, CLIENTS[ci], out, now[0], WALL) == lim.filter(q, CLIENTS[ci], out)


def test_native_counts_reach_stats_and_the_log(caplog):
    """abuse_config.stats folds the engine's counters in (what the worker ships to /metrics) and
    logs what the C limiter limited, since it cannot log from its loop."""
    import logging

    cfg = rrl.RrlConfig(enabled=True, rate=1, slip=2)
    _, ck, _, _, eng = _pair(cfg)

    class Resp:
        cookies = ck
        engine = eng
        native_limits = abuse_config.native_limits(abuse_config.AbuseConfig(rrl=cfg), ck, 1)
        abuse = abuse_config.AbuseConfig(rrl=cfg)

    for i in range(5):
        eng.limit_one(b"", CLIENTS[4], RESPONSES[4], 1.0 + i / 1000, WALL)  # IPv6, NXDOMAIN
    with caplog.at_level(logging.INFO, logger="gslb.server.abuse_config"):
        s = abuse_config.stats(Resp())
    assert s["rrl_limited_nxdomain"] == 4 and s["rrl_limited6_nxdomain"] == 4 and s["limiter_native"] == 1
    assert s["rrl_slipped_nxdomain"] + s["rrl_dropped_nxdomain"] == 4 and s["rrl_ipv6_prefix"] == 56
    assert "rate limits: limited 4 more" in caplog.text and "4 nxdomain" in caplog.text
