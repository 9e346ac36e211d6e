"""The responder's two paths agree byte for byte: the hand-written fast path (label walk, one
dict lookup, patched bytes) and the careful path (full header, OPT and option parsing) give the
same response to the same query. This is what guards the hand-written parser.

Queries: names from the example zones (GSLB names included) and random ones under them, in
random case, every common qtype, with and without EDNS, ECS (IPv4 and IPv6, any prefix
length), DO, RD, CD and small or large payload sizes, from random client addresses.
"""

from __future__ import annotations

import os

import dns.edns
import dns.flags
import dns.message
import dns.name
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gslb.answers import Answers
from gslb.config import ServerConfig
from gslb.geo import locator_for
from gslb.server.fastpath import Responder
from gslb.zone.load import load_zones
from tests.support.dnsserver import ROOT

QTYPES = ["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "SRV", "CAA", "HTTPS", "PTR", "ANY", "DS", "NAPTR"]


@pytest.fixture(scope="module")
def setup() -> tuple[Responder, list[str]]:
    zones, _ = load_zones(os.path.join(ROOT, "zones"), ServerConfig())
    locator, sites = locator_for(None, None, None)
    answers = Answers(zones, locator, sites)
    names = sorted({n.to_text() for z in zones for n in z.names})
    return Responder(answers.snapshot, "paths-node", "gslb test"), names


def random_case(name: str, flips: list[bool]) -> str:
    return "".join(c.upper() if flips[i % len(flips)] and c.isalpha() else c for i, c in enumerate(name))


queries = st.fixed_dictionaries({
    "pick": st.integers(0, 10_000),
    "prefix": st.sampled_from(["", "nope.", "a.b.", "*."]).filter(lambda _: True),
    "flips": st.lists(st.booleans(), min_size=1, max_size=8),
    "qtype": st.sampled_from(QTYPES),
    "edns": st.sampled_from([None, 0]),
    "payload": st.sampled_from([512, 1232, 4096, 65535]),
    "do": st.booleans(),
    "rd": st.booleans(),
    "cd": st.booleans(),
    "ecs": st.one_of(st.none(), st.tuples(st.sampled_from(["198.51.100.77", "203.0.113.9", "192.0.2.200",
                                                           "10.1.2.3", "2001:db8:c000::1"]),
                                          st.integers(0, 32))),
    "client": st.sampled_from([b"\x7f\x00\x00\x01", b"\x7f\x01\x00\x09", b"\x7f\x04\x00\x09",
                               b"\x00" * 15 + b"\x01"]),
})


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=queries)
def test_fast_and_careful_paths_give_the_same_bytes(setup, q):
    responder, names = setup
    name = random_case(q["prefix"].replace("*.", "") + names[q["pick"] % len(names)], q["flips"])
    options = []
    if q["ecs"] is not None:
        address, bits = q["ecs"]
        options.append(dns.edns.ECSOption(address, min(bits, 32) if ":" not in address else bits * 2))
    if q["edns"] is None and (options or q["do"]):
        q["edns"] = 0
    msg = dns.message.make_query(dns.name.from_text(name), q["qtype"], use_edns=q["edns"], options=options,
                                 payload=q["payload"], want_dnssec=q["do"])
    msg.flags = (dns.flags.RD if q["rd"] else 0) | (dns.flags.CD if q["cd"] else 0)
    wire = msg.to_wire()
    fast = responder.answer(wire, q["client"])
    careful = responder._slow(wire, q["client"], False)
    assert fast == careful, (name, q)


def test_the_fast_path_is_taken(setup):
    """The comparison above means something only if `answer` really answers without the careful
    path for ordinary queries."""
    responder, _ = setup
    calls = []
    original = responder._slow
    responder._slow = lambda *a: calls.append(a) or original(*a)  # type: ignore[method-assign]
    try:
        for use_edns, options in ((None, []), (0, []), (0, [dns.edns.ECSOption("198.51.100.0", 24)])):
            q = dns.message.make_query("WwW.ExAmple.com", "A", use_edns=use_edns, options=options)
            assert responder.answer(q.to_wire(), b"\x7f\x00\x00\x01")
    finally:
        del responder._slow
    assert calls == []
