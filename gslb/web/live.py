"""Server-sent events: one store subscription per app, fanned out to every open page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import web

from gslb.store import LOST, RESYNC

log = logging.getLogger(__name__)
COALESCE = 0.2  # seconds: bursts of writes become one event per space


async def follow(state) -> None:
    while True:
        try:
            async for change in state.store.changes():
                if change == RESYNC:
                    state.store_ok = True
                    space = "*"
                elif change == LOST:
                    state.store_ok = False
                    space = "*"
                else:
                    space = change.space
                for queue in list(state.listeners):
                    queue.put_nowait(space)
        except Exception:
            log.exception("store follower for the dashboard failed; retrying")
            state.store_ok = False
            await asyncio.sleep(1)


async def events(request: web.Request, state) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    queue: asyncio.Queue[str] = asyncio.Queue()
    state.listeners.add(queue)
    try:
        await response.write(b"event: hello\ndata: {}\n\n")
        while True:
            try:
                first = await asyncio.wait_for(queue.get(), 15)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            spaces = {first}
            await asyncio.sleep(COALESCE)
            while not queue.empty():
                spaces.add(queue.get_nowait())
            payload = json.dumps({"spaces": sorted(spaces)})
            await response.write(f"event: change\ndata: {payload}\n\n".encode())
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        state.listeners.discard(queue)
        with contextlib.suppress(Exception):
            await response.write_eof()
    return response
