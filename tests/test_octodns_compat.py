"""Zone files that octoDNS accepts are served with exactly the RRsets octoDNS reads from them."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import pytest
import yaml
from octodns.provider.yaml import YamlProvider
from octodns.zone import Zone as OctoZone

from tests.support.dnsserver import ROOT, gslb_server

ZONE_DIRS = [os.path.join(ROOT, "zones"), os.path.join(ROOT, "tests/data/zones")]


def octodns_zone_names(directory: str) -> list[str]:
    return [f[: -len("yaml")] for f in sorted(os.listdir(directory)) if f.endswith(".yaml")]


@pytest.mark.parametrize("directory", ZONE_DIRS, ids=["zones", "tests-data-zones"])
def test_octodns_validate_accepts_our_zone_files(directory):
    d = tempfile.mkdtemp()
    try:
        config = {
            "providers": {"src": {"class": "octodns.provider.yaml.YamlProvider", "directory": directory,
                                  "supports_root_ns": True, "escaped_semicolons": True},
                          "dst": {"class": "octodns.provider.yaml.YamlProvider", "directory": d}},
            "zones": {"*": {"sources": ["src"], "targets": ["dst"]}},
        }
        path = os.path.join(d, "octodns.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(config, f)
        exe = shutil.which("octodns-validate") or os.path.join(os.path.dirname(os.sys.executable), "octodns-validate")
        r = subprocess.run([exe, "--config-file", path], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
    finally:
        shutil.rmtree(d)


@pytest.fixture(scope="module")
def server():
    zones = tempfile.mkdtemp(prefix="gslb-octo-")
    for src in ZONE_DIRS:
        shutil.copytree(src, zones, dirs_exist_ok=True)
    with gslb_server(zones) as srv:
        yield srv
    shutil.rmtree(zones, ignore_errors=True)


def octodns_records():
    out = []
    for directory in ZONE_DIRS:
        provider = YamlProvider("src", directory, supports_root_ns=True, escaped_semicolons=True)
        for zone_name in octodns_zone_names(directory):
            zone = OctoZone(zone_name, [])
            provider.populate(zone)
            for record in zone.records:
                out.append(pytest.param(record, id=f"{record.fqdn} {record._type}"))
    return out


@pytest.mark.parametrize("record", octodns_records())
def test_served_rrset_equals_what_octodns_reads(server, record):
    rrset = record.to_rrset()
    rtype = "A" if record._type == "ALIAS" else record._type
    expected = {dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), text)
                for text in rrset.rdatas} if record._type != "ALIAS" else None
    reply = server.query(record.fqdn, rtype, tcp=True)
    owner = dns.name.from_text(record.fqdn)
    got = reply.get_rrset(reply.answer, owner, dns.rdataclass.IN, dns.rdatatype.from_text(rtype))
    if record._type == "NS" and record.name != "":
        got = reply.get_rrset(reply.authority, owner, dns.rdataclass.IN, dns.rdatatype.NS)  # referral
    if got is None and reply.authority and reply.authority[0].rdtype == dns.rdatatype.NS:
        got = reply.get_rrset(reply.additional, owner, dns.rdataclass.IN, dns.rdatatype.from_text(rtype))  # glue
    assert got is not None, f"{record.fqdn} {rtype} not served:\n{reply}"
    if record._type == "ALIAS":
        target = server.query(rrset.rdatas[0], "A", tcp=True).answer[0]
        assert set(got) == set(target)
        return
    if getattr(record, "dynamic", None):
        # A GSLB name answers per client from its pools (or its values when all fail).
        pool_values = {dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rtype), v["value"])
                       for pool in record.dynamic.pools.values() for v in pool.data["values"]}
        assert set(got) <= pool_values | expected
        return
    assert set(got) == expected
    assert got.ttl == record.ttl
