"""Redis store: the distributed backend (plain, Sentinel or Cluster through redis-py asyncio).

Layout in Redis (prefix `gslb` by default):
  gslb:<space>:<key>   JSON document, with PX expiry when a ttl is given
  gslb:changes         pub/sub channel, one JSON message {space, key, value} per write
  gslb:log             stream of change-log entries (XADD MAXLEN ~1000)
  gslb:history:<series>  stream of history points, {"p": JSON}: XADD MAXLEN ~, XTRIM MINID ~ and
                       PEXPIRE max_age on every append (see gslb.store.history for the series)
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import unquote, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import RedisError

from gslb.store.base import LOST, RESYNC, Change, Store, StoreError

log = logging.getLogger(__name__)

LOG_LENGTH = 1000
BACKOFF_MAX = 5.0
CLOCK_SLACK = 120.0  # seconds: stream ids are the server's clock, points' "t" the writer's


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    """`h1:p1,[::1]:p2,h3` (credentials stripped) as (host, port) pairs."""
    hosts = []
    for part in netloc.rsplit("@", 1)[-1].split(","):
        m = re.fullmatch(r"\[(?P<v6>[^\]]+)\](?::(?P<p6>\d+))?|(?P<h>[^:]+)(?::(?P<p>\d+))?", part)
        if not m:
            raise StoreError(f"bad host in store URL: {part!r}")
        host = m["v6"] or m["h"]
        port = m["p6"] or m["p"]
        hosts.append((host, int(port) if port else default_port))
    return hosts


def connect(url: str) -> tuple[Any, Any]:
    """Data client and pub/sub client for a URL.

    redis://[:password@]host:port/db, rediss://..., unix:///path.sock
    redis+sentinel://[:password@]host:26379,host2:26379/service[/db]
    redis+cluster://[:password@]host:port,host2:port
    """
    parts = urlsplit(url)
    password = unquote(parts.password) if parts.password else None
    if parts.scheme == "redis+sentinel":
        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise StoreError(f"{url}: a Sentinel URL needs the service name: redis+sentinel://host:26379/NAME")
        service, db = path[0], int(path[1]) if len(path) > 1 else 0
        sentinel = Sentinel(_hosts(parts.netloc, 26379), password=password, db=db, socket_timeout=2.0)
        client = sentinel.master_for(service, password=password, db=db)
        return client, client
    if parts.scheme == "redis+cluster":
        nodes = [ClusterNode(h, p) for h, p in _hosts(parts.netloc, 6379)]
        client = RedisCluster(startup_nodes=nodes, password=password)  # type: ignore[assignment]  # same API
        # Cluster PUBLISH reaches every node, so any one node serves the subscription.
        host, port = _hosts(parts.netloc, 6379)[0]
        return client, aioredis.Redis(host=host, port=port, password=password)
    client = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
    return client, client


class RedisStore(Store):
    def __init__(self, url: str, prefix: str = "gslb") -> None:
        self.url = url
        self.prefix = prefix
        self._client, self._pubsub_client = connect(url)
        self._cluster = isinstance(self._client, RedisCluster)
        self._channel = f"{prefix}:changes"

    def _key(self, space: str, key: str) -> str:
        return f"{self.prefix}:{space}:{key}"

    async def _call(self, what: str, coro: Any) -> Any:
        try:
            result = await coro
        except (RedisError, OSError) as exc:
            _honour_cancel()
            raise StoreError(f"redis {self.url}: {what}: {exc}") from exc
        _honour_cancel()
        return result

    async def put(self, space: str, key: str, value: dict[str, Any], ttl: float | None = None,
                  notify: bool = True) -> None:
        doc = json.dumps(value, separators=(",", ":"))
        msg = json.dumps({"space": space, "key": key, "value": value}, separators=(",", ":"))
        px = max(1, int(ttl * 1000)) if ttl else None
        await self._call(f"put {space}/{key}", self._client.set(self._key(space, key), doc, px=px))
        if notify:
            await self._call("publish", self._client.publish(self._channel, msg))
        await self._record_history(space, key, value)

    async def delete(self, space: str, key: str) -> None:
        msg = json.dumps({"space": space, "key": key, "value": None})
        await self._call(f"delete {space}/{key}", self._client.delete(self._key(space, key)))
        await self._call("publish", self._client.publish(self._channel, msg))
        await self._record_history(space, key, None)

    async def get(self, space: str, key: str) -> dict[str, Any] | None:
        raw = await self._call(f"get {space}/{key}", self._client.get(self._key(space, key)))
        return json.loads(raw) if raw is not None else None

    async def scan(self, space: str) -> dict[str, dict[str, Any]]:
        head = f"{self.prefix}:{space}:"

        async def fetch() -> dict[str, dict[str, Any]]:
            keys = [k async for k in self._client.scan_iter(match=head + "*", count=1000)]
            if not keys:
                return {}
            values = (await self._client.mget_nonatomic(keys) if self._cluster
                      else await self._client.mget(keys))
            out = {}
            for k, v in zip(keys, values, strict=True):
                if v is not None:
                    name = k.decode() if isinstance(k, bytes) else k
                    out[name[len(head):]] = json.loads(v)
            return out

        return await self._call(f"scan {space}", fetch())

    async def log(self, event: dict[str, Any]) -> None:
        await self._call("log", self._client.xadd(
            f"{self.prefix}:log", {"json": json.dumps(event)}, maxlen=LOG_LENGTH, approximate=True))

    async def recent(self, count: int = 100) -> list[dict[str, Any]]:
        rows = await self._call("recent", self._client.xrevrange(f"{self.prefix}:log", count=count))
        return [json.loads(fields[b"json"]) for _id, fields in reversed(rows)]

    def _history_key(self, series: str) -> str:
        return f"{self.prefix}:history:{series}"

    async def append_history(self, series: str, point: dict[str, Any], maxlen: int = 2000,
                             max_age: float = 6 * 3600.0) -> None:
        key = self._history_key(series)

        async def go() -> None:
            now_ms = int(time.time() * 1000)
            pipe = self._client.pipeline(transaction=False)
            pipe.xadd(key, {"p": json.dumps(point, separators=(",", ":"))}, maxlen=maxlen, approximate=True)
            pipe.xtrim(key, minid=str(now_ms - int((max_age + CLOCK_SLACK) * 1000)), approximate=True)
            pipe.pexpire(key, int(max_age * 1000))
            await pipe.execute()

        await self._call(f"history {series}", go())

    async def history(self, series: str, since: float = 0.0, limit: int | None = None) -> list[dict[str, Any]]:
        key = self._history_key(series)
        low = f"{max(0, int((since - CLOCK_SLACK) * 1000))}" if since > 0 else "-"
        if limit:
            rows = list(reversed(await self._call(f"history {series}",
                                                  self._client.xrevrange(key, max="+", min=low, count=limit))))
        else:
            rows = await self._call(f"history {series}", self._client.xrange(key, min=low, max="+"))
        points = [json.loads(fields[b"p"]) for _id, fields in rows]
        return [p for p in points if float(p.get("t", 0)) >= since]

    async def history_series(self, prefix: str = "") -> list[str]:
        head = self._history_key("")

        async def fetch() -> list[str]:
            out = []
            async for k in self._client.scan_iter(match=_glob_escape(head + prefix) + "*", count=1000):
                name = k.decode() if isinstance(k, bytes) else k
                out.append(name[len(head):])
            return sorted(set(out))

        return await self._call("history series", fetch())

    async def ping(self) -> bool:
        try:
            return bool(await self._client.ping())
        except (RedisError, OSError):
            return False

    async def changes(self) -> AsyncIterator[Change]:
        delay = 0.1
        first = True
        while True:
            pubsub = self._pubsub_client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                if not first:
                    log.info("redis %s: subscription restored", self.url)
                yield RESYNC  # subscribed: read the current state now, changes follow
                first = False
                delay = 0.1
                while True:
                    msg = await pubsub.get_message(timeout=1.0)
                    _honour_cancel()
                    if msg is None or msg.get("type") != "message":
                        continue
                    data = json.loads(msg["data"])
                    yield Change(data["space"], data["key"], data["value"])
            except (RedisError, OSError) as exc:
                if delay == 0.1:
                    log.warning("redis %s: subscription lost (%s); retrying with backoff", self.url, exc)
                    yield LOST
                first = False
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
            finally:
                try:
                    # bounded: cancelled in the middle of subscribing, aclose can wait forever
                    await asyncio.wait_for(pubsub.aclose(), 1.0)
                except (RedisError, OSError, AttributeError, TimeoutError):
                    pass

    async def close(self) -> None:
        for client in {id(self._client): self._client, id(self._pubsub_client): self._pubsub_client}.values():
            try:
                await client.aclose()
            except (RedisError, OSError, AttributeError):
                pass


def _honour_cancel() -> None:
    """redis-py can swallow a cancel that lands in the middle of a command or read (it returns, or
    fails with a connection error): the task then runs on, and whoever cancelled it waits forever
    (a stopping probe agent, asyncio.run's shutdown). Raise it here instead."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
