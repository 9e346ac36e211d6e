"""The direct wire encoder (gslb.server.encode) against dnspython's renderer, byte for byte."""

from __future__ import annotations

import os

import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.renderer
import dns.rrset
from hypothesis import given, settings
from hypothesis import strategies as st

from gslb.config import ServerConfig
from gslb.server import encode, table, wire
from gslb.server.resolve import Zones
from gslb.zone.load import load_zones

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
NAMES = st.lists(LABELS, min_size=0, max_size=4).map(lambda labels: dns.name.Name((*labels, b"")))


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
