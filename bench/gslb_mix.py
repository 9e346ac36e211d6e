"""The GSLB query mix and equivalent geo configurations for gslb and its peers.

One GSLB name, `www.gslb.example.com`, answers by continent: Europe and Africa get 192.0.2.10,
Asia and Oceania 203.0.113.10, everyone else 198.51.100.10, from the bundled test geo database.
gslb serves it as an octoDNS dynamic record, gdnsd through plugin_geoip, Knot through mod-geoip,
PowerDNS through its geoip backend. Queries are a binary dnsperf file (-B) so that each one can
carry its own Client Subnet option: 80% go to the GSLB name, half of all queries carry ECS from
thousands of distinct /24s, the rest are static names.
"""

from __future__ import annotations

import ipaddress
import os
import random
import struct

import dns.edns
import dns.message
import peers

GSLB_ZONE = """---
'':
  type: NS
  value: ns1.example.com.
static:
  type: A
  value: 192.0.2.53
www:
  dynamic:
    pools:
      ap:
        values:
        - status: up
          value: 203.0.113.10
      eu:
        values:
        - status: up
          value: 192.0.2.10
      us:
        values:
        - status: up
          value: 198.51.100.10
    rules:
    - geos: [EU, AF]
      pool: eu
    - geos: [AS, OC]
      pool: ap
    - pool: us
  ttl: 30
  type: A
  value: 198.51.100.10
"""

ANSWER = {"EU": "192.0.2.10", "AF": "192.0.2.10", "AS": "203.0.113.10", "OC": "203.0.113.10"}
DEFAULT = "198.51.100.10"
ZONE = "gslb.example.com"


def client_subnets(count: int, seed: int = 11) -> list[ipaddress.IPv4Network]:
    """Distinct /24s: all over the test networks' space and beyond (unknown places)."""
    rnd = random.Random(seed)
    nets: set[ipaddress.IPv4Network] = set()
    fixed = ["198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24"] + [f"127.{i}.0.0/16" for i in range(1, 5)]
    for base in fixed:
        nets.update(list(ipaddress.ip_network(base).subnets(new_prefix=24))[:250])
    while len(nets) < count:
        nets.add(ipaddress.ip_network(f"100.{rnd.randrange(64, 128)}.{rnd.randrange(256)}.0/24"))
    return sorted(nets)[:count]


class Setup:
    def __init__(self, workdir: str, workers: int) -> None:
        self.workdir = workdir
        self.workers = workers
        self.mmdb = __import__("geodb").default_mmdb()
        self.zones_dir = os.path.join(workdir, "zones")
        os.makedirs(self.zones_dir, exist_ok=True)
        with open(os.path.join(self.zones_dir, f"{ZONE}.yaml"), "w") as f:
            f.write(GSLB_ZONE)
        self.zones = peers.load(self.zones_dir)

    def write_queries(self, path: str, count: int = 50000) -> list[str]:
        """A dnsperf -B file; returns the extra dnsperf flags it needs."""
        rnd = random.Random(5)
        subnets = client_subnets(4000)
        with open(path, "wb") as f:
            for i in range(count):
                name = f"www.{ZONE}" if rnd.random() < 0.8 else f"static.{ZONE}"
                if i % 2:
                    net = rnd.choice(subnets)
                    q = dns.message.make_query(name, "A", use_edns=0,
                                               options=[dns.edns.ECSOption(str(net.network_address), 24)])
                else:
                    q = dns.message.make_query(name, "A", use_edns=0)
                wire = q.to_wire()
                f.write(struct.pack(">H", len(wire)) + wire)
        return ["-B"]

    def starters(self, cpus: str) -> dict:
        probe = f"www.{ZONE}"
        return {
            "gslb": lambda: peers.start_gslb(self.zones_dir, cpus, self.workers, probe,
                                             ["--geodb", self.mmdb]),
            "knot": lambda: self._knot(cpus, probe),
            "pdns": lambda: self._pdns(cpus, probe),
            "gdnsd": lambda: self._gdnsd(cpus, probe),
        }

    def _knot(self, cpus: str, probe: str) -> peers.Running:
        workdir_conf = os.path.join(self.workdir, "knot-geo.conf")
        rules = [f"www.{ZONE}:"]
        for continent, address in ANSWER.items():
            rules += [f'  - geo: "{continent}"', f"    A: {address}"]
        with open(workdir_conf, "w") as f:
            f.write("\n".join(rules) + "\n")
        extra = ("mod-geoip:\n  - id: geo\n    config-file: " + workdir_conf + "\n    ttl: 30\n    mode: geodb\n"
                 f"    geodb-file: {self.mmdb}\n    geodb-key: [ continent/code ]")
        return peers.start_knot(self.zones, cpus, self.workers, probe, extra_conf=extra,
                                zone_conf="    module: mod-geoip/geo", server_conf="    edns-client-subnet: on")

    def _pdns(self, cpus: str, probe: str) -> peers.Running:
        path = os.path.join(self.workdir, "pdns-geo.yaml")
        records = {f"{ZONE}": [{"soa": "ns1.example.com hostmaster.example.com 2026112401 3600 600 1209600 300"},
                               {"ns": "ns1.example.com"}],
                   f"static.{ZONE}": [{"a": "192.0.2.53"}]}
        for continent in ("eu", "af", "as", "oc", "na", "sa", "an", "unknown"):
            records[f"{continent}.www.{ZONE}"] = [{"a": ANSWER.get(continent.upper(), DEFAULT)}]
        doc = {"domains": [{"domain": ZONE, "ttl": 30, "records": records,
                            "services": {f"www.{ZONE}": f"%cn.www.{ZONE}"}}]}
        import yaml

        with open(path, "w") as f:
            yaml.safe_dump(doc, f)
        extra = [f"geoip-database-files=mmdb:{self.mmdb}", f"geoip-zones-file={path}",
                 "edns-subnet-processing=yes"]
        return peers.start_pdns([], cpus, self.workers, probe, extra=extra, launch="geoip")

    def _gdnsd(self, cpus: str, probe: str) -> peers.Running:
        plugins = f"""plugins => {{ geoip => {{
  maps => {{ gslb => {{
    geoip2_db => {self.mmdb}
    datacenters => [us, eu, ap]
    map => {{ EU => [eu], AF => [eu], AS => [ap], OC => [ap] }}
  }} }}
  resources => {{ www => {{
    map => gslb
    dcmap => {{ eu => 192.0.2.10, us => 198.51.100.10, ap => 203.0.113.10 }}
  }} }}
}} }}"""
        zone = (f"$ORIGIN {ZONE}.\n@ 3600 SOA ns1.example.com. hostmaster.example.com. 2026112401 3600 600 1209600"
                f" 300\n@ 3600 NS ns1.example.com.\nstatic 30 A 192.0.2.53\nwww 30 DYNA geoip!www\n")
        return peers.start_gdnsd(self.zones, cpus, self.workers, probe, plugins=plugins, zone_texts={ZONE: zone})
