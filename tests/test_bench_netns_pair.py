"""bench/netns_pair.py: the namespaces `bench/dns_qps --driver kxdpgun` creates are removed on every
way out (normal exit, an exception, SIGTERM, a failure half-way through creating them), and a pair
that fails never deletes namespaces it did not create. No kxdpgun needed: only `ip`."""

from __future__ import annotations

import os
import signal
import socket
import sys
import uuid

import pytest

from tests.support.dnsserver import ROOT
from tests.support.netns import why_no_netns

sys.path.insert(0, os.path.join(ROOT, "bench"))
import netns_pair

pytestmark = pytest.mark.root

_why = why_no_netns()
if _why:
    pytestmark = [pytest.mark.root, pytest.mark.skip(reason=_why)]


def exists(ns: str) -> bool:
    return os.path.exists(f"/run/netns/{ns}")


def tag() -> str:
    return uuid.uuid4().hex[:8]


def test_the_link_works_and_everything_goes_at_exit() -> None:
    with netns_pair.VethPair(tag()) as pair:
        assert exists(pair.server) and exists(pair.client)
        assert len(pair.server_if) <= 15 and len(pair.client_if) <= 15
        assert pair.mac(pair.server, pair.server_if) != pair.mac(pair.client, pair.client_if)
        with netns_pair.inside(pair.server):  # the server end's address is bound there, not here
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((netns_pair.SERVER_ADDR, 0))
        s.close()
    assert not exists(pair.server) and not exists(pair.client)


def test_an_exception_inside_removes_the_namespaces() -> None:
    pair = netns_pair.VethPair(tag())
    with pytest.raises(KeyboardInterrupt), pair:
        raise KeyboardInterrupt  # what Ctrl-C raises in the bench
    assert not exists(pair.server) and not exists(pair.client)


def test_sigterm_while_open_cleans_up_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    pair = netns_pair.VethPair(tag())
    with pytest.raises(SystemExit), pair:
        os.kill(os.getpid(), signal.SIGTERM)
    assert not exists(pair.server) and not exists(pair.client)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_failure_half_way_removes_what_was_made() -> None:
    made: list[list[str]] = []

    def failing_route(args: list[str]) -> None:
        if "route" in args:
            raise RuntimeError("injected: route add failed")
        made.append(args)
        netns_pair.run_ip(args)

    pair = netns_pair.VethPair(tag(), runner=failing_route)
    with pytest.raises(RuntimeError, match="injected"):
        pair.open()
    assert ["netns", "add", pair.server] in made
    assert not exists(pair.server) and not exists(pair.client)


def test_a_pair_that_cannot_open_leaves_the_existing_ones_alone() -> None:
    t = tag()
    with netns_pair.VethPair(t) as first:
        with pytest.raises(RuntimeError, match="netns add"):
            netns_pair.VethPair(t).open()  # same names: its first `ip netns add` fails
        assert exists(first.server) and exists(first.client)
    assert not exists(first.server)
