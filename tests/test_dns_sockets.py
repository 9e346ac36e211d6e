"""Wildcard listeners answer from the address each query was sent to (anycast nodes hold several
addresses), with the native batching loop and with the pure-Python fallback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

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


def _second_server(port: int, extra: tuple[str, ...] = (), host: str = "127.0.0.1") -> subprocess.CompletedProcess:
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return subprocess.run([sys.executable, "-m", "gslb", "serve", "--zones", os.path.join(ROOT, "zones"),
                           "--listen", listen, "--workers", "1", "--control", "", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_a_second_server_on_a_taken_address_fails_naming_the_holder(host):
    """SO_REUSEPORT joins only our own workers: another `gslb serve` on the address must not
    start (the kernel would split the queries between the two)."""
    with gslb_server(os.path.join(ROOT, "zones"), workers=2, host=host) as first:
        r = _second_server(first.port, host=host)
        assert r.returncode != 0
        listen = f"[{host}]:{first.port}" if ":" in host else f"{host}:{first.port}"
        assert f"cannot listen on {listen}: address already in use by another gslb serve" in r.stderr, r.stderr
        assert f"held by pid {first.proc.pid} (workers " in r.stderr  # the supervisor, its workers
        assert "serving" not in r.stderr
        # ... and every query still reaches the first server, with both of its workers serving
        for _ in range(30):
            assert first.query("id.server.", "TXT", rdclass="CH").answer
        assert first.alive()


def test_a_wildcard_server_over_a_taken_address_fails_too():
    with gslb_server(os.path.join(ROOT, "zones")) as first:
        r = _second_server(first.port, host="0.0.0.0")  # not the same claim: the bind check finds it
        assert r.returncode != 0
        assert f"cannot listen on UDP 0.0.0.0:{first.port}: address already in use (held by pid {first.proc.pid}" \
            in r.stderr, r.stderr


def test_a_port_held_by_another_program_is_named():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        r = _second_server(port)
    assert r.returncode != 0
    assert f"cannot listen on TCP 127.0.0.1:{port}: address already in use (held by pid {os.getpid()}" in r.stderr


def test_two_servers_starting_together_do_not_both_serve():
    """Before either has workers both would pass the bind check: the address is claimed too."""
    port = free_port()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as claim:
        claim.bind(f"\0gslb-listen 127.0.0.1 {port}")  # what a starting `gslb serve` holds
        r = _second_server(port)
    assert r.returncode != 0
    assert f"cannot listen on 127.0.0.1:{port}: address already in use by another gslb serve (held by pid " \
           f"{os.getpid()}" in r.stderr, r.stderr
    with gslb_server(os.path.join(ROOT, "zones"), listen=[f"127.0.0.1:{port}"]) as server:  # released: starts
        assert server.query("www.example.com").answer


def _raw_udp_socket() -> socket.socket:
    try:
        return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_UDP)
    except PermissionError:
        pytest.skip("a raw socket (to see the IP header of our responses) needs CAP_NET_RAW")


@pytest.mark.root
@pytest.mark.parametrize(("udp_size", "df"), [(1232, True), (4096, False)])
def test_responses_carry_df_only_when_every_response_fits_the_minimum_mtu(udp_size, df):
    """RFC 9715: with edns_udp_size at most 1232 (the default) no response needs fragments, so
    IPv4 responses go with DF set (and the IP ID then zero); a larger size keeps DF off, so
    responses over the interface MTU are fragmented rather than refused by the kernel."""
    raw = _raw_udp_socket()
    raw.settimeout(2)
    with raw, gslb_server(os.path.join(ROOT, "zones"), config={"edns_udp_size": udp_size}) as server:
        seen = []
        for _ in range(3):
            server.query("www.example.com")
            while True:
                packet = raw.recv(65535)
                ihl = (packet[0] & 0x0F) * 4
                if int.from_bytes(packet[ihl:ihl + 2], "big") == server.port:  # UDP source port: our reply
                    seen.append(packet)
                    break
        flags = {int.from_bytes(p[6:8], "big") & 0x4000 != 0 for p in seen}
        assert flags == {df}
        if df:
            assert {p[4:6] for p in seen} == {b"\0\0"}  # no per-packet IP ID drawn
