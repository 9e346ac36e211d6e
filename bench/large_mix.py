"""The large-zone mix of bench/dns_qps: every server on one generated zone of a million names.

The zone is tests/support/bigzone.py's (A, AAAA, MX, TXT, every tenth name a CNAME), written once
per run into the bench's folder: as octoDNS YAML for gslb and as an RFC 1035 zone file that Knot,
NSD, gdnsd and PowerDNS (bind backend) read as it is. Queries are drawn uniformly from the whole
zone, so that no small set of names (and no cache of them) carries the load: A, AAAA, MX and TXT
in a plausible mix (NODATA where a name lacks the type, the CNAME chased where the name is one)
and a tenth for names under the zone that do not exist (NXDOMAIN).
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import peers

sys.path.insert(0, peers.ROOT)
from tests.support import bigzone

ZONE = "example.com"
TYPES = [(50, "A"), (25, "AAAA"), (10, "MX"), (15, "TXT")]  # (weight, query type) for names that exist
NX_SHARE = 0.10  # queries for names under the zone that do not exist
COUNT = 2_000_000  # queries in the file: more than a 10 s run at dnsperf's ~150k QPS sends

# How long a server may take from its start to answering the probe (the zone's last names) right:
# base seconds + seconds per name. Generous and bounded: gslb's Python loader needs ~2 min for a
# million names today; the peers take seconds.
WAIT = {"gslb": (60.0, 600e-6)}
PEER_WAIT = (60.0, 300e-6)


def query_lines(names: int, count: int, seed: int = 11) -> Iterator[str]:
    """`count` dnsperf lines ("name type") drawn uniformly from a zone of `names` names."""
    rnd = random.Random(seed)
    types = [t for weight, t in TYPES for _ in range(weight)]
    for _ in range(count):
        owner = f"nx{rnd.randrange(names)}" if rnd.random() < NX_SHARE else bigzone.host(rnd.randrange(names))
        yield f"{owner}.{ZONE} {rnd.choice(types)}\n"


def probe(names: int) -> tuple[str, str]:
    """A name near the end of the zone (not a CNAME) and its first A address: a server that
    answers it right has loaded the whole zone."""
    i = names - 2 if (names - 2) % 10 != 9 else names - 3
    return f"{bigzone.host(i)}.{ZONE}", bigzone.records(i)[0][2][0]


def wait_for(server: str, names: int, override: float | None) -> peers.Wait:
    base, per_name = WAIT.get(server, PEER_WAIT)
    return peers.Wait(override or base + per_name * names, probe(names)[1])


@dataclass
class LargeZone:
    """The zone's files in `tmp` and how to start each server on them."""

    tmp: str
    names: int
    load_timeout: float | None = None

    def build(self, queries: str, count: int = COUNT) -> str:
        """Write the YAML, the zone file and the query file; returns what took how long."""
        t0 = time.monotonic()
        self.zones_dir = os.path.join(self.tmp, "large-zones")
        bigzone.write_streamed(self.zones_dir, self.names, zone=ZONE)
        t1 = time.monotonic()
        self.zone_file = bigzone.stream_to(os.path.join(self.tmp, f"{ZONE}.zone"),
                                           bigzone.zone_file_lines(self.names, origin=f"{ZONE}."))
        t2 = time.monotonic()
        bigzone.stream_to(queries, query_lines(self.names, count))
        t3 = time.monotonic()
        return (f"{self.names:,} names: YAML {os.path.getsize(os.path.join(self.zones_dir, ZONE + '.yaml')) >> 20} MB "
                f"in {t1 - t0:.1f} s, zone file {os.path.getsize(self.zone_file) >> 20} MB in {t2 - t1:.1f} s, "
                f"{count:,} queries in {t3 - t2:.1f} s")

    def starters(self, cpus: str, workers: int) -> dict[str, Callable[[], peers.Running]]:
        qname = probe(self.names)[0]
        files = [(ZONE, self.zone_file)]

        def wait(server: str) -> peers.Wait:
            return wait_for(server, self.names, self.load_timeout)

        return {
            "gslb": lambda: peers.start_gslb(self.zones_dir, cpus, workers, qname, wait=wait("gslb")),
            "knot": lambda: peers.start_knot([], cpus, workers, qname, files=files, wait=wait("knot")),
            "nsd": lambda: peers.start_nsd(files, cpus, workers, qname, wait=wait("nsd")),
            "gdnsd": lambda: peers.start_gdnsd([], cpus, workers, qname, files=files, wait=wait("gdnsd")),
            "pdns": lambda: peers.start_pdns([], cpus, workers, qname, files=files, wait=wait("pdns")),
        }
