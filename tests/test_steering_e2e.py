"""One client prefix, one worker, in a running server: with RRL on and two workers, a flood from
one prefix is limited by one worker at the whole configured rate. Without the prefix steering each
worker would have to enforce its share, rounded (a rate of 1 over 2 workers: 1 each, twice the
rate), and spread packets would land on both."""

from __future__ import annotations

import os

import dns.message

from tests.support.dnsserver import ROOT, gslb_server
from tests.support.flood import flood

RATE = 1


def test_one_source_gets_the_whole_rate_across_two_workers():
    config = {"rrl": {"rate": RATE, "slip": 0, "window": 1}}
    with gslb_server(os.path.join(ROOT, "zones"), config=config, workers=2) as srv:
        packet = dns.message.make_query("www.example.com", "A").to_wire()
        t = flood(srv.host, srv.port, [packet], [f"127.0.0.{i}" for i in range(10, 20)], rate=300, seconds=5.0)
        log = srv.log()
    assert t.sent == 1500
    # 1/s over the 5 s flood: about 5 (measured: 3 to 5); one per worker per second: about 10.
    assert 3 <= t.answers <= 7, (t, log[-2000:])
    assert t.truncated == 0  # slip 0: every limited response dropped
