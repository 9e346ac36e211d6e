"""The GSLB decision logic on real zone files and the bundled geo database (no server)."""

from __future__ import annotations

import ipaddress
import textwrap
from collections import Counter

import dns.edns
import dns.message
import dns.name
import pytest

from gslb.config import ServerConfig
from gslb.geo import locator_for
from gslb.policy.checks import value_checks, zone_checks
from gslb.policy.client import ClientSubnet
from gslb.policy.select import RecordPolicy
from gslb.zone.load import load_zone_text

ZONE = """
'':
  type: NS
  value: ns1.example.net.
www:
  type: A
  values: [203.0.113.250]
  dynamic:
    pools:
      eu:
        fallback: us
        values:
          - {value: 192.0.2.10, weight: 3}
          - {value: 192.0.2.11}
      us:
        values:
          - {value: 198.51.100.10}
      special:
        values:
          - {value: 192.0.2.99}
    rules:
      - subnets: [198.51.100.0/28]
        pool: special
      - geos: [EU, AF]
        pool: eu
      - pool: us
  octodns:
    healthcheck: {protocol: TCP, port: 80}
    gslb: {degraded_ttl: 15}
"""


def load(text: str):
    zone, problems = load_zone_text(textwrap.dedent(text), "test.example.yaml", ServerConfig())
    assert zone is not None, "\n".join(str(p) for p in problems)
    return zone


@pytest.fixture(scope="module")
def locator():
    loc, _sites = locator_for(None, None, None)
    return loc


@pytest.fixture(scope="module")
def sites():
    return locator_for(None, None, None)[1]


def policy_of(zone, name="www", sites=None) -> RecordPolicy:
    record = next(r for r in zone.records if r.name == dns.name.from_text(name, zone.origin))
    return RecordPolicy(record, sites)


def client(locator, subnet: str):
    net = ipaddress.ip_network(subnet)
    ecs = ClientSubnet(1 if net.version == 4 else 2, net.prefixlen,
                       net.network_address.packed[:(net.prefixlen + 7) // 8])
    return locator.client(locator.key(b"\x7f\x00\x00\x01", ecs))


def health(policy: RecordPolicy, **down: bool) -> dict:
    out = {}
    for value, spec in policy.checks.items():
        out[spec.key] = (not down.get(value.replace(".", "_"), False), {})
    return out


def test_geo_rule_picks_the_pool(locator):
    p = policy_of(load(ZONE))
    d = p.decide(client(locator, "198.51.100.32/27"))  # Germany (EU) in the test data
    assert d.pool == "eu" and d.values[0] in ("192.0.2.10", "192.0.2.11")
    assert d.rule.startswith("rule 2")
    assert d.scope == 27  # the German /26 also holds the subnet rule's /28: the scope stops short of it
    d = p.decide(client(locator, "192.0.2.0/25"))  # South Africa: AF is in the same rule
    assert d.pool == "eu"
    d = p.decide(client(locator, "203.0.113.0/26"))  # Japan: catch-all
    assert d.pool == "us" and d.values == ("198.51.100.10",)


def test_subnet_rule_beats_geo_and_sets_scope(locator):
    p = policy_of(load(ZONE))
    d = p.decide(client(locator, "198.51.100.0/28"))  # inside the EU /26 but the subnet rule comes first
    assert d.pool == "special" and d.values == ("192.0.2.99",)
    assert d.scope == 28


def test_scope_widens_over_neighbours_that_decide_the_same(locator):
    p = policy_of(load(ZONE))
    p.locator = locator
    # Japan's /26 sits in 200.0.0.0/5 with nothing but catch-all places (and no subnet rule):
    # like gdnsd, the scope covers all of it, so resolvers cache one answer for the region.
    d = p.decide(client(locator, "203.0.113.0/24"))
    assert d.pool == "us" and d.scope == 5
    wide = ipaddress.ip_network("200.0.0.0/5")
    for sample in ("203.0.113.70", "203.0.113.200", "200.1.2.3", "207.255.0.1"):
        assert p.decide(client(locator, f"{sample}/32")).pool == "us" and ipaddress.ip_address(sample) in wide
    # GB's /26 would merge with Germany's (also EU), but the subnet rule 198.51.100.0/28 lives there.
    d = p.decide(client(locator, "198.51.100.64/26"))
    assert d.pool == "eu" and d.scope == 26
    # California merges with New York (both catch-all) but not with Europe next door.
    assert p.decide(client(locator, "198.51.100.128/26")).scope == 25


def test_fallback_then_record_values_then_fail_open(locator):
    zone = load(ZONE)
    p = policy_of(zone)
    eu = client(locator, "198.51.100.64/26")
    p.set_health(health(p, **{"192_0_2_10": True, "192_0_2_11": True}))
    d = p.decide(eu)
    assert d.pool == "us" and d.fallback and d.values == ("198.51.100.10",)
    assert d.ttl == 15  # degraded_ttl while a fallback answers
    p.set_health(health(p, **{"192_0_2_10": True, "192_0_2_11": True, "198_51_100_10": True}))
    d = p.decide(eu)
    assert d.pool is None and d.values == ("203.0.113.250",)  # the record's own values
    p.set_health(health(p, **{"192_0_2_10": True, "192_0_2_11": True, "198_51_100_10": True,
                              "203_0_113_250": True}))
    d = p.decide(eu)
    assert d.fail_open and d.pool == "eu" and d.values[0] in ("192.0.2.10", "192.0.2.11")
    assert d.label == "fail-open"


def test_fail_open_can_be_turned_off(locator):
    zone = load(ZONE.replace("gslb: {degraded_ttl: 15}", "gslb: {fail_open: false}"))
    p = policy_of(zone)
    p.set_health({spec.key: (False, {}) for spec in p.checks.values()})
    d = p.decide(client(locator, "198.51.100.64/26"))
    assert d.values == () and not d.fail_open


def test_status_up_and_down_override_checks(locator):
    zone = load(ZONE.replace("- {value: 198.51.100.10}", "- {value: 198.51.100.10, status: down}")
                    .replace("- {value: 192.0.2.11}", "- {value: 192.0.2.11, status: up}"))
    p = policy_of(zone)
    p.set_health({spec.key: (False, {}) for spec in p.checks.values()})  # every check says down
    d = p.decide(client(locator, "198.51.100.64/26"))
    assert d.values == ("192.0.2.11",)  # status: up wins over its check
    d = p.decide(client(locator, "203.0.113.0/26"))
    assert d.pool is None  # us has only a status: down value → record values


def test_weighted_split_follows_weights_and_is_sticky(locator):
    p = policy_of(load(ZONE))
    picks = Counter()
    for i in range(4000):
        c = locator.client((4, 24, (10 << 16) | i))  # 4,000 distinct /24s (no geo data: catch-all us)
        eu = c.__class__(c.version, c.address, c.prefix, client(locator, "198.51.100.64/26").location, None)
        picks[p.decide(eu).values[0]] += 1
    share = picks["192.0.2.10"] / sum(picks.values())
    print(f"weights 3:1 → observed {share:.3f} : {1 - share:.3f} over 4,000 client subnets")
    assert abs(share - 0.75) < 0.03  # stated tolerance: ±3 percentage points
    same = client(locator, "198.51.100.64/26")
    assert len({p.decide(same).values for _ in range(20)}) == 1  # one client keeps its answer


def test_removing_a_value_moves_only_its_clients(locator):
    zone = load(ZONE.replace("- {value: 192.0.2.11}", "- {value: 192.0.2.11}\n          - {value: 192.0.2.12}"))
    p = policy_of(zone)
    gb = client(locator, "198.51.100.64/26").location
    clients = []
    for i in range(3000):
        c = locator.client((4, 24, (11 << 16) | i))
        clients.append(c.__class__(c.version, c.address, c.prefix, gb, None))
    before = [p.decide(c).values[0] for c in clients]
    p.set_health(health(p, **{"192_0_2_12": True}))
    after = [p.decide(c).values[0] for c in clients]
    moved = sum(1 for b, a in zip(before, after, strict=True) if b != a)
    assert moved == sum(1 for b in before if b == "192.0.2.12")  # exactly the removed value's clients


LATENCY = """
'':
  type: NS
  value: ns1.example.net.
api:
  type: A
  value: 192.0.2.1
  dynamic:
    pools:
      all:
        values: [{value: 192.0.2.1}, {value: 198.51.100.1}, {value: 203.0.113.1}]
    rules: [{pool: all}]
  octodns:
    healthcheck: {protocol: TCP, port: 443}
    gslb: {policy: latency}
"""


def test_latency_picks_the_fastest_from_the_clients_region(locator):
    p = policy_of(load(LATENCY), "api")
    rtt = {"192.0.2.1": {"eu-west": 5.0, "us-east": 80.0}, "198.51.100.1": {"eu-west": 90.0, "us-east": 4.0},
           "203.0.113.1": {"eu-west": 200.0, "us-east": 150.0, "ap-southeast": 3.0}}
    p.set_health({spec.key: (True, rtt[v]) for v, spec in p.checks.items()})
    assert p.decide(client(locator, "198.51.100.64/26")).values == ("192.0.2.1",)  # GB → eu-west
    assert p.decide(client(locator, "198.51.100.192/26")).values == ("198.51.100.1",)  # NY → us-east
    assert p.decide(client(locator, "203.0.113.0/26")).values == ("203.0.113.1",)  # JP → ap-southeast
    p.set_health({spec.key: (v != "192.0.2.1", rtt[v]) for v, spec in p.checks.items()})
    assert p.decide(client(locator, "198.51.100.64/26")).values == ("198.51.100.1",)  # fastest healthy


def test_proximity_picks_the_nearest_site(locator, sites):
    zone = load(LATENCY.replace("policy: latency", "policy: proximity, sites: {192.0.2.1: fra, "
                                "198.51.100.1: sfo, 203.0.113.1: [-33.87, 151.21]}"))
    p = policy_of(zone, "api", sites)
    assert p.decide(client(locator, "198.51.100.64/26")).values == ("192.0.2.1",)  # London → Frankfurt
    assert p.decide(client(locator, "198.51.100.128/26")).values == ("198.51.100.1",)  # SF → sfo
    assert p.decide(client(locator, "203.0.113.64/26")).values == ("203.0.113.1",)  # Sydney


def test_checks_follow_octodns_defaults_and_targets():
    zone = load(ZONE.replace("    healthcheck: {protocol: TCP, port: 80}\n", "")
                .replace("gslb: {degraded_ttl: 15}", "gslb: {targets: {192.0.2.10: 127.0.0.9}}"))
    checks = value_checks(policy_of(zone).record)
    assert checks["192.0.2.10"].key == "https://127.0.0.9:443/_dns#www.test.example"  # octoDNS defaults
    assert checks["192.0.2.11"].key == "https://192.0.2.11:443/_dns#www.test.example"
    assert len(zone_checks([zone])) == 5


@pytest.mark.parametrize(("change", "message"), [
    ("pool: us\n", "undefined pool"),
    ("fallback: us", "fallback: nowhere"),
    ("weight: 3", "invalid weight"),
    ("geos: [EU, AF]", "invalid geo code"),
    ("- pool: us", "catches all but is not the last rule"),
    ("fallback: us", "loop in pool fallbacks"),
])
def test_invalid_dynamic_records_are_reported_with_lines(change, message):
    text = textwrap.dedent(ZONE)
    replacements = {
        "undefined pool": ("      - pool: us\n", "      - pool: nowhere\n"),
        "fallback: nowhere": ("fallback: us", "fallback: nowhere"),
        "invalid weight": ("weight: 3", "weight: 300"),
        "invalid geo code": ("geos: [EU, AF]", "geos: [EUROPE]"),
        "catches all but is not the last rule": ("    rules:\n", "    rules:\n      - pool: us\n"),
        "loop in pool fallbacks": ("      us:\n        values:", "      us:\n        fallback: eu\n        values:"),
    }
    old, new = replacements[message if message != "fallback: nowhere" else "fallback: nowhere"]
    zone, problems = load_zone_text(text.replace(old, new, 1), "bad.example.yaml", ServerConfig())
    assert zone is None
    expected = {"fallback: nowhere": "undefined fallback"}.get(message, message)
    assert any(expected in p.message and p.line > 0 for p in problems), [str(p) for p in problems]


def test_random_pick_decides_once_per_prefix_and_draws_per_answer(locator, monkeypatch):
    """`pick: random`: the rule → pool → healthy candidates → scope decision is cached per client
    prefix like `hash`; only the weighted draw happens per answer."""
    from gslb.answers import Answers
    from gslb.server.fastpath import Responder

    zone = load(ZONE.replace("gslb: {degraded_ttl: 15}", "gslb: {degraded_ttl: 15, pick: random}"))
    answers = Answers([zone], locator)
    calls = Counter()
    decide = RecordPolicy.decide

    def counting(self, client, rnd=None, explain=False):
        calls[client.prefix] += 1
        return decide(self, client, rnd, explain)

    monkeypatch.setattr(RecordPolicy, "decide", counting)
    responder = Responder(answers.snapshot, "test", None)
    query = dns.message.make_query("www.test.example", "A", use_edns=0,
                                   options=[dns.edns.ECSOption("198.51.100.64", 26)])  # GB: the eu pool
    seen = Counter()
    for i in range(2000):
        query.id = i
        reply = dns.message.from_wire(responder.answer(query.to_wire(), b"\x7f\x00\x00\x01"))
        seen[reply.answer[0][0].address] += 1
    assert sum(calls.values()) == 1  # decided once, answered 2,000 times
    share = seen["192.0.2.10"] / 2000
    print(f"weights 3:1 drawn per answer → {share:.3f} : {1 - share:.3f}")
    assert abs(share - 0.75) < 0.04 and set(seen) == {"192.0.2.10", "192.0.2.11"}
    assert answers.set_health({"tcp://192.0.2.10:80": (False, {})})  # health changes: decide again
    for i in range(50):
        query.id = i
        reply = dns.message.from_wire(responder.answer(query.to_wire(), b"\x7f\x00\x00\x01"))
        assert reply.answer[0][0].address == "192.0.2.11"
    assert sum(calls.values()) == 2
