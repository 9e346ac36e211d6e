"""Faster equality and hashing for `dns.name.Name`, installed when gslb is imported.

dnspython hashes a name with a per-character Python loop and compares names through
`fullcompare`; with names as the keys of every zone index, that was a large share of loading
and compiling a big zone. These keep the same contract (equal ignoring ASCII case, equal names
hash alike) using C-level byte and tuple operations. Ordering (`<`, `fullcompare`) is untouched.
"""

from __future__ import annotations

import dns.name

_Name = dns.name.Name


def _hash(self: _Name) -> int:
    return hash(b"\x00".join(self.labels).lower())  # equal names join alike; collisions only cost time


def _eq(self: _Name, other: object) -> bool:
    if not isinstance(other, _Name):
        return False
    a, b = self.labels, other.labels
    if a == b:
        return True
    if len(a) != len(b):
        return False
    return [x.lower() for x in a] == [y.lower() for y in b]


def _ne(self: _Name, other: object) -> bool:
    return not _eq(self, other)


def install() -> None:
    if getattr(_Name, "_gslb_fast", False):
        return
    _Name.__hash__ = _hash  # type: ignore[method-assign]
    _Name.__eq__ = _eq  # type: ignore[method-assign,assignment]
    _Name.__ne__ = _ne  # type: ignore[method-assign,assignment]
    _Name._gslb_fast = True  # type: ignore[attr-defined]
