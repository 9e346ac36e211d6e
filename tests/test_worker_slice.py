"""The serving threads ask the scheduler for a short slice (gslb/worker.py, `short_slice`), so that a
query's wake-up preempts other work on the core instead of waiting for the end of its slice (the
p99 finding in README "Tail latency"). The kernel shows a thread's slice in /proc/.../sched."""

from __future__ import annotations

import re
import threading

import pytest

from gslb import worker


def slice_ns() -> int | None:
    with open("/proc/thread-self/sched") as f:
        m = re.search(r"^se\.slice\s*:\s*(\d+)", f.read(), re.M)
    return int(m.group(1)) if m else None


def in_thread(fn: object) -> list[object]:
    out: list[object] = []
    t = threading.Thread(target=lambda: out.extend([fn(), slice_ns()]))  # type: ignore[operator]
    t.start()
    t.join()
    return out


@pytest.mark.skipif(slice_ns() is None, reason="kernel without EEVDF custom slices (se.slice, Linux >= 6.12)")
def test_a_serving_thread_gets_the_short_slice_and_others_keep_theirs() -> None:
    before = slice_ns()
    ok, got = in_thread(lambda: worker.short_slice(100))
    assert ok is True and got == 100_000
    assert slice_ns() == before  # per thread: the main thread (stats, health) keeps the default


def test_zero_leaves_the_kernel_default() -> None:
    before = slice_ns()
    ok, got = in_thread(lambda: worker.short_slice(0))
    assert ok is False and got == before
