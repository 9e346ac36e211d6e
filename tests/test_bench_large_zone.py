"""The files bench/zone_scale and bench/dns_qps --mix large give the servers: the streamed YAML is
the YAML the scale test loads, the zone file the peers read holds the same records, and the query
file spreads over the whole zone with a tenth NXDOMAIN names. No servers: pure file logic."""

from __future__ import annotations

import collections
import os
import sys

import dns.rdata
import dns.rdatatype
import dns.zone
import yaml

from tests.support import bigzone
from tests.support.dnsserver import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
import large_mix

NAMES = 200
EDITED = 42


def test_streamed_yaml_is_the_yaml_the_scale_test_loads(tmp_path):
    path = bigzone.write_streamed(str(tmp_path), NAMES, edit=EDITED)
    with open(path) as f:
        text = f.read()
    assert text == bigzone.yaml_text(NAMES, edit=EDITED)
    assert not os.path.exists(path + ".tmp")
    doc = yaml.safe_load(text)  # the records() of every name, the edit included
    for i in range(NAMES):
        got = doc[bigzone.host(i)]
        got = got if isinstance(got, list) else [got]
        want = [(t, [bigzone.EDIT_ADDRESS] if i == EDITED and t == "A" else v) for t, _ttl, v in bigzone.records(i)]
        assert [(r["type"], r.get("values") or [r["value"]]) for r in got] == [
            (t, [{"preference": int(x.split()[0]), "exchange": x.split()[1]} if t == "MX" else x for x in v])
            for t, v in want]


def test_zone_file_holds_the_records_of_every_name(tmp_path):
    path = bigzone.stream_to(str(tmp_path / "example.com.zone"), bigzone.zone_file_lines(NAMES, 7, edit=EDITED))
    zone = dns.zone.from_file(path, origin="example.com.", relativize=False)
    assert zone.get_soa().serial == 7
    assert sorted(rd.target.to_text() for rd in zone.find_rdataset("example.com.", "NS")) == [
        "ns1.example.net.", "ns2.example.net."]
    for i in range(NAMES):
        node = zone.find_node(f"{bigzone.host(i)}.example.com.")
        want = {}
        for rtype, ttl, values in bigzone.records(i):
            values = [bigzone.EDIT_ADDRESS] if (i == EDITED and rtype == "A") else values
            texts = [f'"{v}"' if rtype == "TXT" else v for v in values]
            want[dns.rdatatype.from_text(rtype)] = (ttl, {dns.rdata.from_text("IN", rtype, t) for t in texts})
        assert {rds.rdtype: (rds.ttl, set(rds)) for rds in node.rdatasets} == want, bigzone.host(i)
    assert len(list(zone.nodes)) == NAMES + 1


def test_queries_cover_the_whole_zone_with_a_tenth_nxdomain():
    names, count = 1000, 20000
    lines = list(large_mix.query_lines(names, count))
    assert len(lines) == count
    owners = collections.Counter()
    nx = 0
    for line in lines:
        qname, qtype = line.split()
        assert qtype in {t for _, t in large_mix.TYPES}
        label, zone = qname.split(".", 1)
        assert zone == large_mix.ZONE
        if label.startswith("nx"):
            nx += 1
        else:
            owners[int(label[1:])] += 1
    assert 0.08 < nx / count < 0.12
    assert min(owners) >= 0 and max(owners) < names
    assert len(owners) > 0.99 * names  # uniform over the zone, not a few hot names
    assert max(owners.values()) < 60  # ~18 per name on average
    assert sum(1 for i in owners if bigzone.records(i)[0][0] == "CNAME") > 0.09 * names


def test_probe_is_a_late_name_with_its_address():
    for names in (1000, 1002, 1001):
        qname, address = large_mix.probe(names)
        i = int(qname.split(".")[0][1:])
        assert names - 3 <= i < names
        assert bigzone.records(i)[0] == ("A", 300, bigzone.records(i)[0][2]) and address == bigzone.records(i)[0][2][0]
