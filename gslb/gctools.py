"""Pause the cyclic garbage collector while a zone set is built.

Loading and compiling a large zone allocates millions of long-lived, acyclic objects; with the
collector on, each of its passes rescans the growing heap, which made loading grow far faster
than the zone. Reference counting still frees everything meanwhile; the collector resumes (and
catches up once) when the block ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def settle() -> None:
    """Move everything alive now (the zones and answers just built) out of the collector's reach.

    The collector never rescans them, and, done in the supervisor before workers fork, it keeps
    a worker's first collection from writing to (and so copying) every page of the zones it
    shares with the supervisor. Frozen objects are still freed by reference counting when a
    reload drops them; only reference cycles among them would outlive it."""
    gc.freeze()
