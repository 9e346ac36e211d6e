"""The anycast controller against a real BGP peer: BIRD 2 as the upstream router, ExaBGP with our
API process in two site namespaces, real `gslb serve` DNS servers and a real redis-server.

    core (BIRD AS65000, redis) ── a0/eth0 ── site a (ExaBGP AS65001, gslb serve)
                               └─ b0/eth0 ── site b (ExaBGP AS65001, gslb serve)

Both sites announce 203.0.113.0/24 and 2001:db8:ffff::/48. Only documentation addresses.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from tests.support import netns
from tests.support.bgplab import CHECK, SITES, V4, V6, BgpLab
from tests.support.dnsserver import ROOT
from tests.support.procs import wait_for


@pytest.fixture(scope="module")
def lab():
    reason = netns.why_no_netns()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    the_lab = BgpLab()
    try:
        wait_for(lambda: all(the_lab.from_site(p, s) for p in (V4, V6) for s in SITES), timeout=30,
                 what="both sites' prefixes in BIRD")
        print(f"\nlab up, all four routes in BIRD {time.monotonic() - started:.1f}s after start")
        yield the_lab
    finally:
        if os.environ.get("GSLB_KEEP_LAB_LOGS"):
            shutil.copytree(the_lab.workdir, os.environ["GSLB_KEEP_LAB_LOGS"], dirs_exist_ok=True)
        the_lab.close()


def test_both_sites_announce_v4_and_v6(lab):
    for prefix in (V4, V6):
        routes = lab.bird.routes(prefix)
        assert {r.protocol.rstrip("6") for r in routes} == {"site_a", "site_b"}
        assert all(r.as_path == [65001] for r in routes)
    doc = lab.site_doc("a")
    assert doc["prefixes"][V4]["state"] == "announced" and doc["healthy"]
    assert set(doc["peers"].values()) == {"up"}


def test_dns_failure_withdraws_and_recovery_reannounces(lab):
    lab.stop("dns-a")
    wait_for(lambda: not lab.from_site(V4, "a"), timeout=10, interval=0.005, what="site a withdrawn")
    seen = time.time()
    decided = lab.site_doc("a")["prefixes"][V4]["since"]
    print(f"\nDNS down → withdraw decision → gone from BIRD: {(seen - decided) * 1000:.0f} ms after the decision")
    assert seen - decided < 1.0
    assert not lab.from_site(V6, "a")  # the IPv6 prefix follows the same signal
    best = [r for r in lab.bird.routes(V4) if r.best]
    assert best and best[0].protocol == "site_b"  # the other site's route carries on
    lab.start_dns("a")
    wait_for(lambda: lab.from_site(V4, "a") and lab.from_site(V6, "a"), timeout=20, what="re-announced")


def test_degraded_prepends_and_raises_med(lab):
    lab.redis("SET", f"gslb:override:{CHECK}", json.dumps({"status": "down", "by": "test"}))
    lab.redis("PUBLISH", "gslb:changes", json.dumps({"space": "override", "key": CHECK,
                                                     "value": {"status": "down"}}))
    try:
        wait_for(lambda: any(r.as_path == [65001, 65001, 65001] for r in lab.from_site(V4, "a")), timeout=10,
                 what="prepended route from site a")
        (route,) = lab.from_site(V4, "a")
        assert route.med == 500 and not route.best
        assert next(r for r in lab.bird.routes(V4) if r.best).protocol == "site_b"
        assert lab.from_site(V6, "a")[0].as_path == [65001]  # V6 is not gated by the backend signal
    finally:
        lab.redis("DEL", f"gslb:override:{CHECK}")
        lab.redis("PUBLISH", "gslb:changes", json.dumps({"space": "override", "key": CHECK, "value": None}))
    wait_for(lambda: lab.from_site(V4, "a") and lab.from_site(V4, "a")[0].as_path == [65001], timeout=10,
             what="back to announced")


def gslb_bgp(lab, site: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", lab.ns[site], sys.executable, "-m", "gslb", "bgp", *args,
                           "--redis", lab.store_url(site)], capture_output=True, text=True, cwd=ROOT, timeout=30)


def test_drain_shows_graceful_shutdown_then_withdraws(lab):
    assert gslb_bgp(lab, "a", "drain", "a", "--reason", "maintenance").returncode == 0
    try:
        wait_for(lambda: any("65535:0" in r.communities for r in lab.from_site(V4, "a")), timeout=10,
                 what="GRACEFUL_SHUTDOWN community on site a's route")
        t_gshut = time.monotonic()
        wait_for(lambda: not lab.from_site(V4, "a"), timeout=10, what="withdraw after drain_seconds")
        held = time.monotonic() - t_gshut
        print(f"\ndrain: 65535:0 visible for {held:.1f}s (drain_seconds 2) before the withdraw")
        assert 1.0 < held < 4.0
        out = gslb_bgp(lab, "a", "status").stdout
        assert "203.0.113.0/24" in out and "withdrawn" in out
    finally:
        gslb_bgp(lab, "a", "undrain", "a")
    wait_for(lambda: lab.from_site(V4, "a"), timeout=10, what="undrained")


def test_last_standing_site_keeps_its_prefix(lab):
    lab.stop("exabgp-b")  # site b is gone (its API process removes its state)
    wait_for(lambda: not lab.from_site(V4, "b"), timeout=10, what="site b gone")
    wait_for(lambda: not lab.site_doc("b"), timeout=10, what="site b's state gone")
    lab.stop("dns-a")
    try:
        wait_for(lambda: "guard" in lab.site_doc("a").get("prefixes", {}).get(V4, {}).get("reason", "")
                 or lab.site_doc("a")["prefixes"][V4]["guarded"], timeout=10, what="guard decision")
        time.sleep(1.0)
        assert lab.from_site(V4, "a")  # still announced: fail open
        with open(os.path.join(lab.workdir, "api-a.log")) as f:
            assert "guard: kept announced, no other site announces it" in f.read()
    finally:
        lab.start_dns("a")
        lab.start_exabgp("b")
    wait_for(lambda: lab.from_site(V4, "b"), timeout=20, what="site b back")


def test_bird_restart_leads_to_reannouncement(lab):
    lab.bird.stop()
    lab.bird.start()
    start = time.monotonic()
    wait_for(lambda: all(lab.from_site(p, s) for p in (V4, V6) for s in SITES), timeout=30, what="routes back")
    print(f"\nBIRD restarted → all routes back in {time.monotonic() - start:.1f}s")


def test_no_graceful_restart_towards_peers(lab):
    with open(os.path.join(lab.workdir, "exabgp-a.conf")) as f:
        text = f.read()
    assert "graceful-restart" not in text
    out = lab.bird.birdc("show", "protocols", "all", "site_a")
    assert "Graceful restart" not in out or "restart time" not in out.split("Neighbor caps:")[-1]
