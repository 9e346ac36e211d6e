"""Config + backend health → the balancer's maps, each VIP's table swapped atomically.

Backend ids are stable: a backend keeps its id for as long as the maps live (they are read back
from the pinned backend map after a restart), so the connection table stays valid. A VIP's new
Maglev table is written into the idle half of its ring and goes live with one update of the VIP
entry: a packet sees the old table or the new one, never a mix.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass

from dataplane import maglev
from dataplane.balancer import Balancer
from dataplane.config import BackendSpec, DataplaneConfig, VipSpec
from dataplane.packets import mac as mac_bytes
from dataplane.structs import (
    BACKEND_F_UP,
    MAX_BACKENDS,
    MAX_VIPS,
    RING_SLOTS,
    VIP_F_IPIP,
    VIP_F_NO_CONNTRACK,
    Backend,
    LbConfig,
    VipKey,
    VipMeta,
    pack_addr,
)


def vip_key(vip: VipSpec) -> VipKey:
    addr, family = pack_addr(vip.address)
    proto = socket.IPPROTO_TCP if vip.protocol == "tcp" else socket.IPPROTO_UDP
    return VipKey(addr=addr, port=socket.htons(vip.port), proto=proto, family=family)


@dataclass
class Applied:
    vips: int
    backends: int
    tables_ms: float  # Maglev computation
    write_ms: float  # map writes and flips


class Control:
    def __init__(self, balancer: Balancer) -> None:
        self.lb = balancer
        self.backend_ids: dict[bytes, int] = balancer.known_backends()
        self.vip_ids: dict[bytes, int] = {}
        for key in balancer.vips():
            meta = balancer.get_vip(key)
            if meta is not None:
                self.vip_ids[bytes(key)] = meta.vip_id
        self.tables: dict[str, list[str]] = {}  # VIP label → backend address per ring entry (for tests)

    @staticmethod
    def _allocate(ids: dict[bytes, int], raw: bytes, limit: int, what: str) -> int:
        """The id of `raw`, giving it the lowest free one the first time."""
        if raw not in ids:
            used = set(ids.values())
            free = next((i for i in range(limit) if i not in used), None)
            if free is None:
                raise RuntimeError(f"more than {limit} {what}")
            ids[raw] = free
        return ids[raw]

    def backend_id(self, spec: BackendSpec) -> int:
        addr, _ = pack_addr(spec.address)
        return self._allocate(self.backend_ids, bytes(addr), MAX_BACKENDS, "backends")

    def _vip_id(self, key: VipKey) -> int:
        return self._allocate(self.vip_ids, bytes(key), MAX_VIPS, "VIPs")

    def apply(self, cfg: DataplaneConfig, up: dict[str, bool] | None = None) -> Applied:
        """Make the maps say what `cfg` says, with backends whose check is down left out."""
        up = up or {}
        if cfg.ipip_source:
            self.lb.set_config(LbConfig(ipip_src_v4=int.from_bytes(ipaddress.IPv4Address(cfg.ipip_source).packed,
                                                                       "little")))
        t_tables = t_write = 0.0
        wanted_keys = set()
        backends_seen = set()
        for vip in cfg.vips:
            key = vip_key(vip)
            wanted_keys.add(bytes(key))
            vip_id = self._vip_id(key)
            live = []
            for spec in vip.backends:
                bid = self.backend_id(spec)
                healthy = up.get(spec.check, True)
                addr, family = pack_addr(spec.address)
                start = time.perf_counter()
                self.lb.set_backend(bid, Backend(addr=addr, mac=(type(Backend().mac))(*mac_bytes(spec.mac)),
                                                 family=family, flags=BACKEND_F_UP if healthy else 0))
                t_write += time.perf_counter() - start
                backends_seen.add(bid)
                if healthy and spec.weight > 0:
                    live.append((spec, bid))
            start = time.perf_counter()
            table = maglev.build_table([(s.address, s.weight) for s, _ in live])
            t_tables += time.perf_counter() - start
            start = time.perf_counter()
            current = self.lb.get_vip(key)
            slot = 0 if current is None else (current.ring_slot + 1) % RING_SLOTS
            if table:
                ids = [bid for _, bid in live]
                self.lb.write_ring(vip_id, slot, [ids[i] for i in table])
                self.tables[vip.label] = [live[i][0].address for i in table]
            else:
                self.tables[vip.label] = []
            flags = (VIP_F_IPIP if vip.mode == "ipip" else 0) | (0 if vip.conntrack else VIP_F_NO_CONNTRACK)
            self.lb.set_vip(key, VipMeta(vip_id=vip_id, ring_slot=slot, flags=flags, backend_count=len(live)))
            t_write += time.perf_counter() - start
        for bid in self.backend_ids.values():
            if bid not in backends_seen:  # gone from the config: no flow may stay on it
                b = self.lb.get_backend(bid)
                if b.flags & BACKEND_F_UP:
                    b.flags = 0
                    self.lb.set_backend(bid, b)
        for key in self.lb.vips():
            if bytes(key) not in wanted_keys:
                self.lb.delete_vip(key)
                self.vip_ids.pop(bytes(key), None)
        return Applied(len(cfg.vips), len(backends_seen), t_tables * 1000, t_write * 1000)
