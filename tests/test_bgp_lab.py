"""The anycast controller against a real BGP peer: BIRD 2 as the upstream router, ExaBGP with our
API process in two site namespaces, real `gslb serve` DNS servers and a real redis-server.

    core (BIRD AS65000, redis) ── a0/eth0 ── site a (ExaBGP AS65001, gslb serve)
                               └─ b0/eth0 ── site b (ExaBGP AS65001, gslb serve, MD5 on IPv4)

Both sites announce 203.0.113.0/24 and 2001:db8:ffff::/48. Only documentation addresses. Every
assertion reads BIRD's routing table (its control socket, as birdc does).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.support import netns
from tests.support.bgplab import CHECK, GUARD_SETTLE, SITES, V4, V6, BgpLab, flap_site_a
from tests.support.dnsserver import ROOT
from tests.support.procs import wait_for

pytestmark = pytest.mark.root


@pytest.fixture(scope="module")
def lab():
    reason = netns.why_no_netns()
    if reason:
        pytest.skip(reason)
    started = time.monotonic()
    the_lab = BgpLab()
    try:
        the_lab.wait_all_routes()
        print(f"\nlab up, all four routes in BIRD {time.monotonic() - started:.1f}s after start")
        yield the_lab
    finally:
        the_lab.close()


def test_both_sites_announce_v4_and_v6(lab):
    for prefix in (V4, V6):
        routes = lab.bird.routes(prefix)
        assert {r.protocol for r in routes} == ({"site_a", "site_b"} if prefix == V4 else {"site_a6", "site_b6"})
        assert all(r.as_path == [65001] for r in routes)
    assert lab.bird.sessions()["site_b"] == "Established"  # the TCP MD5 session
    doc = lab.site_doc("a")  # the store contract the dashboard reads
    assert doc["site"] == "a" and doc["expires_at"] > time.time()
    assert doc["prefixes"][V4]["state"] == "announced" and doc["prefixes"][V4]["reason"] == "all signals up"
    assert doc["peers"] == {"192.0.2.2": "up", "2001:db8:0:1::2": "up"}
    assert doc["signals"]["dns"]["up"] and doc["signals"]["backend"]["up"] and doc["signals"]["drain"]["up"]


def test_dns_failure_withdraws_and_recovery_reannounces(lab):
    stopped = time.time()
    lab.stop("dns-a")
    wait_for(lambda: not lab.from_site(V4, "a"), timeout=10, interval=0.005, what="site a withdrawn")
    seen = time.time()
    doc = lab.site_doc("a")
    decided = doc["signals"]["dns"]["since"]  # the signal's down decision (after fall)
    withdrawn = doc["prefixes"][V4]["since"]  # the withdraw, after guard_settle
    print(f"\nDNS stopped → gone from BIRD in {(seen - stopped) * 1000:.0f} ms; from the failure decision "
          f"{(seen - decided) * 1000:.0f} ms (settling {(withdrawn - decided) * 1000:.0f} ms, "
          f"command → BIRD {(seen - withdrawn) * 1000:.0f} ms)")
    assert not doc["signals"]["dns"]["up"] and doc["prefixes"][V4]["state"] == "withdrawn"
    assert seen - decided < 1.0
    wait_for(lambda: not lab.from_site(V6, "a"), timeout=5, what="IPv6 withdrawn")  # same signal
    best = [r for r in lab.bird.routes(V4) if r.best]
    assert best and best[0].protocol == "site_b"  # the other site's route carries on
    lab.start_dns("a")
    wait_for(lambda: lab.from_site(V4, "a") and lab.from_site(V6, "a"), timeout=20, what="re-announced")


def override(lab, status: str | None) -> None:
    """An operator override of the backend check, as the dashboard writes it."""
    if status:
        lab.redis("SET", f"gslb:override:{CHECK}", json.dumps({"status": status, "by": "test"}))
    else:
        lab.redis("DEL", f"gslb:override:{CHECK}")
    lab.redis("PUBLISH", "gslb:changes", json.dumps({"space": "override", "key": CHECK,
                                                     "value": {"status": status} if status else None}))


def test_degraded_prepends_and_raises_med(lab):
    override(lab, "down")
    try:
        wait_for(lambda: any(r.as_path == [65001, 65001, 65001] for r in lab.from_site(V4, "a")), timeout=10,
                 what="prepended route from site a")
        (route,) = lab.from_site(V4, "a")
        assert route.med == 500 and not route.best
        assert next(r for r in lab.bird.routes(V4) if r.best).protocol == "site_b"
        assert lab.from_site(V6, "a")[0].as_path == [65001]  # V6 is not gated by the backend signal
        assert lab.site_doc("a")["prefixes"][V4]["state"] == "degraded"
    finally:
        override(lab, None)
    wait_for(lambda: lab.from_site(V4, "a") and lab.from_site(V4, "a")[0].as_path == [65001], timeout=10,
             what="back to announced")


def gslb_bgp(lab, site: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", "netns", "exec", lab.ns[site], sys.executable, "-m", "gslb", "bgp", *args,
                           "--redis", lab.store_url(site)], capture_output=True, text=True, cwd=ROOT, timeout=30)


def test_drain_shows_graceful_shutdown_then_withdraws(lab):
    r = gslb_bgp(lab, "a", "drain", "a", "--reason", "maintenance")
    assert r.returncode == 0, r.stderr
    try:
        wait_for(lambda: any("65535:0" in r.communities for r in lab.from_site(V4, "a")), timeout=10,
                 interval=0.01, what="GRACEFUL_SHUTDOWN community on site a's route")
        t_gshut = time.monotonic()
        assert lab.from_site(V6, "a") and "65535:0" in lab.from_site(V6, "a")[0].communities
        wait_for(lambda: not lab.from_site(V4, "a"), timeout=10, interval=0.01, what="withdraw after drain_seconds")
        held = time.monotonic() - t_gshut
        print(f"\ndrain: 65535:0 visible in BIRD for {held:.1f}s (drain_seconds 2) before the withdraw")
        assert 1.5 < held < 4.0
        out = gslb_bgp(lab, "a", "status").stdout
        assert "203.0.113.0/24" in out and "withdrawn" in out and "drain requested by" in out
    finally:
        gslb_bgp(lab, "a", "undrain", "a")
    wait_for(lambda: lab.from_site(V4, "a") and not lab.from_site(V4, "a")[0].communities, timeout=10,
             what="undrained")


def test_last_standing_site_keeps_its_prefix(lab):
    lab.stop("exabgp-b")  # site b is gone (its API process removes its state)
    wait_for(lambda: not lab.from_site(V4, "b"), timeout=10, what="site b gone")
    wait_for(lambda: not lab.site_doc("b"), timeout=10, what="site b's state gone")
    lab.stop("dns-a")
    try:
        wait_for(lambda: lab.site_doc("a")["prefixes"][V4]["guarded"], timeout=10, what="guard decision")
        time.sleep(1.0)
        assert lab.from_site(V4, "a") and lab.from_site(V6, "a")  # still announced: fail open
        assert not lab.site_doc("a")["signals"]["dns"]["up"]
        assert "guard: kept announced, no other site announces it (dns:" in lab.api_log("a")
    finally:
        lab.start_dns("a")
        lab.start_exabgp("b")
    lab.wait_all_routes()


def test_sites_failing_together_leave_exactly_one(lab):
    """Both DNS services freeze at the same instant: both sites decide to withdraw within a check
    interval of each other, each while the other still looks healthy. Settling and the tie-break
    (smallest site name stays) must leave exactly one site announcing."""
    for site in SITES:
        lab.signal_tree(f"dns-{site}", signal.SIGSTOP)
    try:
        wait_for(lambda: len(lab.announcing(V4)) == 1, timeout=10, interval=0.01, what="one site left")
        time.sleep(1.5)
        (survivor,) = lab.announcing(V4)
        assert lab.announcing(V4) == {survivor} and lab.announcing(V6) == {survivor}
        docs = {s: lab.site_doc(s) for s in SITES}
        assert docs[survivor]["prefixes"][V4]["guarded"] and not docs[survivor]["signals"]["dns"]["up"]
        apart = abs(docs["a"]["signals"]["dns"]["since"] - docs["b"]["signals"]["dns"]["since"])
        print(f"\nboth DNS services frozen at once: decisions {apart * 1000:.0f} ms apart; site {survivor} keeps "
              f"the prefixes (guarded), the other withdrew")
        if apart < GUARD_SETTLE:  # decided within one settling time: the tie-break chose, not the order
            assert survivor == "a"
    finally:
        for site in SITES:
            lab.signal_tree(f"dns-{site}", signal.SIGCONT)
    lab.wait_all_routes()


def test_session_drop_and_exabgp_restart_lead_to_reannouncement(lab):
    lab.bird.ask("disable site_a")
    wait_for(lambda: not lab.from_site(V4, "a"), timeout=5, what="session down")
    lab.bird.ask("enable site_a")
    wait_for(lambda: lab.bird.sessions().get("site_a") == "Established", timeout=15, interval=0.005, what="session")
    up = time.monotonic()
    wait_for(lambda: lab.from_site(V4, "a"), timeout=10, interval=0.005, what="re-announced after the drop")
    print(f"\nsession dropped by BIRD and back: routes {1000 * (time.monotonic() - up):.0f} ms after Established")
    assert "session with 192.0.2.2 is up" in lab.api_log("a")

    lab.stop("exabgp-a")  # ExaBGP dies: no graceful restart, so the routes go at once
    gone = time.monotonic()
    wait_for(lambda: not lab.from_site(V4, "a"), timeout=5, interval=0.005, what="routes gone with ExaBGP")
    print(f"ExaBGP stopped: its routes left BIRD in {1000 * (time.monotonic() - gone):.0f} ms")
    lab.start_exabgp("a")
    wait_for(lambda: lab.from_site(V4, "a") and lab.from_site(V6, "a"), timeout=20, what="ExaBGP restarted")


def test_respawned_api_process_resyncs_what_exabgp_announces(lab):
    """ExaBGP respawns a dead API process but keeps the routes the old one announced: the new one
    must say its first decision even when that is 'withdrawn'."""
    pid = lab.kill_api("a", signal.SIGSTOP)  # frozen: it cannot see the DNS failure
    lab.stop("dns-a")
    os.kill(pid, signal.SIGKILL)
    try:
        wait_for(lambda: not lab.from_site(V4, "a") and not lab.from_site(V6, "a"), timeout=15,
                 what="withdrawn by the respawned API process")
        assert (lab.api_pid("a") or pid) != pid
        assert "(first decision of this process)" in lab.api_log("a")
    finally:
        lab.start_dns("a")
    wait_for(lambda: lab.from_site(V4, "a"), timeout=20, what="back")


def test_bird_restart_leads_to_reannouncement(lab):
    lab.bird.stop()
    lab.bird.start()
    start = time.monotonic()
    lab.wait_all_routes()
    print(f"\nBIRD restarted → all routes back in {time.monotonic() - start:.1f}s")


def test_flapping_dns_is_damped(lab):
    """The DNS service flips every 200 ms for 10 s. Rise/fall 2 at a 0.1 s interval let each flip
    through (the signal does flap), so what bounds the route changes BIRD sees is the hold-down:
    1 s, doubling per flap. Departures d1 < d2 < ... are at least 1, 2, 4, ... s apart, so in
    10 s there are at most 1 + log2(10/1 + 1) = 4 of them."""
    r = flap_site_a(lab, hold=1.0, seconds=10.0, period=0.2)
    print(f"\nflap: DNS flipping every {r.period * 1000:.0f} ms for {r.seconds:g} s; the signal went down "
          f"{r.signal_downs} times (rise/fall 2 at 0.1 s), BIRD saw {r.route_changes} route changes "
          f"({r.withdraws} withdraws); hold-down {r.hold:g} s doubling allows {r.allowed_withdraws} withdraws")
    assert r.signal_downs > r.allowed_withdraws  # the hysteresis alone would have let these through
    assert 1 <= r.withdraws <= r.allowed_withdraws
    assert r.route_changes <= 2 * r.allowed_withdraws
    lab.wait_all_routes()


def test_no_graceful_restart_towards_peers(lab):
    with open(os.path.join(lab.workdir, "exabgp-a.conf")) as f:
        assert "graceful-restart" not in f.read()
    out = lab.bird.ask("show protocols all site_a")
    assert "Neighbor capabilities" in out, out
    caps = out.split("Neighbor capabilities")[1].split("Session:")[0]
    assert "4-octet AS numbers" in caps and "Graceful restart" not in caps, caps  # BIRD's own side does offer it
