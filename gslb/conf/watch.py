"""Noticing that files changed, the one way every long-running part does it (zones, probe zones,
dataplane config): poll sizes and mtimes, and act only once a change has stopped changing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

Listing = Callable[[], Iterable[str]]


class FileWatch:
    """`changed()` is true once when the watched files differ from the last accepted state.

    `paths` lists the files to watch now (a folder's listing may change: files come and go);
    a listing or a file that cannot be read counts as absent, never as an error.
    """

    def __init__(self, paths: Listing) -> None:
        self.paths = paths
        self.seen = self.snapshot()
        self._pending: dict[str, int] | None = None

    def snapshot(self) -> dict[str, int]:
        out: dict[str, int] = {}
        try:
            listing = list(self.paths())
        except OSError:
            return out
        for path in listing:
            try:
                st = os.stat(path)
            except OSError:
                continue
            out[path] = st.st_mtime_ns + st.st_size
        return out

    def accept(self) -> None:
        """Take the files as they are now as the current state (after acting on them)."""
        self.seen = self.snapshot()
        self._pending = None

    def changed(self) -> bool:
        """Polled periodically: true when a change seen on the previous poll is still there and
        has stopped changing (editors write in several steps)."""
        now = self.snapshot()
        if now == self.seen:
            self._pending = None
            return False
        if self._pending != now:
            self._pending = now
            return False
        self.seen, self._pending = now, None
        return True
