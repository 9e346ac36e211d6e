"""What the web handlers share: one `WebState` per app, reached through `state(request)`.

Its own module so that `app` (routes), `auth` (the token rule) and `live` (events) all import
it without importing each other.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client.core import Metric

from gslb.store import Store


@dataclass
class WebState:
    """Everything the handlers share; the app holds one (mutable while it runs)."""

    store: Store
    token: str | None
    local_metrics: Callable[[], Iterable[Metric]] | None
    listeners: set = field(default_factory=set)
    store_ok: bool = True
    store_last_ok: float = 0.0
    follower: asyncio.Task | None = None


STATE = web.AppKey("state", WebState)


def state(request: web.Request) -> WebState:
    return request.app[STATE]
