"""One client prefix, one worker: a classic BPF program on the SO_REUSEPORT group of a UDP
socket (SO_ATTACH_REUSEPORT_CBPF) picks the worker from the client's source prefix instead of
the kernel's 4-tuple hash.

Why: RRL and the query limits count per prefix. With the default hash a spoofed flood from one
/24 (many addresses, many ports) lands on every worker, so each worker had to enforce rate/N and
the node as a whole only approximated `rate` (a source that hit one worker more often was limited
early, and with rate < N nothing was exact). With steering every query of a prefix reaches the
same worker, whose limiter then enforces the whole configured rate exactly.

The program sees the packet from the UDP payload on; it reads the source address through the
network-header offset (SKF_NET_OFF), keeps the configured prefix bits (RRL's ipv4_prefix /
ipv6_prefix, the first 64 bits at most for IPv6), mixes them and returns (mix % workers): an
index into the group (the sockets in the order they joined). An index past the group's size
(a worker restarting) makes the kernel fall back to its hash for that packet: service goes on.

The supervisor's `SocketSet.steer` (gslb/server/sockets.py) installs one program per group with
`steer`: the active bank's sockets, by client prefix for UDP when a limiter counts per prefix (the
pool arms it with `configure`, from `abuse_config.steering_prefixes`), at random otherwise.
`active()` tells the limiters, in the workers forked after it, whether they may enforce the
whole rate. `attach` and `attach_program` put the bare prefix program on a group outside a
running server (the tests' sockets).
"""

from __future__ import annotations

import ctypes
import logging
import socket
import struct

log = logging.getLogger(__name__)

SO_ATTACH_REUSEPORT_CBPF = 51  # Linux asm-generic/socket.h
SKF_NET_OFF = -0x100000

# classic BPF opcodes (linux/filter.h)
_LD_W_ABS = 0x20
_ALU_RSH_K = 0x74
_ALU_AND_K = 0x54
_ALU_XOR_X = 0xAC
_ALU_MUL_K = 0x24
_ALU_MOD_K = 0x94
_MISC_TAX = 0x07
_RET_A = 0x16
_RET_K = 0x06
_JMP_JEQ_K = 0x15
_SKF_AD_RANDOM = -0x1000 + 56  # SKF_AD_OFF + SKF_AD_RANDOM: `ld rand`

_MIX = 0x9E3779B1  # Fibonacci hashing: neighbouring prefixes land on different workers

_state: dict[str, int] = {"workers": 0, "v4": 24, "v6": 56, "attached": 0}


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _insn(code: int, k: int = 0) -> bytes:
    return struct.pack("=HBBI", code, 0, 0, k & 0xFFFFFFFF)


def _prefix_hash(family: int, v4_bits: int, v6_bits: int) -> list[bytes]:
    """Instructions leaving in A a well-mixed hash of the source address's first bits."""
    out = []
    if family == socket.AF_INET:
        out.append(_insn(_LD_W_ABS, SKF_NET_OFF + 12))  # the source address
        if v4_bits < 32:
            out.append(_insn(_ALU_RSH_K, 32 - v4_bits))
    else:
        bits = min(v6_bits, 64)
        out.append(_insn(_LD_W_ABS, SKF_NET_OFF + 8 + 4))  # source bits 32..63
        if bits < 64:
            out.append(_insn(_ALU_AND_K, (0xFFFFFFFF << (64 - bits)) & 0xFFFFFFFF if bits > 32 else 0))
        out.append(_insn(_ALU_MUL_K, _MIX))
        out.append(_insn(_MISC_TAX))
        out.append(_insn(_LD_W_ABS, SKF_NET_OFF + 8))  # source bits 0..31
        if bits < 32:
            out.append(_insn(_ALU_AND_K, (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF))
        out.append(_insn(_ALU_XOR_X))
    out.append(_insn(_ALU_MUL_K, _MIX))
    out.append(_insn(_ALU_RSH_K, 8))  # the multiply's well-mixed middle bits
    return out


def program(family: int, workers: int, v4_bits: int = 24, v6_bits: int = 56) -> bytes:
    """The classic BPF instructions (struct sock_filter[]) for one address family: the group's
    socket `index_of(client, workers)`."""
    if workers < 1:
        raise ValueError("workers >= 1")
    return b"".join([*_prefix_hash(family, v4_bits, v6_bits), _insn(_ALU_MOD_K, workers), _insn(_RET_A)])


def to_targets(family: int, targets: list[int], by_prefix: tuple[int, int] | None) -> bytes:
    """A program sending each packet (or new connection) to one of the group's sockets at
    `targets` (indexes in join order): `targets[index_of(client, len(targets))]` by client prefix
    when `by_prefix` gives (v4 bits, v6 bits), else a random one."""
    if not targets:
        raise ValueError("at least one target socket")
    pick = _prefix_hash(family, *by_prefix) if by_prefix else [_insn(_LD_W_ABS, _SKF_AD_RANDOM)]
    code = [*pick, _insn(_ALU_MOD_K, len(targets))]
    for j, target in enumerate(targets):
        code.append(struct.pack("=HBBI", _JMP_JEQ_K, 0, 1, j))  # A == j: the next insn, else skip it
        code.append(_insn(_RET_K, target))
    code.append(_insn(_RET_K, targets[0]))
    return b"".join(code)


def _install(sock: socket.socket, code: bytes) -> None:
    """SO_ATTACH_REUSEPORT_CBPF with `code` (struct sock_filter[]) on `sock`'s group."""
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.cast(buf, ctypes.c_void_p).value)
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, bytes(memoryview(prog)))


def steer(sock: socket.socket, targets: list[int], by_prefix: tuple[int, int] | None = None) -> None:
    """Attach (or replace: one program per group) `to_targets` through any member of the group.
    With `by_prefix`, this process's limiters may enforce whole rates (`active`)."""
    _install(sock, to_targets(sock.family, targets, by_prefix))
    if by_prefix:
        _state["attached"] += 1


def index_of(client: bytes, workers: int, v4_bits: int = 24, v6_bits: int = 56) -> int:
    """The index `program` returns for a client address (4 or 16 bytes): for tests and docs."""
    if len(client) == 4:
        a = int.from_bytes(client, "big")
        if v4_bits < 32:
            a >>= 32 - v4_bits
    else:
        bits = min(v6_bits, 64)
        hi, lo = int.from_bytes(client[:4], "big"), int.from_bytes(client[4:8], "big")
        if bits < 64:
            lo &= (0xFFFFFFFF << (64 - bits)) & 0xFFFFFFFF if bits > 32 else 0
        if bits < 32:
            hi &= (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
        a = hi ^ ((lo * _MIX) & 0xFFFFFFFF)
    return (((a * _MIX) & 0xFFFFFFFF) >> 8) % workers


def attach_program(sock: socket.socket, workers: int, v4_bits: int = 24, v6_bits: int = 56) -> None:
    """Put the program on `sock`'s reuseport group (raises OSError when the kernel refuses)."""
    _install(sock, program(sock.family, workers, v4_bits, v6_bits))


def configure(workers: int, v4_bits: int, v6_bits: int) -> None:
    """Arm steering for this process's UDP sockets (0 workers or 1: nothing to steer)."""
    _state.update(workers=workers if workers > 1 else 0, v4=v4_bits, v6=v6_bits)


def attach(sock: socket.socket) -> bool:
    """Steer `sock`'s group by client prefix when armed; False (and the kernel's hash) otherwise."""
    if not _state["workers"] or sock.type != socket.SOCK_DGRAM or sock.family not in (socket.AF_INET,
                                                                                          socket.AF_INET6):
        return False
    try:
        attach_program(sock, _state["workers"], _state["v4"], _state["v6"])
    except OSError as exc:
        log.warning("cannot steer UDP by client prefix (%s): each worker enforces its share of the rates", exc)
        return False
    _state["attached"] += 1
    return True


def active() -> bool:
    """True when this process's UDP sockets are steered, so a limiter may enforce the whole rate."""
    return bool(_state["workers"] and _state["attached"])
