"""Health signals that gate a site's prefixes, each with its own rise/fall hysteresis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.message
import dns.rcode

from bgp.config import Signal
from gslb.conf.listen import parse_listen
from gslb.health.model import HealthMap
from gslb.probe.hysteresis import Hysteresis

STORE_GRACE = 5.0  # seconds a health signal waits for a first store read before failing open


@dataclass
class SignalState:
    signal: Signal
    hysteresis: Hysteresis
    detail: str = "not checked yet"
    changed_at: float = 0.0

    @property
    def up(self) -> bool:
        return bool(self.hysteresis.up)

    def doc(self) -> dict:
        return {"up": self.up, "detail": self.detail, "since": self.changed_at or None}


class _OneReply(asyncio.DatagramProtocol):
    """A connected UDP socket's first reply, or its error: a dead server's ICMP port unreachable
    arrives as ConnectionRefusedError at once instead of a timeout later."""

    def __init__(self) -> None:
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        if not self.reply.done():
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        if not self.reply.done():
            self.reply.set_exception(exc)


async def dns_check(signal: Signal) -> tuple[bool, str]:
    """Ask the local DNS service a question it must answer authoritatively (NOERROR, AA, at least
    one answer record) within the timeout."""
    host, port = parse_listen(signal.address)
    query = dns.message.make_query(signal.qname, signal.qtype)
    start = time.perf_counter()
    loop = asyncio.get_running_loop()
    transport = None
    try:
        transport, protocol = await loop.create_datagram_endpoint(_OneReply, remote_addr=(host, port))
        transport.sendto(query.to_wire())
        wire = await asyncio.wait_for(protocol.reply, signal.timeout)
        reply = dns.message.from_wire(wire)
        if not query.is_response(reply):
            return False, f"{signal.address}: a reply that does not match the query"
    except TimeoutError:
        return False, f"no answer from {signal.address} within {signal.timeout:g}s"
    except OSError as exc:
        return False, f"{signal.address}: {exc.strerror or exc}"
    except dns.exception.DNSException as exc:  # a malformed reply
        return False, f"{signal.address}: bad reply: {exc}"
    finally:
        if transport is not None:
            transport.close()
    ms = (time.perf_counter() - start) * 1000
    if reply.rcode() != dns.rcode.NOERROR:
        return False, f"{signal.qname} {signal.qtype}: {dns.rcode.to_text(reply.rcode())}"
    if not reply.flags & dns.flags.AA:
        return False, f"{signal.qname} {signal.qtype}: answer not authoritative"
    if not reply.answer:
        return False, f"{signal.qname} {signal.qtype}: empty answer"
    return True, f"answered in {ms:.1f} ms"


def health_check(signal: Signal, health: HealthMap) -> tuple[bool, str]:
    """Enough of the named checks are up (the store's quorum decision). A check no probe has a
    verdict on counts as up: fail open, like the DNS answers."""
    down = [c for c in signal.checks if not health.get(c, (True, {}))[0]]
    unknown = [c for c in signal.checks if c not in health]
    up = len(signal.checks) - len(down)
    detail = f"{up}/{len(signal.checks)} checks up (need {signal.min_up})"
    if down:
        detail += "; down: " + ", ".join(down)
    if unknown:
        detail += f"; {len(unknown)} without verdicts (counted up)"
    return up >= signal.min_up, detail


class SignalRunner:
    """Runs every signal at its interval; `on_change` fires when one changes state (after its
    rise/fall hysteresis), never per check."""

    def __init__(self, signals: dict[str, Signal], on_change: Callable[[SignalState], None],
                 health_source: Callable[[], HealthMap | None] = lambda: {}) -> None:
        self.states = {name: SignalState(s, Hysteresis(s.rise, s.fall)) for name, s in signals.items()}
        self.on_change = on_change
        self.health_source = health_source  # None while the store has not been read
        self.started = time.monotonic()
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        for state in self.states.values():
            self._tasks.append(asyncio.ensure_future(self._loop(state)))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()

    def set_health(self, health: HealthMap) -> None:
        """New quorum decisions from the store: each health signal takes one observation now
        (with rise/fall 1, the default, it follows at once) and more at its interval."""
        for state in self.states.values():
            if state.signal.type == "health":
                self.observe(state, *health_check(state.signal, health))

    def _health_result(self, state: SignalState) -> tuple[bool, str] | None:
        health = self.health_source()
        if health is not None:
            return health_check(state.signal, health)
        if state.hysteresis.up is None and time.monotonic() - self.started > STORE_GRACE:
            return True, "store not reachable since start: checks counted up (fail open)"
        return None  # keep the last decision while the store is away

    def observe(self, state: SignalState, ok: bool, detail: str) -> None:
        state.detail = detail
        if state.hysteresis.observe(ok):
            state.changed_at = time.time()
            self.on_change(state)

    async def _loop(self, state: SignalState) -> None:
        while True:
            started = time.monotonic()
            result = await dns_check(state.signal) if state.signal.type == "dns" else self._health_result(state)
            if result is not None:
                self.observe(state, *result)
            # no first result yet (the store not read): look again soon, the prefixes wait for it
            interval = state.signal.interval if state.hysteresis.up is not None else min(0.02, state.signal.interval)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))
