"""The loaded XDP balancer: attach/detach, pinned maps, and typed map access.

Maps are pinned under a directory of bpffs (default /sys/fs/bpf/gslb-<name>), so a restarted
control plane reuses them (established flows keep their backends) and `gslb dataplane stats`
can read counters from another process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import subprocess

from dataplane import BPF_OBJECT, libbpf
from dataplane.structs import (
    MAX_BACKENDS,
    RING_SIZE,
    RING_SLOTS,
    Backend,
    Counter,
    FlowKey,
    FlowValue,
    LbConfig,
    VipKey,
    VipMeta,
)

MAPS = ("vips", "rings", "backends", "conns", "vip_stats", "backend_stats", "config")
BPFFS = "/sys/fs/bpf"


def ensure_bpffs(root: str = BPFFS) -> None:
    """bpffs must be mounted to pin maps; mount it when it is not."""
    with open("/proc/mounts") as f:
        if any(line.split()[1] == root and line.split()[2] == "bpf" for line in f):
            return
    os.makedirs(root, exist_ok=True)
    subprocess.run(["mount", "-t", "bpf", "bpf", root], check=True)


class Balancer:
    def __init__(self, name: str = "default", obj_path: str = BPF_OBJECT, pin: bool = True,
                 pin_root: str = BPFFS) -> None:
        self.name = name
        self.pin_dir = os.path.join(pin_root, f"gslb-{name}") if pin else None
        self.obj = libbpf.BpfObject(obj_path)
        self.reused: list[str] = []
        if self.pin_dir:
            ensure_bpffs(pin_root)
            os.makedirs(self.pin_dir, exist_ok=True)
            for m in MAPS:
                path = os.path.join(self.pin_dir, m)
                if os.path.exists(path):
                    self.obj.reuse_map(m, libbpf.get_pinned(path))
                    self.reused.append(m)
        self.obj.load()
        self.fd = {m: self.obj.map_fd(m) for m in MAPS}
        if self.pin_dir:
            for m in MAPS:
                path = os.path.join(self.pin_dir, m)
                if m not in self.reused:
                    libbpf.pin(self.fd[m], path)
        self.prog_fd = self.obj.program_fd("balancer")
        self.pass_fd = self.obj.program_fd("pass")
        self.cpus = libbpf.possible_cpus()
        self.attached: dict[int, int] = {}

    # -- attach ---------------------------------------------------------------------------

    def attach(self, ifname: str, mode: str = "auto") -> str:
        """Attach to an interface: native XDP, generic (skb) as the fallback. Returns the mode."""
        ifindex = socket.if_nametoindex(ifname)
        modes = {"native": [libbpf.XDP_FLAGS_DRV_MODE], "generic": [libbpf.XDP_FLAGS_SKB_MODE],
                 "auto": [libbpf.XDP_FLAGS_DRV_MODE, libbpf.XDP_FLAGS_SKB_MODE]}[mode]
        error: OSError | None = None
        for flags in modes:
            try:
                libbpf.xdp_attach(ifindex, self.prog_fd, flags)
            except libbpf.BpfError as exc:
                error = exc
                continue
            self.attached[ifindex] = flags
            return "native" if flags == libbpf.XDP_FLAGS_DRV_MODE else "generic"
        raise libbpf.BpfError(error.errno if error else 22, f"{ifname}: {error}")

    def attach_pass(self, ifname: str) -> None:
        """The do-nothing program, for the far end of a veth that must accept XDP_TX frames."""
        libbpf.xdp_attach(socket.if_nametoindex(ifname), self.pass_fd, libbpf.XDP_FLAGS_DRV_MODE)

    def detach(self, ifname: str | None = None) -> None:
        targets = [socket.if_nametoindex(ifname)] if ifname else list(self.attached)
        for ifindex in targets:
            flags = self.attached.pop(ifindex, libbpf.XDP_FLAGS_DRV_MODE)
            with contextlib.suppress(libbpf.BpfError):
                libbpf.xdp_detach(ifindex, flags)

    def unpin(self) -> None:
        if self.pin_dir and os.path.isdir(self.pin_dir):
            for m in MAPS:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(os.path.join(self.pin_dir, m))
            with contextlib.suppress(OSError):
                os.rmdir(self.pin_dir)

    def close(self) -> None:
        self.obj.close()

    # -- maps -----------------------------------------------------------------------------

    def set_config(self, cfg: LbConfig) -> None:
        libbpf.map_update(self.fd["config"], ctypes.c_uint32(0), cfg)

    def set_vip(self, key: VipKey, meta: VipMeta) -> None:
        libbpf.map_update(self.fd["vips"], key, meta)

    def get_vip(self, key: VipKey) -> VipMeta | None:
        meta = VipMeta()
        return meta if libbpf.map_lookup(self.fd["vips"], key, meta) else None

    def delete_vip(self, key: VipKey) -> None:
        libbpf.map_delete(self.fd["vips"], key)

    def vips(self) -> list[VipKey]:
        return libbpf.map_keys(self.fd["vips"], VipKey)

    def set_backend(self, backend_id: int, backend: Backend) -> None:
        libbpf.map_update(self.fd["backends"], ctypes.c_uint32(backend_id), backend)

    def get_backend(self, backend_id: int) -> Backend:
        b = Backend()
        libbpf.map_lookup(self.fd["backends"], ctypes.c_uint32(backend_id), b)
        return b

    def write_ring(self, vip_id: int, slot: int, table: list[int]) -> None:
        """Fill one half of a VIP's ring with backend ids in one batch (one system call)."""
        if len(table) != RING_SIZE:
            raise ValueError(f"a ring has {RING_SIZE} entries, got {len(table)}")
        base = (vip_id * RING_SLOTS + slot) * RING_SIZE
        keys = (ctypes.c_uint32 * RING_SIZE)(*range(base, base + RING_SIZE))
        values = (ctypes.c_uint32 * RING_SIZE)(*table)
        libbpf.map_update_batch(self.fd["rings"], keys, values, RING_SIZE)

    def conn(self, key: FlowKey) -> FlowValue | None:
        v = FlowValue()
        return v if libbpf.map_lookup(self.fd["conns"], key, v) else None

    def counters(self, which: str, index: int) -> tuple[int, int]:
        """(packets, bytes) summed over CPUs."""
        values = (Counter * self.cpus)()
        libbpf.map_lookup(self.fd[which], ctypes.c_uint32(index), values)
        return sum(c.packets for c in values), sum(c.bytes for c in values)

    def known_backends(self) -> dict[bytes, int]:
        """Backends already in the (reused) map: address bytes → id, to keep ids across restarts."""
        out = {}
        for i in range(MAX_BACKENDS):
            b = self.get_backend(i)
            if b.family:
                out[bytes(b.addr)] = i
        return out

    def test_run(self, packet: bytes, repeat: int = 1) -> tuple[int, bytes, int]:
        return libbpf.test_run(self.prog_fd, packet, repeat)
