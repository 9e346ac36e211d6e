"""ctypes mirrors of dataplane/bpf/balancer_structs.h and _consts.h (tests check the sizes)."""

from __future__ import annotations

import ctypes
import ipaddress
import os
import re
from typing import TypeAlias

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bpf")


def _consts() -> dict[str, int]:
    with open(os.path.join(HERE, "balancer_consts.h")) as f:
        return {m[0]: int(m[1], 0) for m in re.findall(r"#define (\w+) (0x[0-9a-fA-F]+|\d+)", f.read())}


CONSTS = _consts()  # one source of truth: the C header
MAX_VIPS = CONSTS["MAX_VIPS"]
MAX_BACKENDS = CONSTS["MAX_BACKENDS"]
RING_SIZE = CONSTS["RING_SIZE"]
RING_SLOTS = CONSTS["RING_SLOTS"]
VIP_F_IPIP = CONSTS["VIP_F_IPIP"]
VIP_F_NO_CONNTRACK = CONSTS["VIP_F_NO_CONNTRACK"]
BACKEND_F_UP = CONSTS["BACKEND_F_UP"]
FAMILY_V4, FAMILY_V6 = CONSTS["FAMILY_V4"], CONSTS["FAMILY_V6"]
FLOW_HASH_SEED = CONSTS["FLOW_HASH_SEED"]

Addr: TypeAlias = ctypes.c_uint32 * 4  # type: ignore[valid-type]  # a ctypes array type


def pack_addr(address: str) -> tuple[Addr, int]:
    ip = ipaddress.ip_address(address)
    raw = ip.packed + bytes(16 - len(ip.packed))
    return Addr.from_buffer_copy(raw), (FAMILY_V4 if ip.version == 4 else FAMILY_V6)


class VipKey(ctypes.Structure):
    _fields_ = [("addr", Addr), ("port", ctypes.c_uint16), ("proto", ctypes.c_uint8), ("family", ctypes.c_uint8)]


class VipMeta(ctypes.Structure):
    _fields_ = [("vip_id", ctypes.c_uint32), ("ring_slot", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("backend_count", ctypes.c_uint32)]


class Backend(ctypes.Structure):
    _fields_ = [("addr", Addr), ("mac", ctypes.c_uint8 * 6), ("family", ctypes.c_uint8), ("flags", ctypes.c_uint8)]


class FlowKey(ctypes.Structure):
    _fields_ = [("src", Addr), ("dst", Addr), ("sport", ctypes.c_uint16), ("dport", ctypes.c_uint16),
                ("proto", ctypes.c_uint8), ("family", ctypes.c_uint8), ("pad", ctypes.c_uint16)]


class FlowValue(ctypes.Structure):
    _fields_ = [("backend_id", ctypes.c_uint32), ("vip_id", ctypes.c_uint32)]


class Counter(ctypes.Structure):
    _fields_ = [("packets", ctypes.c_uint64), ("bytes", ctypes.c_uint64)]


class LbConfig(ctypes.Structure):
    _fields_ = [("ipip_src_v4", ctypes.c_uint32), ("pad", ctypes.c_uint32)]


# The C sizes (checked against the object's BTF in the tests).
SIZES = {"vip_key": 20, "vip_meta": 16, "backend": 24, "flow_key": 40, "flow_value": 8, "counter": 16,
         "lb_config": 8}
