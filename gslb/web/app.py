"""The aiohttp application: pages, JSON API, admin API, live events and /metrics.

`make_app(store, token=…)` is all an embedding process needs: `gslb web` runs it alone against
Redis, `gslb serve --web ADDR` runs it inside the DNS server (adding its own DNS counters).
Read endpoints are open; write endpoints need the bearer token.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web
from prometheus_client.core import Metric

from gslb.store import ANSWERS, CONTROL, OVERRIDE, PROBE, Store, StoreError, drains, event
from gslb.web import history, live, metrics, views
from gslb.web.auth import require_token
from gslb.web.openapi import document
from gslb.web.state import STATE, WebState, state

STATIC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


def _json(handler):
    """Read endpoints: the view's JSON, or 503 naming the store when it cannot be read."""

    async def wrapped(request: web.Request) -> web.Response:
        try:
            data = await handler(state(request).store)
        except StoreError as exc:
            return web.json_response({"error": str(exc)}, status=503)
        state(request).store_last_ok = time.time()
        return web.json_response(data)

    return wrapped


async def log_view(request: web.Request) -> web.Response:
    try:
        limit = max(1, min(1000, int(request.query.get("limit", "100"))))
    except ValueError:
        return web.json_response({"error": "limit must be an integer"}, status=400)
    try:
        return web.json_response({"entries": await state(request).store.recent(limit)})
    except StoreError as exc:
        return web.json_response({"error": str(exc)}, status=503)


def _history(handler, *filters: str, points: bool = False):
    """History endpoints: `since` plus optional filters from the query string; 400 on bad input."""

    async def wrapped(request: web.Request) -> web.Response:
        query = request.query
        try:
            since = history.parse_since(query.get("since"), time.time())
            kwargs: dict[str, Any] = {f: query[f] for f in filters if query.get(f)}
            if points and query.get("points"):
                kwargs["max_points"] = max(2, min(5000, int(query["points"])))
        except ValueError:
            return web.json_response({"error": "since and points must be numbers"}, status=400)
        try:
            data = await handler(state(request).store, since, **kwargs)
        except StoreError as exc:
            return web.json_response({"error": str(exc)}, status=503)
        return web.json_response(data)

    return wrapped


async def status_view(request: web.Request) -> web.Response:
    """What the page needs to know before offering writes."""
    st = state(request)
    return web.json_response({"writes": bool(st.token), "store": st.store.url,
                              "reason": "" if st.token else "writes are disabled on this server: it was started "
                                                            "without a token (GSLB_WEB_TOKEN or --token-file)"})


async def known_checks(store: Store) -> list[str]:
    """Every check the store knows of: probe verdicts, published answers' values, overrides."""
    known = {str(doc.get("check")) for doc in (await store.scan(PROBE)).values() if doc.get("check")}
    for doc in (await store.scan(ANSWERS)).values():
        for values in (doc.get("pools") or {}).values():
            known.update(str(v["check"]) for v in values if isinstance(v, dict) and v.get("check"))
    known.update(await store.scan(OVERRIDE))
    return sorted(known)


def _who(request: web.Request) -> str:
    return f"web {request.remote or '?'}"


async def _write(request: web.Request, action) -> web.Response:
    try:
        result = await action(state(request).store)
    except StoreError as exc:
        return web.json_response({"error": str(exc)}, status=503)
    return web.json_response({"ok": True, "changed": True, **(result or {})})


@require_token
async def reload(request: web.Request) -> web.Response:
    async def act(store: Store) -> dict:
        doc = {"time": time.time(), "by": _who(request)}
        await store.put(CONTROL, "reload", doc)
        await store.log(event("zone", "all zones", "", "reload requested", "dashboard", _who(request)))
        return {"requested": doc}

    return await _write(request, act)


async def _body(request: web.Request) -> dict:
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text='{"error": "body must be JSON"}', content_type="application/json") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text='{"error": "body must be a JSON object"}', content_type="application/json")
    return body


async def _drain_reply(request: web.Request, act: Callable[[Store], Any]) -> web.Response:
    """A drain write: 404 listing the known sites for a typo, 200 saying whether anything changed."""
    try:
        result = await act(state(request).store)
    except StoreError as exc:
        return web.json_response({"error": str(exc)}, status=503)
    if not result.known:
        return web.json_response({"error": result.message, "known": result.known_sites}, status=404)
    return web.json_response({"ok": True, "changed": result.changed, "message": result.message,
                              "drain": result.drain})


@require_token
async def drain(request: web.Request) -> web.Response:
    site = request.match_info["site"]
    body = await _body(request)
    return await _drain_reply(request, lambda store: drains.drain(
        store, site, _who(request), str(body.get("reason", "")), bool(body.get("force", False))))


@require_token
async def undrain(request: web.Request) -> web.Response:
    site = request.match_info["site"]
    return await _drain_reply(request, lambda store: drains.undrain(store, site, _who(request)))


@require_token
async def set_override(request: web.Request) -> web.Response:
    check = request.match_info["check"]
    body = await _body(request)
    status = body.get("status")
    if status not in ("up", "down"):
        return web.json_response({"error": 'status must be "up" or "down"'}, status=400)

    try:
        known = await known_checks(state(request).store)
        current = await state(request).store.get(OVERRIDE, check)
    except StoreError as exc:
        return web.json_response({"error": str(exc)}, status=503)
    if check not in known:
        return web.json_response({"error": f"unknown check {check!r}: no probe, answer or override names it",
                                  "known": known}, status=404)
    if current is not None and current.get("status") == status:
        return web.json_response({"ok": True, "changed": False, "override": current,
                                  "message": f"already overridden {status}: nothing changed"})

    async def act(store: Store) -> dict:
        doc = {"status": status, "time": time.time(), "by": _who(request), "reason": str(body.get("reason", ""))}
        await store.put(OVERRIDE, check, doc)
        await store.log(event("endpoint", check, "", f"override {status}", doc["reason"], _who(request)))
        return {"override": doc}

    return await _write(request, act)


@require_token
async def clear_override(request: web.Request) -> web.Response:
    check = request.match_info["check"]
    try:
        current = await state(request).store.get(OVERRIDE, check)
    except StoreError as exc:
        return web.json_response({"error": str(exc)}, status=503)
    if current is None:
        return web.json_response({"ok": True, "changed": False, "message": f"no override is set for {check!r}: "
                                                                           "nothing changed"})

    async def act(store: Store) -> dict:
        await store.delete(OVERRIDE, check)
        await store.log(event("endpoint", check, "override", "cleared", "", _who(request)))
        return {}

    return await _write(request, act)


async def metrics_view(request: web.Request) -> web.Response:
    st = state(request)
    families = await metrics.store_families(st.store, st.store_ok, st.store_last_ok)
    if families and families[0].samples and families[0].samples[0].value == 1:
        st.store_last_ok = time.time()
    local = st.local_metrics
    if local is not None:
        families += list(local())
    return web.Response(body=metrics.render(families), headers={"Content-Type": "text/plain; version=0.0.4"})


async def events(request: web.Request) -> web.StreamResponse:
    return await live.events(request, state(request))


async def index(_request: web.Request) -> web.FileResponse:
    return web.FileResponse(os.path.join(STATIC, "index.html"))


async def openapi(_request: web.Request) -> web.Response:
    return web.json_response(document())


async def _start(app: web.Application) -> None:
    app[STATE].follower = asyncio.ensure_future(live.follow(app[STATE]))


async def _stop(app: web.Application) -> None:
    task = app[STATE].follower
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def make_app(store: Store, *, token: str | None = None,
             local_metrics: Callable[[], Iterable[Metric]] | None = None) -> web.Application:
    app = web.Application()
    app[STATE] = WebState(store, token, local_metrics)
    app.router.add_get("/", index)
    app.router.add_static("/static/", STATIC)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/api/health", _json(views.health))
    app.router.add_get("/api/sites", _json(views.sites))
    app.router.add_get("/api/nodes", _json(views.nodes))
    app.router.add_get("/api/answers", _json(views.answers))
    app.router.add_get("/api/dataplane", _json(views.dataplane))
    app.router.add_get("/api/log", log_view)
    app.router.add_get("/api/status", status_view)
    app.router.add_get("/api/history/rtt", _history(history.rtt, "check", "region", points=True))
    app.router.add_get("/api/history/health", _history(history.health, "check"))
    app.router.add_get("/api/history/nodes", _history(history.nodes, "node"))
    app.router.add_get("/api/history/bgp", _history(history.bgp, "site"))
    app.router.add_get("/api/events", events)
    app.router.add_post("/api/reload", reload)
    app.router.add_post("/api/sites/{site}/drain", drain)
    app.router.add_delete("/api/sites/{site}/drain", undrain)
    app.router.add_put("/api/overrides/{check:.+}", set_override)
    app.router.add_delete("/api/overrides/{check:.+}", clear_override)
    app.router.add_get("/metrics", metrics_view)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    return app
