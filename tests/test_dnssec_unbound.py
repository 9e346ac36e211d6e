"""Signed answers checked by a real validating resolver: unbound (Debian) resolves through
`gslb serve`, both inside a network namespace the test creates (loopback and 192.0.2.1 only, so
nothing can leave it), with the trust anchor `gslb dnssec ds` prints. AD=1 means unbound proved
the answer secure. A second unbound with a wrong trust anchor must SERVFAIL (it really checks),
and dnspython's `dns.dnssec.validate` re-checks the raw answers gslb sent.

The zones: example.com (signed, CSK, ECDSA P-256) delegating gslb.example.com (signed, KSK+ZSK,
its DS in example.com), csk.example.com (signed, CSK, its DS in example.com, for the CSK rollover)
and plain.example.com (unsigned child: insecure, never bogus).

Health comes through the store as in production: a redis-server on a Unix socket (reachable from
the namespace), one probe agent outside the namespace checking real HTTP endpoints on 127.0.0.x,
and `gslb serve --redis` reading the verdicts. Every step of the health change, the reload and
both rollovers is watched through unbound: each answer must be AD=1, never SERVFAIL.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
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
from tests.support.endpoints import Endpoint
from tests.support.procs import redis_server, stop, wait_for

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
csk:
  - type: NS
    value: ns1.example.com.
  - type: DS
    ttl: 2
    values:
{csk_ds}
"""

CSK_ZONE = """---
'':
  - type: NS
    value: ns1.example.com.
www:
  type: A
  value: 192.0.2.30
"""

# Health-checked GSLB name: the primary (checked at PRIMARY) fails over to the backup pool.
PRIMARY, BACKUP = "127.0.0.61", "127.0.0.62"
SVC = """svc:
  dynamic:
    pools:
      backup:
        values:
        - value: 198.51.100.20
      primary:
        fallback: backup
        values:
        - value: 192.0.2.20
    rules:
    - pool: primary
  octodns:
    gslb:
      interval: 0.2
      timeout: 0.5
      rise: 2
      fall: 2
      targets:
        192.0.2.20: {primary}
        198.51.100.20: {backup}
    healthcheck:
      path: /health
      port: {port}
      protocol: HTTP
  ttl: 2
  type: A
  value: 192.0.2.20
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
        - status: up  # never probed
          value: 192.0.2.10
      us:
        values:
        - status: up  # never probed
          value: 198.51.100.10
      ap:
        values:
        - status: up  # never probed
          value: 203.0.113.10
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

# gslb.example.com and csk.example.com have 2-second TTLs so that its ZSK rollover runs end to end in seconds.
CONFIG = """
zones_dir: zones
zones:
  example.com:
    dnssec: {keys_dir: keys}
  gslb.example.com:
    ttl: 2
    soa: {ttl: 2, minimum: 2}
    dnssec: {keys_dir: keys, scheme: ksk+zsk, dnskey_ttl: 2, propagation_delay: 1}
  csk.example.com:
    ttl: 2
    soa: {ttl: 2, minimum: 2}
    dnssec: {keys_dir: keys, dnskey_ttl: 2, propagation_delay: 1, parent_ds_ttl: 2}
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


def ds_values(ds_lines: str) -> str:
    """`gslb dnssec ds` output → the YAML `values:` items of a DS record."""
    out = []
    for line in ds_lines.strip().splitlines():
        _, _, _, tag, alg, digest_type, digest = line.split()
        out.append(f"    - {{key_tag: {tag}, algorithm: {alg}, digest_type: {digest_type}, digest: {digest}}}")
    return "\n".join(out)


class Lab:
    def __init__(self, ns: str, workdir: str) -> None:
        self.ns, self.workdir = ns, workdir
        self.anchor = ""  # "example.com. IN DS TAG ALG 2 DIGEST", from `gslb dnssec ds`
        self.cfg = ""  # gslb.yaml
        self.zones = os.path.join(workdir, "zones")
        self.example: dict[str, str] = {}  # the EXAMPLE template's fields (the parent's DS records)
        self.endpoints: dict[str, Endpoint] = {}
        self.control = os.path.join(workdir, "control.sock")

    def write(self, name: str, text: str) -> None:
        with open(os.path.join(self.zones, f"{name}.yaml"), "w") as f:
            f.write(text)

    def write_example(self, **fields: str) -> None:
        self.example.update(fields)
        self.write("example.com", EXAMPLE.format(**self.example))

    def reload(self) -> None:
        gslb("reload", "--control", self.control)

    def status(self) -> dict:
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.control)
            s.sendall(b"status\n")
            return json.loads(s.makefile().readline())

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
    for zone in ("example.com", "gslb.example.com", "csk.example.com"):
        gslb("dnssec", "keygen", zone, "--config", cfg)
    _, _, _, tag, alg, _, digest = gslb("dnssec", "ds", "gslb.example.com", "--config", cfg).split()
    anchor = gslb("dnssec", "ds", "example.com", "--config", cfg).strip()
    csk_ds = ds_values(gslb("dnssec", "ds", "csk.example.com", "--config", cfg))
    port = _common_port((PRIMARY, BACKUP))
    endpoints = {addr: Endpoint(addr, port).start() for addr in (PRIMARY, BACKUP)}
    head, digest_text = anchor.rsplit(" ", 1)
    wrong = head + " " + ("0" if digest_text[0] != "0" else "1") + digest_text[1:]
    procs = []
    with netns.lab("dnssec") as the_lab, contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_server(unix=True))
        the = Lab(the_lab.ns("dns"), workdir)
        the.anchor, the.cfg, the.endpoints = anchor, cfg, endpoints
        the.write_example(server=SERVER, tag=tag, alg=alg, digest=digest, csk_ds=csk_ds)
        the.write("plain.example.com", PLAIN)
        the.write("gslb.example.com", GSLB_ZONE + SVC.format(primary=PRIMARY, backup=BACKUP, port=port))
        the.write("csk.example.com", CSK_ZONE)
        ns = the.ns
        netns.sh("ip", "addr", "add", f"{SERVER}/32", "dev", "lo", ns=ns)
        log = open(os.path.join(workdir, "gslb.log"), "w")  # noqa: SIM115 (closed below)
        procs.append(subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-m", "gslb", "serve", "--config", cfg, "--zones", zones,
             "--listen", f"{SERVER}:53", "--workers", "2", "--control", the.control,
             "--identity", "dnssec-test", "--redis", redis_url], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
        procs.append(subprocess.Popen(  # the probe agent: outside the namespace, where the endpoints are
            [sys.executable, "-m", "gslb", "probe", "--region", "r1", "--redis", redis_url, "--zones", zones,
             "--heartbeat", "0.3"], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT))
        for listen, ta in ((GOOD, anchor), (BAD, wrong)):
            conf = os.path.join(workdir, f"unbound-{listen}.conf")
            with open(conf, "w") as f:
                f.write(UNBOUND.format(listen=listen, dir=workdir, anchor=ta, server=SERVER))
            check = subprocess.run(["unbound-checkconf", conf], capture_output=True, text=True)
            assert check.returncode == 0, check.stdout + check.stderr
            procs.append(subprocess.Popen(["ip", "netns", "exec", ns, "unbound", "-d", "-c", conf],
                                          stdout=log, stderr=subprocess.STDOUT))
        try:
            first = the.query(SERVER, [["example.com", "SOA", {}]], wait=60)[0]
            assert "error" not in first, f"gslb serve did not answer: {first}\n{the.logs()}"
            for server in (GOOD, BAD):
                r = the.query(server, [["ns1.example.com", "A", {"cd": True}]], wait=20)[0]
                assert "error" not in r, f"unbound on {server} did not answer: {r}\n{the.logs()}"
            try:
                wait_for(lambda: svc_health(the) == [True, True], timeout=20, what="health of both svc checks")
            except TimeoutError:
                raise AssertionError(f"no health for svc: {the.status()}\n{the.logs()}") from None
            yield the
        finally:
            for proc in reversed(procs):
                stop(proc)
            for endpoint in endpoints.values():
                endpoint.stop()
            log.close()
    shutil.rmtree(workdir, ignore_errors=True)


def svc_health(lab: Lab) -> list[bool]:
    return [up for key, (up, _) in lab.status()["health"].items() if "svc" in key]


def _common_port(addresses: tuple[str, ...]) -> int:
    """A TCP port free on every one of `addresses` (the endpoints share the health check's port)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind((addresses[0], 0))
            port = s.getsockname()[1]
        try:
            for address in addresses[1:]:
                with socket.socket() as s:
                    s.bind((address, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no common free port")


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


def addresses_of(r: dict) -> set[str]:
    return {line.split()[-1] for line in r["answer"] if " IN A " in line}


def secure_until(lab: Lab, name: str, wanted: set[str], timeout: float = 20) -> int:
    """Ask unbound for `name` until its answer is `wanted`; every answer on the way must be
    secure (AD=1, NOERROR), the old answer or the new one. Returns how many answers were seen."""
    deadline = time.monotonic() + timeout
    seen = 0
    while True:
        r = secure(lab, name, "A")
        seen += 1
        if addresses_of(r) == wanted:
            return seen
        assert time.monotonic() < deadline, f"{name}: still {addresses_of(r)}, wanted {wanted}\n{lab.logs()}"
        time.sleep(0.3)


def test_gslb_answer_stays_secure_when_an_endpoint_fails_and_after_a_reload(lab):
    """The health-checked name fails over (probe verdicts through redis) and back, and a reload
    changes another GSLB name's pools: unbound validates the old and the new answer at every step."""
    name = "svc.gslb.example.com"
    secure_until(lab, name, {"192.0.2.20"})
    lab.endpoints[PRIMARY].stop()
    try:
        secure_until(lab, name, {"198.51.100.20"})
    finally:
        lab.endpoints[PRIMARY].start()
    secure_until(lab, name, {"192.0.2.20"})

    before = addresses_of(secure(lab, "app.gslb.example.com", "A"))
    assert len(before) == 1
    moved = {a.rsplit(".", 1)[0] + ".12" for a in before}  # whichever pool this client gets, renumbered
    with open(os.path.join(lab.zones, "gslb.example.com.yaml")) as f:
        text = f.read()
    for old in ("192.0.2.10", "198.51.100.10", "203.0.113.10"):
        text = text.replace(f"value: {old}", f"value: {old.rsplit('.', 1)[0]}.12")
    lab.write("gslb.example.com", text)
    lab.reload()
    secure_until(lab, "app.gslb.example.com", moved)
    secure(lab, name, "A")


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


def test_csk_rollover_end_to_end_with_the_parent_ds_change(lab):
    """csk.example.com's CSK rolls by double signature: the new key signs beside the old, the
    parent's DS (in example.com, served here too) changes to the new key once the old DNSKEY
    RRset has expired from caches, and the old key goes once the old DS has. unbound asks at
    every step and while waiting; every answer stays secure."""
    zone = "csk.example.com"
    serial = [0]

    def all_secure() -> None:
        serial[0] += 1
        for qname, rdtype in ((f"www.{zone}", "A"), (f"fresh{serial[0]}.{zone}", "A"), (zone, "DNSKEY"),
                              (zone, "SOA"), (zone, "CDS")):
            secure(lab, qname, rdtype)

    def step(*args: str) -> str:
        out = gslb("dnssec", "rollover", zone, "--config", lab.cfg, *args)
        lab.reload()
        all_secure()
        return out

    def wait_due() -> None:
        status = gslb("dnssec", "status", zone, "--config", lab.cfg)
        if "(in " in status:
            until = time.monotonic() + int(status.split("(in ")[1].split("s)")[0]) + 1
            while time.monotonic() < until:  # unbound keeps asking while the caches turn over
                all_secure()
                time.sleep(0.5)

    old_ds = gslb("dnssec", "ds", zone, "--config", lab.cfg).strip()
    all_secure()
    assert "signing beside" in step()
    both = gslb("dnssec", "ds", zone, "--config", lab.cfg).strip().splitlines()
    new_ds = [line for line in both if line != old_ds]
    assert len(both) == 2 and len(new_ds) == 1
    cds = lab.one(SERVER, zone, "CDS")["answer"]
    assert len([line for line in "\n".join(cds).splitlines() if " IN CDS " in line]) == 2
    wait_due()
    lab.write_example(csk_ds=ds_values(new_ds[0]))  # the parent replaces the DS with the new key's
    lab.reload()
    all_secure()
    assert "parent DS points at" in step("--ds-published")
    wait_due()
    assert "rollover complete" in step()
    status = gslb("dnssec", "status", zone, "--config", lab.cfg)
    assert status.count(" removed ") == 1 and "no rollover in progress" in status
    assert gslb("dnssec", "ds", zone, "--config", lab.cfg).strip() == new_ds[0]
    # the old key is gone once the reload is served and unbound's 1-second DNSKEY has turned over
    # (a reload compiles in a background thread: on a loaded machine that can take seconds)
    deadline = time.monotonic() + 20
    while True:
        r = secure(lab, zone, "DNSKEY")  # secure at every step
        keys = [line for line in "\n".join(r["answer"]).splitlines() if " IN DNSKEY " in line]
        if len(keys) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert len(keys) == 1, keys
