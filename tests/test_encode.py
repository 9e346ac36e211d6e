"""The direct wire encoder (gslb.server.encode) against dnspython's renderer, byte for byte."""

from __future__ import annotations

import os

import dns.ipv6
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.renderer
import dns.rrset
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gslb.config import ServerConfig
from gslb.server import encode, table, wire
from gslb.server.resolve import Zones
from gslb.zone import rdata
from gslb.zone.load import load_zone_text, load_zones
from tests.support import bigzone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dnspython_tail(qname, qtype, qclass, flags, answer=(), authority=(), additional=()):
    """What compile_sections made before: dnspython's renderer (records in stored order)."""
    r = dns.renderer.Renderer(id=0, flags=flags, max_size=65535)
    r.add_question(qname.canonicalize(), qtype, qclass)
    for section, rrsets in ((dns.renderer.ANSWER, answer), (dns.renderer.AUTHORITY, authority),
                            (dns.renderer.ADDITIONAL, additional)):
        for rrset in rrsets:
            r.add_rrset(section, rrset, want_shuffle=False)
    r.write_header()
    data = r.get_wire()
    counts = tuple(int.from_bytes(data[i:i + 2], "big") for i in (6, 8, 10))
    return (*counts, data[12 + len(qname.to_wire()) + 4:])


def test_example_zones_compile_to_the_same_bytes():
    zones, _ = load_zones(os.path.join(ROOT, "zones"), ServerConfig(), serial=2026120101)
    seen = 0

    def compile_(qname, qtype, ans):
        nonlocal seen
        flags = wire.QR | (wire.AA if ans.aa else 0) | ans.rcode
        mine = encode.sections_tail(qname.canonicalize(), qtype, dns.rdataclass.IN, ans.answer, ans.authority,
                                    ans.additional)
        ref = dnspython_tail(qname, qtype, dns.rdataclass.IN, flags, ans.answer, ans.authority, ans.additional)
        assert mine == ref, (qname, qtype)
        seen += 1
        return table.compile_answer(qname, qtype, ans)

    table.compile_table(Zones(zones), compile_)
    assert seen > 50


LABELS = st.sampled_from([b"www", b"WWW", b"mail", b"a", b"example", b"Example", b"com", b"net", b"x" * 63, b"_tcp"])
NAMES = st.lists(LABELS, min_size=0, max_size=4).filter(  # names of at most 255 octets
    lambda labels: sum(len(label) + 1 for label in labels) < 255).map(lambda labels: dns.name.Name((*labels, b"")))


def _text(name):
    return name.to_text()


RDATA = {
    "A": st.sampled_from(["192.0.2.1", "198.51.100.7", "203.0.113.255"]),
    "AAAA": st.sampled_from(["2001:db8::1", "2001:db8:0:1::ff", "::ffff:192.0.2.1"]),
    "CNAME": NAMES.map(_text),
    "NS": NAMES.map(_text),
    "PTR": NAMES.map(_text),
    "DNAME": NAMES.map(_text),
    "MX": st.tuples(st.integers(0, 65535), NAMES).map(lambda t: f"{t[0]} {_text(t[1])}"),
    "SRV": st.tuples(st.integers(0, 9), NAMES).map(lambda t: f"{t[0]} 5 443 {_text(t[1])}"),
    "SOA": st.tuples(NAMES, NAMES).map(lambda t: f"{_text(t[0])} {_text(t[1])} 1 2 3 4 5"),
    "TXT": st.lists(st.text("ab;\\ \"x", min_size=0, max_size=20), min_size=1, max_size=3).map(
        lambda ss: " ".join('"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"' for s in ss)),
    "CAA": st.just('0 issue "ca.example.net"'),
    "HTTPS": NAMES.map(lambda n: f"1 {_text(n)} alpn=h2"),
    "RP": st.tuples(NAMES, NAMES).map(lambda t: f"{_text(t[0])} {_text(t[1])}"),
    "KX": NAMES.map(lambda n: f"10 {_text(n)}"),
    "AMTRELAY": NAMES.map(lambda n: f"0 0 3 {_text(n)}"),  # not known to the encoder: dnspython writes it
    "AFSDB": NAMES.map(lambda n: f"1 {_text(n)}"),
}


@st.composite
def rrsets(draw):
    rtype = draw(st.sampled_from(sorted(RDATA)))
    owner = draw(NAMES)
    texts = draw(st.lists(RDATA[rtype], min_size=0 if rtype == "A" else 1, max_size=4))
    rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.from_text(rtype))
    for text in texts:
        rrset.add(dns.rdata.from_text(dns.rdataclass.IN, rrset.rdtype, text), draw(st.integers(0, 2**31 - 1)))
    return rrset


@settings(max_examples=400, deadline=None)
@given(NAMES, st.sampled_from([1, 28, 5, 15, 16, 255]), st.lists(rrsets(), max_size=4), st.lists(rrsets(), max_size=3),
       st.lists(rrsets(), max_size=3))
def test_random_rrsets_encode_like_dnspython(qname, qtype, answer, authority, additional):
    flags = wire.QR | wire.AA
    mine = encode.sections_tail(qname.canonicalize(), qtype, dns.rdataclass.IN, answer, authority, additional)
    assert mine == dnspython_tail(qname, qtype, dns.rdataclass.IN, flags, answer, authority, additional)


def test_chaos_class_and_compile_sections_header():
    qname = dns.name.from_text("Id.Server.")
    rrset = dns.rrset.from_text(qname, 0, dns.rdataclass.CH, "TXT", '"node-1"')
    entry = table.compile_sections(qname, dns.rdatatype.TXT, dns.rdataclass.CH, wire.QR | wire.AA, [rrset])
    an, ns, ar, tail = dnspython_tail(qname, dns.rdatatype.TXT, dns.rdataclass.CH, wire.QR | wire.AA, [rrset])
    assert (entry.an, entry.ns, entry.ar, entry.tail) == (an, ns, ar, tail)


# -- the lean load and compile against dnspython's constructors and the resolver ----------------

def generated_zone(names: int = 3000):
    zone, problems = load_zone_text(bigzone.yaml_text(names), "example.com.yaml", ServerConfig(), serial=7)
    assert zone is not None, problems
    return zone


def test_every_record_of_a_generated_zone_is_the_rdata_dnspython_makes():
    """Field for field (the YAML leaves TTL 300 out: the zone's default applies)."""
    zone = generated_zone()
    records = [r for r in zone.records if r.name != zone.origin]
    seen = 0
    for i in range(3000):
        owner = dns.name.from_text(f"{bigzone.host(i)}.example.com.")
        for rtype, ttl, values in bigzone.records(i):
            rrset = zone.nodes[owner][dns.rdatatype.from_text(rtype)]
            ref = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.from_text(rtype))
            for value in values:
                text = f'"{value}"' if rtype == "TXT" else value
                ref.add(dns.rdata.from_text(dns.rdataclass.IN, ref.rdtype, text),
                        ttl if ttl != 300 else zone.config.ttl)
            assert rrset == ref and rrset.ttl == ref.ttl and rrset.name == ref.name
            assert [(rd.to_text(), rd.to_wire()) for rd in rrset] == [(rd.to_text(), rd.to_wire()) for rd in ref]
            assert [tuple(getattr(rd, s) for s in rd.__slots__) for rd in rrset] == [
                tuple(getattr(rd, s) for s in rd.__slots__) for rd in ref]
            seen += 1
    assert seen == len(records)


CHAINS = """\
'':
  - {type: NS, values: [ns1.example.net., ns2.example.net.]}
  - {type: A, value: 192.0.2.1}
  - {type: MX, value: {preference: 10, exchange: mail.example.com.}}
mail: {type: A, value: 192.0.2.25}
out: {type: CNAME, value: www.example.net.}
two: {type: CNAME, value: one.example.com.}
one: {type: CNAME, value: mail.example.com.}
apex: {type: CNAME, value: example.com.}
self: {type: CNAME, value: self.example.com.}
nowhere: {type: CNAME, value: missing.example.com.}
wild: {type: CNAME, value: x.w.example.com.}
'*.w': {type: TXT, value: wildcard}
ent: {type: CNAME, value: b.example.com.}
a.b: {type: AAAA, value: '2001:db8::5'}
txt: {type: TXT, values: [one, two]}
"""


@pytest.mark.parametrize("source", ["generated", "chains"])
def test_a_zone_compiles_to_what_the_resolver_and_dnspython_make(source, monkeypatch):
    """Every entry (plain owners and one-link chains are compiled without the resolver's walk)."""
    if source == "generated":
        zone = generated_zone()
    else:
        zone, problems = load_zone_text(CHAINS, "example.com.yaml", ServerConfig(), serial=7)
        assert zone is not None, problems
    zones = Zones([zone])
    lean = table.compile_table(zones)
    for key, entry in lean.items():
        qname, end = dns.name.from_wire(key, 0)
        qtype = int.from_bytes(key[end:end + 2], "big")
        ans = zones.resolve(qname, qtype)
        flags = wire.QR | (wire.AA if ans.aa else 0) | ans.rcode
        assert entry.flags == flags
        assert (entry.an, entry.ns, entry.ar, entry.tail) == dnspython_tail(
            qname, qtype, dns.rdataclass.IN, flags, ans.answer, ans.authority, ans.additional), (qname, qtype)
    monkeypatch.setattr(table, "plain_zone", lambda zone: False)  # every entry through the resolver
    walked = table.compile_table(zones)
    assert walked.keys() == lean.keys()
    assert all((walked[k].flags, walked[k].tail) == (lean[k].flags, lean[k].tail) for k in lean)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0x0DB8, 0xABCD]), min_size=8, max_size=8))
def test_aaaa_text_is_dnspythons(words):
    packed = b"".join(w.to_bytes(2, "big") for w in words)
    assert rdata.aaaa_text(packed) == dns.ipv6.inet_ntoa(packed)
    text = dns.ipv6.inet_ntoa(packed)
    if ":" in text and "." not in text:
        fast = rdata.to_rdata("AAAA", text, dns.name.root)
        assert fast == dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.AAAA, text)
        assert fast.address == text
