"""The supervisor's side of its workers: fork them, roll generations, restart the ones that die.

The pool owns the listening sockets (`SocketSet`: per slot and address one UDP and one TCP
socket, in two banks). A worker is forked from a `Generation` the supervisor built and serves its
slot's sockets of the active bank. A reload forks the new generation's workers on the idle bank,
and once every one is ready flips the steering to it and tells the old ones to retire: they answer
what they had queued, finish their TCP connections and leave. Each worker gets a pipe each way
(blocking sends never share a file with the event loop); `broadcast` pickles a message once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

from gslb import generation, ipc, worker
from gslb.config import ServerConfig
from gslb.generation import Generation
from gslb.server import abuse_config, steering
from gslb.server.sockets import SocketSet

log = logging.getLogger("gslb.node")

COUNTERS = ("queries", "tcp", "truncated", "dropped", "formerr", "cpu", "dnssec_signatures", "latency_sum_ns",
            "native_answers", "python_decisions")
RETIRE_GRACE = 5.0  # seconds past its TCP bound before a retiring worker is killed


@dataclass
class WorkerHandle:
    index: int  # the slot
    process: multiprocessing.process.BaseProcess
    to_worker: Connection
    from_worker: Connection
    ready: bool = False
    applied: int = 0  # the zone generation this worker serves
    health_applied: int = 0  # the health generation this worker answers from
    retiring: bool = False
    bank: int = 0  # which bank of sockets it reads
    deadline: float = 0.0  # when retiring: killed if still there by then
    stats: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send_bytes(self, payload: bytes) -> None:
        with self.lock, contextlib.suppress(OSError):
            self.to_worker.send_bytes(payload)

    def fds(self) -> list[int]:
        return [c.fileno() for c in (self.to_worker, self.from_worker) if not c.closed]


def fold(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Two workers' counters as one (a retired worker's last counters stay in the node's totals)."""
    out: dict[str, Any] = {k: a.get(k, 0) + b.get(k, 0) for k in COUNTERS}
    for k in ("by_rcode", "decisions"):
        merged = dict(a.get(k, {}))
        for key, n in b.get(k, {}).items():
            merged[key] = merged.get(key, 0) + n
        out[k] = merged
    counts: dict[tuple, int] = {}
    for zone, qtype, rcode, n in (*a.get("counts", []), *b.get("counts", [])):
        counts[(zone, qtype, rcode)] = counts.get((zone, qtype, rcode), 0) + n
    out["counts"] = [[*key, n] for key, n in counts.items()]
    out["abuse"] = abuse_config.merge((a.get("abuse"), b.get("abuse")))
    la, lb = a.get("latency", []), b.get("latency", [])
    out["latency"] = [x + y for x, y in zip(la or [0] * len(lb), lb or [0] * len(la), strict=True)]
    return out


class WorkerPool:
    """`count` workers serving `cfg.listen`; `current()` gives the generation a (re)started one
    starts from (None while a reload has it shed: a restart waits for the roll's outcome)."""

    def __init__(self, cfg: ServerConfig, current: Callable[[], Generation | None]) -> None:
        self.cfg = cfg
        self.current = current
        self.sockets: SocketSet | None = None
        self.workers: list[WorkerHandle] = []  # serving: one per slot, on the active bank
        self.others: list[WorkerHandle] = []  # starting (a generation not yet steered to) or retiring
        self.gone: dict[str, Any] = {}  # the last counters of workers that left
        self.stopping = False
        self._zones: asyncio.Future[bytes] | None = None  # `zones_from_workers` waiting

    def start(self, count: int) -> None:
        """Make the sockets (OSError when an address cannot be bound) and fork the first workers."""
        gen = self.current()
        assert gen is not None, "a generation first"
        self.sockets = SocketSet(list(self.cfg.listen), count, self._by_prefix(gen, count))
        generation.before_fork()
        for i in range(count):
            self.workers.append(self._spawn(i, self.sockets.bank, gen))

    async def wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not all(h.ready for h in self.workers):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    def _live(self) -> list[WorkerHandle]:
        return [*self.workers, *self.others]

    async def broadcast(self, message: object) -> None:
        """Send one message to every live worker, pickled once, without blocking the event loop."""
        payload = bytes(ForkingPickler.dumps(message))
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, h.send_bytes, payload) for h in self._live()))

    async def roll(self, gen: Generation, timeout: float = 30.0) -> bool:
        """Serve `gen`: fork its workers on the idle bank, steer to them once all are ready, retire
        the previous ones. False (nothing changed, the old ones serve on) if they do not start."""
        assert self.sockets is not None, "start() first"
        bank = self.sockets.idle_bank()
        await self._wait_retired(bank)  # a previous reload's workers still draining these sockets
        by_prefix = self._by_prefix(gen, len(self.workers))
        if by_prefix != self.sockets.by_prefix:  # limiter settings changed: steer by the new prefixes
            self.sockets.by_prefix = by_prefix
            self._steer_live()
        generation.before_fork()
        fresh = [self._spawn(h.index, bank, gen) for h in self.workers]
        self.others.extend(fresh)
        deadline = time.monotonic() + timeout
        while not all(h.ready for h in fresh):
            if time.monotonic() > deadline or any(not h.process.is_alive() for h in fresh):
                log.error("generation %d: workers did not start; still serving generation %d", gen.number,
                          self.workers[0].applied if self.workers else 0)
                for h in fresh:
                    self._discard(h)
                    h.process.kill()
                return False
            await asyncio.sleep(0.002)
        self.sockets.steer(bank)  # new queries and connections go to the new generation from here
        old, self.workers = self.workers, fresh
        bound = min(float(gen.cfg.tcp_idle_timeout), 10.0)
        payload = bytes(ForkingPickler.dumps(ipc.Retire(bound)))
        loop = asyncio.get_running_loop()
        for h in fresh:
            self.others.remove(h)
        for h in old:
            h.retiring = True
            h.deadline = time.monotonic() + bound + RETIRE_GRACE
            self.others.append(h)
            h.send_bytes(payload)
            loop.call_later(bound + RETIRE_GRACE, self._reap, h)
        return True

    async def zones_from_workers(self, timeout: float = 300.0) -> bytes | None:
        """The serving workers' zones, pickled, from the first that answers (None if none does):
        what a supervisor that shed its generation recompiles it from when a roll fails."""
        self._zones = asyncio.get_running_loop().create_future()
        payload = bytes(ForkingPickler.dumps(generation.SendZones()))
        asked = [h for h in self.workers if h.process.is_alive()]
        for h in asked:
            h.send_bytes(payload)
        deadline = time.monotonic() + timeout
        try:
            while not self._zones.done():
                if time.monotonic() > deadline or not any(h.process.is_alive() for h in asked):
                    return None
                await asyncio.wait([self._zones], timeout=0.05)
            return self._zones.result() or None  # b"": they do not pickle
        finally:
            self._zones = None

    async def _wait_retired(self, bank: int) -> None:
        """Until no retiring worker reads `bank` (they are killed past their bound)."""
        while True:
            left = [h for h in self.others if h.retiring and h.bank == bank and h.process.is_alive()]
            if not left:
                return
            if time.monotonic() > min(h.deadline for h in left):
                for h in left:
                    self._reap(h)
                return
            await asyncio.sleep(0.005)

    def _reap(self, handle: WorkerHandle) -> None:
        if handle.process.is_alive():
            log.warning("worker %d (pid %s) did not retire in time; killing it", handle.index, handle.process.pid)
            handle.process.kill()

    def _spawn(self, index: int, bank: int, gen: Generation) -> WorkerHandle:
        assert self.sockets is not None
        ctx = multiprocessing.get_context("fork")
        down_r, down_w = ctx.Pipe(duplex=False)
        up_r, up_w = ctx.Pipe(duplex=False)
        inherited = [fd for h in self._live() for fd in h.fds()]
        proc = ctx.Process(target=worker.run, args=(index, down_r, up_w, gen, self.sockets.for_worker(bank, index),
                                                    inherited),
                           name=f"gslb-worker-{index}", daemon=True)
        proc.start()
        down_r.close()
        up_w.close()
        handle = WorkerHandle(index, proc, down_w, up_r, applied=gen.number, bank=bank)
        asyncio.get_running_loop().add_reader(up_r.fileno(), self._from_worker, handle)
        return handle

    def _discard(self, handle: WorkerHandle) -> None:
        """Forget a worker that left, keeping its counters."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError, ValueError):
            loop.remove_reader(handle.from_worker.fileno())
        handle.from_worker.close()
        handle.to_worker.close()
        if handle in self.others:
            self.others.remove(handle)
        if handle.stats:
            self.gone = fold(self.gone, handle.stats)
            handle.stats = {}

    def _from_worker(self, handle: WorkerHandle) -> None:
        try:
            message = handle.from_worker.recv()
        except (EOFError, OSError):
            serving = handle in self.workers
            handle.ready = False
            self._discard(handle)
            if serving and not self.stopping:
                log.error("worker %d (pid %s) died (exit %s); restarting it", handle.index, handle.process.pid,
                          handle.process.exitcode)
                self._steer_live()  # its share goes to the others meanwhile
                asyncio.get_running_loop().call_later(0.2, self._restart, handle)
            self._join(handle)
            return
        if isinstance(message, ipc.Ready):
            handle.ready = True
            handle.applied = message.generation
            if handle in self.workers:  # a respawned worker: its slot gets queries again
                self._steer_live()
        elif isinstance(message, ipc.HealthApplied):
            handle.health_applied = message.generation
        elif isinstance(message, ipc.Stats):
            handle.stats = message.stats
        elif isinstance(message, generation.ZonesOf):
            if self._zones is not None and not self._zones.done():  # the first (they all have the same)
                self._zones.set_result(message.payload)
        elif isinstance(message, ipc.Failed):
            log.error("worker %d: %s", message.index, message.reason)
        else:
            log.error("worker %d sent an unknown message %r", handle.index, message)

    @staticmethod
    def _by_prefix(gen: Generation, workers: int) -> tuple[int, int] | None:
        """UDP steered by client prefix when a limiter counts per prefix and there are workers
        to choose from: each prefix's account then lives in one worker (it enforces whole rates)."""
        prefixes = abuse_config.steering_prefixes(gen.cfg.abuse) if workers > 1 else None
        if prefixes:
            steering.configure(workers, *prefixes)
        return prefixes

    def _join(self, handle: WorkerHandle, tries: int = 100) -> None:
        """Reap a worker whose pipe closed (it may take a moment more to exit): no zombies."""
        handle.process.join(0)
        if handle.process.exitcode is None and tries > 0:
            asyncio.get_running_loop().call_later(0.05, self._join, handle, tries - 1)

    def _steer_live(self) -> None:
        """Steer the active bank to the slots whose worker is up (all, if none is)."""
        assert self.sockets is not None
        live = [h.index for h in self.workers if h.ready and h.process.is_alive()]
        with contextlib.suppress(OSError):
            self.sockets.steer(self.sockets.bank, live)

    def _restart(self, dead: WorkerHandle) -> None:
        """A serving worker died: its slot gets a new one, from the current generation, on the
        socket it left (whatever was queued there is still there)."""
        if self.stopping or self.sockets is None or dead not in self.workers:
            return
        gen = self.current()
        if gen is None:  # a roll is under way: replaced by it, or (if it fails) restarted once it is over
            asyncio.get_running_loop().call_later(0.2, self._restart, dead)
            return
        generation.before_fork()
        self.workers[self.workers.index(dead)] = self._spawn(dead.index, self.sockets.bank, gen)

    def totals(self) -> dict[str, Any]:
        """Every worker's counters summed, those that left included (the node's own metrics and
        dashboard figures)."""
        s: dict[str, Any] = self.gone
        for h in self._live():
            s = fold(s, h.stats)
        total: dict[str, Any] = {k: s.get(k, 0) for k in COUNTERS}
        total["cpu"] = float(total["cpu"])
        total["by_rcode"] = dict(s.get("by_rcode", {}))
        total["decisions"] = dict(s.get("decisions", {}))
        total["counts"] = {(zone, int(qtype), int(rcode)): n for zone, qtype, rcode, n in s.get("counts", [])}
        total["latency"] = list(s.get("latency", []))
        total["latency_sum"] = total["latency_sum_ns"] / 1e9  # the histogram's exact _sum, seconds
        total["abuse"] = dict(s.get("abuse", {}))  # RRL, cookies, query limits, TCP
        total["abuse"]["limiter_native"] = sum(h.stats.get("abuse", {}).get("limiter_native", 0)
                                               for h in self._live())  # a gauge: live workers only
        return total

    def stop(self) -> None:
        self.stopping = True
        loop = asyncio.get_running_loop()
        payload = bytes(ForkingPickler.dumps(ipc.Stop()))
        live = self._live()
        for h in live:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(h.from_worker.fileno())
            h.send_bytes(payload)
        for h in live:
            h.process.join(2)
            if h.process.is_alive():
                h.process.kill()
        if self.sockets is not None:
            self.sockets.close()
