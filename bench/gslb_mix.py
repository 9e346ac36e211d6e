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


def two_value_zone(pick: str) -> str:
    """The GSLB zone with a second, lighter value in every pool and the given `pick` (hash or
    random): the pick then decides something, so its cost shows."""
    out = GSLB_ZONE
    for first, second in (("203.0.113.10", "203.0.113.11"), ("192.0.2.10", "192.0.2.11"),
                          ("198.51.100.10", "198.51.100.11")):
        out = out.replace(f"        - status: up\n          value: {first}\n",
                          f"        - status: up\n          value: {first}\n          weight: 3\n"
                          f"        - status: up\n          value: {second}\n          weight: 1\n")
    return out.replace("  ttl: 30\n", f"  octodns:\n    gslb: {{pick: {pick}}}\n  ttl: 30\n")


class Setup:
    def __init__(self, workdir: str, workers: int, dnssec: bool = False) -> None:
        self.workdir = workdir
        self.workers = workers
        self.dnssec = dnssec
        self.mmdb = __import__("geodb").default_mmdb()
        self.zones_dir = os.path.join(workdir, "zones")
        os.makedirs(self.zones_dir, exist_ok=True)
        with open(os.path.join(self.zones_dir, f"{ZONE}.yaml"), "w") as f:
            f.write(GSLB_ZONE)
        self.zones = peers.load(self.zones_dir)
        self.signed = peers.signed_config(workdir, [ZONE]) if dnssec else None

    def write_queries(self, path: str, count: int = 50000) -> list[str]:
        """A dnsperf -B file; returns the extra dnsperf flags it needs."""
        rnd = random.Random(5)
        subnets = client_subnets(4000)
        with open(path, "wb") as f:
            for i in range(count):
                name = f"www.{ZONE}" if rnd.random() < 0.8 else f"static.{ZONE}"
                if i % 2:
                    net = rnd.choice(subnets)
                    q = dns.message.make_query(name, "A", use_edns=0, want_dnssec=self.dnssec,
                                               options=[dns.edns.ECSOption(str(net.network_address), 24)])
                else:
                    q = dns.message.make_query(name, "A", use_edns=0, want_dnssec=self.dnssec)
                wire = q.to_wire()
                f.write(struct.pack(">H", len(wire)) + wire)
        return ["-B"]

    def starters(self, cpus: str) -> dict:
        probe = f"www.{ZONE}"
        gslb = {"gslb": lambda: peers.start_gslb(self.zones_dir, cpus, self.workers, probe, ["--geodb", self.mmdb])}
        if self.signed:  # signed gslb first, its unsigned figure for reference; gdnsd has no DNSSEC
            gslb = {"gslb": lambda: peers.require_signed(peers.start_gslb(
                        self.zones_dir, cpus, self.workers, probe, ["--geodb", self.mmdb, "--config", self.signed]),
                        probe),
                    "gslb-unsigned": gslb["gslb"]}
        return {
            **gslb,
            "knot": lambda: self._knot(cpus, probe),
            "pdns": lambda: self._pdns(cpus, probe),
            "gdnsd": lambda: self._gdnsd(cpus, probe),
        }

    def pick_starters(self, cpus: str) -> dict:
        """gslb on the two-value zone with `pick: hash` ("gslb") and `pick: random` ("gslb-random")."""
        probe = f"www.{ZONE}"
        out = {}
        for name, pick in (("gslb", "hash"), ("gslb-random", "random")):
            folder = os.path.join(self.workdir, f"zones-{pick}")
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, f"{ZONE}.yaml"), "w") as f:
                f.write(two_value_zone(pick))
            extra = ["--geodb", self.mmdb, *(["--config", self.signed] if self.signed else [])]
            out[name] = (lambda folder=folder, extra=extra:
                         peers.start_gslb(folder, cpus, self.workers, probe, extra))
        return out

    def _knot(self, cpus: str, probe: str) -> peers.Running:
        workdir_conf = os.path.join(self.workdir, "knot-geo.conf")
        rules = [f"www.{ZONE}:"]
        for continent, address in ANSWER.items():
            rules += [f'  - geo: "{continent}"', f"    A: {address}"]
        with open(workdir_conf, "w") as f:
            f.write("\n".join(rules) + "\n")
        extra = ("mod-geoip:\n  - id: geo\n    config-file: " + workdir_conf + "\n    ttl: 30\n    mode: geodb\n"
                 f"    geodb-file: {self.mmdb}\n    geodb-key: [ continent/code ]")
        # with DNSSEC, onlinesign after geoip signs each geo answer as it goes out (Knot's docs)
        module = "[mod-geoip/geo, mod-onlinesign]" if self.dnssec else "mod-geoip/geo"
        running = peers.start_knot(self.zones, cpus, self.workers, probe, extra_conf=extra,
                                   zone_conf=f"    module: {module}", server_conf="    edns-client-subnet: on")
        return peers.require_signed(running, probe) if self.dnssec else running

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
        running = peers.start_pdns([], cpus, self.workers, probe, extra=extra, launch="geoip",
                                   secure=[ZONE] if self.dnssec else None)
        return peers.require_signed(running, probe) if self.dnssec else running

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
