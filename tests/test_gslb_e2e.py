"""GSLB end to end with real parts: redis-server, three probe agents in separate processes,
HTTP endpoints on 127.0.0.x, and `gslb serve` with two workers, queried with ECS."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import dns.edns
import dns.message
import dns.query
import pytest

from tests.support.dnsserver import ROOT, gslb_server
from tests.support.endpoints import Endpoint
from tests.support.procs import free_port, redis_server, stop, wait_for

ADDRESSES = {"192.0.2.10": "127.0.0.41", "192.0.2.11": "127.0.0.42", "198.51.100.10": "127.0.0.43",
             "203.0.113.10": "127.0.0.44"}

ZONE = """---
'':
  type: NS
  value: ns1.example.net.
www:
  dynamic:
    pools:
      ap:
        fallback: us
        values:
        - value: 203.0.113.10
      eu:
        fallback: us
        values:
        - value: 192.0.2.10
        - value: 192.0.2.11
      us:
        values:
        - value: 198.51.100.10
    rules:
    - pool: us
      subnets:
      - 203.0.113.64/26
    - geos:
      - EU
      pool: eu
    - geos:
      - AS
      - OC
      pool: ap
    - pool: us
  octodns:
    gslb:
      interval: 0.2
      timeout: 0.5
      rise: 3
      fall: 2
      targets:
        192.0.2.10: 127.0.0.41
        192.0.2.11: 127.0.0.42
        198.51.100.10: 127.0.0.43
        203.0.113.10: 127.0.0.44
    healthcheck:
      path: /health
      port: {port}
      protocol: HTTP
  ttl: 30
  type: A
  values:
  - 198.51.100.10
"""


def common_free_port(addresses: list[str]) -> int:
    for _ in range(100):
        with socket.socket() as s:
            s.bind((addresses[0], 0))
            port = s.getsockname()[1]
        try:
            for a in addresses[1:]:
                with socket.socket() as s:
                    s.bind((a, port))
            return port
        except OSError:
            continue
    raise RuntimeError("no common free port")


def ecs_query(port: int, subnet: str, timeout: float = 1.0) -> dns.message.Message:
    addr, bits = subnet.split("/")
    q = dns.message.make_query("www.gslb.example", "A", use_edns=0, options=[dns.edns.ECSOption(addr, int(bits))])
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)


def addresses(reply: dns.message.Message) -> set[str]:
    return {r.address for rrset in reply.answer for r in rrset}


def scope(reply: dns.message.Message) -> int:
    return next(o.scopelen for o in reply.options if o.otype == dns.edns.ECS)


def status(server) -> dict:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(server.control)
        s.sendall(b"status\n")
        return json.loads(s.makefile().readline())


class Lab:
    def __init__(self, redis_url: str) -> None:
        self.redis_url = redis_url
        self.port = common_free_port(list(ADDRESSES.values()))
        self.endpoints = {v: Endpoint(a, self.port).start() for v, a in ADDRESSES.items()}
        self.zones = tempfile.mkdtemp(prefix="gslb-e2e-")
        with open(os.path.join(self.zones, "gslb.example.yaml"), "w") as f:
            f.write(ZONE.replace("{port}", str(self.port)))
        self.agents: dict[str, subprocess.Popen] = {}
        for region in ("r1", "r2", "r3"):
            self.start_agent(region)

    def start_agent(self, region: str) -> None:
        self.agents[region] = subprocess.Popen(
            [sys.executable, "-m", "gslb", "probe", "--region", region, "--redis", self.redis_url,
             "--zones", self.zones, "--heartbeat", "0.3"], cwd=ROOT, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)

    def close(self) -> None:
        for proc in self.agents.values():
            stop(proc)
        for ep in self.endpoints.values():
            ep.stop()
        shutil.rmtree(self.zones, ignore_errors=True)


@pytest.fixture(scope="module")
def lab(redis_url):
    the_lab = Lab(redis_url)
    try:
        with gslb_server(the_lab.zones, workers=2, extra_args=("--redis", redis_url)) as server:
            the_lab.server = server
            # wait until every check has fresh verdicts from all three regions
            wait_for(lambda: len(status(server)["health"]) == 4, timeout=15, what="health of all 4 checks")
            yield the_lab
    finally:
        the_lab.close()


# Europe in the test data, in distinct /24s and /48s (the weighted pick is sticky per /24 or /48)
EU_SUBNETS = [f"127.1.{i}.0/24" for i in range(8)] + [f"2001:db8:{i:x}::/48" for i in range(8)]


@pytest.mark.parametrize(("subnet", "expected", "scope_at_least"), [
    ("198.51.100.64/26", {"192.0.2.10", "192.0.2.11"}, 24),  # GB: EU pool, weighted pick
    ("198.51.100.128/26", {"198.51.100.10"}, 25),  # California: catch-all, merged with New York
    ("203.0.113.0/26", {"203.0.113.10"}, 26),  # Japan: AS
    ("203.0.113.64/26", {"198.51.100.10"}, 26),  # Australia: the subnet rule beats OC
    ("2001:db8:c000::/48", {"203.0.113.10"}, 34),  # IPv6 client in Japan
    ("10.9.8.0/24", {"198.51.100.10"}, 2),  # no geo data: catch-all, scope as wide as the gap
])
def test_ecs_clients_get_the_pool_their_rule_says(lab, subnet, expected, scope_at_least):
    reply = ecs_query(lab.server.port, subnet)
    got = addresses(reply)
    assert got and got <= expected
    assert scope(reply) >= scope_at_least


def test_source_address_decides_without_ecs(lab):
    q = dns.message.make_query("www.gslb.example", "A")
    reply = dns.query.udp(q, "127.0.0.1", port=lab.server.port, timeout=1, source="127.4.0.9")  # Singapore
    assert addresses(reply) == {"203.0.113.10"}
    reply = dns.query.udp(q, "127.0.0.1", port=lab.server.port, timeout=1, source="127.1.0.9")  # Netherlands
    assert addresses(reply) <= {"192.0.2.10", "192.0.2.11"}


def eu_answers(port: int, repeat: int = 3) -> set[str]:
    seen = set()
    for _ in range(repeat):  # fresh source ports each time, so both workers answer
        for subnet in EU_SUBNETS:
            seen |= addresses(ecs_query(port, subnet))
    return seen


def check_key_of(value: str, port: int) -> str:
    return f"http://{ADDRESSES[value]}:{port}/health#www.gslb.example"


def test_endpoint_failure_reaches_every_worker_within_a_second(lab):
    port, key = lab.server.port, check_key_of("192.0.2.10", lab.port)
    assert eu_answers(port) == {"192.0.2.10", "192.0.2.11"}
    stopped = time.monotonic()
    lab.endpoints["192.0.2.10"].stop()
    wait_for(lambda: status(lab.server)["health"].get(key, [True])[0] is False, timeout=10, interval=0.005,
             what="quorum decision")
    decided = time.monotonic()
    wait_for(lambda: "192.0.2.10" not in eu_answers(port, repeat=1), timeout=5, interval=0.005,
             what="answers without the failed endpoint")
    changed = time.monotonic()
    print(f"\nendpoint stopped → quorum decision {decided - stopped:.3f}s → every worker answers differently "
          f"{(changed - decided) * 1000:.0f} ms later")
    assert changed - decided < 1.0
    assert "192.0.2.10" not in eu_answers(port, repeat=4)
    # both workers took the new health (their acknowledgements travel apart from their answers:
    # wait for them, briefly, rather than race them)
    wait_for(lambda: (st := status(lab.server))["health_applied"] == [st["health_generation"]] * 2, timeout=2,
             interval=0.01, what="both workers acknowledging the latest health")

    lab.endpoints["192.0.2.10"].start()
    restarted = time.monotonic()
    wait_for(lambda: "192.0.2.10" in eu_answers(port, repeat=1), timeout=10, interval=0.02, what="recovery")
    back = time.monotonic() - restarted
    print(f"endpoint restarted → back in answers after {back:.2f}s (rise 3 x 0.2 s)")
    assert back >= 0.4  # not before `rise` good checks


def test_dead_probe_agents_stop_voting(lab):
    port, key = lab.server.port, check_key_of("203.0.113.10", lab.port)
    japan = "203.0.113.0/26"
    assert addresses(ecs_query(port, japan)) == {"203.0.113.10"}
    for region in ("r1", "r2"):
        lab.agents[region].send_signal(signal.SIGKILL)
        lab.agents[region].wait()
    time.sleep(1.6)  # their heartbeats (3 x 0.3 s + 0.5) lapse
    lab.endpoints["203.0.113.10"].stop()  # only r3 sees it fail: 1 of 1 fresh region is a majority
    try:
        wait_for(lambda: addresses(ecs_query(port, japan)) == {"198.51.100.10"}, timeout=5, interval=0.02,
                 what="fallback once the only fresh region reports down")
        regions = status(lab.server)["health"][key]
        assert regions[0] is False
    finally:
        lab.endpoints["203.0.113.10"].start()
        for region in ("r1", "r2"):
            lab.start_agent(region)
    wait_for(lambda: addresses(ecs_query(port, japan)) == {"203.0.113.10"}, timeout=10, what="recovery")


def test_redis_outage_keeps_answers_and_recovers():
    port = free_port()
    store = redis_server(port)
    url = store.__enter__()
    lab = Lab(url)
    try:
        with gslb_server(lab.zones, workers=1, extra_args=("--redis", url)) as server:
            wait_for(lambda: len(status(server)["health"]) == 4, timeout=15, what="health")
            lab.endpoints["192.0.2.11"].stop()
            wait_for(lambda: "192.0.2.11" not in eu_answers(server.port, 1), timeout=10, what="down")
            store.__exit__(None, None, None)  # redis-server gone (and its data with it)
            wait_for(lambda: status(server)["store_stale"], timeout=10, what="store marked stale")
            for _ in range(3):
                assert eu_answers(server.port, 1) == {"192.0.2.10"}  # the last known state still serves
                time.sleep(0.3)
            store = redis_server(port)
            store.__enter__()  # back on the same port, empty
            wait_for(lambda: not status(server)["store_stale"], timeout=15, what="store reachable again")
            assert eu_answers(server.port, 1) == {"192.0.2.10"}  # an empty store erased nothing
            lab.endpoints["192.0.2.11"].start()
            wait_for(lambda: "192.0.2.11" in eu_answers(server.port, 1), timeout=15,
                     what="changes flow again after the outage")
            assert server.alive()
            assert "Traceback" not in server.log()
            assert "store unreachable" in server.log() or "subscription lost" in server.log()
    finally:
        lab.close()
        store.__exit__(None, None, None)
