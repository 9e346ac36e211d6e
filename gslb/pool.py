"""The supervisor's side of its workers: fork them, talk to them, restart the ones that die.

Each worker gets a pipe each way (blocking sends never share a file with the event loop) and
the zone generation it starts from; `broadcast` pickles a message once for all of them.
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

from gslb import ipc, worker
from gslb.answers import Answers
from gslb.config import ServerConfig
from gslb.server import abuse_config

log = logging.getLogger("gslb.node")

COUNTERS = ("queries", "tcp", "truncated", "dropped", "formerr", "cpu", "dnssec_signatures")


@dataclass
class WorkerHandle:
    index: int
    process: multiprocessing.process.BaseProcess
    to_worker: Connection
    from_worker: Connection
    ready: bool = False
    applied: int = 0  # the zone generation this worker serves
    health_applied: int = 0  # the health generation this worker answers from
    stats: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send_bytes(self, payload: bytes) -> None:
        with self.lock, contextlib.suppress(OSError):
            self.to_worker.send_bytes(payload)

    def fds(self) -> list[int]:
        return [c.fileno() for c in (self.to_worker, self.from_worker) if not c.closed]


class WorkerPool:
    """`count` workers serving `cfg.listen`; `current()` gives what a (re)started one starts from."""

    def __init__(self, cfg: ServerConfig, current: Callable[[], tuple[Answers, int]]) -> None:
        self.cfg = cfg
        self.current = current
        self.workers: list[WorkerHandle] = []
        self.stopping = False

    def start(self, count: int) -> None:
        for i in range(count):
            self.workers.append(self._spawn(i))

    async def wait_ready(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while not all(h.ready for h in self.workers):
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def broadcast(self, message: object) -> None:
        """Send one message to every worker, pickled once, without blocking the event loop."""
        payload = bytes(ForkingPickler.dumps(message))
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, h.send_bytes, payload) for h in self.workers))

    async def wait_applied(self, generation: int, timeout: float = 60.0) -> None:
        """Return when every live worker serves `generation`, so a reload's success means served."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(h.applied >= generation or not h.process.is_alive() for h in self.workers):
                return
            await asyncio.sleep(0.005)
        log.warning("workers did not confirm zone generation %d within %.0fs", generation, timeout)

    def _spawn(self, index: int) -> WorkerHandle:
        ctx = multiprocessing.get_context("fork")
        down_r, down_w = ctx.Pipe(duplex=False)
        up_r, up_w = ctx.Pipe(duplex=False)
        inherited = [fd for h in self.workers if h.index != index for fd in h.fds()]
        answers, generation = self.current()
        proc = ctx.Process(target=worker.run, args=(index, down_r, up_w, self.cfg, answers, inherited),
                           name=f"gslb-worker-{index}", daemon=True)
        proc.start()
        down_r.close()
        up_w.close()
        handle = WorkerHandle(index, proc, down_w, up_r, applied=generation)
        asyncio.get_running_loop().add_reader(up_r.fileno(), self._from_worker, handle)
        return handle

    def _from_worker(self, handle: WorkerHandle) -> None:
        try:
            message = handle.from_worker.recv()
        except (EOFError, OSError):
            loop = asyncio.get_running_loop()
            loop.remove_reader(handle.from_worker.fileno())
            handle.from_worker.close()
            handle.to_worker.close()
            if not self.stopping:
                log.error("worker %d (pid %s) died (exit %s); restarting it", handle.index, handle.process.pid,
                          handle.process.exitcode)
                loop.call_later(0.2, self._restart, handle.index)
            return
        if isinstance(message, ipc.Ready):
            handle.ready = True
        elif isinstance(message, ipc.ZonesApplied):
            handle.applied = message.generation
        elif isinstance(message, ipc.HealthApplied):
            handle.health_applied = message.generation
        elif isinstance(message, ipc.Stats):
            handle.stats = message.stats
        elif isinstance(message, ipc.Failed):
            log.error("worker %d: %s", message.index, message.reason)
        else:
            log.error("worker %d sent an unknown message %r", handle.index, message)

    def _restart(self, index: int) -> None:
        if not self.stopping:
            self.workers[index] = self._spawn(index)

    def totals(self) -> dict[str, Any]:
        """Every worker's counters summed (the node's own metrics and dashboard figures)."""
        total: dict[str, Any] = {"queries": 0, "tcp": 0, "truncated": 0, "dropped": 0, "formerr": 0,
                                 "by_rcode": {}, "decisions": {}, "cpu": 0.0, "counts": {}, "latency": [],
                                 "dnssec_signatures": 0}
        for h in self.workers:
            s = h.stats
            for k in COUNTERS:
                total[k] += s.get(k, 0)
            for k in ("by_rcode", "decisions"):
                for key, n in s.get(k, {}).items():
                    total[k][key] = total[k].get(key, 0) + n
            for zone, qtype, rcode, n in s.get("counts", []):
                key = (zone, int(qtype), int(rcode))
                total["counts"][key] = total["counts"].get(key, 0) + n
            latency = s.get("latency", [])
            if latency:
                total["latency"] = [a + b for a, b in zip(total["latency"] or [0] * len(latency), latency,
                                                          strict=True)]
        total["abuse"] = abuse_config.merge(h.stats.get("abuse") for h in self.workers)  # RRL, cookies, TCP
        return total

    def stop(self) -> None:
        self.stopping = True
        loop = asyncio.get_running_loop()
        payload = bytes(ForkingPickler.dumps(ipc.Stop()))
        for h in self.workers:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(h.from_worker.fileno())
            h.send_bytes(payload)
        for h in self.workers:
            h.process.join(2)
            if h.process.is_alive():
                h.process.kill()
