"""Bearer-token check for the write endpoints."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from aiohttp import web

from gslb.web.state import state

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def require_token(handler: Handler) -> Handler:
    """401 unless `Authorization: Bearer <token>` matches the configured token (none set: 403)."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        token = state(request).token
        if not token:
            return web.json_response({"error": "write API disabled: no token configured"}, status=403)
        header = request.headers.get("Authorization", "")
        given = header[7:] if header.startswith("Bearer ") else ""
        if not given or not hmac.compare_digest(given.encode(), token.encode()):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401,
                                     headers={"WWW-Authenticate": 'Bearer realm="gslb"'})
        return await handler(request)

    wrapped.__name__ = handler.__name__
    return wrapped
