"""The anycast controller's logic: site config validation, the state machine and its guard, the
ExaBGP commands, and hysteresis against a flapping DNS service (a real UDP responder)."""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
import time

import pytest
import yaml

from bgp.api import AnycastProcess
from bgp.config import load_site
from bgp.controller import ANNOUNCED, DEGRADED, DRAINING, WITHDRAWN, Controller
from bgp.exabgp_conf import render
from bgp.signals import SignalState
from gslb.probe.hysteresis import Hysteresis
from gslb.store import MemoryStore
from gslb.zone.problems import ZoneError
from tests.support.flapdns import FlappingDns

SITE = {
    "site": "ams", "local_as": 65001, "router_id": "192.0.2.1",
    "neighbors": [{"address": "192.0.2.2", "peer_as": 65000, "md5": "s3cret"},
                  {"address": "2001:db8::2", "peer_as": 65000}],
    "prefixes": [{"prefix": "203.0.113.0/24", "communities": ["65001:100"], "degrade": {"prepend": 3, "med": 700},
                  "drain_seconds": 5},
                 {"prefix": "2001:db8:ffff::/48", "next_hop": "2001:db8::1", "signals": ["dns"]}],
    "signals": {"dns": {"type": "dns", "address": "127.0.0.1:53", "name": "www.example.com"},
                "backends": {"type": "health", "checks": ["tcp://192.0.2.10:80"], "on_fail": "degrade"}},
}


def write(doc: dict) -> str:
    d = tempfile.mkdtemp()
    path = os.path.join(d, "site.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(doc, f, sort_keys=False)
    return path


def test_exabgp_config_has_sessions_md5_and_no_graceful_restart():
    text = render(load_site(write(SITE)))
    assert "neighbor 192.0.2.2 {" in text and "neighbor 2001:db8::2 {" in text
    assert 'md5-password "s3cret";' in text
    assert "neighbor-changes;" in text and "ipv6 unicast;" in text
    assert "graceful-restart" not in text
    assert "-m bgp api" in text


def test_every_config_problem_is_reported_with_its_line():
    bad = dict(SITE, local_as="x", router_id="2001:db8::1",
               neighbors=[{"address": "192.0.2.300", "peer_as": 65000}, {"address": "192.0.2.2", "peer_as": 0}],
               prefixes=[{"prefix": "203.0.113.1/24", "communities": ["nope"]}])
    with pytest.raises(ZoneError) as err:
        load_site(write(bad))
    text = str(err.value)
    for expected in ("local_as: an AS number", "router_id: an IPv4 address", "neighbors[0].address: '192.0.2.300'",
                     "neighbors[1].peer_as: an AS number", "prefixes[0].prefix: bad prefix"):
        assert expected in text, text
    assert all(line.split(":")[1].isdigit() for line in text.splitlines())


def states(**up: bool | None) -> dict[str, SignalState]:
    cfg = load_site(write(SITE))
    out = {}
    for name, signal in cfg.signals.items():
        h = Hysteresis(signal.rise, signal.fall)
        h.up = up.get(name, True)
        out[name] = SignalState(signal, h, detail=f"{name} test")
    return out


def test_state_machine_and_commands():
    cfg = load_site(write(SITE))
    c = Controller(cfg)
    v4, v6 = "203.0.113.0/24", "2001:db8:ffff::/48"
    others = lambda _p: True  # noqa: E731 - another site announces everything
    t = c.evaluate(states(), None, others, now=100)
    assert {(x.prefix, x.new) for x in t} == {(v4, ANNOUNCED), (v6, ANNOUNCED)}
    assert c.commands(v4) == ["neighbor 192.0.2.2 announce route 203.0.113.0/24 next-hop self community [ 65001:100 ]"]
    assert c.commands(v6) == ["neighbor 2001:db8::2 announce route 2001:db8:ffff::/48 next-hop 2001:db8::1"]
    c.evaluate(states(backends=False), None, others, now=101)
    assert c.prefixes[v4].state == DEGRADED and c.prefixes[v6].state == ANNOUNCED  # v6 ignores backends
    assert c.commands(v4) == ["neighbor 192.0.2.2 announce route 203.0.113.0/24 next-hop self "
                              "as-path [ 65001 65001 65001 65001 ] med 700 community [ 65001:100 ]"]
    c.evaluate(states(dns=False), None, others, now=102)
    assert c.prefixes[v4].state == WITHDRAWN and c.prefixes[v6].state == WITHDRAWN
    assert c.commands(v4) == ["neighbor 192.0.2.2 withdraw route 203.0.113.0/24 next-hop self"]
    c.evaluate(states(dns=None), None, others, now=103)  # not checked yet counts as down
    assert c.prefixes[v4].state == WITHDRAWN


def test_drain_announces_graceful_shutdown_then_withdraws():
    c = Controller(load_site(write(SITE)))
    v4 = "203.0.113.0/24"
    others = lambda _p: True  # noqa: E731
    c.evaluate(states(), None, others, now=100)
    drain = {"by": "ops", "reason": "maintenance"}
    c.evaluate(states(), drain, others, now=101)
    assert c.prefixes[v4].state == DRAINING
    assert "community [ 65001:100 65535:0 ]" in c.commands(v4)[0]
    c.evaluate(states(), drain, others, now=105.9)
    assert c.prefixes[v4].state == DRAINING
    c.evaluate(states(), drain, others, now=106.1)  # drain_seconds 5
    assert c.prefixes[v4].state == WITHDRAWN
    c.evaluate(states(), None, others, now=107)
    assert c.prefixes[v4].state == ANNOUNCED


def test_guard_keeps_the_last_announcement_unless_forced():
    v4 = "203.0.113.0/24"
    c = Controller(load_site(write(SITE)))
    alone = lambda _p: False  # noqa: E731 - nobody else announces
    c.evaluate(states(), None, alone, now=100)
    t = c.evaluate(states(dns=False), None, alone, now=101)
    assert c.prefixes[v4].state == ANNOUNCED and c.prefixes[v4].guarded
    assert any("guard" in x.reason for x in t)
    assert c.evaluate(states(dns=False), None, alone, now=102) == []  # logged once, not every time
    c.evaluate(states(dns=False), {"by": "ops", "force": True}, alone, now=103)
    c.evaluate(states(dns=False), {"by": "ops", "force": True}, alone, now=109)
    assert c.prefixes[v4].state == WITHDRAWN  # a forced drain may withdraw the last one
    c2 = Controller(load_site(write(dict(SITE, allow_last_withdraw=True))))
    c2.evaluate(states(), None, alone, now=100)
    c2.evaluate(states(dns=False), None, alone, now=101)
    assert c2.prefixes[v4].state == WITHDRAWN


def test_flapping_dns_service_moves_nothing_within_hysteresis():
    responder = FlappingDns()
    doc = dict(SITE, signals={"dns": {"type": "dns", "address": f"127.0.0.1:{responder.port}",
                                      "name": "www.example.com", "interval": 0.1, "timeout": 0.05,
                                      "rise": 5, "fall": 3}})
    doc["prefixes"] = [dict(p, signals=["dns"]) for p in doc["prefixes"]]
    out = io.StringIO()

    async def body() -> list[str]:
        proc = AnycastProcess(load_site(write(doc)), out=out, store=MemoryStore())
        proc._read_stdin = lambda: asyncio.sleep(3600)  # no ExaBGP here: we read the commands
        task = asyncio.ensure_future(proc.run())
        await asyncio.sleep(1.0)  # comes up, announces
        start = time.monotonic()
        while time.monotonic() - start < 10:
            responder.up = not responder.up
            await asyncio.sleep(0.2)
        responder.up = True
        proc._stop.set()
        await asyncio.wait_for(task, 5)
        return out.getvalue().splitlines()

    try:
        commands = asyncio.run(body())
    finally:
        responder.running = False
    withdraws = [c for c in commands if " withdraw " in c]
    announces = [c for c in commands if " announce " in c]
    print(f"\nflap 200 ms for 10 s (interval 0.1 s, fall 3, rise 5): {len(announces)} announce, "
          f"{len(withdraws)} withdraw commands")
    # 200 ms down is 2 failed checks < fall 3: the signal never goes down, nothing moves.
    assert withdraws == []
    assert len(announces) == 2  # the initial announcement of each prefix, nothing after
