"""The ExaBGP API process: reads ExaBGP's messages on stdin, writes route commands on stdout.

ExaBGP starts it (see `gslb bgp config`). It runs the site's health signals, follows the store
(probe health, operator drains, the other sites' states), drives the `Controller`, and publishes
this site's state and every transition for the dashboard. It exits when stdin closes (ExaBGP
stopped); when a session comes up again it re-sends the current state to that peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import time
from typing import Any, TextIO

from bgp.config import SiteConfig
from bgp.controller import Controller, Other, Transition
from bgp.signals import SignalRunner, SignalState
from gslb.health.follower import HealthFollower
from gslb.health.model import HealthMap
from gslb.store import DRAIN, RESYNC, SITE, Store, StoreError, event, open_store

log = logging.getLogger("gslb.bgp")

PUBLISH_INTERVAL = 1.0  # the site document is re-written this often (and on every change)
SITE_TTL = 3.5  # ... and vanishes this long after its writer stopped
STARTUP_READ = 2.0  # seconds to wait for the store's drain and sites before the first decision


class AnycastProcess:
    def __init__(self, cfg: SiteConfig, out: TextIO = sys.stdout, store: Store | None = None) -> None:
        self.cfg = cfg
        self.out = out
        self.store = store or open_store(cfg.store)
        self.controller = Controller(cfg)
        self.signals = SignalRunner(cfg.signals, self._signal_changed, self._health_now)
        self.drain: dict[str, Any] | None = None
        self.sites: dict[str, dict[str, Any]] = {}
        self.peers: dict[str, str] = {str(n.address): "unknown" for n in cfg.neighbors}
        self._dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self.follower: HealthFollower | None = None

    # -- ExaBGP side -----------------------------------------------------------------------

    def send(self, command: str) -> None:
        self.out.write(command + "\n")
        self.out.flush()

    def handle_message(self, line: str) -> None:
        line = line.strip()
        if not line or line == "done":
            return
        if line.startswith("error"):
            log.warning("ExaBGP refused a command: %s", line)
            return
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            log.debug("ExaBGP said: %s", line)
            return
        if msg.get("type") != "state":
            return
        neighbor = msg.get("neighbor", {})
        peer = str(neighbor.get("address", {}).get("peer", ""))
        state = str(neighbor.get("state", ""))
        if peer not in self.peers:
            return
        self.peers[peer] = "up" if state == "up" else "down"  # "connected" is not up yet
        log.info("session with %s is %s", peer, state)
        if state == "up":  # a session came (back): tell it where we stand now
            sessions = [n for n in self.cfg.neighbors if str(n.address) == peer]
            for key, ps in self.controller.prefixes.items():
                if not ps.decided:
                    continue  # nothing to say yet: the first decision goes to every session
                for command in self.controller.commands(key, sessions):
                    self.send(command)
        self._dirty.set()

    async def _read_stdin(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                log.info("ExaBGP closed our stdin: exiting")
                self._stop.set()
                self._dirty.set()
                return
            self.handle_message(line.decode(errors="replace"))

    # -- inputs ----------------------------------------------------------------------------

    def _signal_changed(self, state: SignalState) -> None:
        log.info("signal %s is %s (%s)", state.signal.name, "up" if state.up else "DOWN", state.detail)
        self._dirty.set()

    async def _health(self, health: dict) -> None:
        self.signals.set_health(health)

    async def _follow_sites(self) -> None:
        while True:
            try:
                async for change in self.store.changes():
                    if change == RESYNC:
                        with contextlib.suppress(StoreError):
                            self.sites = await self.store.scan(SITE)
                            self.drain = await self.store.get(DRAIN, self.cfg.site)
                        self._dirty.set()
                    elif change.space == SITE and change.key != self.cfg.site:
                        if change.value is None:
                            self.sites.pop(change.key, None)
                        else:
                            self.sites[change.key] = change.value
                        self._dirty.set()
                    elif change.space == DRAIN and change.key == self.cfg.site:
                        self.drain = change.value
                        log.info("drain %s", "requested" if change.value else "lifted")
                        self._dirty.set()
            except Exception:
                log.exception("store follower failed; retrying")
                await asyncio.sleep(1)

    def others(self, prefix: str) -> list[Other]:
        """The other sites' fresh published views of `prefix` (stale documents do not count: a
        site that stopped publishing is not relied on)."""
        now = time.time()
        out = []
        for site, doc in self.sites.items():
            if site == self.cfg.site or float(doc.get("expires_at", 0)) <= now:
                continue
            p = doc.get("prefixes", {}).get(prefix)
            if isinstance(p, dict):
                out.append(Other(site, str(p.get("state", "")), bool(p.get("leaving")), bool(p.get("guarded"))))
        return out

    def _health_now(self) -> HealthMap | None:
        """The probes' quorum decisions as of now; None until the store has been read."""
        f = self.follower
        if f is None or f.stale:
            return None
        return f.view.health_map()

    # -- deciding and publishing ------------------------------------------------------------

    def healthy(self) -> bool:
        return all(s.up for s in self.signals.states.values()) and self.drain is None

    def site_doc(self) -> dict[str, Any]:
        now = time.time()
        signals = {n: s.doc() for n, s in self.signals.states.items()}
        signals["drain"] = {"up": self.drain is None, "detail": "no drain requested" if self.drain is None else
                            f"drain requested by {self.drain.get('by', '?')}: {self.drain.get('reason', '')}"}
        return {
            "site": self.cfg.site, "time": now, "expires_at": now + SITE_TTL, "healthy": self.healthy(),
            "prefixes": self.controller.snapshot(), "peers": dict(self.peers), "signals": signals,
            "drain": self.drain,
        }

    async def publish(self) -> None:
        try:
            await self.store.put(SITE, self.cfg.site, self.site_doc(), ttl=SITE_TTL)
        except StoreError as exc:
            log.warning("cannot publish site state: %s", exc)

    async def decide(self) -> list[Transition]:
        before = self.controller.snapshot()
        transitions = self.controller.evaluate(self.signals.states, self.drain, self.others)
        for t in transitions:
            log.info("%s %s: %s → %s (%s)", self.cfg.site, t.prefix, t.old, t.new, t.reason)
            if t.old != t.new:
                self._send_state(t.prefix)
            with contextlib.suppress(StoreError):
                await self.store.log(event("prefix", f"{self.cfg.site} {t.prefix}", t.old, t.new, t.reason,
                                           self.cfg.site))
        for key in self.controller.unsynced():  # first decision of this process: say it, whatever it is
            log.info("%s %s: %s (first decision of this process)", self.cfg.site, key,
                     self.controller.prefixes[key].state)
            self._send_state(key)
        if transitions or self.controller.snapshot() != before:
            await self.publish()
        return transitions

    def _send_state(self, key: str) -> None:
        for command in self.controller.commands(key):
            self.send(command)
        self.controller.prefixes[key].synced = True

    async def _read_initial(self) -> None:
        """Drains and the other sites before the first decision, so a restarted drained site does
        not announce for a moment."""
        try:
            self.drain = await asyncio.wait_for(self.store.get(DRAIN, self.cfg.site), STARTUP_READ)
            self.sites = await asyncio.wait_for(self.store.scan(SITE), STARTUP_READ)
        except (StoreError, TimeoutError) as exc:
            log.warning("store %s not readable at start (%s): deciding without drains and other sites",
                        self.store.url, exc or "timeout")

    async def run(self) -> None:
        tasks = [asyncio.ensure_future(self._read_stdin()), asyncio.ensure_future(self._follow_sites())]
        if any(s.type == "health" for s in self.cfg.signals.values()):
            self.follower = HealthFollower(self.store, self._health)
            tasks.append(asyncio.ensure_future(self.follower.run()))
        if self.cfg.store is None:
            log.warning("no store in %s: drains and other sites cannot be seen; the global guard keeps every "
                        "prefix announced unless allow_last_withdraw is true", self.cfg.path)
        await self._read_initial()
        self.signals.start()
        next_publish = 0.0
        try:
            while not self._stop.is_set():
                timeout = PUBLISH_INTERVAL
                deadline = self.controller.next_deadline()
                if deadline is not None:
                    timeout = min(timeout, max(0.01, deadline - time.time()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._dirty.wait(), timeout)
                self._dirty.clear()
                await self.decide()
                if time.monotonic() >= next_publish:
                    await self.publish()
                    next_publish = time.monotonic() + PUBLISH_INTERVAL
        finally:
            self.signals.stop()
            for task in tasks:
                task.cancel()
            with contextlib.suppress(StoreError):
                await self.store.delete(SITE, self.cfg.site)  # gone: the others must not count on us
            await self.store.close()


def main(site_path: str, log_file: str | None = None) -> int:
    from bgp.config import load_site
    from gslb.conf.problems import ConfigError

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_file:
        handlers.append(logging.FileHandler(log_file))
    logging.basicConfig(level=logging.INFO, handlers=handlers,
                        format="%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        cfg = load_site(site_path)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    asyncio.run(AnycastProcess(cfg).run())
    return 0
