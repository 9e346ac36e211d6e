"""A GSLB CNAME's chosen target is chased like a static CNAME's (RFC 1034 section 4.3.2, step
3a): the target's records when a zone of ours holds them, NODATA or NXDOMAIN with the SOA
(RFC 2308, RFC 6604) when it holds the name without them, and the CNAME alone when the target is
outside our zones or is itself a GSLB name (decided for itself when the resolver asks). Over a
real server, through the native engine and the Python path."""

from __future__ import annotations

import dns.flags
import dns.rcode
import dns.rdatatype
import pytest

from tests.support.dnsserver import gslb_server

ZONE = """---
'':
  type: NS
  value: ns1.example.net.
a:
  type: A
  value: 192.0.2.1
"""


def gslb_cname(owner: str, target: str) -> str:
    return f"""{owner}:
  type: CNAME
  value: {target}
  dynamic:
    pools:
      one:
        values:
        - value: {target}
    rules:
    - pool: one
"""


CASES = {
    "to-a": "a.d.example.org.",  # held by us, with an A
    "to-missing": "missing.d.example.org.",  # in our zone, no such name
    "to-outside": "edge.cdn.example.",  # not ours
    "to-gslb": "to-a.d.example.org.",  # another GSLB name
}


@pytest.fixture(scope="module")
def zone_dir(tmp_path_factory) -> str:
    d = tmp_path_factory.mktemp("gslb-cname")
    (d / "d.example.org.yaml").write_text(ZONE + "".join(gslb_cname(o, t) for o, t in CASES.items()))
    return str(d)


def sections(msg) -> tuple[str, list[tuple[str, str, str]], list[str]]:
    answer = [(r.name.to_text(), dns.rdatatype.to_text(r.rdtype), r[0].to_text()) for r in msg.answer]
    return dns.rcode.to_text(msg.rcode()), answer, [dns.rdatatype.to_text(r.rdtype) for r in msg.authority]


@pytest.mark.parametrize("native", [True, False], ids=["engine", "python"])
def test_a_gslb_cname_is_chased_like_a_static_one(zone_dir: str, native: bool) -> None:
    with gslb_server(zone_dir, env={} if native else {"GSLB_NO_NATIVE": "1"}) as server:
        got = {(owner, rtype): server.query(f"{owner}.d.example.org", rtype)
               for owner in CASES for rtype in ("A", "AAAA", "CNAME")}
    for msg in got.values():
        assert msg.flags & dns.flags.AA
    cname = {owner: (f"{owner}.d.example.org.", "CNAME", target) for owner, target in CASES.items()}
    assert sections(got["to-a", "A"]) == ("NOERROR", [cname["to-a"], ("a.d.example.org.", "A", "192.0.2.1")], [])
    assert sections(got["to-a", "AAAA"]) == ("NOERROR", [cname["to-a"]], ["SOA"])  # NODATA at the target
    for rtype in ("A", "AAAA"):
        assert sections(got["to-missing", rtype]) == ("NXDOMAIN", [cname["to-missing"]], ["SOA"])
        assert sections(got["to-outside", rtype]) == ("NOERROR", [cname["to-outside"]], [])
        assert sections(got["to-gslb", rtype]) == ("NOERROR", [cname["to-gslb"]], [])
    for owner in CASES:  # asked for the CNAME itself: nothing is chased
        assert sections(got[owner, "CNAME"]) == ("NOERROR", [cname[owner]], [])


def test_explain_shows_the_chased_records(zone_dir: str) -> None:
    """`gslb explain` builds the answer the server sends (one `decision_answer`)."""
    import subprocess
    import sys

    from tests.support.dnsserver import ROOT

    def explain(name: str) -> str:
        r = subprocess.run([sys.executable, "-m", "gslb", "explain", name, "A", "--client", "198.51.100.1", "--zones",
                            zone_dir], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        return r.stdout

    assert "a.d.example.org. 3600 IN A 192.0.2.1" in explain("to-a.d.example.org")
    missing = explain("to-missing.d.example.org")
    assert "NXDOMAIN" in missing and "IN SOA" in missing
