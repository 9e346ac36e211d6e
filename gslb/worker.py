"""A worker process: its slot's SO_REUSEPORT sockets and the `Responder` of its generation (both
made by the supervisor, inherited by fork), and a pipe to the supervisor.

Threads: one blocking recvfrom/sendto loop per UDP socket (the fast path), one asyncio loop for
all TCP listeners, and the main thread applying updates from the supervisor (new zones, new
health), reporting counters once a second, and, when a newer generation has taken over its
slot, finishing what is queued and open before leaving.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import gc
import importlib
import logging
import os
import pickle
import signal
import socket
import struct
import sys
import termios
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from gslb import generation, ipc
from gslb.answers import Answers
from gslb.dnssec.serve import signatures as dnssec_signatures
from gslb.generation import Generation, SharedEntry
from gslb.server import abuse_config, native, sockets
from gslb.server.fastpath import Responder
from gslb.server.tcp import TcpServer

log = logging.getLogger(__name__)

STATS_INTERVAL = 1.0
RETIRE_SETTLE = 0.05  # seconds between a retiring worker's checks that it has nothing left


_udpbatch: Any
try:  # the C helper is optional (built by scripts/setup): the pure-Python loop below serves instead
    _udpbatch = importlib.import_module("gslb.server._udpbatch")
except ImportError:
    _udpbatch = None
if os.environ.get("GSLB_NO_NATIVE"):  # force the pure-Python loops (debugging, tests)
    _udpbatch = None


# The serving threads' scheduler slice in µs: short, so that a query's wake-up preempts whatever else
# holds the CPU (this worker's stats, the supervisor, other processes) instead of waiting for the
# rest of its slice. Measured (README, "Tail latency"): p99 at 2k and 60k QPS on a shared core cut
# to a sixth to a quarter, but worse at 60k QPS when the core is four times oversubscribed (the busy
# thread is then itself preempted every 100 µs). GSLB_UDP_SLICE_US=0 keeps the kernel's default.
UDP_SLICE_US = int(os.environ.get("GSLB_UDP_SLICE_US", "100"))
SYS_SCHED_SETATTR = {"x86_64": 314, "aarch64": 274}.get(os.uname().machine)


def short_slice(us: int = UDP_SLICE_US) -> bool:
    """Give the calling thread a `us` slice (Linux >= 6.12, EEVDF: a fair task's custom slice is
    sched_attr.sched_runtime, and a waking task with a shorter slice may preempt the running one).
    Without it the serving thread waits up to the end of the slice of whatever runs: measured
    0.6-1.4 ms behind this process's own once-a-second work, 4-12 ms behind other busy processes.
    Best effort: False when `us` is 0 or where the kernel or the platform says no."""
    if us <= 0 or SYS_SCHED_SETATTR is None or not sys.platform.startswith("linux"):
        return False
    nice = os.getpriority(os.PRIO_PROCESS, 0)
    # struct sched_attr (SCHED_ATTR_SIZE_VER1): size, policy, flags, nice, priority, runtime,
    # deadline, period, util_min, util_max
    attr = struct.pack("=IIQiIQQQII", 56, 0, 0, nice, 0, us * 1000, 0, 0, 0, 0)
    buf = ctypes.create_string_buffer(attr, len(attr))
    libc = ctypes.CDLL(None, use_errno=True)
    return int(libc.syscall(SYS_SCHED_SETATTR, 0, buf, 0)) == 0


def udp_loop(sock: socket.socket, responder: Responder, wildcard: bool = False) -> None:
    """The native engine when built and every configured limit runs in it (C answers and limits,
    Python for the rest; `udp_guard` then gives the plain `responder.answer`); else recvmmsg/sendmmsg
    batches through the C helper, each answer behind the Python limiters (per-ASN limits need the
    ASN database); else recvfrom/sendto. Each asks for a short scheduler slice first (`short_slice`)."""
    short_slice()
    answer = abuse_config.udp_guard(responder)
    if responder.engine is not None and answer == responder.answer:
        responder.engine.serve(sock.fileno(), responder, 64, 1 if wildcard else 0)
        return
    if _udpbatch is not None:
        _udpbatch.serve(sock.fileno(), answer, 64, 1 if wildcard else 0)
        return
    if wildcard:
        return udp_loop_pktinfo(sock, responder, answer)
    recvfrom = sock.recvfrom
    sendto = sock.sendto
    family = sock.family
    pton = socket.inet_pton
    while True:
        try:
            data, addr = recvfrom(4096)
        except OSError:
            if sock.fileno() < 0:
                return
            continue
        out = answer(data, pton(family, addr[0]))
        if out is not None:
            try:
                sendto(out, addr)
            except OSError:
                responder.stats.dropped += 1


def udp_loop_pktinfo(sock: socket.socket, responder: Responder, answer: Callable[[bytes, bytes], bytes | None]
                     ) -> None:
    """The pure-Python loop for wildcard sockets: reply from the query's destination address.
    `answer` is `responder.answer` behind the query limits and RRL (when on)."""
    v6 = sock.family == socket.AF_INET6
    level = socket.IPPROTO_IPV6 if v6 else socket.IPPROTO_IP
    kind = sockets.IPV6_PKTINFO if v6 else sockets.IP_PKTINFO
    while True:
        try:
            data, ancillary, _flags, addr = sock.recvmsg(4096, 64)
        except OSError:
            if sock.fileno() < 0:
                return
            continue
        reply_info = []
        for lvl, typ, info in ancillary:
            if lvl == level and typ == kind:
                # in_pktinfo: ifindex, spec_dst, addr -> reply with spec_dst = addr;
                # in6_pktinfo: addr, ifindex -> reply with the same addr, any interface.
                reply_info = [(lvl, typ, bytes(4) + info[8:12] + bytes(4))] if not v6 else [
                    (lvl, typ, info[:16] + bytes(4))]
        out = answer(data, socket.inet_pton(sock.family, addr[0].split("%", 1)[0]))
        if out is not None:
            try:
                sock.sendmsg([out], reply_info, 0, addr)
            except OSError:
                responder.stats.dropped += 1


def tcp_thread(socks: list[socket.socket], server: TcpServer) -> None:
    try:
        import uvloop

        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    except ImportError:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    for sock in socks:
        loop.run_until_complete(server.serve(sock))
    loop.run_forever()


def latency_histogram() -> list[int]:
    """Per-query handler time, summed over the native engine and the batching helper (the same
    buckets); a worker uses one or the other, by configuration."""
    parts = [h for h in (native.histogram(), list(_udpbatch.histogram()) if _udpbatch is not None else []) if h]
    return [sum(bucket) for bucket in zip(*parts, strict=True)] if parts else []


def latency_sum_ns() -> int:
    """The exact sum behind `latency_histogram`, in nanoseconds."""
    return native.histogram_sum_ns() + (int(_udpbatch.histogram_sum_ns()) if _udpbatch is not None else 0)


def stats_message(responder: Responder, answers: Answers) -> dict[str, Any]:
    s = responder.stats
    counts = generation.counts(responder, [answers.answer_cache])
    by_rcode: dict[int, int] = {}
    for (_zone, _qtype, rcode), n in counts.items():
        by_rcode[rcode] = by_rcode.get(rcode, 0) + n
    engine = responder.engine.stats() if responder.engine is not None else {}
    return {"pid": os.getpid(), "queries": sum(counts.values()), "tcp": s.tcp, "truncated": s.truncated,
            # how much stayed out of the interpreter: answers the engine wrote, and the GSLB
            # decisions it had to ask Python for (first query of a client prefix after a flush)
            "native_answers": engine.get("native", 0), "python_decisions": engine.get("picks", 0),
            "dropped": s.dropped, "formerr": s.formerr, "by_rcode": by_rcode,
            "counts": [[z, q, r, n] for (z, q, r), n in counts.items()],
            "latency": latency_histogram(), "latency_sum_ns": latency_sum_ns(),
            "decisions": dict(answers.decisions), "cpu": time.process_time(),
            "dnssec_signatures": dnssec_signatures(), "abuse": abuse_config.stats(responder)}


def drained(udp: list[socket.socket], tcp: TcpServer) -> bool:
    """Nothing queued on our UDP sockets (steering sends new queries elsewhere) and no TCP
    connection open: a retiring worker may leave without dropping anything."""
    for sock in udp:
        if int.from_bytes(fcntl.ioctl(sock.fileno(), termios.FIONREAD, bytes(4)), sys.byteorder):
            return False
    return tcp.connections == 0


def retire(udp: list[socket.socket], tcp: TcpServer, bound: float) -> None:
    """Wait (at most `bound` seconds) until drained, twice in a row RETIRE_SETTLE apart: a query
    taken from the queue just before is answered within microseconds."""
    deadline = time.monotonic() + bound
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        quiet = quiet + 1 if drained(udp, tcp) else 0
        time.sleep(RETIRE_SETTLE)


def pickled_zones(gen: Generation) -> bytes:
    """This worker's zones for a supervisor that shed its copy (b"" if they do not pickle)."""
    try:
        return pickle.dumps(gen.zones, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        log.exception("worker: cannot send generation %d's zones", gen.number)
        return b""


def run(index: int, inbox: Connection, outbox: Connection, gen: Generation,
        listeners: list[tuple[sockets.Listener, socket.socket, socket.socket]], inherited_fds: list[int]) -> None:
    """Worker entry point (after fork): serve the supervisor's sockets from the generation it built,
    follow the supervisor until told to retire or the pipe closes."""
    for fd in inherited_fds:  # siblings' pipes: holding them would hide the supervisor's death
        with contextlib.suppress(OSError):
            os.close(fd)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    cfg, answers, responder = gen.cfg, gen.answers, gen.responder
    SharedEntry.counted = {}  # this process's own
    abuse_config.install(responder, cfg)  # cookies secret, RRL/query limits for udp_loop, TCP limits
    gc.set_threshold(50_000, 50, 100)  # the shared part was frozen before the fork
    tcp = TcpServer(responder, cfg.tcp_idle_timeout, cfg.tcp_max_connections)
    udp_socks = []
    for listener, udp, _tcp in listeners:
        sockets.limit_fragmentation(udp, cfg.edns_udp_size)  # this generation's size: its bank only
        threading.Thread(target=udp_loop, args=(udp, responder, listener.wildcard), daemon=True,
                         name=f"udp {listener.text}").start()
        udp_socks.append(udp)
    threading.Thread(target=tcp_thread, args=([t for _l, _u, t in listeners], tcp), daemon=True,
                     name="tcp").start()
    outbox.send(ipc.Ready(index, gen.number))
    next_stats = time.monotonic() + STATS_INTERVAL
    while True:
        timeout = max(0.0, next_stats - time.monotonic())
        try:
            if inbox.poll(timeout):
                message = inbox.recv()
                if isinstance(message, ipc.SetHealth):
                    if answers.set_health(message.health):  # decisions re-made on each prefix's next query
                        responder.invalidate()  # the native engine's decisions too
                    outbox.send(ipc.HealthApplied(index, message.generation))
                elif isinstance(message, ipc.Retire):
                    retire(udp_socks, tcp, message.bound)
                    outbox.send(ipc.Stats(index, stats_message(responder, answers)))
                    break
                elif isinstance(message, ipc.Stop):
                    break
                elif isinstance(message, generation.SendZones):
                    outbox.send(generation.ZonesOf(index, gen.number, pickled_zones(gen)))
                else:
                    log.error("worker %d: unknown message %r from the supervisor", index, message)
            if time.monotonic() >= next_stats:
                outbox.send(ipc.Stats(index, stats_message(responder, answers)))
                next_stats = time.monotonic() + STATS_INTERVAL
        except (EOFError, OSError):
            break  # the supervisor is gone: so are we
    with contextlib.suppress(Exception):
        inbox.close()
        outbox.close()
    os._exit(0)
