"""Wildcard listeners answer from the address each query was sent to (anycast nodes hold several
addresses), with the native batching loop and with the pure-Python fallback."""

from __future__ import annotations

import os

import dns.flags
import dns.message
import dns.query
import pytest

from tests.support.dnsserver import ROOT, gslb_server
from tests.support.procs import free_port


@pytest.mark.parametrize("native", [True, False], ids=["recvmmsg", "python"])
def test_wildcard_listener_replies_from_the_queried_address(native):
    port = free_port()
    env = {} if native else {"GSLB_NO_NATIVE": "1"}
    with gslb_server(os.path.join(ROOT, "zones"), listen=[f"0.0.0.0:{port}", f"[::]:{port}"], env=env) as server:
        q = dns.message.make_query("www.example.com", "A")
        for address in ("127.0.0.1", "127.0.0.2", "127.0.0.53", "::1"):
            # dnspython refuses an answer from any other address than the one it asked
            reply = dns.query.udp(q, address, port=port, timeout=2)
            assert {r.address for r in reply.answer[0]} == {"192.0.2.10", "192.0.2.11"}
        assert server.alive()


def test_python_fallback_loop_serves_plain_listeners():
    with gslb_server(os.path.join(ROOT, "zones"), env={"GSLB_NO_NATIVE": "1"}) as server:
        for name, rcode in (("www.example.com", 0), ("api.example.com", 0), ("nope.example.com", 3)):
            reply = server.query(name)  # a timeout would raise
            assert reply.rcode() == rcode and reply.flags & dns.flags.AA, name
        assert server.query("www.example.com", "A", use_edns=0, payload=512).answer
