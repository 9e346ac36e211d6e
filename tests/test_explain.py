"""`gslb explain`: the decision for a client, step by step, from the real zones and geo data."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import dns.edns
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.dnsserver import ROOT, gslb_server


def explain(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "gslb", "explain", *args, "--zones", "zones"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_explains_a_geo_decision_for_an_ecs_subnet():
    out = explain("www.gslb.example.com", "A", "--client", "198.51.100.64/26")
    assert "location    EU-GB-ENG EU-GB EU" in out
    assert "region      eu-west" in out
    assert "matched rule 1 (EU,AF) → pool eu" in out
    assert "pool eu: 192.0.2.10 up, 192.0.2.11 up" in out
    assert out.splitlines()[-1].startswith("answer      192.0.2.1")
    assert "[eu]" in out


def test_explains_the_catch_all_and_static_names():
    out = explain("www.gslb.example.com", "--client", "198.51.100.130")
    assert "matched rule 3 (*) → pool us" in out and "region      us-west" in out
    out = explain("www.example.com", "--client", "198.51.100.130")
    assert "answer      static" in out and "192.0.2.10" in out


def test_negative_answers_say_rcode_soa_and_negative_ttl():
    out = explain("www.gslb.example.com", "AAAA", "--client", "198.51.100.130")
    assert "rcode       NOERROR (NODATA: www.gslb.example.com. has no AAAA records)  aa" in out
    assert re.search(r"^authority   gslb\.example\.com\. 300 IN SOA ns1\.example\.com\. ", out, re.M)
    assert "negative    ttl 300: the lower of the SOA's ttl 3600 and its minimum 300" in out
    out = explain("nope.gslb.example.com", "--client", "198.51.100.130")
    assert "rcode       NXDOMAIN" in out
    assert re.search(r"^authority   gslb\.example\.com\. 300 IN SOA ", out, re.M)
    assert "negative    ttl 300" in out


def test_every_record_of_a_static_answer_is_indented_under_it():
    out = explain("www.example.com", "--client", "198.51.100.130").splitlines()
    start = out.index("answer      static")
    assert out[start + 1:start + 3] == ["            www.example.com. 3600 IN A 192.0.2.10",
                                        "            www.example.com. 3600 IN A 192.0.2.11"]
    out = explain("www.lab.example.com", "--client", "198.51.100.130")  # a referral: every section
    assert "rcode       NOERROR (referral" in out and "  aa" not in out
    assert ("authority   lab.example.com. 3600 IN NS ns1.lab.example.com.\n"
            "            lab.example.com. 3600 IN NS") in out
    assert "additional  ns1.lab.example.com. 3600 IN A 192.0.2.53" in out


@pytest.mark.parametrize(("qname", "qtype"), [("www.gslb.example.com", "AAAA"), ("nope.gslb.example.com", "A"),
                                              ("www.example.com", "A"), ("www.lab.example.com", "A")])
def test_explain_says_what_the_server_answers(qname, qtype):
    """Record for record (the SOA up to its serial, which is each process's load time). GSLB names
    are left out: the server probes the demo endpoints, explain without --redis counts all up."""
    out = explain(qname, qtype, "--client", "198.51.100.130")
    rows = set()
    for line in out.splitlines():
        m = re.match(r"^(answer|records|authority|additional|)\s+(\S+\. \d+ IN \S+ .*)$", line)
        if m and not line.startswith(("client", "chain")):
            name, ttl, _in, rtype, rdata = m.group(2).split(" ", 4)
            rows.add((name, int(ttl), rtype, rdata if rtype != "SOA" else rdata.split()[0]))
    with gslb_server(os.path.join(ROOT, "zones")) as server:
        q = dns.message.make_query(qname, qtype, use_edns=0,
                                   options=[dns.edns.ECSOption("198.51.100.130", 32)])
        r = dns.query.udp(q, server.host, port=server.port, timeout=3)
    served = {(rrset.name.to_text(), rrset.ttl, dns.rdatatype.to_text(rrset.rdtype),
               rdata.to_text() if rrset.rdtype != dns.rdatatype.SOA else rdata.to_text().split()[0])
              for section in (r.answer, r.authority, r.additional) for rrset in section for rdata in rrset}
    assert rows == served
    assert f"rcode       {dns.rcode.to_text(r.rcode())}" in out
