"""Hot reload: SIGHUP, file changes and `gslb reload` swap zones atomically; broken files are
rejected and the previous zones keep serving; queries never fail while it happens."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import dns.exception
import dns.rcode
import pytest

from tests.support.dnsserver import ROOT, gslb_server, wait_until

ZONE = """---
'':
  - type: NS
    value: ns1.example.com.
www:
  type: A
  value: {address}
"""


@pytest.fixture
def zones_dir():
    d = tempfile.mkdtemp(prefix="gslb-reload-")
    with open(os.path.join(d, "example.org.yaml"), "w") as f:
        f.write(ZONE.format(address="192.0.2.1"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


def write_zone(zones_dir: str, address: str, name: str = "example.org.yaml") -> None:
    path = os.path.join(zones_dir, name)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(ZONE.format(address=address))
    os.replace(tmp, path)


def a_record(server) -> str | None:
    r = server.query("www.example.org", "A")
    return r.answer[0][0].address if r.answer else None


def serial(server) -> int:
    return server.query("example.org", "SOA").answer[0][0].serial


def gslb_reload(server) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gslb", "reload", "--control", server.control],
                          capture_output=True, text=True, timeout=30, cwd=ROOT)


def test_sighup_reloads(zones_dir):
    with gslb_server(zones_dir, config={"watch": False}) as server:
        before = serial(server)
        write_zone(zones_dir, "192.0.2.2")
        time.sleep(1.2)
        assert a_record(server) == "192.0.2.1"  # watching is off: nothing changes by itself
        server.hup()
        wait_until(lambda: a_record(server) == "192.0.2.2", what="SIGHUP reload")
        assert serial(server) > before


def test_file_change_reloads_by_itself(zones_dir):
    with gslb_server(zones_dir) as server:
        write_zone(zones_dir, "192.0.2.3")
        start = time.monotonic()
        wait_until(lambda: a_record(server) == "192.0.2.3", what="file-change reload")
        print(f"file change → new answer in {(time.monotonic() - start) * 1000:.0f} ms")
        write_zone(zones_dir, "192.0.2.4", name="example.info.yaml")  # a new zone appears
        wait_until(lambda: server.query("www.example.info").rcode() == dns.rcode.NOERROR, what="new zone")


def test_gslb_reload_command_reports_and_swaps(zones_dir):
    with gslb_server(zones_dir, config={"watch": False}) as server:
        write_zone(zones_dir, "192.0.2.5")
        result = gslb_reload(server)
        assert result.returncode == 0, result.stderr
        assert "reloaded: 1 zone(s)" in result.stdout
        assert a_record(server) == "192.0.2.5"  # swapped before the command returned


def test_broken_file_is_rejected_and_the_old_zone_keeps_serving(zones_dir):
    with gslb_server(zones_dir, config={"watch": False}) as server:
        old_serial = serial(server)
        with open(os.path.join(zones_dir, "example.org.yaml"), "w") as f:
            f.write("www:\n  type: A\n  value: 192.0.2.300\nmail:\n  type: BOGUS\n  value: x\n")
        result = gslb_reload(server)
        assert result.returncode == 1
        assert "example.org.yaml:3: www.A.value: '192.0.2.300' is not an IPv4 address" in result.stdout
        assert "example.org.yaml:5: mail.type: unknown or unsupported record type 'BOGUS'" in result.stdout
        assert "still serving" in result.stderr
        assert a_record(server) == "192.0.2.1"
        assert serial(server) == old_serial
        assert "rejected" in server.log()
        # fixing the file brings the new content
        write_zone(zones_dir, "192.0.2.6")
        assert gslb_reload(server).returncode == 0
        assert a_record(server) == "192.0.2.6"


def test_a_broken_file_written_while_watching_is_rejected(zones_dir):
    with gslb_server(zones_dir) as server:
        with open(os.path.join(zones_dir, "example.org.yaml"), "w") as f:
            f.write("www: [unclosed\n")
        wait_until(lambda: "rejected" in server.log(), what="rejected reload in the log")
        assert a_record(server) == "192.0.2.1"


def test_no_query_fails_or_stalls_during_reloads(zones_dir):
    # A bigger zone so each reload does real work while queries run.
    with open(os.path.join(zones_dir, "bulk.example.yaml"), "w") as f:
        f.write("---\n" + "".join(f"h{i}:\n  type: A\n  value: 198.51.100.{i % 250 + 1}\n" for i in range(3000)))
    with gslb_server(zones_dir, config={"watch": False}, workers=2) as server:
        failures: list[str] = []
        latencies: list[float] = []
        stop = threading.Event()

        def query_loop() -> None:
            while not stop.is_set():
                start = time.monotonic()
                try:
                    r = server.query("www.example.org", "A", timeout=1.0)
                    if r.rcode() != dns.rcode.NOERROR or not r.answer:
                        failures.append(f"rcode {r.rcode()}")
                except dns.exception.Timeout:
                    failures.append("timeout")
                latencies.append(time.monotonic() - start)

        threads = [threading.Thread(target=query_loop) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            for i in range(8):
                write_zone(zones_dir, f"192.0.2.{10 + i}")
                assert gslb_reload(server).returncode == 0
        finally:
            stop.set()
            for t in threads:
                t.join()
        latencies.sort()
        p99 = latencies[int(len(latencies) * 0.99)]
        print(f"{len(latencies)} queries during 8 reloads: 0 failed, p99 {p99 * 1000:.1f} ms, "
              f"max {latencies[-1] * 1000:.1f} ms")
        assert failures == []
        assert latencies[-1] < 0.5
        assert a_record(server) == "192.0.2.17"


def _workers(server) -> list[int]:
    with open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children") as f:
        return [int(pid) for pid in f.read().split()]


def _query_flood(server, stop: threading.Event, failures: list[str], answered: list[int]) -> None:
    while not stop.is_set():
        try:
            r = server.query("www.example.org", "A", timeout=1.0)
            if r.rcode() != dns.rcode.NOERROR or not r.answer:
                failures.append(f"rcode {r.rcode()}")
            answered[0] += 1
        except dns.exception.Timeout:
            failures.append("timeout")


def test_reload_replaces_every_worker_and_the_old_ones_leave(zones_dir):
    """A reload forks the new generation's workers and retires the old ones once they drained."""
    with gslb_server(zones_dir, config={"watch": False}, workers=2) as server:
        before = set(_workers(server))
        write_zone(zones_dir, "192.0.2.9")
        assert gslb_reload(server).returncode == 0
        assert a_record(server) == "192.0.2.9"
        wait_until(lambda: len(_workers(server)) == 2 and not set(_workers(server)) & before, timeout=20,
                   what="the old workers gone, two new ones serving")
        assert "takes effect" not in server.log()


def test_a_killed_worker_is_replaced_while_the_others_serve(zones_dir):
    """Its slot's share of queries goes to the others until the new worker (same socket, the
    current generation) is up; queries queued on its socket wait for it instead of being lost."""
    import signal

    with gslb_server(zones_dir, config={"watch": False}, workers=2) as server:
        write_zone(zones_dir, "192.0.2.5")
        assert gslb_reload(server).returncode == 0  # the respawn must come from generation 2
        wait_until(lambda: len(_workers(server)) == 2, timeout=20, what="two workers")
        victim = _workers(server)[0]
        failures: list[str] = []
        answered = [0]
        stop = threading.Event()
        threads = [threading.Thread(target=_query_flood, args=(server, stop, failures, answered)) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: len(_workers(server)) == 2 and victim not in _workers(server), timeout=20,
                       what="the killed worker replaced")
            time.sleep(0.5)
        finally:
            stop.set()
            for t in threads:
                t.join()
        # at most the one batch the killed worker held when it died
        assert len(failures) <= 1, failures
        assert answered[0] > 50
        assert a_record(server) == "192.0.2.5"
        assert "died" in server.log() and "restarting it" in server.log()


def test_new_workers_that_do_not_start_leave_the_old_generation_serving(zones_dir, monkeypatch):
    """The supervisor sheds the served generation's compiled answers before forking a reload's
    workers; if they do not start, it compiles that generation again: the old workers serve on,
    and one that dies meanwhile (here during the roll) comes back with the old answers."""
    import asyncio
    import signal

    import dns.message
    import dns.query

    from gslb import worker
    from gslb.config import ServerConfig
    from gslb.node import Node
    from tests.support.procs import free_port

    port = free_port(socket.SOCK_DGRAM)
    node = Node(ServerConfig(listen=(f"127.0.0.1:{port}",), workers=2, zones_dir=zones_dir, watch=False))
    node.load_initial()
    real_run = worker.run

    def broken_run(index, inbox, outbox, gen, *rest):
        if gen.number > 1:  # the new generation's workers die before they are ready
            time.sleep(1.0)
            os._exit(3)
        real_run(index, inbox, outbox, gen, *rest)

    def ask() -> str | None:
        r = dns.query.udp(dns.message.make_query("www.example.org", "A"), "127.0.0.1", port=port, timeout=2)
        return r.answer[0][0].address if r.answer else None

    async def until(predicate, what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.02)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        node._reload_lock = asyncio.Lock()
        node.pool.start(2)
        try:
            assert await node.pool.wait_ready()
            victim = node.pool.workers[0].process.pid
            write_zone(zones_dir, "192.0.2.66")
            monkeypatch.setattr(worker, "run", broken_run)
            reload = asyncio.ensure_future(node.reload("test"))
            await until(lambda: any(not h.retiring for h in node.pool.others), "the new workers forked")
            os.kill(victim, signal.SIGKILL)
            result = await reload
            assert not result.ok and "did not start" in result.reason
            await until(lambda: victim not in [h.process.pid for h in node.pool.workers]
                        and all(h.ready for h in node.pool.workers), "the killed worker restarted")
            assert [h.applied for h in node.pool.workers] == [1, 1]
            assert node.gen is not None and node.gen.number == 1 and not node.gen.shed
            for _ in range(20):  # both workers, the restarted one included, answer from generation 1
                assert await loop.run_in_executor(None, ask) == "192.0.2.1"
            assert node._answers().snapshot.table  # the supervisor's own answers are whole again
        finally:
            node.pool.stop()

    asyncio.run(scenario())
