"""A generated 100,000-name zone: `gslb serve` loads it, answers what the YAML says, reloads a
one-record edit with queries flowing (none fails or waits a second), transfers it completely
over AXFR, and its workers share the compiled table: their private memory does not grow with the
zone (a 1,000-name zone's workers are the yardstick).

The zones are made here (tests/support/bigzone.py), never committed. Timings are printed, not
asserted (bench/zone_scale measures them against Knot and NSD)."""

from __future__ import annotations

import ipaddress
import random
import shutil
import tempfile
import threading
import time

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import pytest

from tests.support import bigzone
from tests.support.dnsserver import gslb_server, wait_until

NAMES = 100_000
SMALL = 1_000
EDITED = 4242  # h4242's A record changes to 203.0.113.77 in the edit


@pytest.fixture(scope="module")
def zones_dir():
    d = tempfile.mkdtemp(prefix="gslb-scale-")
    bigzone.write(d, NAMES)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def workers_of(server) -> list[int]:
    """The supervisor's live children (a retired worker leaves within a moment of the reload)."""
    with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as f:
        pids = [int(pid) for pid in f.read().split()]
    live = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    live.append(pid)
        except OSError:
            continue
    return live


def private_mb(pid: int) -> float:
    """What the worker has written itself (copied-on-write pages included), not what it shares."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no Private_Dirty for pid {pid}")


def rss_mb(pid: int) -> float:
    """Everything the worker maps and has in memory, shared or not: what it keeps alive."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Rss:"):
                return int(line.split()[1]) / 1024
    raise AssertionError(f"no Rss for pid {pid}")


def settled_private_mb(server, sample: list[int], names: int) -> list[float]:
    """Each worker's private memory after queries and a few counter reports (they run each second)."""
    for i in sample:
        server.query(f"{bigzone.host(i % names)}.example.com.", "A")
    time.sleep(2.5)
    wait_until(lambda: len(workers_of(server)) == 2, timeout=30, what="two workers (the retired ones gone)")
    pids = workers_of(server)
    return [private_mb(pid) for pid in pids]


@pytest.fixture(scope="module")
def small_private():
    d = tempfile.mkdtemp(prefix="gslb-scale-small-")
    try:
        bigzone.write(d, SMALL)
        with gslb_server(d, config={"watch": False}, workers=2) as server:
            yield settled_private_mb(server, list(range(0, SMALL, 7)), SMALL)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def canonical(rtype: str, values: list[str]) -> set[str]:
    """The YAML's values as dnspython prints them (IPv6 compressed)."""
    if rtype == "AAAA":
        return {str(ipaddress.ip_address(v)) for v in values}
    return set(values)


def expected(i: int, rtype: str, edited: bool = False) -> set[str] | None:
    for t, _ttl, values in bigzone.records(i):
        if t == rtype:
            if edited and i == EDITED and t == "A":
                return {"203.0.113.77"}
            return canonical(t, values)
    return None


def texts(response: dns.message.Message, owner: str, rtype: str) -> set[str]:
    out = set()
    for rrset in response.answer:
        if rrset.name.to_text() == owner and dns.rdatatype.to_text(rrset.rdtype) == rtype:
            for rd in rrset:
                text = rd.to_text()
                if rtype == "TXT":
                    text = b"".join(rd.strings).decode()
                out.add(text)
    return out


def check_sample(server, sample: list[int], edited: bool = False) -> None:
    for i in sample:
        owner = f"{bigzone.host(i)}.example.com."
        cname = expected(i, "CNAME")
        for rtype in ("A", "AAAA", "TXT", "MX"):
            r = server.query(owner, rtype, timeout=2.0)
            assert r.rcode() == dns.rcode.NOERROR, (owner, rtype)
            if cname is not None:  # the CNAME and, chased in zone, the target's data
                assert texts(r, owner, "CNAME") == cname
                target = next(iter(cname))
                want = expected(i - 1, rtype, edited)
                assert texts(r, target, rtype) == (want or set()), (owner, rtype)
                continue
            want = expected(i, rtype, edited)
            if want is None:  # NODATA: no answer, the SOA in authority
                assert not r.answer and r.authority[0].rdtype == dns.rdatatype.SOA, (owner, rtype)
            else:
                assert texts(r, owner, rtype) == want, (owner, rtype, r)
    r = server.query(f"nothing-{NAMES + 1}.example.com.", "A")
    assert r.rcode() == dns.rcode.NXDOMAIN


@pytest.mark.timeout(900)  # minutes on a busy 2-core machine (the suite's default is 300 s)
def test_hundred_thousand_names_load_answer_reload_and_transfer(zones_dir, small_private):
    rng = random.Random(11)
    sample = sorted({EDITED, EDITED + 5, 0, 1, 2, 9, NAMES - 1, *rng.sample(range(NAMES), 60)})
    started = time.monotonic()
    with gslb_server(zones_dir, config={"watch": False}, workers=2, start_timeout=400) as server:
        print(f"\n{NAMES} names: first answer {time.monotonic() - started:.1f} s after start")
        check_sample(server, sample)
        big_private = settled_private_mb(server, sample, NAMES)
        print(f"workers' private memory: {SMALL} names {small_private} MB, {NAMES} names {big_private} MB")
        # compiled separately per worker, 100k names cost hundreds of MB each; shared, only what
        # the queries touched is private
        assert max(big_private) < max(small_private) + 25, (small_private, big_private)
        big_rss = [rss_mb(pid) for pid in workers_of(server)]

        # A one-record edit, reloaded while two clients query without pause: none may fail.
        failures: list[str] = []
        slowest = [0.0]
        answered = [0]
        stop = threading.Event()

        def query_loop(seed: int) -> None:
            names = random.Random(seed)
            while not stop.is_set():
                i = names.randrange(NAMES)
                t0 = time.monotonic()
                try:
                    r = server.query(f"{bigzone.host(i)}.example.com.", "A", timeout=1.0)  # a stall fails
                    if r.rcode() != dns.rcode.NOERROR or not r.answer:
                        failures.append(f"h{i}: rcode {r.rcode()}")
                    answered[0] += 1
                except dns.exception.Timeout:
                    failures.append(f"h{i}: no answer within 1 s")
                slowest[0] = max(slowest[0], time.monotonic() - t0)

        threads = [threading.Thread(target=query_loop, args=(seed,)) for seed in (1, 2)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            bigzone.write(zones_dir, NAMES, edit=EDITED)
            t0 = time.monotonic()
            server.hup()  # a reload (`gslb reload`'s client gives up after 60 s; a big zone can take longer)
            wait_until(lambda: server.query(f"{bigzone.host(EDITED)}.example.com.", "A").answer[0][0].address
                       == "203.0.113.77", timeout=600, what="edited record served")
            reload_s = time.monotonic() - t0
            time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        print(f"reload of a one-record edit: {reload_s:.1f} s; {answered[0]} queries meanwhile, "
              f"{len(failures)} failed, slowest {slowest[0] * 1000:.0f} ms")
        assert failures == []
        assert answered[0] > 50
        check_sample(server, sample, edited=True)
        after = settled_private_mb(server, sample, NAMES)  # the new generation's workers share too
        after_rss = [rss_mb(pid) for pid in workers_of(server)]
        print(f"after the reload: {after} MB private; resident {big_rss} MB at start, {after_rss} MB now")
        assert max(after) < max(small_private) + 25, (small_private, after)
        # The new workers were forked without the old generation (shed by the supervisor first):
        # had they inherited it, they would keep it (about as big as the new one) for good.
        assert max(after_rss) < 1.5 * max(big_rss), (big_rss, after_rss)

        # AXFR: every record of the YAML, once, between the two SOAs.
        t0 = time.monotonic()
        zone = dns.zone.from_xfr(dns.query.xfr(server.host, "example.com", port=server.port, timeout=60,
                                               lifetime=120, relativize=False), relativize=False)
        print(f"AXFR: {len(zone.nodes)} names in {time.monotonic() - t0:.1f} s")
        assert len(zone.nodes) == NAMES + 1
        for i in sample:
            node = zone.nodes[dns.name.from_text(f"{bigzone.host(i)}.example.com.")]
            for rtype, _ttl, values in bigzone.records(i):
                rdataset = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.from_text(rtype))
                got = {b"".join(rd.strings).decode() if rtype == "TXT" else rd.to_text() for rd in rdataset}
                want = {"203.0.113.77"} if (i == EDITED and rtype == "A") else canonical(rtype, values)
                if rtype == "MX":
                    want = {f"{v.split()[0]} {v.split()[1]}" for v in values}
                assert got == want, (i, rtype)
        total = sum(len(rds) for node in zone.nodes.values() for rds in node.rdatasets)
        edited_a = next(len(v) for t, _ttl, v in bigzone.records(EDITED) if t == "A") - 1  # now one value
        want_total = 3 + sum(len(v) for i in range(NAMES) for _t, _ttl, v in bigzone.records(i)) - edited_a
        assert total == want_total + 1  # + NS x2, A at the apex, + SOA
