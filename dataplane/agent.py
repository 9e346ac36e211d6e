"""The dataplane agent: attach, keep the maps in line with the config file and backend health,
publish counters. Health comes from the store (the probes' quorum) and is pushed, not polled;
the config file is re-read when it changes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from typing import Any

from dataplane import config as dpconfig
from dataplane.balancer import Balancer
from dataplane.control import Control, vip_key
from gslb.conf.problems import ConfigError
from gslb.conf.watch import FileWatch
from gslb.health.follower import HealthFollower
from gslb.store import DATAPLANE, StoreError, open_store

log = logging.getLogger("gslb.dataplane")

STATS_INTERVAL = 2.0
WATCH_INTERVAL = 1.0


class Agent:
    def __init__(self, path: str) -> None:
        self.path = path
        self.cfg = dpconfig.load(path)
        self.balancer = Balancer(self.cfg.name, pin_root=self.cfg.pin_root)
        self.control = Control(self.balancer)
        self.health: dict[str, bool] = {}
        self.store = open_store(self.cfg.store)
        self._stop = asyncio.Event()
        self._file = FileWatch(lambda: [path])

    def apply(self, why: str) -> None:
        applied = self.control.apply(self.cfg, self.health)
        log.info("%s: %d VIP(s), %d backend(s); Maglev %.1f ms, maps %.1f ms", why, applied.vips, applied.backends,
                 applied.tables_ms, applied.write_ms)

    async def _health(self, health: dict) -> None:
        self.health = {key: up for key, (up, _rtt) in health.items()}
        self.apply("backend health changed")

    async def _watch(self) -> None:
        while not self._stop.is_set():
            await asyncio.sleep(WATCH_INTERVAL)
            if self._file.changed():
                try:
                    self.cfg = dpconfig.load(self.path)
                except ConfigError as exc:
                    log.error("%s changed but is invalid; keeping the running config:\n%s", self.path, exc)
                    continue
                self.apply("config changed")

    def stats(self) -> dict[str, Any]:
        vips: dict[str, Any] = {}
        for vip in self.cfg.vips:
            vid = self.control.vip_ids.get(bytes(vip_key(vip)))
            if vid is None:
                continue
            packets, nbytes = self.balancer.counters("vip_stats", vid)
            backends = {}
            for b in vip.backends:
                bid = self.control.backend_id(b)
                bp, bb = self.balancer.counters("backend_stats", bid)
                backends[b.address] = {"packets": bp, "bytes": bb, "up": self.health.get(b.check, True),
                                       "weight": b.weight}
            vips[vip.label] = {"packets": packets, "bytes": nbytes, "backends": backends}
        return {"node": self.cfg.name, "time": time.time(), "vips": vips}

    async def _publish(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(StoreError):
                await self.store.put(DATAPLANE, self.cfg.name, self.stats(), ttl=3 * STATS_INTERVAL)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), STATS_INTERVAL)

    async def run(self, detach_on_exit: bool = True) -> None:
        mode = self.balancer.attach(self.cfg.interface, self.cfg.xdp_mode)
        log.info("attached to %s (%s XDP), maps pinned in %s", self.cfg.interface, mode, self.balancer.pin_dir)
        self.apply("start")
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        loop.add_signal_handler(signal.SIGINT, self._stop.set)
        follower = HealthFollower(self.store, self._health)
        tasks = [asyncio.ensure_future(follower.run()), asyncio.ensure_future(self._watch()),
                 asyncio.ensure_future(self._publish())]
        try:
            await self._stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            if detach_on_exit:
                self.balancer.detach()
                log.info("detached from %s", self.cfg.interface)
            await self.store.close()
            self.balancer.close()
