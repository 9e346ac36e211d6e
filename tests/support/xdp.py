"""Skip reasons for tests that need to load BPF programs."""

from __future__ import annotations

import os

from dataplane import BPF_OBJECT


def why_no_bpf() -> str | None:
    if os.geteuid() != 0:
        return "needs root to load BPF programs"
    if not os.path.exists(BPF_OBJECT):
        return f"{BPF_OBJECT} is not built (scripts/setup builds it with clang)"
    try:
        from dataplane.balancer import Balancer

        Balancer("probe-skip", pin=False).close()
    except OSError as exc:
        return f"this kernel refuses the XDP program: {exc}"
    return None
