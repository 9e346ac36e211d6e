"""DNSSEC without a network: key files (ours and dnssec-keygen's), the `dnssec:` config, rollover
states, and the signed answers the responder sends on DO, checked with dnspython's validator.

The real-validator checks (unbound, delv) are in test_dnssec_unbound.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

import dns.dnssec
import dns.edns
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from dns.rdatatype import RdataType

from gslb.answers import Answers
from gslb.conf import located
from gslb.conf.problems import ConfigError
from gslb.config import load_config
from gslb.dnssec import keys as keyfiles
from gslb.dnssec import serve, state
from gslb.dnssec.config import DnssecConfig, parse_dnssec
from gslb.dnssec.signer import NXNAME
from gslb.server.fastpath import Responder
from gslb.zone.load import load_zones
from tests.support.dnsserver import ROOT

ORIGIN = dns.name.from_text("example.com.")
GSLB = dns.name.from_text("gslb.example.com.")
LOCAL = b"\x7f\x00\x00\x01"


@pytest.fixture
def workdir():
    d = tempfile.mkdtemp(prefix="gslb-dnssec-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def gslb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gslb", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)


def _secret(private: str) -> str:
    with open(private) as f:
        return f.read().split("PrivateKey: ")[1].split()[0]


# -- keys ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", [13, 15])
def test_key_files_round_trip_and_never_show_the_private_key(workdir, algorithm):
    key = keyfiles.generate(ORIGIN, algorithm)
    path = keyfiles.write(key, workdir)
    assert os.path.basename(path) == f"Kexample.com.+{algorithm:03d}+{key.tag:05d}.key"
    assert os.stat(path[:-4] + ".private").st_mode & 0o777 == 0o600
    back = keyfiles.read(path, ORIGIN)
    assert back.tag == key.tag and back.dnskey == key.dnskey and back.algorithm == algorithm
    secret = _secret(path[:-4] + ".private")
    assert secret not in repr(back)


def test_group_readable_private_key_is_refused_naming_the_file(workdir):
    key = keyfiles.generate(ORIGIN)
    path = keyfiles.write(key, workdir)
    private = path[:-4] + ".private"
    os.chmod(private, 0o640)
    with pytest.raises(keyfiles.KeyError_) as exc:
        keyfiles.read(path)
    assert private in str(exc.value) and "chmod 600" in str(exc.value)
    secret = _secret(private)
    assert secret not in str(exc.value)


@pytest.mark.skipif(shutil.which("dnssec-keygen") is None, reason="bind9-utils (dnssec-keygen) not installed")
@pytest.mark.parametrize("alg", ["ECDSAP256SHA256", "ED25519"])
def test_keys_made_by_dnssec_keygen_are_read(workdir, alg):
    subprocess.run(["dnssec-keygen", "-q", "-K", workdir, "-a", alg, "-f", "KSK", "-n", "ZONE", "example.com"],
                   check=True, capture_output=True)
    (key,) = keyfiles.load_all(workdir, ORIGIN)
    assert key.sep and key.algorithm == dns.dnssec.Algorithm[alg]
    sig = dns.dnssec.sign(dns.rrset.from_text(ORIGIN, 300, "IN", "A", "192.0.2.1"), key.private, ORIGIN,
                          key.dnskey, lifetime=3600)
    rrset = dns.rrset.from_text(ORIGIN, 300, "IN", "A", "192.0.2.1")
    sigs = dns.rrset.RRset(ORIGIN, 1, RdataType.RRSIG, RdataType.A)
    sigs.add(sig, 300)
    keyset = dns.rrset.RRset(ORIGIN, 1, RdataType.DNSKEY)
    keyset.add(key.dnskey, 300)
    dns.dnssec.validate(rrset, sigs, {ORIGIN: keyset})


@pytest.mark.skipif(shutil.which("dnssec-signzone") is None, reason="bind9-utils (dnssec-signzone) not installed")
def test_bind_signs_with_our_keys(workdir):
    state.keygen(workdir, ORIGIN)
    zone = os.path.join(workdir, "db")
    with open(zone, "w") as f:
        f.write("example.com. 300 IN SOA ns1.example.com. h.example.com. 1 2 3 4 5\n"
                "example.com. 300 IN NS ns1.example.com.\nns1.example.com. 300 IN A 192.0.2.1\n")
    r = subprocess.run(["dnssec-signzone", "-z", "-S", "-K", workdir, "-d", workdir, "-o", "example.com.", "-f",
                        zone + ".signed", zone], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    with open(zone + ".signed") as f:
        assert "RRSIG" in f.read()


# -- config -------------------------------------------------------------------------------------


def test_dnssec_config_defaults_durations_and_problems(workdir):
    cfg_path = os.path.join(workdir, "gslb.yaml")
    with open(cfg_path, "w") as f:
        f.write("defaults:\n  dnssec: true\nzones:\n  example.com:\n    dnssec:\n      algorithm: ed25519\n"
                "      signature_validity: 21d\n      dnskey_ttl: 2h\n      scheme: ksk+zsk\n  example.net:\n"
                "    dnssec: false\n")
    cfg = load_config(cfg_path)
    assert cfg.defaults.dnssec == DnssecConfig(keys_dir=os.path.join(workdir, "keys"))
    d = cfg.zone("example.com").dnssec
    assert (d.algorithm, d.signature_validity, d.dnskey_ttl, d.scheme) == (15, 21 * 86400, 7200, "ksk+zsk")
    assert cfg.zone("example.net").dnssec is None
    problems = []
    doc = located.load("dnssec:\n  algorithm: 8\n  refresh_margin: 30d\n  colour: red\n")
    parse_dnssec(doc["dnssec"], None, "zones.x.dnssec", "gslb.yaml", 1, problems)
    by_field = {p.field: p for p in problems}
    assert by_field["zones.x.dnssec.algorithm"].line == 2
    assert "zones.x.dnssec.colour" in by_field
    assert "zones.x.dnssec.refresh_margin" in by_field  # longer than the validity
    with open(cfg_path, "w") as f:
        f.write("zones:\n  example.com:\n    dnssec: {algorithm: 5}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(cfg_path)
    assert "gslb.yaml:3: zones.example.com.dnssec.algorithm" in str(exc.value)


# -- rollovers ----------------------------------------------------------------------------------


def test_zsk_prepublication_rollover_runs_by_ttl(workdir):
    state.keygen(workdir, ORIGIN, split=True, now=1000)
    zk = state.ZoneKeys.load(workdir, ORIGIN)
    timing = state.Timing(dnskey_ttl=3600, max_zone_ttl=600, propagation=60)
    old_zsk = zk.signing(False)[0]
    state.rollover(zk, timing, now=2000)
    zk = state.ZoneKeys.load(workdir, ORIGIN)
    assert len(zk.published()) == 3 and [k.tag for k in zk.signing(False)] == [old_zsk.tag]
    with pytest.raises(state.RolloverError, match="too early"):
        state.rollover(zk, timing, now=2000 + 3600)
    state.rollover(zk, timing, now=2000 + 3660)
    zk = state.ZoneKeys.load(workdir, ORIGIN)
    (signing,) = zk.signing(False)
    assert signing.tag != old_zsk.tag and len(zk.published()) == 3  # old one retired, still published
    with pytest.raises(state.RolloverError):
        state.rollover(zk, timing, now=2000 + 3660 + 600)
    state.rollover(zk, timing, now=2000 + 3660 + 660)
    zk = state.ZoneKeys.load(workdir, ORIGIN)
    assert len(zk.published()) == 2 and zk.rollover is None and not zk.check()


def test_csk_double_signature_rollover_waits_for_the_parent(workdir):
    (old,) = state.keygen(workdir, ORIGIN, now=1000)
    zk = state.ZoneKeys.load(workdir, ORIGIN)
    timing = state.Timing(dnskey_ttl=3600, max_zone_ttl=300, propagation=0, parent_ds_ttl=86400)
    state.rollover(zk, timing, now=2000)
    zk = state.ZoneKeys.load(workdir, ORIGIN)
    assert len(zk.signing(False)) == 2 and len(zk.sep_active()) == 2  # both sign, both in CDS
    with pytest.raises(state.RolloverError, match="ds-published"):
        state.rollover(zk, timing, now=2000 + 3600)
    state.rollover(zk, timing, ds_published=True, now=2000 + 3600)
    zk = state.ZoneKeys.load(workdir, ORIGIN)
    assert [k.tag for k in zk.sep_active()] != [old.tag] and len(zk.signing(True)) == 2
    with pytest.raises(state.RolloverError, match="too early"):
        state.rollover(zk, timing, now=2000 + 3600 + 86399)
    state.rollover(zk, timing, now=2000 + 3600 + 86400)
    zk = state.ZoneKeys.load(workdir, ORIGIN)
    assert [k.tag for k in zk.published()] != [old.tag] and len(zk.published()) == 1


def test_cli_keygen_ds_status_rollover(workdir):
    cfg = os.path.join(workdir, "gslb.yaml")
    with open(cfg, "w") as f:
        f.write(f"zones_dir: {os.path.join(ROOT, 'zones')}\nzones:\n  example.com:\n    dnssec: true\n")
    r = gslb("dnssec", "keygen", "example.com", "--config", cfg)
    assert r.returncode == 0, r.stderr
    assert gslb("dnssec", "keygen", "example.com", "--config", cfg).returncode == 1  # already has keys
    r = gslb("dnssec", "ds", "example.com", "--config", cfg)
    assert r.returncode == 0 and r.stdout.startswith("example.com. IN DS ") and " 13 2 " in r.stdout
    r = gslb("dnssec", "status", "--config", cfg)
    assert r.returncode == 0 and "CSK" in r.stdout and "active" in r.stdout
    r = gslb("dnssec", "rollover", "example.com", "--config", cfg)
    assert r.returncode == 0 and "signing beside" in r.stdout
    r = gslb("dnssec", "status", "--config", cfg)
    assert r.stdout.count("  CSK  tag") == 2 and "replace the parent's DS" in r.stdout
    private = keyfiles.find(os.path.join(workdir, "keys"), ORIGIN)[0][:-4] + ".private"
    os.chmod(private, 0o644)
    r = gslb("dnssec", "status", "--config", cfg)
    assert r.returncode == 1 and private in r.stdout


# -- signed answers -----------------------------------------------------------------------------


def signed_zones(workdir: str, serial: int | None = None) -> list:
    """zones/ with example.com (CSK, alg 13) and gslb.example.com (KSK+ZSK, alg 15) signed, the
    keys made in `workdir`."""
    cfg_path = os.path.join(workdir, "gslb.yaml")
    with open(cfg_path, "w") as f:
        f.write("zones:\n  example.com:\n    dnssec: true\n"
                "  gslb.example.com:\n    dnssec: {algorithm: 15, scheme: ksk+zsk}\n")
    state.keygen(os.path.join(workdir, "keys"), ORIGIN)
    state.keygen(os.path.join(workdir, "keys"), GSLB, algorithm=15, split=True)
    return load_zones(os.path.join(ROOT, "zones"), load_config(cfg_path), serial)[0]


@pytest.fixture
def signed(workdir):
    """zones/ with example.com (CSK, alg 13) and gslb.example.com (KSK+ZSK, alg 15) signed."""
    zones = signed_zones(workdir)
    answers = Answers(zones)
    responder = Responder(answers.snapshot, "test", None)
    keys = {origin: s.apex_rrsets()[0] for origin, s in serve.signers().items()}
    return answers, responder, keys


def ask(responder, name, rdtype, do=True, ecs=None):
    options = []
    if ecs is not None:
        options.append(dns.edns.ECSOption(ecs, 24))
    q = dns.message.make_query(name, rdtype, want_dnssec=do, use_edns=0 if (do or ecs) else None, options=options)
    return dns.message.from_wire(responder.answer(q.to_wire(), LOCAL))


def validate_all(resp, keys) -> list[tuple[str, int]]:
    """dnspython validates every RRset of answer+authority against the zones' DNSKEYs; returns
    the (owner, type) of what was not signed (glue-like data: the referral NS, DNAME's CNAME)."""
    unsigned = []
    for section in (resp.answer, resp.authority):
        sigs = {(r.name, r.covers): r for r in section if r.rdtype == RdataType.RRSIG}
        for rrset in section:
            if rrset.rdtype == RdataType.RRSIG:
                continue
            sig = sigs.get((rrset.name, rrset.rdtype))
            if sig is None:
                unsigned.append((rrset.name.to_text(), rrset.rdtype))
                continue
            dns.dnssec.validate(rrset, sig, keys)  # raises ValidationFailure
    return unsigned


@pytest.mark.parametrize("name,rdtype", [
    ("www.example.com", "A"), ("www.example.com", "AAAA"), ("example.com", "MX"), ("example.com", "TXT"),
    ("example.com", "CAA"), ("example.com", "HTTPS"), ("_sip._tcp.example.com", "SRV"), ("ssh.example.com", "SSHFP"),
    ("sip.example.com", "NAPTR"), ("dc.geo.example.com", "LOC"), ("example.com", "SOA"), ("example.com", "NS"),
    ("example.com", "DNSKEY"), ("example.com", "CDS"), ("example.com", "CDNSKEY"), ("gslb.example.com", "DNSKEY"),
])
def test_static_answers_are_signed_and_validate(signed, name, rdtype):
    _, responder, keys = signed
    resp = ask(responder, name, rdtype)
    assert resp.rcode() == dns.rcode.NOERROR and resp.answer
    assert any(r.rdtype == RdataType.RRSIG for r in resp.answer)
    assert validate_all(resp, keys) == []


def test_queries_without_do_get_the_unsigned_bytes(signed, workdir):
    _, responder, _ = signed
    plain_zones, _ = load_zones(os.path.join(ROOT, "zones"), load_config(None))
    plain = Responder(Answers(plain_zones).snapshot, "test", None)
    for name, rdtype in (("www.example.com", "A"), ("api.example.com", "A"), ("nope.example.com", "A"),
                         ("x.apps.example.com", "A"), ("foo.lab.example.com", "A")):
        for use_edns in (None, 0):
            q = dns.message.make_query(name, rdtype, use_edns=use_edns)
            a, b = responder.answer(q.to_wire(), LOCAL), plain.answer(q.to_wire(), LOCAL)
            assert dns.message.from_wire(a).answer == dns.message.from_wire(b).answer
            assert dns.message.from_wire(a).rcode() == dns.message.from_wire(b).rcode()
            assert b"RRSIG" not in a and not any(r.rdtype == RdataType.RRSIG
                                                 for r in dns.message.from_wire(a).authority)


def test_cname_chain_is_signed_link_by_link(signed):
    _, responder, keys = signed
    resp = ask(responder, "api.example.com", "A")
    assert [r.rdtype for r in resp.answer if r.rdtype != RdataType.RRSIG] == [RdataType.CNAME, RdataType.A]
    assert validate_all(resp, keys) == []


def test_nxdomain_is_compact_noerror_with_nxname(signed):
    _, responder, keys = signed
    resp = ask(responder, "no-such-name.example.com", "A")
    assert resp.rcode() == dns.rcode.NOERROR and not resp.answer
    (nsec,) = [r for r in resp.authority if r.rdtype == RdataType.NSEC]
    assert nsec.name == dns.name.from_text("no-such-name.example.com.")
    assert nsec[0].next == dns.name.from_text("\\000.no-such-name.example.com.")
    assert set(nsec[0].windows and _types(nsec[0])) == {RdataType.NSEC, RdataType.RRSIG, NXNAME}
    assert validate_all(resp, keys) == []
    unsigned = ask(responder, "no-such-name.example.com", "A", do=False)
    assert unsigned.rcode() == dns.rcode.NXDOMAIN


def _types(nsec) -> set[int]:
    out = set()
    for window, bitmap in nsec.windows:
        for i, byte in enumerate(bitmap):
            for bit in range(8):
                if byte & (0x80 >> bit):
                    out.add(window * 256 + i * 8 + bit)
    return out


def test_nodata_nsec_lists_the_types_that_exist(signed):
    _, responder, keys = signed
    resp = ask(responder, "www.example.com", "TXT")
    assert resp.rcode() == dns.rcode.NOERROR and not resp.answer
    (nsec,) = [r for r in resp.authority if r.rdtype == RdataType.NSEC]
    assert _types(nsec[0]) == {RdataType.A, RdataType.AAAA, RdataType.NSEC, RdataType.RRSIG}
    assert validate_all(resp, keys) == []
    apex = ask(responder, "example.com", "SRV")
    (nsec,) = [r for r in apex.authority if r.rdtype == RdataType.NSEC]
    assert {RdataType.SOA, RdataType.NS, RdataType.DNSKEY, RdataType.CDS} <= _types(nsec[0])


def test_wildcard_answer_carries_the_wildcard_labels_and_the_proof(signed):
    _, responder, keys = signed
    resp = ask(responder, "host.apps.example.com", "A")
    (sig,) = [r for r in resp.answer if r.rdtype == RdataType.RRSIG]
    assert sig[0].labels == 3  # *.apps.example.com
    (nsec,) = [r for r in resp.authority if r.rdtype == RdataType.NSEC]
    qname = dns.name.from_text("host.apps.example.com.")
    assert nsec.name < qname < nsec[0].next  # covers the next closer name
    assert validate_all(resp, keys) == []


def test_referrals_carry_the_signed_ds_or_the_proof_there_is_none(signed):
    _, responder, keys = signed
    resp = ask(responder, "www.lab.example.com", "A")
    assert validate_all(resp, keys) == [("lab.example.com.", RdataType.NS)]
    assert any(r.rdtype == RdataType.DS for r in resp.authority)
    resp = ask(responder, "lab.example.com", "DS")
    assert resp.answer and validate_all(resp, keys) == []


def test_gslb_answers_are_signed_per_decision_and_cached(signed):
    _, responder, keys = signed
    before = serve.signatures()
    for ecs in ("198.51.100.0", "203.0.113.0", "192.0.2.0"):
        resp = ask(responder, "api.gslb.example.com", "A", ecs=ecs)
        assert resp.answer and validate_all(resp, keys) == []
    made = serve.signatures() - before
    for ecs in ("198.51.100.0", "203.0.113.0", "192.0.2.0"):
        ask(responder, "api.gslb.example.com", "A", ecs=ecs)
    assert serve.signatures() - before == made  # the same answers: no new signatures
    assert made <= 3


def test_signatures_are_made_once_per_rrset(signed):
    _, responder, _ = signed
    before = serve.signatures()
    for _ in range(3):
        ask(responder, "www.example.com", "A")
        ask(responder, "other-missing.example.com", "A")
    assert serve.signatures() - before == 1  # one NSEC for the new name; the SOA was signed at load


def test_signed_zone_without_keys_is_refused_naming_the_zone(workdir):
    cfg_path = os.path.join(workdir, "gslb.yaml")
    with open(cfg_path, "w") as f:
        f.write("zones:\n  example.com:\n    dnssec: {keys_dir: nowhere}\n")
    with pytest.raises(ConfigError) as exc:  # refused at load, so a reload keeps serving the old zones
        load_zones(os.path.join(ROOT, "zones"), load_config(cfg_path))
    assert "example.com.yaml" in str(exc.value) and "no keys for example.com." in str(exc.value)


@pytest.mark.parametrize("name,rdtype", [("www.example.com", "A"), ("api.example.com", "A"),
                                         ("nope.example.com", "A"), ("x.apps.example.com", "A"),
                                         ("www.lab.example.com", "A"), ("api.gslb.example.com", "A")])
def test_fast_and_careful_paths_send_the_same_signed_answer(signed, name, rdtype):
    _, responder, _ = signed
    fast = dns.message.make_query(name, rdtype, want_dnssec=True)
    careful = dns.message.make_query(name, rdtype, want_dnssec=True, options=[dns.edns.GenericOption(3, b"")])
    a = dns.message.from_wire(responder.answer(fast.to_wire(), LOCAL))
    b = dns.message.from_wire(responder.answer(careful.to_wire(), LOCAL))
    assert (a.rcode(), a.flags, a.answer, a.authority) == (b.rcode(), b.flags, b.answer, b.authority)
    assert any(r.rdtype == RdataType.RRSIG for r in a.answer + a.authority)


def test_signed_answers_are_counted(signed):
    _, responder, _ = signed
    before = sum(responder.counts().values())
    for _ in range(3):
        ask(responder, "www.example.com", "A")
    assert sum(responder.counts().values()) - before == 3


def test_signing_operations_are_exposed_in_metrics():
    from prometheus_client.parser import text_string_to_metric_families

    from gslb.web.metrics import dns_families, render

    text = render(dns_families({"dnssec_signatures": 17}, [], [])).decode()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "gslb_dnssec_signatures"]
    assert [s.value for s in family.samples if s.name.endswith("_total")] == [17.0]


@pytest.mark.parametrize("algorithm", [13, 15])
@pytest.mark.parametrize("owner,rdtype,values", [
    ("www.example.com.", "A", ["192.0.2.1", "192.0.2.0"]), ("*.apps.example.com.", "TXT", ['"b"', '"a" "c"']),
    ("Mixed.Example.com.", "MX", ["10 MX.example.com."]),
])
def test_our_rrsig_is_dnspythons_byte_for_byte(algorithm, owner, rdtype, values):
    """The signer builds RRSIGs itself (under half of dnspython's per-call cost); the bytes must be
    exactly what `dns.dnssec.sign(deterministic=True)` makes, and validate."""
    from gslb.dnssec.signer import rrsig

    key = keyfiles.generate(ORIGIN, algorithm)
    rrset = dns.rrset.from_text(owner, 300, "IN", rdtype, *values)
    ours = rrsig(rrset, key.private, ORIGIN, algorithm, key.tag, 1_700_000_000, 1_800_000_000)
    theirs = dns.dnssec.sign(rrset, key.private, ORIGIN, key.dnskey, inception=1_700_000_000,
                             expiration=1_800_000_000, deterministic=True)
    assert ours.to_wire() == theirs.to_wire() and ours.typed() == theirs and ours.covers() == rrset.rdtype
    sigs = dns.rrset.RRset(rrset.name, rrset.rdclass, RdataType.RRSIG, rrset.rdtype)
    sigs.add(ours.typed(), 300)
    keys = {ORIGIN: dns.rrset.from_rdata(ORIGIN, 300, key.dnskey)}
    dns.dnssec.validate(rrset, sigs, keys, now=1_750_000_000)


def test_denial_signatures_are_bounded_in_a_random_name_flood(signed, monkeypatch):
    from gslb.dnssec import signer as signer_module

    _, responder, keys = signed
    monkeypatch.setattr(signer_module, "DENIALS_MAX", 50)
    zone_signer = serve.signers()[ORIGIN]
    for i in range(120):
        resp = ask(responder, f"flood{i}.example.com", "A")
        assert validate_all(resp, keys) == []
    assert len(zone_signer.denials) <= 50
    assert serve.refresh_due() is not None
