"""One health check, run once: TCP connect, HTTP or HTTPS (status, body match, TLS with SNI).

RTT is the TCP connect time: it measures the network path from the probe region, the same for
every protocol, and is what the latency policy compares. Errors say what failed and where.
"""

from __future__ import annotations

import asyncio
import os
import re
import ssl
import time
from dataclasses import dataclass

from gslb.policy.checks import CheckSpec

MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Result:
    ok: bool
    rtt_ms: float | None
    error: str = ""


_TLS = ssl.create_default_context()
_TLS.check_hostname = False
_TLS.verify_mode = ssl.CERT_NONE  # like Route 53: the check proves the service answers, not its certificate


def _where(spec: CheckSpec) -> str:
    host = f"[{spec.address}]" if ":" in spec.address else spec.address
    return f"{host}:{spec.port}"


async def run(spec: CheckSpec, source: str | None = None) -> Result:
    """Run `spec` once, connecting from `source` if given; never raises."""
    start = time.perf_counter()
    try:
        return await asyncio.wait_for(_run(spec, start, source), spec.timeout)
    except TimeoutError:
        return Result(False, None, f"{spec.protocol} {_where(spec)}: timeout after {spec.timeout:g}s")
    except ssl.SSLError as exc:
        return Result(False, None, f"tls {_where(spec)}: {exc.reason or exc}")
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return Result(False, None, f"{spec.protocol} connect {_where(spec)}: {reason}")
    except Exception as exc:  # a check must never take the agent down
        return Result(False, None, f"{spec.protocol} {_where(spec)}: {type(exc).__name__}: {exc}")


async def _run(spec: CheckSpec, start: float, source: str | None) -> Result:
    tls = _TLS if spec.protocol == "https" else None
    reader, writer = await asyncio.open_connection(
        spec.address, spec.port, ssl=tls, server_hostname=(spec.host or None) if tls else None,
        local_addr=(source, 0) if source else None)
    rtt = (time.perf_counter() - start) * 1000
    try:
        if spec.protocol == "tcp":
            return Result(True, rtt)
        host = spec.host or spec.address
        request = (f"GET {spec.path or '/'} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: gslb-probe\r\n"
                   "Accept: */*\r\nConnection: close\r\n\r\n")
        writer.write(request.encode())
        await writer.drain()
        status_line = await reader.readline()
        parts = status_line.decode("latin-1").split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            return Result(False, rtt, f"{spec.protocol} {_where(spec)}: not an HTTP response: {status_line[:60]!r}")
        status = int(parts[1])
        if spec.expect_status:
            if status not in spec.expect_status:
                expected = ", ".join(str(s) for s in spec.expect_status)
                return Result(False, rtt, f"{spec.protocol} {_where(spec)}: status {status}, expected {expected}")
        elif not 200 <= status < 400:
            return Result(False, rtt, f"{spec.protocol} {_where(spec)}: status {status}, expected 2xx or 3xx")
        if spec.body_match:
            body = await reader.read(MAX_BODY + 16384)
            if not re.search(spec.body_match, body.split(b"\r\n\r\n", 1)[-1][:MAX_BODY].decode("utf-8", "replace")):
                return Result(False, rtt, f"{spec.protocol} {_where(spec)}: body does not match {spec.body_match!r}")
        return Result(True, rtt)
    finally:
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 0.5)
        except (TimeoutError, OSError, ssl.SSLError):
            pass
