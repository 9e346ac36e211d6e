"""libbpf through ctypes: load the object, attach XDP, and read/write maps without spawning tools.

Only the calls the control plane needs, each raising `BpfError` with what failed and why.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so.1", use_errno=True)

XDP_FLAGS_SKB_MODE = 1 << 1
XDP_FLAGS_DRV_MODE = 1 << 2
BPF_ANY = 0


class BpfError(OSError):
    pass


class TestRunOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("data_in", ctypes.c_void_p), ("data_out", ctypes.c_void_p),
                ("data_size_in", ctypes.c_uint32), ("data_size_out", ctypes.c_uint32),
                ("ctx_in", ctypes.c_void_p), ("ctx_out", ctypes.c_void_p),
                ("ctx_size_in", ctypes.c_uint32), ("ctx_size_out", ctypes.c_uint32),
                ("retval", ctypes.c_uint32), ("repeat", ctypes.c_int), ("duration", ctypes.c_uint32),
                ("flags", ctypes.c_uint32), ("cpu", ctypes.c_uint32), ("batch_size", ctypes.c_uint32)]


class BatchOpts(ctypes.Structure):
    _fields_ = [("sz", ctypes.c_size_t), ("elem_flags", ctypes.c_uint64), ("flags", ctypes.c_uint64)]


def _sig(name: str, restype, *argtypes) -> None:
    fn = getattr(_lib, name)
    fn.restype = restype
    fn.argtypes = list(argtypes)


_sig("bpf_object__open_file", ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)
_sig("bpf_object__load", ctypes.c_int, ctypes.c_void_p)
_sig("bpf_object__close", None, ctypes.c_void_p)
_sig("bpf_object__find_program_by_name", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)
_sig("bpf_object__find_map_by_name", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)
_sig("bpf_program__fd", ctypes.c_int, ctypes.c_void_p)
_sig("bpf_map__fd", ctypes.c_int, ctypes.c_void_p)
_sig("bpf_map__reuse_fd", ctypes.c_int, ctypes.c_void_p, ctypes.c_int)
_sig("bpf_xdp_attach", ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p)
_sig("bpf_xdp_detach", ctypes.c_int, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p)
_sig("bpf_xdp_query_id", ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_uint32))
_sig("bpf_map_update_elem", ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint64)
_sig("bpf_map_lookup_elem", ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_sig("bpf_map_delete_elem", ctypes.c_int, ctypes.c_int, ctypes.c_void_p)
_sig("bpf_map_get_next_key", ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p)
_sig("bpf_map_update_batch", ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
     ctypes.POINTER(ctypes.c_uint32), ctypes.POINTER(BatchOpts))
_sig("bpf_prog_test_run_opts", ctypes.c_int, ctypes.c_int, ctypes.POINTER(TestRunOpts))
_sig("bpf_obj_pin", ctypes.c_int, ctypes.c_int, ctypes.c_char_p)
_sig("bpf_obj_get", ctypes.c_int, ctypes.c_char_p)
_sig("libbpf_num_possible_cpus", ctypes.c_int)
_sig("libbpf_get_error", ctypes.c_long, ctypes.c_void_p)


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = -ret if ret != -1 else ctypes.get_errno()
        raise BpfError(err, f"{what}: {os.strerror(err)}")
    return ret


def possible_cpus() -> int:
    return _check(_lib.libbpf_num_possible_cpus(), "libbpf_num_possible_cpus")


class BpfObject:
    """A loaded ELF object: its programs and maps by name."""

    def __init__(self, path: str) -> None:
        if not os.path.exists(path):
            raise BpfError(2, f"{path}: no such BPF object (run `make -C dataplane/bpf`)")
        obj = _lib.bpf_object__open_file(path.encode(), None)
        if not obj or _lib.libbpf_get_error(obj):
            raise BpfError(ctypes.get_errno() or 22, f"cannot open BPF object {path}")
        self._obj = obj
        self.path = path

    def reuse_map(self, name: str, fd: int) -> None:
        """Before load: use an existing (pinned) map instead of creating a new one."""
        m = _lib.bpf_object__find_map_by_name(self._obj, name.encode())
        if not m:
            raise BpfError(2, f"{self.path}: no map {name!r}")
        _check(_lib.bpf_map__reuse_fd(m, fd), f"reuse map {name}")

    def load(self) -> None:
        _check(_lib.bpf_object__load(self._obj), f"load {self.path} (the verifier log is on stderr)")

    def program_fd(self, name: str) -> int:
        prog = _lib.bpf_object__find_program_by_name(self._obj, name.encode())
        if not prog:
            raise BpfError(2, f"{self.path}: no program {name!r}")
        return _check(_lib.bpf_program__fd(prog), f"program {name} fd")

    def map_fd(self, name: str) -> int:
        m = _lib.bpf_object__find_map_by_name(self._obj, name.encode())
        if not m:
            raise BpfError(2, f"{self.path}: no map {name!r}")
        return _check(_lib.bpf_map__fd(m), f"map {name} fd")

    def close(self) -> None:
        if self._obj:
            _lib.bpf_object__close(self._obj)
            self._obj = None


def xdp_attach(ifindex: int, prog_fd: int, flags: int) -> None:
    _check(_lib.bpf_xdp_attach(ifindex, prog_fd, flags, None), f"attach XDP to ifindex {ifindex}")


def xdp_detach(ifindex: int, flags: int) -> None:
    _check(_lib.bpf_xdp_detach(ifindex, flags, None), f"detach XDP from ifindex {ifindex}")


def map_update(fd: int, key: ctypes._CData, value: ctypes._CData, flags: int = BPF_ANY) -> None:
    _check(_lib.bpf_map_update_elem(fd, ctypes.byref(key), ctypes.byref(value), flags), "map update")


def map_lookup(fd: int, key: ctypes._CData, value: ctypes._CData) -> bool:
    ret = _lib.bpf_map_lookup_elem(fd, ctypes.byref(key), ctypes.byref(value))
    if ret < 0:
        err = ctypes.get_errno()
        if err == 2:
            return False
        _check(ret, "map lookup")
    return True


def map_delete(fd: int, key: ctypes._CData) -> bool:
    ret = _lib.bpf_map_delete_elem(fd, ctypes.byref(key))
    return ret == 0


def map_keys(fd: int, key_type: type[ctypes.Structure]) -> list:
    out = []
    key = key_type()
    nxt = key_type()
    first = True
    while True:
        ret = _lib.bpf_map_get_next_key(fd, None if first else ctypes.byref(key), ctypes.byref(nxt))
        if ret < 0:
            break
        out.append(key_type.from_buffer_copy(nxt))
        ctypes.memmove(ctypes.byref(key), ctypes.byref(nxt), ctypes.sizeof(key_type))
        first = False
    return out


def map_update_batch(fd: int, keys: ctypes.Array, values: ctypes.Array, count: int) -> None:
    n = ctypes.c_uint32(count)
    opts = BatchOpts(ctypes.sizeof(BatchOpts), 0, 0)
    _check(_lib.bpf_map_update_batch(fd, keys, values, ctypes.byref(n), ctypes.byref(opts)), "map batch update")
    if n.value != count:
        raise BpfError(5, f"map batch update wrote {n.value} of {count} entries")


def pin(fd: int, path: str) -> None:
    _check(_lib.bpf_obj_pin(fd, path.encode()), f"pin {path}")


def get_pinned(path: str) -> int:
    return _check(_lib.bpf_obj_get(path.encode()), f"open pinned {path}")


def test_run(prog_fd: int, packet: bytes, repeat: int = 1) -> tuple[int, bytes, int]:
    """BPF_PROG_TEST_RUN: (XDP action, packet out, average ns per run)."""
    data_in = ctypes.create_string_buffer(packet, len(packet))
    data_out = ctypes.create_string_buffer(len(packet) + 256)
    opts = TestRunOpts(sz=ctypes.sizeof(TestRunOpts), data_in=ctypes.cast(data_in, ctypes.c_void_p),
                       data_out=ctypes.cast(data_out, ctypes.c_void_p), data_size_in=len(packet),
                       data_size_out=len(packet) + 256, repeat=repeat)
    _check(_lib.bpf_prog_test_run_opts(prog_fd, ctypes.byref(opts)), "BPF_PROG_TEST_RUN")
    return opts.retval, data_out.raw[:opts.data_size_out], opts.duration
