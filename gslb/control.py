"""The control socket `gslb reload` talks to: one line in (`reload` or `status`), one JSON line out."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

log = logging.getLogger("gslb.node")


class ControlSocket:
    def __init__(self, path: str, reload: Callable[[str], Awaitable[Any]], status: Callable[[], dict]) -> None:
        self.path: str | None = path
        self._reload = reload  # returns an object with to_json()
        self._status = status
        self._server: asyncio.AbstractServer | None = None

    async def open(self) -> bool:
        """Listen, unless another running server owns the path (then say so and do without)."""
        path = self.path
        assert path is not None
        try:
            _r, w = await asyncio.open_unix_connection(path)
            w.close()
            log.warning("control socket %s belongs to another running server; `gslb reload` will reach "
                        "that one, not this (use --control PATH)", path)
            self.path = None
            return False
        except OSError:
            pass
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        try:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._server = await asyncio.start_unix_server(self._serve, path=path)
            return True
        except OSError as exc:
            log.warning("no control socket (%s: %s); SIGHUP still reloads", path, exc.strerror)
            self.path = None
            return False

    def close(self) -> None:
        if self._server is not None and self.path:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await asyncio.wait_for(reader.readline(), 5)).decode().strip()
            if line == "reload":
                reply = (await self._reload("gslb reload")).to_json()
            elif line == "status":
                reply = json.dumps(self._status())
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
