"""A `redis+sentinel://` store URL finds the master through a real Sentinel and works end to end."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile

import pytest

from gslb.store import RESYNC, open_store
from tests.support.procs import free_port, redis_server, stop, wait_for


@contextlib.contextmanager
def sentinel(master_port: int):
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="gslb-sentinel-")
    conf = f"{workdir}/sentinel.conf"
    with open(conf, "w") as f:
        f.write(f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
                f"sentinel monitor gslbmaster 127.0.0.1 {master_port} 1\n")
    proc = subprocess.Popen([shutil.which("redis-server"), conf, "--sentinel"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)

    def ready() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2) as s:
            s.sendall(b"SENTINEL get-master-addr-by-name gslbmaster\r\n")
            return str(master_port).encode() in s.recv(256)
        return False

    try:
        wait_for(ready, timeout=10, what="sentinel knows the master")
        yield port
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def test_sentinel_url_reaches_the_master():
    master = free_port()
    with redis_server(master), sentinel(master) as sport:
        async def body() -> None:
            store = open_store(f"redis+sentinel://127.0.0.1:{sport}/gslbmaster/0")
            stream = store.changes()
            assert await asyncio.wait_for(stream.__anext__(), 5) == RESYNC
            await store.put("probe", "r|c", {"up": True}, ttl=10)
            assert await store.get("probe", "r|c") == {"up": True}
            change = await asyncio.wait_for(stream.__anext__(), 5)
            assert (change.space, change.key) == ("probe", "r|c")
            await stream.aclose()
            await store.close()

        asyncio.run(body())


def test_sentinel_url_needs_a_service_name():
    from gslb.store import StoreError

    with pytest.raises(StoreError, match="needs the service name"):
        open_store("redis+sentinel://127.0.0.1:26379")
