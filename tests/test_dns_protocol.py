"""RFC behaviour of the running server, checked with dnspython, dig and kdig.

One `gslb serve` (two workers, IPv4 and IPv6 listeners) serves zones/ plus the RFC 4592
example zone for the whole module.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from tests.support.dnsclient import TextClient, clients
from tests.support.dnsserver import ROOT, gslb_server
from tests.support.procs import free_port

CLIENTS = clients()
CONFIG = {
    "defaults": {"soa": {"ttl": 3600, "minimum": 300}},
    "zones": {"example.com": {"axfr_allow": ["127.0.0.1/32", "::1/128"]}, "example.net": {"axfr_allow": []}},
    "tcp_idle_timeout": 1.5,
    "tcp_max_connections": 6,
    "edns_udp_size": 1232,
}


@pytest.fixture(scope="module")
def server():
    zones = tempfile.mkdtemp(prefix="gslb-zones-")
    for src in (os.path.join(ROOT, "zones"), os.path.join(ROOT, "tests/data/zones")):
        shutil.copytree(src, zones, dirs_exist_ok=True)
    port = free_port()
    with gslb_server(zones, config=CONFIG, workers=2,
                     listen=[f"127.0.0.1:{port}", f"[::1]:{port}"]) as srv:
        srv.port = port
        yield srv
    shutil.rmtree(zones, ignore_errors=True)


@pytest.fixture(params=CLIENTS, ids=[c.name for c in CLIENTS])
def client(request):
    return request.param


def ask(client, server, qname, rtype="A", **kw):
    return client.query("127.0.0.1", server.port, qname, rtype, **kw)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_every_listen_address_answers_udp_and_tcp(client, server, host, tcp):
    r = client.query(host, server.port, "www.example.com", "A", tcp=tcp)
    assert r.rcode == "NOERROR"
    assert r.rdatas("A") == {"192.0.2.10", "192.0.2.11"}


def test_authoritative_answer_sets_aa_copies_rd_and_never_ra(client, server):
    r = ask(client, server, "www.example.com", "AAAA")
    assert {"qr", "aa", "rd"} <= r.flags
    assert "ra" not in r.flags
    assert r.rdatas("AAAA") == {"2001:db8::10"}


def test_nxdomain_has_soa_with_negative_ttl(client, server):
    r = ask(client, server, "no-such-name.example.com", "A")
    assert r.rcode == "NXDOMAIN"
    assert "aa" in r.flags
    assert r.answer == []
    soa = [row for row in r.authority if row[2] == "SOA"]
    assert len(soa) == 1
    assert soa[0][1] == 300  # min(SOA TTL 3600, SOA minimum 300), RFC 2308


def test_nodata_is_noerror_with_soa(client, server):
    r = ask(client, server, "www.example.com", "MX")
    assert r.rcode == "NOERROR"
    assert "aa" in r.flags
    assert r.answer == []
    assert r.types("authority") == ["SOA"]
    assert r.authority[0][1] == 300


def test_empty_non_terminal_is_nodata_not_nxdomain(client, server):
    r = ask(client, server, "_tcp.example.com", "A")  # exists only as the parent of _sip._tcp
    assert r.rcode == "NOERROR"
    assert r.answer == []
    assert r.types("authority") == ["SOA"]


def test_names_outside_our_zones_are_refused(client, server):
    r = ask(client, server, "www.example.org", "A")
    assert r.rcode == "REFUSED"
    assert "aa" not in r.flags and "ra" not in r.flags
    assert r.answer == [] and r.authority == []


def test_referral_at_delegation_point(client, server):
    r = ask(client, server, "host.lab.example.com", "A")
    assert r.rcode == "NOERROR"
    assert "aa" not in r.flags
    assert r.answer == []
    assert r.rdatas("NS", "authority") == {"ns1.lab.example.com.", "ns.example.net."}
    assert r.rdatas("A", "additional") == {"192.0.2.53"}  # glue for the in-bailiwick server only


def test_ds_at_delegation_point_is_answered_by_the_parent(client, server):
    r = ask(client, server, "lab.example.com", "DS")
    assert r.rcode == "NOERROR" and "aa" in r.flags
    assert r.types() == ["DS"]


def test_cname_is_followed_inside_the_zone(client, server):
    r = ask(client, server, "api.example.com", "A")
    assert r.types() == ["CNAME", "A", "A"]
    assert r.rdatas("CNAME") == {"www.example.com."}
    assert r.rdatas("A") == {"192.0.2.10", "192.0.2.11"}


def test_alias_at_apex_answers_the_targets_addresses(client, server):
    r = ask(client, server, "example.net", "A")
    assert r.rdatas("A") == {"198.51.100.80"}
    assert r.answer[0][0] == "example.net."
    r = ask(client, server, "example.net", "AAAA")
    assert r.rdatas("AAAA") == {"2001:db8:51::80"}


# RFC 4592 section 2.2.1: the example zone and its expected outcomes.
@pytest.mark.parametrize(("qname", "rtype", "rcode", "answer_types"), [
    ("host3.example.", "MX", "NOERROR", ["MX"]),  # synthesised from *.example.
    ("host3.example.", "A", "NOERROR", []),  # wildcard exists, no A: NODATA
    ("foo.bar.example.", "TXT", "NOERROR", ["TXT"]),  # closest encloser example.: synthesised
    ("host1.example.", "MX", "NOERROR", []),  # name exists: no wildcard
    ("sub.*.example.", "MX", "NOERROR", []),  # exists (not a wildcard)
    ("_telnet._tcp.host1.example.", "SRV", "NXDOMAIN", []),  # closest encloser _tcp.host1 has no *
    ("ghost.*.example.", "MX", "NXDOMAIN", []),  # *.example exists but *.*.example does not
])
def test_wildcards_follow_rfc4592(client, server, qname, rtype, rcode, answer_types):
    r = ask(client, server, qname, rtype)
    assert r.rcode == rcode
    assert r.types() == answer_types
    if answer_types:
        assert r.answer[0][0].lower() == qname  # owner is the query name, not the wildcard
    else:
        assert r.types("authority") == ["SOA"]


def test_wildcard_does_not_apply_below_a_delegation(client, server):
    r = ask(client, server, "host.subdel.example.", "A")
    assert "aa" not in r.flags
    assert r.types("authority") == ["NS", "NS"]


def test_any_over_udp_is_minimal_rfc8482(client, server):
    r = ask(client, server, "example.com", "ANY")
    assert r.rcode == "NOERROR"
    assert len(set(r.types())) == 1  # one RRset only
    full = ask(client, server, "example.com", "ANY", tcp=True)
    assert {"A", "AAAA", "MX", "TXT", "NS", "SOA", "CAA", "HTTPS"} <= set(full.types())


def test_query_name_case_is_preserved(server):
    q = dns.message.make_query("WwW.ExAmPlE.CoM", "A")
    wire = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=2).to_wire()
    assert b"\x03WwW\x07ExAmPlE\x03CoM\x00" in wire
    r = dns.message.from_wire(wire)
    assert r.answer[0].name.to_text() == "WwW.ExAmPlE.CoM."  # owner points at the question


def test_query_name_case_is_preserved_in_dig_output(server):
    # dig only: kdig lower-cases the name before it sends the query, so it cannot show this.
    r = TextClient("dig").query("127.0.0.1", server.port, "WwW.ExAmPlE.CoM", "A")
    assert {row[0] for row in r.answer} == {"WwW.ExAmPlE.CoM."}


def test_edns_opt_is_echoed_with_our_payload(client, server):
    r = ask(client, server, "www.example.com", "A", bufsize=4096)
    assert r.edns
    assert r.payload == 1232


def test_no_edns_in_no_edns_out(client, server):
    r = ask(client, server, "www.example.com", "A", edns=False)
    assert not r.edns


@pytest.mark.parametrize(("qname", "edns", "bufsize", "truncated"), [
    ("big.example.", False, 512, True),  # ~1 KB answer, no EDNS: 512 octets
    ("big.example.", True, 512, True),
    ("big.example.", True, 1232, False),
    ("huge.example.", True, 4096, True),  # ~2 KB: over our 1232 cap whatever the client offers
])
def test_udp_payload_size_is_honoured_with_tc(client, server, qname, edns, bufsize, truncated):
    r = ask(client, server, qname, "TXT", edns=edns, bufsize=bufsize)
    assert ("tc" in r.flags) == truncated
    if truncated:
        assert r.answer == []
    else:
        assert len(r.answer) == 10
    assert len(ask(client, server, qname, "TXT", tcp=True).answer) in (10, 21)


def test_edns_version_above_zero_gets_badvers(client, server):
    r = ask(client, server, "www.example.com", "A", edns_version=1)
    assert r.rcode == "BADVERS"
    assert r.answer == []


def test_unknown_edns_options_are_ignored(client, server):
    r = ask(client, server, "www.example.com", "A", ednsopt=65001)
    assert r.rcode == "NOERROR"
    assert r.rdatas("A") == {"192.0.2.10", "192.0.2.11"}


def test_client_subnet_is_echoed_with_a_scope(client, server):
    r = ask(client, server, "www.example.com", "A", subnet="198.51.100.0/24")
    assert r.rcode == "NOERROR"
    assert r.ecs == "198.51.100.0/24/0"  # static answer: valid for every client (scope 0)


def test_nsid_names_the_node(client, server):
    r = ask(client, server, "www.example.com", "A", nsid=True)
    assert r.nsid == "test-node"


@pytest.mark.parametrize(("qname", "text"), [
    ("id.server", '"test-node"'), ("hostname.bind", '"test-node"'), ("version.bind", None)])
def test_chaos_txt_identifies_the_node(client, server, qname, text):
    r = ask(client, server, qname, "TXT", rdclass="CH")
    assert r.rcode == "NOERROR"
    (rdata,) = r.rdatas("TXT")
    assert rdata == text if text else rdata.startswith('"gslb ')


# -- crafted packets ------------------------------------------------------------------------

def header(qid=0x1234, flags=0x0100, qd=1, an=0, ns=0, ar=0) -> bytes:
    return struct.pack(">HHHHHH", qid, flags, qd, an, ns, ar)


QUESTION = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"


def rcode_of(reply: bytes) -> int:
    return reply[3] & 0x0F


def opt(options: bytes = b"", version: int = 0) -> bytes:
    return struct.pack(">BHHBBHH", 0, 41, 1232, 0, version, 0, len(options)) + options


def ecs(family: int, source: int, scope: int, address: bytes) -> bytes:
    body = struct.pack(">HBB", family, source, scope) + address
    return struct.pack(">HH", 8, len(body)) + body


@pytest.mark.parametrize("opcode", [1, 2, 5, 6, 15])
def test_unknown_opcodes_get_notimp(server, opcode):
    reply = server.raw_udp(header(flags=opcode << 11) + QUESTION)
    assert reply is not None
    assert rcode_of(reply) == dns.rcode.NOTIMP
    assert reply[:2] == b"\x12\x34" and reply[2] & 0x80


@pytest.mark.parametrize("opcode", [1, 2, 4, 5, 15])
@pytest.mark.parametrize("edns", [False, True], ids=["plain", "edns"])
@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_notimp_copies_rd_and_cd_and_answers_edns(server, opcode, edns, tcp):
    """As BIND does: RD and CD copied into the NOTIMP reply, an OPT record when the query had one."""
    packet = header(flags=(opcode << 11) | 0x0100 | 0x0010, ar=int(edns)) + QUESTION + (opt() if edns else b"")
    if tcp:
        with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
            s.sendall(struct.pack(">H", len(packet)) + packet)
            length = struct.unpack(">H", s.recv(2))[0]
            reply = s.recv(length)
    else:
        reply = server.raw_udp(packet)
    (flags,) = struct.unpack_from(">H", reply, 2)
    assert flags & 0x000F == dns.rcode.NOTIMP and flags & 0x8000
    assert (flags >> 11) & 0xF == opcode
    assert flags & 0x0100 and flags & 0x0010  # RD, CD
    assert not flags & 0x0400  # not authoritative for what we do not implement
    assert struct.unpack_from(">H", reply, 10)[0] == int(edns)  # the OPT, when asked with one


@pytest.mark.parametrize("packet", [
    header(qd=2) + QUESTION + QUESTION,  # two questions
    header(qd=0),  # no question
    header() + b"\x03www\x07exam",  # question cut short
    header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",  # label longer than 63
    header() + b"\xc0\x0c\x00\x01\x00\x01",  # compression pointer loop in the question
    header(ar=1) + QUESTION + b"\x00\x00\x29\x04",  # OPT cut short
    header(ar=2) + QUESTION + opt() + opt(),  # two OPT records
    header(ar=1) + QUESTION + opt(b"\x00\x08\x00\x20"),  # option longer than the RDATA
    header(ar=1) + QUESTION + opt(ecs(3, 0, 0, b"")),  # ECS: unknown family
    header(ar=1) + QUESTION + opt(ecs(1, 33, 0, b"\xc6\x33\x64\x00\x00")),  # ECS: /33 for IPv4
    header(ar=1) + QUESTION + opt(ecs(1, 24, 0, b"\xc6\x33\x64\x00")),  # ECS: too many octets
    header(ar=1) + QUESTION + opt(ecs(1, 20, 0, b"\xc6\x33\x6f")),  # ECS: bits beyond /20
    header(ar=1) + QUESTION + opt(ecs(1, 24, 8, b"\xc6\x33\x64")),  # ECS: scope set in a query
], ids=["two-questions", "no-question", "cut-question", "long-label", "pointer-loop", "cut-opt", "two-opt",
        "option-overrun", "ecs-family", "ecs-prefix", "ecs-octets", "ecs-bits", "ecs-scope"])
def test_malformed_queries_get_formerr(server, packet):
    reply = server.raw_udp(packet)
    assert reply is not None
    assert reply[:2] == b"\x12\x34"
    assert rcode_of(reply) == dns.rcode.FORMERR


def test_responses_and_runts_are_never_answered(server):
    assert server.raw_udp(header(flags=0x8400) + QUESTION, timeout=0.5) is None
    assert server.raw_udp(b"\x12\x34\x01", timeout=0.5) is None
    assert server.query("www.example.com").rcode() == dns.rcode.NOERROR  # still serving


def test_valid_ecs_with_odd_prefix_is_accepted(server):
    reply = server.raw_udp(header(ar=1) + QUESTION + opt(ecs(1, 20, 0, b"\xc6\x33\x60")))
    r = dns.message.from_wire(reply)
    assert r.rcode() == dns.rcode.NOERROR
    (option,) = [o for o in r.options if o.otype == 8]
    assert (option.address, option.srclen, option.scopelen) == ("198.51.96.0", 20, 0)


# -- TCP (RFC 7766) -------------------------------------------------------------------------

def tcp_connect(server) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", server.port), timeout=3)
    return s


def read_message(s: socket.socket) -> bytes:
    head = b""
    while len(head) < 2:
        chunk = s.recv(2 - len(head))
        if not chunk:
            raise ConnectionError("closed")
        head += chunk
    (length,) = struct.unpack(">H", head)
    data = b""
    while len(data) < length:
        chunk = s.recv(length - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def test_tcp_pipelined_queries_all_answered(server):
    names = ["www.example.com", "api.example.com", "no-such.example.com", "example.net"]
    queries = [dns.message.make_query(n, "A", id=1000 + i) for i, n in enumerate(names)]
    with tcp_connect(server) as s:
        s.sendall(b"".join(struct.pack(">H", len(w)) + w for w in (q.to_wire() for q in queries)))
        replies = [dns.message.from_wire(read_message(s)) for _ in queries]
    assert sorted(r.id for r in replies) == [1000, 1001, 1002, 1003]
    by_id = {r.id: r for r in replies}
    assert by_id[1002].rcode() == dns.rcode.NXDOMAIN
    assert by_id[1000].answer


def test_tcp_length_split_across_segments(server):
    wire = dns.message.make_query("www.example.com", "A", id=77).to_wire()
    framed = struct.pack(">H", len(wire)) + wire
    with tcp_connect(server) as s:
        for i in range(0, len(framed), 5):
            s.sendall(framed[i:i + 5])
            time.sleep(0.01)
        assert dns.message.from_wire(read_message(s)).id == 77


def test_tcp_idle_connections_are_closed(server):
    with tcp_connect(server) as s:
        s.settimeout(5)
        start = time.monotonic()
        assert s.recv(1) == b""  # server closes after tcp_idle_timeout (1.5 s)
        waited = time.monotonic() - start
    assert 1.0 < waited < 4.0


def test_tcp_connection_cap(server):
    # Each worker allows tcp_max_connections; with two workers, open enough to fill both.
    held = []
    try:
        closed = 0
        for _ in range(20):
            s = tcp_connect(server)
            held.append(s)
        time.sleep(0.3)
        for s in held:
            s.settimeout(0.2)
            try:
                if s.recv(1) == b"":
                    closed += 1
            except TimeoutError:
                pass
        assert 20 - closed <= 2 * 6  # never more than the cap per worker stay open
        assert closed >= 20 - 2 * 6
    finally:
        for s in held:
            s.close()
    assert server.query("www.example.com", tcp=True).answer  # new connections work again


# -- AXFR ------------------------------------------------------------------------------------

def test_axfr_to_allowed_address(server):
    z = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", "example.com", port=server.port, timeout=5))
    names = {n.to_text() for n in z.nodes}
    assert {"@", "www", "api", "_sip._tcp", "lab", "ns1.lab", "*.apps"} <= names
    assert z.find_rdataset("www", "A").to_text().count("192.0.2.1") == 2


def test_axfr_with_dig_and_refusal(server):
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(server.port), "example.com", "AXFR"],
                         capture_output=True, text=True, timeout=10).stdout
    assert out.count("\tSOA\t") == 2  # first and last record
    assert "www.example.com." in out
    out = subprocess.run(["dig", "@127.0.0.1", "-p", str(server.port), "example.net", "AXFR"],
                         capture_output=True, text=True, timeout=10).stdout
    assert "Transfer failed" in out or "REFUSED" in out


def test_axfr_over_udp_is_not_served(server):
    q = dns.message.make_query("example.com", "AXFR")
    r = dns.query.udp(q, "127.0.0.1", port=server.port, timeout=2)
    assert r.rcode() == dns.rcode.NOTIMP


# -- IXFR (RFC 1995): the client's SOA rides in the authority section -------------------------

def our_serial(server) -> int:
    return server.query("example.com", "SOA").answer[0][0].serial


def transfer_lines(tool: str, server, serial: int, *extra: str) -> list[str]:
    r = subprocess.run([tool, "@127.0.0.1", "-p", str(server.port), "example.com", f"IXFR={serial}", *extra],
                       capture_output=True, text=True, timeout=20)
    assert "FORMERR" not in r.stdout and "failed" not in r.stdout.lower(), r.stdout
    return [line.split() for line in r.stdout.splitlines() if line and not line.startswith(";")]


@pytest.mark.parametrize("tool", ["dig", "kdig"])
def test_ixfr_with_dig_and_kdig_is_a_full_transfer(server, tool):
    """No incremental history: the AXFR-style response of RFC 1995 section 4, SOA first and last."""
    rows = transfer_lines(tool, server, 1)
    assert rows[0][3] == "SOA" and rows[-1][3] == "SOA" and [r[3] for r in rows].count("SOA") == 2
    assert int(rows[0][6]) == our_serial(server)
    assert ["www.example.com.", "3600", "IN", "A", "192.0.2.10"] in [r[:5] for r in rows]
    assert len(rows) > 10


@pytest.mark.parametrize("tool", ["dig", "kdig"])
@pytest.mark.parametrize("ahead", [0, 7], ids=["same-serial", "newer-serial"])
def test_ixfr_from_a_client_that_is_up_to_date_is_our_soa_alone(server, tool, ahead):
    rows = transfer_lines(tool, server, our_serial(server) + ahead)
    assert len(rows) == 1 and rows[0][3] == "SOA" and int(rows[0][6]) == our_serial(server)


def test_ixfr_with_dnspython_inbound_xfr(server):
    import dns.versioned
    import dns.xfr

    zone = dns.versioned.Zone("example.com")
    query, _ = dns.xfr.make_query(zone, serial=1)
    assert query.question[0].rdtype == dns.rdatatype.IXFR and query.authority
    dns.query.inbound_xfr("127.0.0.1", zone, query, port=server.port, timeout=5)
    assert zone.get_soa().serial == our_serial(server)
    assert zone.find_rdataset("www", "A").to_text().count("192.0.2.1") == 2
    query, serial = dns.xfr.make_query(zone)  # now up to date: nothing changes
    assert serial == our_serial(server)
    dns.query.inbound_xfr("127.0.0.1", zone, query, port=server.port, timeout=5)
    assert zone.find_rdataset("www", "A")


def test_ixfr_over_udp_answers_our_soa_so_the_client_uses_tcp(server):
    import dns.versioned
    import dns.xfr

    query, _ = dns.xfr.make_query(dns.versioned.Zone("example.com"), serial=1)
    r = dns.query.udp(query, "127.0.0.1", port=server.port, timeout=2)
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.SOA]


def test_ixfr_is_refused_where_axfr_is(server):
    import dns.versioned
    import dns.xfr

    query, _ = dns.xfr.make_query(dns.versioned.Zone("example.net"), serial=1)
    r = dns.query.tcp(query, "127.0.0.1", port=server.port, timeout=3)
    assert r.rcode() == dns.rcode.REFUSED and not r.answer


IXFR_QUESTION = b"\x07example\x03com\x00\x00\xfb\x00\x01"


def soa_record(owner: bytes = b"\xc0\x0c", serial: int = 1, rtype: int = 6) -> bytes:
    rdata = b"\x00\x00" + struct.pack(">IIIII", serial, 3600, 600, 86400, 300)
    return owner + struct.pack(">HHIH", rtype, 1, 300, len(rdata)) + rdata


@pytest.mark.parametrize("packet", [
    header(ns=1) + QUESTION + soa_record(),  # an A query with an authority record
    header(an=1) + IXFR_QUESTION + soa_record(),  # the SOA in the answer section
    header(ns=2) + IXFR_QUESTION + soa_record() + soa_record(),  # two of them
    header(ns=1) + IXFR_QUESTION + soa_record(rtype=1),  # not an SOA
    header(ns=1) + IXFR_QUESTION + soa_record(owner=b"\x03www\xc0\x0c"),  # another name's SOA
    header(ns=1) + IXFR_QUESTION + soa_record()[:-3],  # cut short
], ids=["a-query", "answer-section", "two-soa", "not-soa", "other-owner", "cut-short"])
def test_records_outside_the_question_are_formerr_except_the_ixfr_soa(server, packet):
    reply = server.raw_udp(packet)
    assert reply is not None and rcode_of(reply) == dns.rcode.FORMERR


def test_a_crafted_ixfr_with_edns_over_udp_is_answered(server):
    reply = dns.message.from_wire(server.raw_udp(header(ns=1, ar=1) + IXFR_QUESTION + soa_record() + opt()))
    assert reply.rcode() == dns.rcode.NOERROR and reply.answer[0].rdtype == dns.rdatatype.SOA and reply.edns == 0


def test_both_workers_answer(server):
    import json

    for _ in range(400):
        server.query("www.example.com")
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(server.control)
        s.sendall(b"status\n")
        status = json.loads(s.makefile().readline())
    time.sleep(1.2)
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(server.control)
        s.sendall(b"status\n")
        status = json.loads(s.makefile().readline())
    assert len(status["workers"]) == 2
    assert all(n > 0 for n in status["per_worker"]), status["per_worker"]
