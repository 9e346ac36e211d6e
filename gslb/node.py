"""The supervisor: loads and validates zones, forks the DNS workers and keeps them current.

It owns everything that is not per-query: reloads (SIGHUP, file changes, `gslb reload` over
the control socket, the store's `control/reload` key), health from the store, metrics from the
workers. Workers only ever receive complete, validated zone sets, so a broken file never
reaches the fast path.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

import dns.rcode

import geodb
from gslb import worker
from gslb.answers import Answers
from gslb.conf.problems import ConfigError, Problem
from gslb.conf.watch import FileWatch
from gslb.config import ServerConfig
from gslb.geo import locator_for
from gslb.health.follower import HealthFollower
from gslb.health.model import HealthMap
from gslb.health.reader import publish_quorum
from gslb.policy.checks import zone_checks
from gslb.probe.agent import ProbeAgent
from gslb.regions import load_regions
from gslb.server import sockets
from gslb.store import ANSWERS, CONTROL, NODE, Store, StoreError, event, open_store
from gslb.zone.load import load_zones, zone_files
from gslb.zone.model import Zone

log = logging.getLogger("gslb.node")

WATCH_INTERVAL = 0.5
NODE_INTERVAL = 2.0
ANSWERS_TTL = 120.0


@dataclass
class ReloadResult:
    ok: bool
    reason: str
    zones: int = 0
    serial: int = 0
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


@dataclass
class WorkerHandle:
    """One worker: a pipe each way, so blocking sends never share a file with the event loop."""

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


class Node:
    def __init__(self, cfg: ServerConfig, control_path: str | None = None) -> None:
        self.cfg = cfg
        self.control_path = control_path
        self.workers: list[WorkerHandle] = []
        self.serial = 0
        self.zones: list[Zone] = []
        self.answers: Answers | None = None
        self._files = FileWatch(lambda: zone_files(self.cfg.zones_dir))
        self._reload_lock: asyncio.Lock | None = None
        self.generation = 0
        self.health_generation = 0
        self.store: Store | None = None
        self.agent: ProbeAgent | None = None
        self.follower: HealthFollower | None = None

    # -- zones --------------------------------------------------------------------------------

    def _next_serial(self) -> int:
        self.serial = max(int(time.time()), self.serial + 1)
        return self.serial

    def _load(self) -> tuple[list[Zone], list[Problem]]:
        return load_zones(self.cfg.zones_dir, self.cfg, self._next_serial())

    def load_initial(self) -> list[Problem]:
        zones, problems = self._load()
        for p in problems:
            log.warning("%s", p)
        self.zones = zones
        locator, sites = locator_for(self.cfg.geodb, self.cfg.asndb, self.cfg.regions)
        self.regions = load_regions(self.cfg.regions or geodb.REGIONS)
        self.answers = Answers(zones, locator, sites)
        self._files.accept()
        log.info("loaded %d zone(s) from %s, serial %d", len(zones), self.cfg.zones_dir, self.serial)
        return problems

    async def reload(self, reason: str) -> ReloadResult:
        assert self._reload_lock is not None
        async with self._reload_lock:
            loop = asyncio.get_running_loop()
            self._files.accept()
            try:
                if self._reread_config():
                    await self._publish_quorum()
                zones, problems = await loop.run_in_executor(None, self._load)
            except ConfigError as exc:
                for p in exc.problems:
                    log.error("reload (%s) rejected: %s", reason, p)
                log.error("reload (%s) rejected: still serving serial %d", reason, self._serving)
                result = ReloadResult(False, reason, len(self.zones), self._serving,
                                      [str(p) for p in exc.problems])
                await self._log_zone_event(f"serial {self._serving}", "reload rejected",
                                           f"{reason}: {exc.problems[0]}" + (
                                               f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""))
                return result
            self.zones = zones
            assert self.answers is not None
            await loop.run_in_executor(None, self.answers.load, zones)
            previous, self._serving = self._serving, self.serial
            if self.agent is not None:
                self.agent.update_checks(zone_checks(zones).values())
            self.generation += 1
            self._answers_due.set()
            await self.broadcast(("zones", zones, self.generation))
            await self._wait_applied(self.generation)
            log.info("reload (%s): %d zone(s), serial %d", reason, len(zones), self.serial)
            await self._log_zone_event(f"serial {previous}", f"serial {self.serial}", reason)
            result = ReloadResult(True, reason, len(zones), self.serial, [str(p) for p in problems])
            return result

    def _reread_config(self) -> bool:
        """gslb.yaml is read again on every reload: zone settings and the quorum apply at once;
        listen addresses and worker counts only on a restart (said so)."""
        new = self.cfg.reread()
        for name in ("listen", "workers", "web", "control"):
            if getattr(new, name) != getattr(self.cfg, name):
                log.warning("%s: %s changed; it takes effect when the server restarts", self.cfg.path, name)
                new = replace(new, **{name: getattr(self.cfg, name)})
        quorum_changed = new.quorum != self.cfg.quorum
        self.cfg = new
        return quorum_changed

    async def _log_zone_event(self, old: str, new: str, reason: str) -> None:
        if self.store is not None:
            with contextlib.suppress(StoreError):
                await self.store.log(event("zone", f"{self.cfg.identity}: {len(self.zones)} zone(s)", old, new,
                                           reason, self.cfg.identity))

    async def _watch(self) -> None:
        """Reload when a zone file is added, removed or changed (and has stopped changing)."""
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if self._files.changed():
                await self.reload("zone files changed")

    # -- workers ------------------------------------------------------------------------------

    async def _wait_applied(self, generation: int, timeout: float = 60.0) -> None:
        """Return when every live worker serves `generation`, so a reload's success means served."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(h.applied >= generation or not h.process.is_alive() for h in self.workers):
                return
            await asyncio.sleep(0.005)
        log.warning("workers did not confirm zone generation %d within %.0fs", generation, timeout)

    async def broadcast(self, message: tuple) -> None:
        """Send one message to every worker, pickled once, without blocking the event loop."""
        payload = bytes(ForkingPickler.dumps(message))
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, h.send_bytes, payload) for h in self.workers))

    def _spawn(self, index: int) -> WorkerHandle:
        ctx = multiprocessing.get_context("fork")
        down_r, down_w = ctx.Pipe(duplex=False)
        up_r, up_w = ctx.Pipe(duplex=False)
        inherited = [fd for h in self.workers if h is not None and h.index != index for fd in h.fds()]
        proc = ctx.Process(target=worker.run,
                           args=(index, down_r, up_w, self.cfg, self.answers, inherited, self.generation),
                           name=f"gslb-worker-{index}", daemon=True)
        proc.start()
        down_r.close()
        up_w.close()
        handle = WorkerHandle(index, proc, down_w, up_r, applied=self.generation)
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
            if not self._stopping.is_set():
                log.error("worker %d (pid %s) died (exit %s); restarting it", handle.index, handle.process.pid,
                          handle.process.exitcode)
                loop.call_later(0.2, self._restart, handle.index)
            return
        kind = message[0]
        if kind == "ready":
            handle.ready = True
        elif kind == "applied":
            handle.applied = message[2]
        elif kind == "health-applied":
            handle.health_applied = message[2]
        elif kind == "stats":
            handle.stats = message[2]
        elif kind == "error":
            log.error("%s", message[1])

    def _restart(self, index: int) -> None:
        if self._stopping.is_set():
            return
        self.workers[index] = self._spawn(index)

    def totals(self) -> dict[str, Any]:
        total: dict[str, Any] = {"queries": 0, "tcp": 0, "truncated": 0, "dropped": 0, "formerr": 0,
                                 "by_rcode": {}, "decisions": {}, "cpu": 0.0, "counts": {}, "latency": []}
        for h in self.workers:
            s = h.stats
            for k in ("queries", "tcp", "truncated", "dropped", "formerr", "cpu"):
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
        return total

    # -- what the dashboard shows about this node -------------------------------------------

    def local_metrics(self) -> list:
        from gslb.web.metrics import dns_families

        t = self.totals()
        return dns_families(t, [[z, q, r, n] for (z, q, r), n in t["counts"].items()], t["latency"])

    async def _publish_node(self) -> None:
        """Counters for the dashboard's DNS node view, every few seconds (expiring)."""
        last_queries, last_time = None, time.monotonic()
        while True:
            await asyncio.sleep(NODE_INTERVAL)
            t = self.totals()
            now = time.monotonic()
            qps = 0.0 if last_queries is None else (t["queries"] - last_queries) / max(1e-6, now - last_time)
            last_queries, last_time = t["queries"], now
            doc = {"node": self.cfg.identity, "site": self.cfg.region or "", "time": time.time(),
                   "expires_at": time.time() + 3 * NODE_INTERVAL, "qps": round(qps, 1), "queries": t["queries"],
                   "by_rcode": {dns.rcode.to_text(int(k)): v for k, v in t["by_rcode"].items()},
                   "by_decision": t["decisions"], "zones": [z.name for z in self.zones], "serial": self._serving}
            with contextlib.suppress(StoreError):
                await self.store.put(NODE, self.cfg.identity, doc, ttl=3 * NODE_INTERVAL)

    async def _publish_answers(self) -> None:
        """Which answer each probe region's clients get now, per GSLB name (on every change)."""
        assert self.answers is not None and self.store is not None
        docs = self.answers.region_answers(self.regions)
        for key, doc in docs.items():
            with contextlib.suppress(StoreError):
                await self.store.put(ANSWERS, key, doc, ttl=ANSWERS_TTL)

    async def _answers_loop(self) -> None:
        while True:
            await self._answers_due.wait()
            self._answers_due.clear()
            await self._publish_answers()
            await asyncio.sleep(0.5)  # at most twice a second

    async def _follow_control(self) -> None:
        """`control/reload` written by the dashboard (or anyone) reloads every node."""
        assert self.store is not None
        seen: float | None = None
        while True:
            try:
                async for change in self.store.changes():
                    if change.space == CONTROL and change.key == "reload" and change.value is not None:
                        stamp = float(change.value.get("time", 0))
                        if stamp != seen:
                            seen = stamp
                            await self.reload(f"requested by {change.value.get('by', 'the store')}")
            except Exception:
                log.exception("control follower failed; retrying")
                await asyncio.sleep(1)

    # -- health --------------------------------------------------------------------------------

    async def _health_changed(self, health: HealthMap) -> None:
        """Push new health decisions to every worker (and keep the supervisor's answers current)."""
        assert self.answers is not None
        self.answers.set_health(health)
        self._answers_due.set()
        self.health_generation += 1
        await self.broadcast(("health", health, self.health_generation))

    async def _publish_quorum(self) -> None:
        """A quorum set in gslb.yaml becomes the fleet's: every health consumer follows it."""
        if self.cfg.quorum is None or self.store is None:
            return
        try:
            await publish_quorum(self.store, self.cfg.quorum, self.cfg.identity)
        except StoreError as exc:
            log.warning("cannot publish quorum %s to the store: %s", self.cfg.quorum, exc)

    async def _follow_health(self) -> None:
        assert self.follower is not None
        while True:
            try:
                await self.follower.run()
            except Exception:
                log.exception("health follower failed; restarting it")
            await asyncio.sleep(1)

    # -- control socket -----------------------------------------------------------------------

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
            if line == "reload":
                reply = (await self.reload("gslb reload")).to_json()
            elif line == "status":
                follower = self.follower
                reply = json.dumps({"zones": [z.name for z in self.zones], "serial": self._serving,
                                    "store": self.cfg.redis or "memory://",
                                    "store_stale": follower.stale if follower else True,
                                    "health": follower.health if follower else {},
                                    "health_generation": self.health_generation,
                                    "health_applied": [h.health_applied for h in self.workers],
                                    "workers": [h.process.pid for h in self.workers],
                                    "per_worker": [h.stats.get("queries", 0) for h in self.workers],
                                    **{k: v for k, v in self.totals().items() if k != "counts"}})
            else:
                reply = json.dumps({"ok": False, "error": f"unknown command {line!r} (reload, status)"})
            writer.write(reply.encode() + b"\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        except Exception:
            log.exception("control command failed")
        finally:
            writer.close()

    async def _start_web(self):
        if not self.cfg.web:
            return None
        from aiohttp import web

        from gslb.web.app import make_app

        host, port = sockets.parse_listen(self.cfg.web)
        token = self.cfg.web_token or os.environ.get("GSLB_WEB_TOKEN")
        runner = web.AppRunner(make_app(self.store, token=token, local_metrics=self.local_metrics), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            log.error("dashboard: cannot listen on %s: %s", self.cfg.web, exc.strerror)
            await runner.cleanup()
            return None
        log.info("dashboard, API and /metrics on http://%s/", self.cfg.web)
        return runner

    async def _open_control(self, path: str) -> asyncio.AbstractServer | None:
        try:
            _r, w = await asyncio.open_unix_connection(path)
            w.close()
            log.warning("control socket %s belongs to another running server; `gslb reload` will reach "
                        "that one, not this (use --control PATH)", path)
            self.control_path = None
            return None
        except OSError:
            pass
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            return await asyncio.start_unix_server(self._control, path=path)
        except OSError as exc:
            log.warning("no control socket (%s: %s); SIGHUP still reloads", path, exc.strerror)
            self.control_path = None
            return None

    # -- main ---------------------------------------------------------------------------------

    async def run(self) -> int:
        self._stopping = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._serving = self.serial
        loop = asyncio.get_running_loop()
        control = None
        if self.control_path:  # before the workers: once DNS answers, `gslb reload` must work
            control = await self._open_control(self.control_path)
        count = self.cfg.workers or os.cpu_count() or 1
        self.workers = []
        for i in range(count):
            self.workers.append(self._spawn(i))
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload("SIGHUP")))
        loop.add_signal_handler(signal.SIGTERM, self._stopping.set)
        loop.add_signal_handler(signal.SIGINT, self._stopping.set)
        tasks = []
        self.store = open_store(self.cfg.redis)
        self.follower = HealthFollower(self.store, self._health_changed)
        await self._publish_quorum()
        tasks.append(asyncio.ensure_future(self._follow_health()))
        self._answers_due = asyncio.Event()
        self._answers_due.set()
        tasks += [asyncio.ensure_future(self._publish_node()), asyncio.ensure_future(self._answers_loop()),
                  asyncio.ensure_future(self._follow_control())]
        web_runner = await self._start_web()
        if self.cfg.redis is None or self.cfg.region:
            # Embedded probing: the in-process store has no other agents, and a node given a
            # region also probes for it.
            region = self.cfg.region or "local"
            self.agent = ProbeAgent(region, self.store, zone_checks(self.zones).values())
            tasks.append(asyncio.ensure_future(self.agent.run()))
            log.info("probing %d check(s) from region %s", len(self.agent._pending), region)
        if self.cfg.watch:
            tasks.append(asyncio.ensure_future(self._watch()))
        deadline = time.monotonic() + 10
        while not all(h.ready for h in self.workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        log.info("serving %s with %d worker(s) (pids %s)", ", ".join(self.cfg.listen), count,
                 " ".join(str(h.process.pid) for h in self.workers))
        await self._stopping.wait()
        log.info("stopping")
        for task in tasks:
            task.cancel()
        if web_runner is not None:
            await web_runner.cleanup()
        if control is not None and self.control_path:
            control.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.control_path)
        for h in self.workers:
            with contextlib.suppress(OSError, ValueError):
                loop.remove_reader(h.from_worker.fileno())
            h.send_bytes(bytes(ForkingPickler.dumps(("stop",))))
        for h in self.workers:
            h.process.join(2)
            if h.process.is_alive():
                h.process.kill()
        return 0


def serve(cfg: ServerConfig, control_path: str | None) -> int:
    try:
        listen = [sockets.parse_listen(x) for x in cfg.listen]
        sockets.check_bindable(listen)
    except sockets.ListenError as exc:
        log.error("%s", exc)
        return 2
    node = Node(cfg, control_path)
    try:
        node.load_initial()
    except ConfigError as exc:
        for p in exc.problems:
            log.error("%s", p)
        log.error("not starting: fix the zone files above (gslb check %s)", cfg.zones_dir)
        return 1
    try:
        import uvloop

        return uvloop.run(node.run())
    except ImportError:
        return asyncio.run(node.run())
