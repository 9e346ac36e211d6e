"""Health signals that gate a site's prefixes, each with its own rise/fall hysteresis."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode

from bgp.config import Signal
from gslb.dns.sockets import parse_listen
from gslb.probe.hysteresis import Hysteresis


@dataclass
class SignalState:
    signal: Signal
    hysteresis: Hysteresis
    detail: str = "not checked yet"
    changed_at: float = 0.0

    @property
    def up(self) -> bool:
        return bool(self.hysteresis.up)


async def dns_check(signal: Signal) -> tuple[bool, str]:
    """Ask the local DNS service a question it must answer authoritatively."""
    host, port = parse_listen(signal.address)
    query = dns.message.make_query(signal.qname, signal.qtype)
    start = time.perf_counter()
    try:
        reply = await dns.asyncquery.udp(query, host, port=port, timeout=signal.timeout)
    except dns.exception.Timeout:
        return False, f"no answer from {signal.address} within {signal.timeout:g}s"
    except OSError as exc:
        return False, f"{signal.address}: {exc.strerror or exc}"
    ms = (time.perf_counter() - start) * 1000
    if reply.rcode() != dns.rcode.NOERROR:
        return False, f"{signal.qname} {signal.qtype}: {dns.rcode.to_text(reply.rcode())}"
    if not reply.flags & dns.flags.AA:
        return False, f"{signal.qname} {signal.qtype}: answer not authoritative"
    if not reply.answer:
        return False, f"{signal.qname} {signal.qtype}: empty answer"
    return True, f"answered in {ms:.1f} ms"


def health_check(signal: Signal, health: dict[str, tuple[bool, dict]]) -> tuple[bool, str]:
    """Enough of the named checks are up (the store's quorum decision)."""
    up = [c for c in signal.checks if health.get(c, (True, {}))[0]]
    ok = len(up) >= min(signal.min_up, len(signal.checks))
    return ok, f"{len(up)}/{len(signal.checks)} checks up (need {signal.min_up})"


class SignalRunner:
    """Runs every signal at its interval; `on_change` fires when one changes state."""

    def __init__(self, signals: dict[str, Signal], on_change) -> None:
        self.states = {name: SignalState(s, Hysteresis(s.rise, s.fall)) for name, s in signals.items()}
        self.on_change = on_change
        self.health: dict[str, tuple[bool, dict]] = {}
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        for state in self.states.values():
            if state.signal.type == "dns":
                self._tasks.append(asyncio.ensure_future(self._loop(state)))
            else:
                self.observe(state, *health_check(state.signal, self.health))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def set_health(self, health: dict[str, tuple[bool, dict]]) -> None:
        """New quorum decisions from the store: health signals follow at once (no extra hysteresis:
        the probes already applied theirs)."""
        self.health = health
        for state in self.states.values():
            if state.signal.type == "health":
                ok, detail = health_check(state.signal, health)
                state.hysteresis.streak = 0
                if state.hysteresis.up != ok:
                    state.hysteresis.up = ok
                    state.detail, state.changed_at = detail, time.time()
                    self.on_change(state)
                state.detail = detail

    def observe(self, state: SignalState, ok: bool, detail: str) -> None:
        state.detail = detail
        if state.hysteresis.observe(ok):
            state.changed_at = time.time()
            self.on_change(state)

    async def _loop(self, state: SignalState) -> None:
        while True:
            started = time.monotonic()
            ok, detail = await dns_check(state.signal)
            self.observe(state, ok, detail)
            await asyncio.sleep(max(0.0, state.signal.interval - (time.monotonic() - started)))
