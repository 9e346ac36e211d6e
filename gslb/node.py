"""The supervisor: loads and validates zones, keeps the workers current, follows health.

Its parts each do one job: `pool` forks and talks to the workers, `control` is the socket
`gslb reload` uses, `publish` tells the dashboard about this node, `health.follower` pushes
health decisions. What stays here is the orchestration: a reload (SIGHUP, changed files,
`gslb reload`, the store's `control/reload` key) re-reads gslb.yaml, loads and validates every
zone, compiles the new generation once (`gslb.generation`) and has the pool fork its workers and
retire the old ones: a broken file never reaches a worker, and the old generation answers until
the new one is ready. The supervisor drops its own copy of the old generation before that fork
(the new workers would otherwise keep its pages for good); if the new workers do not start, an
old worker sends its zones back and the old generation is compiled again (`Node._roll`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import geodb
from gslb import generation, ipc
from gslb.answers import Answers
from gslb.conf.problems import ConfigError, Problem
from gslb.conf.watch import FileWatch
from gslb.config import ServerConfig
from gslb.control import ControlSocket
from gslb.generation import Generation
from gslb.geo import locator_for
from gslb.health.follower import HealthFollower
from gslb.health.model import HealthMap
from gslb.health.reader import publish_quorum
from gslb.policy.checks import zone_checks
from gslb.pool import WorkerPool
from gslb.probe.agent import ProbeAgent
from gslb.publish import AnswersPublisher, publish_node
from gslb.regions import load_regions
from gslb.server import sockets
from gslb.store import CONTROL, Store, StoreError, event, open_store
from gslb.zone.load import ZoneCache, load_zones, zone_files
from gslb.zone.model import Zone

log = logging.getLogger("gslb.node")
T = TypeVar("T")

WATCH_INTERVAL = 0.5


@dataclass
class ReloadResult:
    ok: bool
    reason: str
    zones: int = 0
    serial: int = 0
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


BACKGROUND_NICE = 10  # reload work yields the CPU to the workers answering (and to the event loop)


async def in_background(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` in a thread of its own at a lower CPU priority (Linux: nice is per thread), so a
    reload's parse and compile of a large zone never compete on equal terms with answering."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[T] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if not done.done():
            if error is not None:
                done.set_exception(error)
            else:
                done.set_result(result)

    def run() -> None:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
        try:
            result = fn(*args)
        except BaseException as exc:  # handed to the awaiting coroutine
            loop.call_soon_threadsafe(settle, None, exc)
        else:
            loop.call_soon_threadsafe(settle, result, None)

    threading.Thread(target=run, name="gslb-reload", daemon=True).start()
    return await done


class Node:
    def __init__(self, cfg: ServerConfig, control_path: str | None = None) -> None:
        self.cfg = cfg
        self.control_path = control_path
        self.serial = 0
        self._serving = 0
        self.gen: Generation | None = None  # what the serving workers were forked from
        self._incoming: Generation | None = None  # a reload's new generation while its workers start
        self._parsed = ZoneCache()  # a reload parses only the files that changed
        self._files = FileWatch(lambda: zone_files(self.cfg.zones_dir))
        self._reload_lock: asyncio.Lock | None = None
        self.generation = 0
        self.health_generation = 0
        self.store: Store | None = None
        self.agent: ProbeAgent | None = None
        self.follower: HealthFollower | None = None
        self.pool = WorkerPool(cfg, self._generation)
        self.publisher: AnswersPublisher | None = None

    @property
    def zones(self) -> list[Zone]:
        """The zones of the generation served (held by it alone, so that releasing it before a
        reload's fork releases them too; empty while shed)."""
        return self.gen.zones if self.gen is not None else []

    @property
    def zone_names(self) -> list[str]:
        return self.gen.names if self.gen is not None else []

    def _generation(self) -> Generation | None:
        """What a restarted worker starts from: None while a reload has it shed."""
        assert self.gen is not None, "load_initial() first"
        return None if self.gen.shed else self.gen

    def _answers(self) -> Answers:
        """The supervisor's answers (health, the dashboard's views): during a roll the incoming
        generation's, the serving one being shed."""
        gen = self._incoming or self.gen
        assert gen is not None, "load_initial() first"
        return gen.answers

    # -- zones --------------------------------------------------------------------------------

    def _next_serial(self) -> int:
        self.serial = max(int(time.time()), self.serial + 1)
        return self.serial

    def _load(self) -> tuple[list[Zone], list[Problem]]:
        return load_zones(self.cfg.zones_dir, self.cfg, self._next_serial(), self._parsed)

    def load_initial(self) -> list[Problem]:
        zones, problems = self._load()
        for p in problems:
            log.warning("%s", p)
        self._serving = self.serial
        self.locator, self.sites = locator_for(self.cfg.geodb, self.cfg.asndb, self.cfg.regions)
        self.regions = load_regions(self.cfg.regions or geodb.REGIONS)
        self.generation = 1
        self.gen = generation.build(self.generation, self.cfg, zones, self.locator, self.sites)
        self._files.accept()
        log.info("loaded %d zone(s) from %s, serial %d", len(zones), self.cfg.zones_dir, self.serial)
        return problems

    async def reload(self, reason: str) -> ReloadResult:
        assert self._reload_lock is not None
        async with self._reload_lock:
            self._files.accept()
            try:
                if self._reread_config():
                    await self._publish_quorum()
                zones, problems = await in_background(self._load)
            except ConfigError as exc:
                for p in exc.problems:
                    log.error("reload (%s) rejected: %s", reason, p)
                log.error("reload (%s) rejected: still serving serial %d", reason, self._serving)
                more = f" (+{len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
                await self._log_zone_event(f"serial {self._serving}", "reload rejected",
                                           f"{reason}: {exc.problems[0]}{more}")
                return ReloadResult(False, reason, len(self.zone_names), self._serving, [str(p) for p in exc.problems])
            started = time.monotonic()
            try:  # compiled once, here, beside the generation the workers serve
                gen = await in_background(generation.build, self.generation + 1, self.cfg, zones, self.locator,
                                          self.sites, self.gen)
            except ConfigError as exc:  # DNSSEC keys unusable: nothing changed
                for p in exc.problems:
                    log.error("reload (%s) rejected: %s", reason, p)
                return ReloadResult(False, reason, len(self.zone_names), self._serving, [str(p) for p in exc.problems])
            gen.answers.set_health(self._answers().health)  # the latest: pushes after this reach its workers
            built = time.monotonic()
            if not await self._roll(gen):
                return ReloadResult(False, f"{reason}: the new workers did not start", len(self.zone_names),
                                    self._serving)
            previous, self._serving = self._serving, self.serial
            if self.agent is not None:
                self.agent.update_checks(zone_checks(zones).values())
            if self.publisher is not None:
                self.publisher.due()
            log.info("reload (%s): %d zone(s), serial %d, generation %d (compiled in %.2fs, workers switched "
                     "in %.3fs)", reason, len(zones), self.serial, gen.number, built - started,
                     time.monotonic() - built)
            await self._log_zone_event(f"serial {previous}", f"serial {self.serial}", reason)
            return ReloadResult(True, reason, len(zones), self.serial, [str(p) for p in problems])

    async def _roll(self, gen: Generation) -> bool:
        """Have the pool serve `gen`, the generation served so far shed first (the new workers
        fork without its pages, see `Generation.release`; the old workers keep their own copy).
        If the new workers do not start, the old generation is compiled again from the zones a
        serving worker sends back, and the supervisor goes on with it (restarts, health, the
        dashboard)."""
        old = self.gen
        assert old is not None
        self._incoming = gen
        try:
            t0 = time.monotonic()
            await in_background(old.release, False)  # before_fork collects
            log.info("generation %d shed in %.2fs before forking generation %d's workers", old.number,
                     time.monotonic() - t0, gen.number)
            ok = await self.pool.roll(gen)
        except Exception:
            ok = False
            log.exception("generation %d: starting its workers failed", gen.number)
        if ok:
            self.generation, self.gen, self._incoming = gen.number, gen, None
            return True
        payload = await self.pool.zones_from_workers()
        try:
            if payload is None:
                raise RuntimeError("no serving worker sent its zones")
            restored = await in_background(generation.rebuild, old.number, old.cfg, payload, self.locator,
                                           self.sites)
        except Exception:  # a bug, or every old worker gone too: keep what compiled
            log.exception("generation %d: cannot compile it again; the supervisor keeps generation %d",
                          old.number, gen.number)
            self.gen, self._incoming = gen, None
            return False
        restored.answers.set_health(gen.answers.health)  # what the health pushes meanwhile said
        self.gen, self._incoming = restored, None
        await in_background(gen.release)
        return False

    def _reread_config(self) -> bool:
        """gslb.yaml is read again on every reload: zone settings, the quorum and the workers'
        settings (abuse limits, TCP, identity: each generation's workers start with them) apply at
        once; listen addresses, worker counts, web and control only on a restart (said so). True if
        the quorum changed."""
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
                await self.store.log(event("zone", f"{self.cfg.identity}: {len(self.zone_names)} zone(s)", old, new,
                                           reason, self.cfg.identity))

    async def _watch(self) -> None:
        """Reload when a zone file is added, removed or changed (and has stopped changing), and
        when DNSSEC signatures in the compiled answers are due for refreshing."""
        from gslb.dnssec.serve import prune, refresh_due

        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            if self.cfg.watch and self._files.changed():
                await self.reload("zone files changed")
            due = refresh_due()
            if due is not None and time.time() >= due:
                await self.reload("DNSSEC signatures due for refresh")
                prune()

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
        self._answers().set_health(health)
        if self.publisher is not None:
            self.publisher.due()
        self.health_generation += 1
        await self.pool.broadcast(ipc.SetHealth(health, self.health_generation))

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

    # -- what the dashboard and `gslb reload status` see -------------------------------------

    def local_metrics(self) -> list:
        from gslb.web.metrics import dns_families

        t = self.pool.totals()
        return dns_families(t, [[z, q, r, n] for (z, q, r), n in t["counts"].items()], t["latency"])

    def status(self) -> dict[str, Any]:
        follower, workers = self.follower, self.pool.workers
        return {"zones": list(self.zone_names), "serial": self._serving,
                "store": self.cfg.redis or "memory://", "store_stale": follower.stale if follower else True,
                "health": follower.health if follower else {}, "health_generation": self.health_generation,
                "health_applied": [h.health_applied for h in workers], "workers": [h.process.pid for h in workers],
                "per_worker": [h.stats.get("queries", 0) for h in workers],
                **{k: v for k, v in self.pool.totals().items() if k != "counts"}}

    async def _start_web(self):
        if not self.cfg.web:
            return None
        from aiohttp import web

        from gslb.web.app import make_app

        host, port = sockets.parse_listen(self.cfg.web)
        token = self.cfg.web_token or os.environ.get("GSLB_WEB_TOKEN")
        assert self.store is not None
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

    # -- main ---------------------------------------------------------------------------------

    def _background(self, store: Store) -> list[asyncio.Task]:
        self.follower = HealthFollower(store, self._health_changed)
        self.publisher = AnswersPublisher(store, self._answers, self.regions)
        about = lambda: {"zones": list(self.zone_names), "serial": self._serving}  # noqa: E731
        tasks = [asyncio.ensure_future(self._follow_health()), asyncio.ensure_future(self.publisher.run()),
                 asyncio.ensure_future(publish_node(store, self.cfg.identity, self.cfg.region or "",
                                                    self.pool.totals, about)),
                 asyncio.ensure_future(self._follow_control())]
        if self.cfg.redis is None or self.cfg.region:
            # Embedded probing: the in-process store has no other agents, and a node given a
            # region also probes for it.
            region = self.cfg.region or "local"
            self.agent = ProbeAgent(region, store, zone_checks(self.zones).values())
            tasks.append(asyncio.ensure_future(self.agent.run()))
            log.info("probing %d check(s) from region %s", len(self.agent._pending), region)
        tasks.append(asyncio.ensure_future(self._watch()))  # files (if `watch`), DNSSEC refresh
        return tasks

    async def run(self) -> int:
        stopping = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        loop = asyncio.get_running_loop()
        control = ControlSocket(self.control_path, self.reload, self.status) if self.control_path else None
        if control is not None:  # before the workers: once DNS answers, `gslb reload` must work
            await control.open()
        count = self.cfg.workers or os.cpu_count() or 1
        try:
            self.pool.start(count)
        except OSError as exc:
            log.error("cannot listen: %s", exc)
            if control is not None:
                control.close()
            return 2
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload("SIGHUP")))
        loop.add_signal_handler(signal.SIGTERM, stopping.set)
        loop.add_signal_handler(signal.SIGINT, stopping.set)
        self.store = open_store(self.cfg.redis)
        await self._publish_quorum()
        tasks = self._background(self.store)
        web_runner = await self._start_web()
        await self.pool.wait_ready()
        log.info("serving %s with %d worker(s) (pids %s)", ", ".join(self.cfg.listen), count,
                 " ".join(str(h.process.pid) for h in self.pool.workers))
        await stopping.wait()
        log.info("stopping")
        for task in tasks:
            task.cancel()
        if web_runner is not None:
            await web_runner.cleanup()
        if control is not None:
            control.close()
        self.pool.stop()
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
