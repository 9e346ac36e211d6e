"""The anycast controller's logic without a BGP peer: site config validation, the ExaBGP config
(checked by ExaBGP's own validator), the state machine with its guard, settling and hold-down
(several sites simulated over one shared view), and hysteresis against a real flapping UDP DNS
responder. The same behaviours against BIRD are in test_bgp_lab.py."""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import sys
import time

import pytest
import yaml

from bgp.config import Signal, load_site
from bgp.controller import ANNOUNCED, DEGRADED, DRAINING, WITHDRAWN, Controller, Other
from bgp.exabgp_conf import EXABGP_ENV, render
from bgp.exabgp_process import AnycastProcess
from bgp.signals import SignalState, dns_check
from gslb.conf.problems import ConfigError
from gslb.probe.hysteresis import Hysteresis
from gslb.store import MemoryStore
from tests.support.dnsserver import gslb_server
from tests.support.flapdns import FlappingDns

V4, V6 = "203.0.113.0/24", "2001:db8:ffff::/48"
SITE = {
    "site": "ams", "local_as": 65001, "router_id": "192.0.2.1", "guard_settle": 0.3,
    "neighbors": [{"address": "192.0.2.2", "peer_as": 65000, "md5": "s3cret"},
                  {"address": "2001:db8::2", "peer_as": 65000, "hold_time": 3}],
    "prefixes": [{"prefix": V4, "communities": ["65001:100"], "degrade": {"prepend": 3, "med": 700},
                  "drain_seconds": 5, "hold_down": 2, "max_hold_down": 16},
                 {"prefix": V6, "next_hop": "2001:db8::1", "signals": ["dns"], "hold_down": 0}],
    "signals": {"dns": {"type": "dns", "address": "127.0.0.1:53", "name": "www.example.com"},
                "backends": {"type": "health", "checks": ["tcp://192.0.2.10:80"], "on_fail": "degrade"}},
}


def write(tmp_path, doc: dict | str, name: str = "site.yaml") -> str:
    path = os.path.join(tmp_path, name)
    with open(path, "w") as f:
        f.write(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def site(tmp_path, **changes) -> Controller:
    return Controller(load_site(write(tmp_path, dict(SITE, **changes), f"{changes.get('site', 'ams')}.yaml")))


def states(tmp_path, **up: bool | None) -> dict[str, SignalState]:
    cfg = load_site(write(tmp_path, SITE, "signals.yaml"))
    out = {}
    for name, signal in cfg.signals.items():
        h = Hysteresis(signal.rise, signal.fall)
        h.up = up.get(name, True)
        out[name] = SignalState(signal, h, detail=f"{name} {'up' if h.up else 'down'}")
    return out


def alone(_prefix: str) -> list[Other]:
    return []


def covered(_prefix: str) -> list[Other]:
    return [Other("zrh", ANNOUNCED)]


# -- config ----------------------------------------------------------------------------------


def test_exabgp_config_has_sessions_md5_and_no_graceful_restart(tmp_path):
    text = render(load_site(write(tmp_path, SITE)))
    assert "neighbor 192.0.2.2 {" in text and "neighbor 2001:db8::2 {" in text
    assert 'md5-password "s3cret";' in text and "hold-time 3;" in text
    assert "neighbor-changes;" in text and "ipv6 unicast;" in text
    assert "graceful-restart" not in text
    assert "-m bgp api" in text


def test_exabgp_accepts_the_generated_config(tmp_path):
    conf = write(tmp_path, render(load_site(write(tmp_path, SITE))), "exabgp.conf")
    exabgp = os.path.join(os.path.dirname(sys.executable), "exabgp")
    r = subprocess.run([exabgp, "validate", conf], capture_output=True, text=True, timeout=60,
                       env={**os.environ, **EXABGP_ENV})
    assert r.returncode == 0, r.stdout + r.stderr


BAD = """\
site: ams
local_as: x
router_id: 2001:db8::1
neighbors:
  - {address: 192.0.2.300, peer_as: 65000}
  - {address: 192.0.2.2, peer_as: 0, hold-time: 9}
  - {address: 192.0.2.2, peer_as: 65000, local_address: "2001:db8::1"}
prefixes:
  - prefix: 203.0.113.1/24
  - prefix: 198.51.100.0/24
    communities: [nope]
    signals: [dns, nosuch]
    degrade: {prepend: 0}
    hold_down: 30
    max_hold_down: 10
signals:
  dns: {type: dns, name: www.example.com, qtype: BOGUS, on_fail: degrade, rise: 0}
  drain: {type: health, checks: [x]}
  backends: {type: health, checks: ["tcp://192.0.2.10:80"], min_up: 2}
"""


def test_every_config_problem_is_reported_with_its_line(tmp_path):
    path = write(tmp_path, BAD)
    with pytest.raises(ConfigError) as err:
        load_site(path)
    text = str(err.value)
    expected = [
        ":2: local_as: an AS number", ":3: router_id: an IPv4 address", ":5: neighbors[0].address: '192.0.2.300'",
        ":6: neighbors[1].peer_as: an AS number", ":6: neighbors[1].hold-time: unknown key",
        ":7: neighbors[2].local_address: IPv6 for an IPv4 neighbor", ":9: prefixes[0].prefix: bad prefix",
        ":11: prefixes[1].communities: 'nope'", ":12: prefixes[1].signals: unknown signal 'nosuch'",
        ":13: prefixes[1].degrade: degrading changes nothing", ":15: prefixes[1].max_hold_down: less than hold_down",
        ":17: signals.dns.qtype: 'BOGUS'", ":17: signals.dns.rise: an integer 1..1000", ":18: signals.drain: reserved",
        ":19: signals.backends.min_up: more than the 1 check(s) listed",
    ]
    for want in expected:
        assert want in text, f"{want!r} missing from:\n{text}"
    assert all(line.startswith(f"{path}:") for line in text.splitlines())
    assert len(text.splitlines()) == len(expected)


def test_a_good_file_loads_with_defaults(tmp_path):
    cfg = load_site(write(tmp_path, SITE))
    assert [str(p.prefix) for p in cfg.prefixes] == [V4, V6]
    assert cfg.prefixes[0].signals == ("dns", "backends")  # default: every signal
    assert cfg.signals["backends"].rise == cfg.signals["backends"].fall == 1  # probes did theirs
    assert (cfg.signals["dns"].rise, cfg.signals["dns"].fall) == (3, 2)
    assert [len(cfg.neighbors_for(p)) for p in cfg.prefixes] == [1, 1]


# -- state machine ---------------------------------------------------------------------------


def test_states_and_their_commands(tmp_path):
    c = site(tmp_path)
    t = c.evaluate(states(tmp_path, dns=None), None, covered, now=99)
    assert t == [] and c.unsynced() == []  # no first DNS result yet: no decision at all
    t = c.evaluate(states(tmp_path), None, covered, now=100)
    assert {(x.prefix, x.new) for x in t} == {(V4, ANNOUNCED), (V6, ANNOUNCED)}
    assert c.commands(V4) == ["neighbor 192.0.2.2 announce route 203.0.113.0/24 next-hop self community [ 65001:100 ]"]
    assert c.commands(V6) == ["neighbor 2001:db8::2 announce route 2001:db8:ffff::/48 next-hop 2001:db8::1"]
    c.evaluate(states(tmp_path, backends=False), None, covered, now=101)
    assert c.prefixes[V4].state == DEGRADED and c.prefixes[V6].state == ANNOUNCED  # v6 ignores backends
    assert c.commands(V4) == ["neighbor 192.0.2.2 announce route 203.0.113.0/24 next-hop self "
                              "as-path [ 65001 65001 65001 65001 ] med 700 community [ 65001:100 ]"]
    # a withdraw settles first: published as leaving, taken after guard_settle if still covered
    assert c.evaluate(states(tmp_path, dns=False), None, covered, now=102) == []
    assert c.prefixes[V4].doc()["leaving"] and c.prefixes[V4].state == DEGRADED
    assert c.next_deadline() == pytest.approx(102.3)
    t = c.evaluate(states(tmp_path, dns=False), None, covered, now=102.31)
    assert {(x.prefix, x.old, x.new) for x in t} == {(V4, DEGRADED, WITHDRAWN), (V6, ANNOUNCED, WITHDRAWN)}
    assert "dns: dns down" in t[0].reason
    assert c.commands(V4) == ["neighbor 192.0.2.2 withdraw route 203.0.113.0/24 next-hop self"]


def test_drain_announces_graceful_shutdown_then_withdraws(tmp_path):
    c = site(tmp_path)
    c.evaluate(states(tmp_path), None, covered, now=100)
    drain = {"by": "ops", "reason": "maintenance"}
    c.evaluate(states(tmp_path), drain, covered, now=101)
    assert c.prefixes[V4].state == DRAINING
    assert "community [ 65001:100 65535:0 ]" in c.commands(V4)[0]
    c.evaluate(states(tmp_path), drain, covered, now=105.9)
    assert c.prefixes[V4].state == DRAINING
    c.evaluate(states(tmp_path), drain, covered, now=106.1)  # drain_seconds 5, then the settle
    c.evaluate(states(tmp_path), drain, covered, now=106.5)
    assert c.prefixes[V4].state == WITHDRAWN
    c.evaluate(states(tmp_path), None, covered, now=107)
    assert c.prefixes[V4].state == ANNOUNCED  # undrain is not damped


def test_drain_never_announces_a_withdrawn_prefix(tmp_path):
    c = site(tmp_path)
    c.evaluate(states(tmp_path, dns=False), None, covered, now=100)
    assert c.prefixes[V4].state == WITHDRAWN and c.unsynced() == [V4, V6]  # a first decision is sent too
    c.evaluate(states(tmp_path), {"by": "ops"}, covered, now=101)
    assert c.prefixes[V4].state == WITHDRAWN


def test_guard_keeps_the_last_announcement_unless_forced(tmp_path):
    c = site(tmp_path)
    c.evaluate(states(tmp_path), None, alone, now=100)
    t = c.evaluate(states(tmp_path, dns=False), None, alone, now=101)
    assert c.prefixes[V4].state == ANNOUNCED and c.prefixes[V4].guarded
    assert any("guard: kept announced, no other site announces it (dns: dns down)" in x.reason for x in t)
    assert c.evaluate(states(tmp_path, dns=False), None, alone, now=102) == []  # reported once
    forced = {"by": "ops", "force": True}
    c.evaluate(states(tmp_path, dns=False), forced, alone, now=103)
    c.evaluate(states(tmp_path, dns=False), forced, alone, now=109)
    assert c.prefixes[V4].state == WITHDRAWN  # a forced drain may withdraw the last one
    c2 = site(tmp_path, allow_last_withdraw=True)
    c2.evaluate(states(tmp_path), None, alone, now=100)
    c2.evaluate(states(tmp_path, dns=False), None, alone, now=101)
    assert c2.prefixes[V4].state == WITHDRAWN


class Fleet:
    """Several sites' controllers over one shared view of their published states, the way the
    store connects them; `step` lets every site evaluate in turn at one instant."""

    def __init__(self, tmp_path, names: list[str]) -> None:
        self.sites = {n: site(tmp_path, site=n) for n in names}
        self.published = {n: c.snapshot() for n, c in self.sites.items()}

    def others(self, me: str):
        def view(prefix: str) -> list[Other]:
            return [Other(n, d[prefix]["state"], d[prefix]["leaving"], d[prefix]["guarded"])
                    for n, d in self.published.items() if n != me]
        return view

    def step(self, now: float, up: dict[str, bool], order: list[str] | None = None) -> None:
        for n in order or list(self.sites):
            self.sites[n].evaluate(up[n], None, self.others(n), now=now)
            self.published[n] = self.sites[n].snapshot()

    def announcing(self) -> list[str]:
        return [n for n, c in self.sites.items() if c.prefixes[V4].state != WITHDRAWN]


@pytest.mark.parametrize("names", [["ams", "fra"], ["ams", "fra", "lhr"]])
def test_sites_failing_at_the_same_instant_leave_exactly_one(tmp_path, names):
    fleet = Fleet(tmp_path, names)
    ok, bad = states(tmp_path), states(tmp_path, dns=False)
    fleet.step(100, dict.fromkeys(names, ok))
    assert fleet.announcing() == names
    # every site decides before seeing anyone else's new state (the race the settle is for)
    for n in names:
        fleet.sites[n].evaluate(bad, None, fleet.others(n), now=101)
    for n in names:
        fleet.published[n] = fleet.sites[n].snapshot()
    fleet.step(101.4, dict.fromkeys(names, bad), order=list(reversed(names)))
    fleet.step(101.8, dict.fromkeys(names, bad))
    assert fleet.announcing() == ["ams"]  # the smallest name keeps it, the others withdrew
    assert fleet.sites["ams"].prefixes[V4].guarded


def test_a_guarded_site_lets_go_when_another_recovers(tmp_path):
    fleet = Fleet(tmp_path, ["ams", "fra"])
    ok, bad = states(tmp_path), states(tmp_path, dns=False)
    fleet.step(100, {"ams": ok, "fra": ok})
    fleet.step(101, {"ams": bad, "fra": ok})  # ams leaves first: fra covers it
    fleet.step(101.4, {"ams": bad, "fra": ok})
    assert fleet.announcing() == ["fra"]
    fleet.step(102, {"ams": bad, "fra": bad})  # fra is now the last one: guarded
    assert fleet.announcing() == ["fra"] and fleet.sites["fra"].prefixes[V4].guarded
    fleet.step(110, {"ams": ok, "fra": bad})  # ams back (after its hold-down) ...
    assert fleet.announcing() == ["ams", "fra"]
    fleet.step(110.1, {"ams": ok, "fra": bad})
    fleet.step(110.5, {"ams": ok, "fra": bad})  # ... and fra withdraws after settling
    assert fleet.announcing() == ["ams"]


def test_hold_down_doubles_while_flapping_and_resets_when_steady(tmp_path):
    c = site(tmp_path, guard_settle=0)
    ok, bad = states(tmp_path), states(tmp_path, dns=False)
    c.evaluate(ok, None, covered, now=100)
    for s in c.prefixes.values():
        s.synced = True  # as the API process does after sending
    holds = []
    now = 100.0
    for _ in range(5):
        now += 0.5
        c.evaluate(bad, None, covered, now=now)
        assert c.prefixes[V4].state == WITHDRAWN
        holds.append(c.prefixes[V4].hold)
        c.evaluate(ok, None, covered, now=now + holds[-1] - 0.01)
        assert c.prefixes[V4].state == WITHDRAWN  # held down
        assert c.prefixes[V4].reason.startswith(f"held down {holds[-1]:g}s after flapping")
        now += holds[-1]
        c.evaluate(ok, None, covered, now=now)
        assert c.prefixes[V4].state == ANNOUNCED
        assert c.prefixes[V6].state == ANNOUNCED  # hold_down 0: never held
    assert holds == [2, 4, 8, 16, 16]  # doubling up to max_hold_down
    now += 16  # steady for max_hold_down: the next failure starts from hold_down again
    c.evaluate(bad, None, covered, now=now)
    assert c.prefixes[V4].hold == 2


# -- the DNS signal against the real server --------------------------------------------------


def test_dns_check_asks_the_real_server_and_names_what_is_wrong(tmp_path):
    """Up only for NOERROR + AA + an answer; everything else says why (against `gslb serve`)."""
    zones = tmp_path / "zones"
    zones.mkdir()
    (zones / "example.com.yaml").write_text("'':\n  type: A\n  value: 192.0.2.1\n")

    def check(port: int, name: str, qtype: str = "A", timeout: float = 0.5) -> tuple[bool, str]:
        signal = Signal("dns", "dns", address=f"127.0.0.1:{port}", qname=name, qtype=qtype, timeout=timeout)
        return asyncio.run(dns_check(signal))

    with gslb_server(str(zones)) as server:
        ok, detail = check(server.port, "example.com")
        assert ok and detail.startswith("answered in"), detail
        assert check(server.port, "nope.example.com") == (False, "nope.example.com A: NXDOMAIN")
        assert check(server.port, "example.com", "AAAA") == (False, "example.com AAAA: empty answer")
        assert check(server.port, "example.net") == (False, "example.net A: REFUSED")
        port = server.port
    started = time.monotonic()
    assert check(port, "example.com", timeout=2) == (False, f"127.0.0.1:{port}: Connection refused")
    assert time.monotonic() - started < 0.5  # a dead server is known at once, not after the timeout


# -- the API process against a flapping DNS service ------------------------------------------


def flap_commands(tmp_path, responder: FlappingDns, signal: dict, seconds: float) -> tuple[list[str], float]:
    """The commands the API process wrote while the responder flipped every 200 ms, and how long
    its signals ran."""
    doc = dict(SITE, signals={"dns": dict(signal, type="dns", address=f"127.0.0.1:{responder.port}",
                                          name="www.example.com")},
               allow_last_withdraw=True)
    doc["prefixes"] = [{"prefix": V4, "hold_down": 0}]
    out = io.StringIO()

    async def body() -> float:
        started = time.monotonic()
        proc = AnycastProcess(load_site(write(tmp_path, doc)), out=out, store=MemoryStore())
        proc._read_stdin = lambda: asyncio.sleep(3600)  # no ExaBGP here: we read the commands
        task = asyncio.ensure_future(proc.run())
        await asyncio.sleep(0.5)  # comes up, announces
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            responder.up = not responder.up
            await asyncio.sleep(0.2)
        responder.up = True
        proc._stop.set()
        await asyncio.wait_for(task, 5)
        return time.monotonic() - started

    ran = asyncio.run(body())
    return out.getvalue().splitlines(), ran


def test_hysteresis_absorbs_flaps_shorter_than_fall(tmp_path):
    responder = FlappingDns()
    try:
        # 200 ms down is at most 2 failed checks at a 0.1 s interval: fall 3 never trips
        commands, _ = flap_commands(tmp_path, responder, {"interval": 0.1, "timeout": 0.05, "rise": 5, "fall": 3}, 3)
    finally:
        responder.close()
    assert [c.split()[2] for c in commands] == ["announce"]


def test_flapping_within_hysteresis_bounds_without_hold_down(tmp_path):
    responder = FlappingDns()
    interval, rise, fall, seconds = 0.1, 2, 2, 4.0
    try:
        commands, ran = flap_commands(tmp_path, responder,
                                      {"interval": interval, "timeout": 0.05, "rise": rise, "fall": fall}, seconds)
    finally:
        responder.close()
    changes = len(commands) - 1
    checks = ran / interval + 1  # at most one check per interval
    allowed = 2 * checks / (rise + fall) + 1  # each down+up pair needs fall + rise checks
    print(f"\nflap 200 ms for {seconds:g} s, no hold-down (interval {interval}, rise {rise}, fall {fall}): "
          f"{changes} route changes, hysteresis allows {allowed:.0f}")
    assert changes >= 2  # this setting does flap (that is what hold-down is for, see the lab test)
    assert changes <= allowed


# -- the command line ------------------------------------------------------------------------


def gslb(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gslb", "bgp", *args], capture_output=True, text=True, timeout=30,
                          env={k: v for k, v in {**os.environ, **(env or {})}.items() if k != "GSLB_REDIS"})


def test_cli_config_prints_exabgp_config_or_every_problem(tmp_path):
    ok = gslb("config", write(tmp_path, SITE))
    assert ok.returncode == 0 and "neighbor 192.0.2.2 {" in ok.stdout
    bad = gslb("config", write(tmp_path, BAD, "bad.yaml"))
    assert bad.returncode == 1 and bad.stdout == ""
    assert len(bad.stderr.strip().splitlines()) == 15 and "bad.yaml:2: local_as:" in bad.stderr


async def _publish_site(redis_url: str, name: str) -> None:
    from gslb.store import SITE, open_store

    store = open_store(redis_url)
    try:
        await store.put(SITE, name, {"site": name, "time": time.time(), "healthy": True}, ttl=30)
    finally:
        await store.close()


async def _drain_state(redis_url: str, name: str) -> tuple[dict | None, list[dict]]:
    from gslb.store import DRAIN, open_store

    store = open_store(redis_url)
    try:
        return await store.get(DRAIN, name), await store.recent(50)
    finally:
        await store.close()


def test_cli_drain_needs_the_shared_store_and_writes_it(tmp_path, redis_url):
    r = gslb("drain", "ams")
    assert r.returncode == 2 and "needs the shared store" in r.stderr  # an in-process store would drain nothing
    asyncio.run(_publish_site(redis_url, "ams"))
    assert gslb("drain", "ams", "--reason", "maintenance", "--redis", redis_url).returncode == 0
    doc, log = asyncio.run(_drain_state(redis_url, "ams"))
    assert doc and doc["reason"] == "maintenance" and doc["force"] is False
    assert log[-1]["kind"] == "drain" and log[-1]["subject"] == "ams" and log[-1]["new"] == "draining"
    assert gslb("undrain", "ams", "--redis", redis_url).returncode == 0
    assert asyncio.run(_drain_state(redis_url, "ams"))[0] is None
    status = gslb("status", "--redis", redis_url)
    assert status.returncode == 0


def test_cli_drain_of_an_unknown_site_is_an_error_listing_the_known_ones(tmp_path, redis_url):
    asyncio.run(_publish_site(redis_url, "ams"))
    asyncio.run(_publish_site(redis_url, "fra"))
    for action in ("drain", "undrain"):
        r = gslb(action, "amss", "--redis", redis_url)
        assert r.returncode == 2, r.stdout
        assert "unknown site 'amss'" in r.stderr and "ams, fra" in r.stderr
        assert "requested" not in r.stdout and "undrained" not in r.stdout
    assert asyncio.run(_drain_state(redis_url, "amss"))[0] is None
    # the site of --site-file is known before it ever ran
    site_file = write(tmp_path, SITE)
    name = load_site(site_file).site
    r = gslb("drain", name, "--redis", redis_url, "--site-file", site_file)
    assert r.returncode == 0 and f"drain requested for {name}" in r.stdout
    assert gslb("undrain", name, "--redis", redis_url, "--site-file", site_file).returncode == 0


def test_cli_repeated_drain_and_undrain_are_no_ops_that_say_so(redis_url):
    asyncio.run(_publish_site(redis_url, "lhr"))
    ours = lambda log: [e for e in log if e["kind"] == "drain" and e["subject"] == "lhr"]  # noqa: E731
    r = gslb("undrain", "lhr", "--redis", redis_url)
    assert r.returncode == 0 and "lhr is not drained: nothing to do" in r.stdout
    assert ours(asyncio.run(_drain_state(redis_url, "lhr"))[1]) == []  # no transition logged
    assert gslb("drain", "lhr", "--reason", "disk swap", "--redis", redis_url).returncode == 0
    first, log = asyncio.run(_drain_state(redis_url, "lhr"))
    assert len(ours(log)) == 1
    r = gslb("drain", "lhr", "--redis", redis_url)
    assert r.returncode == 0 and "lhr is already drained" in r.stdout and "disk swap" in r.stdout
    again, log = asyncio.run(_drain_state(redis_url, "lhr"))
    assert again == first and len(ours(log)) == 1  # the first drain stands, nothing logged
    assert gslb("undrain", "lhr", "--redis", redis_url).returncode == 0
    r = gslb("undrain", "lhr", "--redis", redis_url)
    assert r.returncode == 0 and "not drained: nothing to do" in r.stdout
    assert len(ours(asyncio.run(_drain_state(redis_url, "lhr"))[1])) == 2  # drain and one undrain


def test_cli_undrain_help_does_not_borrow_drain_text():
    drain = gslb("drain", "--help").stdout
    undrain = gslb("undrain", "--help").stdout
    assert "withdraw even the last announcement" in drain
    assert "withdraw even the last announcement" not in undrain and "--force" not in undrain


def test_a_guarded_prefix_says_so_until_the_signals_recover(tmp_path):
    c = site(tmp_path)
    c.evaluate(states(tmp_path), None, alone, now=100)
    c.evaluate(states(tmp_path, dns=False), None, alone, now=101)
    assert c.prefixes[V4].doc()["reason"].startswith("guard: kept announced")
    c.evaluate(states(tmp_path), None, alone, now=102)
    doc = c.prefixes[V4].doc()
    assert doc["reason"] == "all signals up" and not doc["guarded"] and doc["state"] == ANNOUNCED
