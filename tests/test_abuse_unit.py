"""DNS cookies, RRL, query limits and their config, in process: test vectors, the responder's
handling of COOKIE options, the limiter's classes and rates, and every config problem."""

from __future__ import annotations

import os
import socket
import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.conf import located
from gslb.conf.problems import ConfigError
from gslb.config import ServerConfig, load_config
from gslb.server import abuse_config, cookies, rrl
from gslb.server.fastpath import Responder, Snapshot
from gslb.server.resolve import Zones
from gslb.server.siphash import siphash24
from gslb.zone.load import load_zones
from tests.support.dnsserver import ROOT

CLIENT = socket.inet_aton("198.51.100.100")
SECRET = bytes.fromhex("e5e973e5a6b2a43f48e7dc849e37bfcf")


# -- SipHash-2-4 and RFC 9018 -------------------------------------------------------------------

def test_siphash_reference_vectors():
    """The first and sixteenth vectors of the SipHash reference implementation (vectors.h)."""
    key = bytes(range(16))
    from gslb.server.siphash import siphash24_py

    assert siphash24_py(key, b"") == bytes.fromhex("310e0edd47db6f72") == siphash24(key, b"")
    assert siphash24(key, bytes(range(15))) == bytes.fromhex("e545be4961ca29a1")
    assert siphash24(key, bytes(range(8))) == bytes.fromhex("6224939a79f5f593")  # 0x93f5f5799a932462
    with pytest.raises(ValueError):
        siphash24(b"short", b"")


def test_c_siphash_equals_the_python_reference():
    from gslb.server import siphash

    try:
        from gslb.server import _siphash
    except ImportError:
        pytest.skip("gslb/server/_siphash.c is not built (scripts/setup builds it)")
    for n in range(80):
        key, data = os.urandom(16), os.urandom(n)
        assert _siphash.siphash24(key, data) == siphash.siphash24_py(key, data)
    assert siphash.siphash24 is (siphash.siphash24_py if os.environ.get("GSLB_NO_NATIVE") else _siphash.siphash24)
    with pytest.raises(ValueError):
        _siphash.siphash24(b"short", b"")


def test_rfc9018_appendix_a_vectors():
    c = cookies.Cookies(SECRET)
    # A.1: learning a new server cookie
    assert c.make(bytes.fromhex("2464c4abcf10c957"), CLIENT, 1559731985) == bytes.fromhex(
        "010000005cf79f111f8130c3eee29480")
    # A.2: the same client half an hour later gets a fresh one
    assert c.make(bytes.fromhex("2464c4abcf10c957"), CLIENT, 1559734385) == bytes.fromhex(
        "010000005cf7a871d4a564a1442aca77")
    assert c.valid(bytes.fromhex("2464c4abcf10c957"), bytes.fromhex("010000005cf79f111f8130c3eee29480"),
                   CLIENT, 1559734385)


def test_cookie_time_window_and_address():
    c = cookies.Cookies(SECRET)
    cc = b"\x01" * 8
    sc = c.make(cc, CLIENT, 1_000_000)
    assert c.valid(cc, sc, CLIENT, 1_000_000 + 3600)
    assert not c.valid(cc, sc, CLIENT, 1_000_000 + 3601)  # older than an hour
    assert c.valid(cc, sc, CLIENT, 1_000_000 - 300)
    assert not c.valid(cc, sc, CLIENT, 1_000_000 - 301)  # more than 5 minutes ahead
    assert not c.valid(cc, sc, socket.inet_aton("198.51.100.101"), 1_000_000)  # another address
    assert not c.valid(b"\x02" * 8, sc, CLIENT, 1_000_000)  # another client cookie
    mapped = b"\x00" * 10 + b"\xff\xff" + CLIENT
    assert c.valid(cc, sc, mapped, 1_000_000)  # a dual-stack socket's view of the same client
    assert not c.valid(cc, b"\x02" + sc[1:], CLIENT, 1_000_000)  # version 2: not ours


def test_rotation_keeps_previous_secret_until_cutoff():
    old = cookies.Cookies(b"\x11" * 16)
    cc = b"\x05" * 8
    sc = old.make(cc, CLIENT, 2_000_000)
    new = cookies.Cookies(b"\x22" * 16, previous=b"\x11" * 16, previous_until=2_000_100)
    assert new.valid(cc, sc, CLIENT, 2_000_050)
    assert not new.valid(cc, sc, CLIENT, 2_000_100)
    assert new.make(cc, CLIENT, 2_000_050) != old.make(cc, CLIENT, 2_000_050)  # new cookies use the new one


# -- the responder ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def responder() -> Responder:
    zones, _ = load_zones(os.path.join(ROOT, "zones"), ServerConfig())
    r = Responder(Snapshot.build(Zones(zones)), "unit", "gslb test")
    abuse_config.install(r, abuse_config.AbuseConfig(cookies=abuse_config.CookieConfig(secret=SECRET)))
    return r


def query(option: bytes | None, name: str = "www.example.com", rtype: str = "A") -> bytes:
    opts = [] if option is None else [dns.edns.GenericOption(10, option)]
    return dns.message.make_query(name, rtype, use_edns=0, options=opts).to_wire()


def cookie_of(reply: bytes) -> bytes | None:
    msg = dns.message.from_wire(reply)
    for opt in msg.options:
        if opt.otype == 10:
            return opt.to_wire() if hasattr(opt, "to_wire") else None
    return None


def test_client_cookie_gets_a_server_cookie_and_reuse_is_valid(responder):
    cc = os.urandom(8)
    before = responder.cookies.seen[:]
    reply = dns.message.from_wire(responder.answer(query(cc), CLIENT))
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer
    (opt,) = [o for o in reply.options if o.otype == 10]
    assert opt.client == cc and len(opt.server) == 16 and opt.server[0] == 1
    reply2 = dns.message.from_wire(responder.answer(query(cc + opt.server), CLIENT))
    assert reply2.rcode() == dns.rcode.NOERROR and reply2.answer
    assert responder.cookies.seen[cookies.CLIENT_ONLY] == before[cookies.CLIENT_ONLY] + 1
    assert responder.cookies.seen[cookies.VALID] == before[cookies.VALID] + 1
    assert cookies.has_valid_cookie(responder.cookies, query(cc + opt.server), CLIENT)
    assert not cookies.has_valid_cookie(responder.cookies, query(cc), CLIENT)


def test_bad_server_cookie_gets_badcookie_over_udp_and_an_answer_over_tcp(responder):
    cc = os.urandom(8)
    bad = cc + b"\x01\x00\x00\x00" + os.urandom(12)
    raw = responder.answer(query(bad), CLIENT)
    reply = dns.message.from_wire(raw)
    assert reply.rcode() == 23  # BADCOOKIE: 7 in the header, 1 in the OPT's extended rcode
    assert not reply.answer and reply.question
    (opt,) = [o for o in reply.options if o.otype == 10]
    assert opt.client == cc and responder.cookies.valid(cc, opt.server, CLIENT)  # a fresh, good cookie
    retry = dns.message.from_wire(responder.answer(query(cc + opt.server), CLIENT))
    assert retry.rcode() == dns.rcode.NOERROR and retry.answer
    tcp = dns.message.from_wire(responder.answer(query(bad), CLIENT, tcp=True))
    assert tcp.rcode() == dns.rcode.NOERROR and tcp.answer


@pytest.mark.parametrize("length", [0, 1, 7, 9, 15, 41, 64])
def test_malformed_cookie_is_formerr(responder, length):
    reply = dns.message.from_wire(responder.answer(query(os.urandom(length)), CLIENT))
    assert reply.rcode() == dns.rcode.FORMERR


def test_two_cookie_options_are_formerr(responder):
    q = dns.message.make_query("www.example.com", "A", use_edns=0,
                               options=[dns.edns.GenericOption(10, b"a" * 8), dns.edns.GenericOption(10, b"b" * 8)])
    assert dns.message.from_wire(responder.answer(q.to_wire(), CLIENT)).rcode() == dns.rcode.FORMERR


def test_same_secret_validates_across_nodes_other_secret_does_not():
    a = cookies.Cookies(SECRET)
    b = cookies.Cookies(SECRET)
    other = cookies.Cookies(os.urandom(16))
    cc = os.urandom(8)
    sc = a.make(cc, CLIENT)
    assert b.valid(cc, sc, CLIENT) and not other.valid(cc, sc, CLIENT)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=60), extra=st.lists(st.tuples(st.integers(0, 65535), st.binary(max_size=20)),
                                                   max_size=3), do=st.booleans())
def test_fuzz_cookie_options(responder, body, extra, do):
    opts = [dns.edns.GenericOption(10, body)] + [dns.edns.GenericOption(c, b) for c, b in extra if c != 8]
    wire_q = dns.message.make_query("www.example.com", "A", use_edns=0, want_dnssec=do, options=opts).to_wire()
    for tcp in (False, True):
        out = responder.answer(wire_q, CLIENT, tcp=tcp)
        assert out is not None and out[:2] == wire_q[:2]
        msg = dns.message.from_wire(out)
        n_cookies = sum(1 for c, _ in extra if c == 10) + 1
        if n_cookies > 1 or not cookies.check_length(len(body)) or any(
                c == 10 and not cookies.check_length(len(b)) for c, b in extra):
            assert msg.rcode() == dns.rcode.FORMERR
        else:
            assert msg.rcode() in (dns.rcode.NOERROR, 23)
            (opt,) = [o for o in msg.options if o.otype == 10]
            assert opt.client == body[:8] and len(opt.server) == 16


# -- RRL ----------------------------------------------------------------------------------------

def _reply(name, rtype, rcode=0, answer=True, aa=True, authority=None):
    q = dns.message.make_query(name, rtype)
    r = dns.message.make_response(q)
    r.set_rcode(rcode)
    if not aa:
        r.flags &= ~dns.flags.AA
    else:
        r.flags |= dns.flags.AA
    if answer:
        r.answer.append(dns.rrset.from_text(name, 60, "IN", rtype, "192.0.2.1" if rtype == "A" else "x."))
    if authority:
        r.authority.append(dns.rrset.from_text(*authority))
    return q.to_wire(), r.to_wire()


def test_classify():
    import dns.rrset  # noqa: F401

    _, pos = _reply("www.example.com.", "A")
    assert rrl.classify(pos) == (rrl.POSITIVE, b"\x03www\x07example\x03com\x00\x00\x01")
    soa = ("example.com.", 60, "IN", "SOA", "ns1.example.com. h.example.com. 1 2 3 4 5")
    _, nx = _reply("nope.example.com.", "A", rcode=3, answer=False, authority=soa)
    assert rrl.classify(nx) == (rrl.NXDOMAIN, b"\x07example\x03com\x00")
    _, nodata = _reply("www.example.com.", "TXT", answer=False, authority=soa)
    assert rrl.classify(nodata) == (rrl.NODATA, b"\x07example\x03com\x00")
    _, ref = _reply("a.lab.example.com.", "A", answer=False, aa=False,
                    authority=("lab.example.com.", 60, "IN", "NS", "ns.lab.example.com."))
    assert rrl.classify(ref) == (rrl.REFERRAL, b"\x03lab\x07example\x03com\x00")
    _, big = _reply("big.example.", "TXT", answer=False)
    big = big[:2] + bytes((big[2] | 0x02,)) + big[3:]  # truncated: no records, TC
    assert rrl.classify(big) == (rrl.POSITIVE, b"\x03big\x07example\x00\x00\x10")
    _, err = _reply("www.example.com.", "A", rcode=5, answer=False)
    assert rrl.classify(err)[0] == rrl.ERROR


def test_limiter_rate_slip_and_prefixes():
    now = [0.0]
    lim = rrl.Limiter(rrl.RrlConfig(enabled=True, rate=10, slip=2), clock=lambda: now[0])
    q, out = _reply("www.example.com.", "A")
    sent = slipped = 0
    for i in range(1000):  # 100 queries/s for 10 s from one /24
        now[0] = i / 100
        got = lim.filter(q, bytes((192, 0, 2, i % 250)), out)
        if got == out:
            sent += 1
        elif got is not None:
            slipped += 1
            msg = dns.message.from_wire(got)
            assert msg.flags & dns.flags.TC and not msg.answer and msg.question
    assert 100 <= sent <= 112  # 10/s plus the first second's burst
    assert abs(slipped - (1000 - sent) / 2) <= 1
    assert lim.filter(q, bytes((192, 0, 3, 1)), out) == out  # another /24 has its own bucket
    assert lim.stats.dropped[rrl.POSITIVE] + lim.stats.slipped[rrl.POSITIVE] == 1000 - sent


def test_limiter_slip_zero_one_exempt_log_only_and_cookie():
    _, out = _reply("www.example.com.", "A")
    q = dns.message.make_query("www.example.com.", "A", use_edns=0).to_wire()  # a cookie needs an OPT
    client = bytes((192, 0, 2, 1))

    def run(cfg, valid_cookie=None):
        lim = rrl.Limiter(cfg, valid_cookie, clock=lambda: 5.0)
        return [lim.filter(q, client, out) for _ in range(20)], lim

    got, _ = run(rrl.RrlConfig(enabled=True, rate=5, slip=0))
    assert got.count(out) == 5 and got.count(None) == 15
    got, _ = run(rrl.RrlConfig(enabled=True, rate=5, slip=1))
    assert got.count(out) == 5 and got.count(None) == 0
    import ipaddress
    got, lim = run(rrl.RrlConfig(enabled=True, rate=5, exempt=(ipaddress.ip_network("192.0.2.0/28"),)))
    assert got.count(out) == 20 and lim.stats.exempt == 15
    got, lim = run(rrl.RrlConfig(enabled=True, rate=5, log_only=True))
    assert got.count(out) == 20 and lim.stats.would_limit[rrl.POSITIVE] == 15
    got, lim = run(rrl.RrlConfig(enabled=True, rate=5), valid_cookie=lambda q, c: True)
    assert got.count(out) == 20 and lim.stats.cookie_passed == 15


def test_bucket_table_is_bounded():
    b = rrl.Buckets(1024)
    for i in range(100_000):
        b.take((0, i.to_bytes(4, "big"), b""), 10, 1, 0.0)
    assert len(b.keys) == 1024


def test_bind_window_keeps_a_flooder_limited():
    b = rrl.Buckets(16)
    passed = sum(b.take("k", 10, 15, i / 100) for i in range(1000))  # 100 q/s for 10 s
    assert passed == 10  # the first second's credit, then debt: nothing until the flood stops
    assert sum(b.take("k", 10, 15, 30 + i / 100) for i in range(100)) >= 5  # quiet for 20 s: back


def test_prefix_key():
    assert rrl.prefix_key(bytes((192, 0, 2, 7)), 24, 56) == bytes((192, 0, 2, 4))
    assert rrl.prefix_key(bytes((192, 0, 2, 7)), 22, 56) == bytes((192, 0, 0, 4))
    v6 = socket.inet_pton(socket.AF_INET6, "2001:db8:1:2ff::1")
    assert rrl.prefix_key(v6, 24, 56) == v6[:7] + b"\x06"
    mapped = b"\x00" * 10 + b"\xff\xff" + bytes((192, 0, 2, 7))
    assert rrl.prefix_key(mapped, 24, 56) == bytes((192, 0, 2, 4))


def test_query_limiter_prefix_and_asn():
    q = dns.message.make_query("www.example.com", "A").to_wire()
    lim = rrl.QueryLimiter(rrl.QueryLimitConfig(prefix_rate=5), clock=lambda: 1.0)
    over = [lim.over(q, bytes((192, 0, 2, i))) for i in range(10)]
    assert over.count(False) == 5 and lim.stats.prefix_refused == 5
    refused = dns.message.from_wire(rrl.refused(q))
    assert refused.rcode() == dns.rcode.REFUSED and refused.id == dns.message.from_wire(q).id
    lim = rrl.QueryLimiter(rrl.QueryLimitConfig(asn_rates={64500: 3}, action="drop"),
                           asn_of=lambda c: 64500 if c[0] == 192 else 64501, clock=lambda: 1.0)
    over = [lim.over(q, bytes((192, 0, i, 1))) for i in range(10)]  # ten /24s, one AS
    assert over.count(False) == 3 and lim.stats.asn_dropped == 7 and lim.stats.by_asn == {64500: 7}
    assert not any(lim.over(q, bytes((198, 51, 100, i))) for i in range(10))  # AS64501 has no cap
    guarded = rrl.guard(lambda d, c: b"answer", None, rrl.QueryLimiter(
        rrl.QueryLimitConfig(prefix_rate=1), clock=lambda: 1.0))
    assert guarded(q, CLIENT) == b"answer"
    assert dns.message.from_wire(guarded(q, CLIENT)).rcode() == dns.rcode.REFUSED


# -- config -------------------------------------------------------------------------------------

def _parse(text: str):
    return abuse_config.parse(located.load(text), "gslb.yaml")


def test_config_defaults_and_values():
    cfg, problems = _parse("listen: 127.0.0.1:53\n")
    assert not problems and cfg.cookies.enabled and cfg.cookies.secret is None and not cfg.rrl.enabled
    cfg, problems = _parse(f"""
cookies:
  secret: {SECRET.hex()}
  previous_secret: {"11" * 16}
  previous_valid_until: 2026-12-02T00:00:00Z
rrl:
  rate: 20
  nxdomain_rate: 5
  slip: 3
  window: 15
  ipv6_prefix: 48
  exempt: [192.0.2.0/24]
  log_only: true
query_limits:
  prefix_rate: 1000
  action: drop
tcp:
  per_client: 4
  message_timeout: 2.5
""")
    assert not problems
    assert cfg.cookies.secret == SECRET and cfg.cookies.previous_secret == b"\x11" * 16
    assert cfg.cookies.previous_valid_until == 1796169600.0
    assert cfg.rrl.enabled and cfg.rrl.rates() == (20, 5, 20, 20, 20) and cfg.rrl.slip == 3
    assert cfg.rrl.ipv6_prefix == 48 and cfg.rrl.log_only and str(cfg.rrl.exempt[0]) == "192.0.2.0/24"
    assert cfg.query_limits.prefix_rate == 1000 and cfg.query_limits.action == "drop"
    assert cfg.tcp.per_client == 4 and cfg.tcp.message_timeout == 2.5


def test_config_problems_have_lines():
    _, problems = _parse("""
cookies:
  secret: nothex
  previous_secret: 00
  bogus: 1
rrl:
  rate: 0
  slip: 11
  ipv4_prefix: 33
  exempt: [not-a-net]
  log_only: maybe
query_limits:
  asn_rate: 10
  action: ignore
  asns: {AS64500: -1, banana: 3}
tcp:
  per_client: 0
  message_timeout: 0
""")
    fields = {(p.field, p.line) for p in problems}
    assert ("cookies.secret", 3) in fields and ("cookies.previous_secret", 4) in fields
    assert ("cookies.bogus", 5) in fields
    for f, line in [("rrl.rate", 7), ("rrl.slip", 8), ("rrl.ipv4_prefix", 9), ("rrl.exempt", 10),
                    ("rrl.log_only", 11), ("query_limits.action", 14), ("query_limits.asns.AS64500", 15),
                    ("query_limits.asns.banana", 15), ("tcp.per_client", 17), ("tcp.message_timeout", 18)]:
        assert (f, line) in fields, (f, line, sorted(fields))
    assert any(p.field == "query_limits" and "asndb" in p.message for p in problems)
    _, problems = _parse(f"cookies:\n  previous_secret: {'11' * 16}\n")
    assert any(p.field == "cookies.previous_secret" and "previous_valid_until" in p.message for p in problems)


def test_load_config_reads_the_keys(tmp_path):
    path = tmp_path / "gslb.yaml"
    path.write_text("rrl:\n  rate: 7\ncookies:\n  secret: " + SECRET.hex() + "\n")
    cfg = load_config(str(path))
    assert cfg.abuse.rrl.rate == 7 and cfg.abuse.cookies.secret == SECRET
    path.write_text("rrl:\n  rate: nope\n")
    with pytest.raises(ConfigError) as exc:
        load_config(str(path))
    assert "rrl.rate" in str(exc.value) and ":2:" in str(exc.value)
    assert ServerConfig().abuse.rrl.enabled is False


def test_stats_names(responder):
    s = abuse_config.stats(responder)
    assert {"cookies_client_only", "cookies_valid", "cookies_bad", "cookies_badcookie_sent",
            "rrl_limited_positive", "rrl_slipped_nxdomain", "rrl_dropped_error", "rrl_cookie_passed",
            "query_limit_prefix_refused", "query_limit_asn_dropped"} <= set(s)
    assert struct  # keep the import for packet helpers


def test_rates_are_split_over_workers():
    lim = rrl.Limiter(rrl.RrlConfig(enabled=True, rate=20, nxdomain_rate=3), share=4)
    assert lim.rates == (5, 1, 5, 5, 5)
    q = rrl.QueryLimiter(rrl.QueryLimitConfig(prefix_rate=100, asn_rates={64500: 10}), share=4)
    assert q.cfg.prefix_rate == 25 and q.cfg.asn_rates == {64500: 2} and q.cfg.asn_rate == 0
