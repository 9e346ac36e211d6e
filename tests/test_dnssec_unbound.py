"""Signed answers checked by a real validating resolver: unbound (Debian) resolves through
`gslb serve`, both inside a network namespace the test creates (loopback and 192.0.2.1 only, so
nothing can leave it), with the trust anchor `gslb dnssec ds` prints. AD=1 means unbound proved
the answer secure. A second unbound with a wrong trust anchor must SERVFAIL (it really checks),
and dnspython's `dns.dnssec.validate` re-checks the raw answers gslb sent.

The zones: example.com (signed, CSK, ECDSA P-256) delegating gslb.example.com (signed, KSK+ZSK,
its DS in example.com) and plain.example.com (unsigned child: insecure, never bogus).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import dns.dnssec
import dns.message
import dns.name
import dns.rdatatype
import pytest
from dns.rdatatype import RdataType

from tests.support import netns
from tests.support.dnsserver import ROOT
from tests.support.procs import stop

pytestmark = pytest.mark.root

SERVER = "192.0.2.1"  # gslb serve, inside the namespace (ns1.example.com)
GOOD, BAD = "127.0.0.1", "127.0.0.2"  # the two unbound instances

EXAMPLE = """---
'':
  - type: NS
    value: ns1.example.com.
  - type: A
    value: 192.0.2.10
  - type: AAAA
    value: 2001:db8::10
  - type: MX
    value: {{exchange: mx1.example.com., preference: 10}}
  - type: TXT
    value: v=spf1 -all
  - type: CAA
    value: {{flags: 0, tag: issue, value: ca.example.net}}
www:
  - type: A
    values: [192.0.2.10, 192.0.2.11]
  - type: AAAA
    value: 2001:db8::10
api:
  type: CNAME
  value: www.example.com.
chain:
  type: CNAME
  value: api.example.com.
'*.apps':
  type: A
  value: 192.0.2.50
_sip._tcp:
  type: SRV
  value: {{port: 5060, priority: 10, target: mx1.example.com., weight: 60}}
mx1:
  type: A
  value: 192.0.2.25
ns1:
  type: A
  value: {server}
gslb:
  - type: NS
    value: ns1.example.com.
  - type: DS
    value: {{key_tag: {tag}, algorithm: {alg}, digest_type: 2, digest: {digest}}}
plain:
  type: NS
  value: ns1.example.com.
"""

PLAIN = """---
'':
  - type: NS
    value: ns1.example.com.
www:
  type: A
  value: 192.0.2.99
"""

GSLB_ZONE = """---
'':
  - type: NS
    ttl: 2
    value: ns1.example.com.
app:
  dynamic:
    pools:
      eu:
        values:
        - value: 192.0.2.10
      us:
        values:
        - value: 198.51.100.10
      ap:
        values:
        - value: 203.0.113.10
    rules:
    - geos: [EU]
      pool: eu
    - geos: [AS]
      pool: ap
    - pool: us
  ttl: 2
  type: A
  value: 192.0.2.10
"""

# gslb.example.com has 2-second TTLs so that its ZSK rollover runs end to end in seconds.
CONFIG = """
zones_dir: zones
zones:
  example.com:
    dnssec: {keys_dir: keys}
  gslb.example.com:
    ttl: 2
    soa: {ttl: 2, minimum: 2}
    dnssec: {keys_dir: keys, scheme: ksk+zsk, dnskey_ttl: 2, propagation_delay: 1}
defaults:
  soa: {minimum: 60}
"""

UNBOUND = """
server:
  interface: {listen}
  port: 53
  access-control: 127.0.0.0/8 allow
  username: ""
  chroot: ""
  directory: "{dir}"
  pidfile: "{dir}/unbound-{listen}.pid"
  logfile: "{dir}/unbound-{listen}.log"
  use-syslog: no
  verbosity: 1
  val-log-level: 2
  num-threads: 1
  do-ip6: no
  module-config: "validator iterator"
  trust-anchor: "{anchor}"
  local-zone: "." refuse
  local-zone: "example.com." transparent
remote-control:
  control-enable: no
stub-zone:
  name: "example.com."
  stub-addr: {server}
"""


def gslb(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "gslb", *args], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, f"gslb {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.stdout


class Lab:
    def __init__(self, ns: str, workdir: str) -> None:
        self.ns, self.workdir = ns, workdir
        self.anchor = ""  # "example.com. IN DS TAG ALG 2 DIGEST", from `gslb dnssec ds`
        self.cfg = ""  # gslb.yaml

    def query(self, server: str, queries: list, wait: float = 0) -> list[dict]:
        spec = json.dumps({"server": server, "port": 53, "queries": queries, "wait": wait})
        r = subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-m", "tests.support.nsquery", spec],
                           capture_output=True, text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def one(self, server: str, name: str, rdtype: str, **opts) -> dict:
        return self.query(server, [[name, rdtype, opts]])[0]

    def logs(self) -> str:
        out = []
        for name in sorted(os.listdir(self.workdir)):
            if name.endswith(".log"):
                with open(os.path.join(self.workdir, name), errors="replace") as f:
                    out.append(f"== {name}\n{f.read()[-4000:]}")
        return "\n".join(out)


@pytest.fixture(scope="module")
def lab():
    reason = netns.why_no_netns()
    if reason:
        pytest.skip(reason)
    if shutil.which("unbound") is None:
        pytest.skip("unbound is not installed (scripts/setup installs it)")
    workdir = tempfile.mkdtemp(prefix="gslb-unbound-")
    zones = os.path.join(workdir, "zones")
    os.makedirs(zones)
    cfg = os.path.join(workdir, "gslb.yaml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    gslb("dnssec", "keygen", "example.com", "--config", cfg)
    gslb("dnssec", "keygen", "gslb.example.com", "--config", cfg)
    _, _, _, tag, alg, _, digest = gslb("dnssec", "ds", "gslb.example.com", "--config", cfg).split()
    anchor = gslb("dnssec", "ds", "example.com", "--config", cfg).strip()
    with open(os.path.join(zones, "example.com.yaml"), "w") as f:
        f.write(EXAMPLE.format(server=SERVER, tag=tag, alg=alg, digest=digest))
    with open(os.path.join(zones, "plain.example.com.yaml"), "w") as f:
        f.write(PLAIN)
    with open(os.path.join(zones, "gslb.example.com.yaml"), "w") as f:
        f.write(GSLB_ZONE)
    head, digest = anchor.rsplit(" ", 1)
    wrong = head + " " + ("0" if digest[0] != "0" else "1") + digest[1:]
    procs = []
    with netns.lab("dnssec") as the_lab:
        ns = the_lab.ns("dns")
        netns.sh("ip", "addr", "add", f"{SERVER}/32", "dev", "lo", ns=ns)
        log = open(os.path.join(workdir, "gslb.log"), "w")  # noqa: SIM115 (closed below)
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "gslb", "serve", "--config", cfg, "--zones", zones,
             "--listen", f"{SERVER}:53", "--workers", "2", "--control", os.path.join(workdir, "control.sock"),
             "--identity", "dnssec-test"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
        for listen, ta in ((GOOD, anchor), (BAD, wrong)):
            conf = os.path.join(workdir, f"unbound-{listen}.conf")
            with open(conf, "w") as f:
                f.write(UNBOUND.format(listen=listen, dir=workdir, anchor=ta, server=SERVER))
            check = subprocess.run(["unbound-checkconf", conf], capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "unbound", "-d", "-c", conf],
                                          stdout=log, stderr=subprocess.STDOUT))
        the = Lab(ns, workdir)
        the.anchor = anchor
        the.cfg = cfg
        try:
            first = the.query(SERVER, [["example.com", "SOA", {}]], wait=60)[0]
            assert "error" not in first, f"gslb serve did not answer: {first}\n{the.logs()}"
            for server in (GOOD, BAD):
                r = the.query(server, [["ns1.example.com", "A", {"cd": True}]], wait=20)[0]
                assert "error" not in r, f"unbound on {server} did not answer: {r}\n{the.logs()}"
            yield the
        finally:
            for proc in reversed(procs):
                stop(proc)
            log.close()
    shutil.rmtree(workdir, ignore_errors=True)


def secure(lab: Lab, name: str, rdtype: str, rcode: str = "NOERROR") -> dict:
    r = lab.one(GOOD, name, rdtype)
    assert r.get("rcode") == rcode and "AD" in r["flags"], f"{name} {rdtype}: {r}\n{lab.logs()}"
    return r


@pytest.mark.parametrize("name,rdtype", [
    ("www.example.com", "A"), ("www.example.com", "AAAA"), ("example.com", "MX"), ("example.com", "TXT"),
    ("example.com", "CAA"), ("_sip._tcp.example.com", "SRV"), ("example.com", "A"),
    ("example.com", "SOA"), ("example.com", "DNSKEY"), ("example.com", "NS"), ("example.com", "CDS"),
])
def test_static_answers_validate_as_secure(lab, name, rdtype):
    r = secure(lab, name, rdtype)
    assert any(f" {rdtype} " in line for line in r["answer"])


def test_cname_chain_validates(lab):
    r = secure(lab, "chain.example.com", "A")
    text = "\n".join(r["answer"])
    assert "CNAME api.example.com." in text and "CNAME www.example.com." in text and "192.0.2.10" in text


def test_wildcard_answer_validates(lab):
    r = secure(lab, "anything.apps.example.com", "A")
    assert "192.0.2.50" in "\n".join(r["answer"])
    r = secure(lab, "deeper.name.apps.example.com", "A")
    assert "192.0.2.50" in "\n".join(r["answer"])


def test_nxdomain_validates_as_secure_denial(lab):
    r = secure(lab, "no-such-name.example.com", "A")  # compact denial: NOERROR, no answer
    assert r["answer"] == []


def test_nodata_validates(lab):
    r = secure(lab, "www.example.com", "TXT")
    assert r["answer"] == []
    secure(lab, "apps.example.com", "A")  # an empty non-terminal
    secure(lab, "x.apps.example.com", "TXT")  # NODATA at a wildcard


def test_signed_child_with_ds_validates_through_the_delegation(lab):
    r = secure(lab, "gslb.example.com", "DNSKEY")
    assert r["answer"]
    secure(lab, "gslb.example.com", "SOA")


def test_gslb_name_validates(lab):
    r = secure(lab, "app.gslb.example.com", "A")
    assert any(addr in "\n".join(r["answer"]) for addr in ("192.0.2.10", "198.51.100.10", "203.0.113.10"))
    secure(lab, "app.gslb.example.com", "AAAA")  # the GSLB name's NODATA
    secure(lab, "missing.gslb.example.com", "A")


def test_unsigned_child_is_insecure_not_bogus(lab):
    r = lab.one(GOOD, "www.plain.example.com", "A")
    assert r["rcode"] == "NOERROR" and "AD" not in r["flags"], r
    assert "192.0.2.99" in "\n".join(r["answer"])


def test_wrong_trust_anchor_gives_servfail(lab):
    r = lab.one(BAD, "www.example.com", "A")
    assert r["rcode"] == "SERVFAIL", r


def _keys(lab: Lab) -> dict:
    out = {}
    for zone in ("example.com.", "gslb.example.com."):
        r = lab.one(SERVER, zone, "DNSKEY")
        msg = dns.message.from_wire(bytes.fromhex(r["wire"]))
        out[dns.name.from_text(zone)] = msg.find_rrset(msg.answer, dns.name.from_text(zone), 1, RdataType.DNSKEY)
    return out


def test_raw_answers_validate_with_dnspython(lab):
    """Second opinion: every RRset gslb sends (but referral NS and glue) validates in dnspython,
    GSLB answers for clients on three continents included."""
    keys = _keys(lab)
    queries = [["www.example.com", "A", {}], ["chain.example.com", "A", {}], ["x.apps.example.com", "A", {}],
               ["no-such-name.example.com", "A", {}], ["www.example.com", "TXT", {}],
               ["plain.example.com", "DS", {}], ["app.gslb.example.com", "A", {"ecs": "198.51.100.0/24"}],
               ["app.gslb.example.com", "A", {"ecs": "203.0.113.0/24"}],
               ["app.gslb.example.com", "A", {"ecs": "192.0.2.0/24"}], ["app.gslb.example.com", "A", {"tcp": True}]]
    seen = set()
    for (name, rdtype, _), r in zip(queries, lab.query(SERVER, queries), strict=True):
        msg = dns.message.from_wire(bytes.fromhex(r["wire"]))
        checked = 0
        for section in (msg.answer, msg.authority):
            sigs = {(x.name, x.covers): x for x in section if x.rdtype == RdataType.RRSIG}
            for rrset in section:
                if rrset.rdtype == RdataType.RRSIG:
                    continue
                if rrset.rdtype == RdataType.NS and rrset.name != dns.name.from_text("example.com."):
                    continue  # a referral's NS is the child's: unsigned by design
                dns.dnssec.validate(rrset, sigs[(rrset.name, rrset.rdtype)], keys, now=time.time())
                checked += 1
        assert checked, f"{name} {rdtype}: nothing signed"
        if name.startswith("app."):
            seen.add(frozenset(x.to_text() for x in msg.answer if x.rdtype == RdataType.A))
    assert len(seen) >= 2  # the clients got different (and each validly signed) answers


def test_queries_without_do_get_no_signatures(lab):
    r = lab.one(SERVER, "www.example.com", "A", do=False)
    assert not any("RRSIG" in line for line in r["answer"] + r["authority"])
    r = lab.one(SERVER, "no-such-name.example.com", "A", do=False)
    assert r["rcode"] == "NXDOMAIN"


@pytest.mark.skipif(shutil.which("delv") is None, reason="delv (bind9-dnsutils) not installed")
@pytest.mark.parametrize("name,rdtype", [("www.example.com", "A"), ("chain.example.com", "A"),
                                         ("x.apps.example.com", "A"), ("no-such-name.example.com", "A"),
                                         ("app.gslb.example.com", "A")])
def test_delv_fully_validates(lab, name, rdtype):
    """The docs' check: delv with the zone's own trust anchor (`gslb dnssec ds`)."""
    owner, _, _, tag, alg, digest_type, digest = lab.anchor.split()
    anchors = os.path.join(lab.workdir, "anchors.conf")
    with open(anchors, "w") as f:
        f.write(f'trust-anchors {{ {owner} static-ds {tag} {alg} {digest_type} "{digest}"; }};\n')
    r = subprocess.run(["ip", "netns", "exec", lab.ns, "delv", f"@{SERVER}", "-a", anchors,
                        f"+root={owner.rstrip('.')}", name, rdtype], capture_output=True, text=True, timeout=60)
    assert "fully validated" in r.stdout, r.stdout + r.stderr  # "; fully validated" or "; negative response, …"


def test_zsk_rollover_end_to_end_never_fails_validation(lab):
    """gslb.example.com's ZSK rolls (pre-publication) while unbound keeps resolving: every step
    is served after `gslb reload`, every answer stays secure. Runs last: it changes the keys."""
    control = os.path.join(lab.workdir, "control.sock")
    serial = [0]

    def step(*args: str) -> str:
        out = gslb("dnssec", "rollover", "gslb.example.com", "--config", lab.cfg, *args)
        gslb("reload", "--control", control)
        return out

    def all_secure() -> None:
        serial[0] += 1
        for name, rdtype in (("app.gslb.example.com", "A"), (f"fresh{serial[0]}.gslb.example.com", "A"),
                             ("gslb.example.com", "SOA"), ("gslb.example.com", "DNSKEY")):
            secure(lab, name, rdtype)

    def wait_due() -> None:
        status = gslb("dnssec", "status", "gslb.example.com", "--config", lab.cfg)
        if "(in " in status:
            time.sleep(int(status.split("(in ")[1].split("s)")[0]) + 1)

    all_secure()
    assert "published new ZSK" in step()
    all_secure()
    wait_due()
    assert "signs now" in step()
    all_secure()
    wait_due()
    assert "rollover complete" in step()
    all_secure()
    status = gslb("dnssec", "status", "gslb.example.com", "--config", lab.cfg)
    assert status.count(" removed ") == 1 and "no rollover in progress" in status
