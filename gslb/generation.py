"""One zone generation, built once in the supervisor and shared by every worker through fork.

Why: compiling a large zone is the expensive part of a (re)load, and N workers compiling N copies
cost N times the time and memory. The supervisor compiles the answers and builds the Responder
(its native table in C memory) once; workers fork from it and only read it, so its pages stay
shared copy-on-write. Two things would still write to every page: the cyclic collector (hence
`gc.freeze()` before forking) and reading every entry's counter each second (reference counts
are writes), hence `SharedEntry`: an entry of the shared table records itself the first time it
counts an answer, and a worker's counters visit only those. A generation being replaced is
released in the supervisor before the next fork (`Generation.release`): what a worker inherits
but does not serve it would keep for good.
"""

from __future__ import annotations

import ctypes
import gc
import pickle
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gslb.answers import Answers
from gslb.config import ServerConfig
from gslb.policy.client import Locator
from gslb.server.fastpath import Responder
from gslb.server.table import Entry
from gslb.zone.model import Zone

_HITS: Any = Entry.__dict__["hits"]  # the slot's descriptor (Entry has __slots__)


class SharedEntry(Entry):
    """An entry of a shared table: same layout (an Entry's class can be switched to it), but its
    `hits` setter remembers, per process, the entries that have counted anything."""

    __slots__ = ()
    counted: ClassVar[dict[int, Entry]] = {}

    @property
    def hits(self) -> int:
        return int(_HITS.__get__(self))

    @hits.setter
    def hits(self, value: int) -> None:
        _HITS.__set__(self, value)
        if value:
            SharedEntry.counted[id(self)] = self


def share(table: dict[bytes, Entry]) -> None:
    """Make every entry of a table (and its DNSSEC twin) a `SharedEntry`."""
    for entry in table.values():
        for e in (entry, entry.signed):
            if e is not None and type(e) is Entry:
                e.__class__ = SharedEntry


@dataclass
class Generation:
    """What a worker starts from: the config, the zones, the answers and the Responder made from them."""

    number: int
    cfg: ServerConfig
    answers: Answers
    responder: Responder
    zones: list[Zone] = field(default_factory=list)

    names: list[str] = field(default_factory=list)  # the zones' names (status), kept when shed
    shed: bool = False  # released: only `number`, `cfg` and `names` are left

    def release(self, collect: bool = True) -> None:
        """Drop this process's copy (answers, Responder, zones).

        Why: a reload sheds the generation being replaced before forking the new workers, so they
        do not inherit its pages (freed by the supervisor later, they would stay in every new
        worker for good); the old workers serve from their own copy meanwhile, and if the roll
        fails one of them sends its zones back (`ZonesOf`). Clearing the dicts also breaks its
        reference cycles (the answers hold their own compile method; GSLB entries decide through
        them), or it would stay, frozen out of the collector's reach. Zones and entries a later
        generation reuses live on through it."""
        self.shed = True
        self.zones = []
        self.responder.__dict__.clear()  # the native engine goes with it (C memory freed)
        self.answers.__dict__.clear()
        if collect:  # what was made since the last freeze, cycles included (frozen parts: refcounts)
            gc.collect()
        trim()


@dataclass
class SendZones:
    """Supervisor to a worker: send the zones of the generation you serve (a failed roll)."""


@dataclass
class ZonesOf:
    """A worker's zones, pickled (empty when they cannot be)."""

    index: int
    generation: int
    payload: bytes


def trim() -> None:
    """Give the freed heap back to the system (glibc keeps it otherwise, and a big zone's old
    generation is hundreds of MB)."""
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def build(number: int, cfg: ServerConfig, zones: list[Zone], locator: Locator | None,
          sites: dict[str, tuple[float, float]] | None, previous: Generation | None = None) -> Generation:
    """Compile `zones` once (the slow part; safe off the event loop: the previous generation is
    only read). Zones unchanged since `previous` keep their compiled entries."""
    answers = Answers(zones, locator, sites, previous.answers if previous is not None else None)
    responder = Responder(answers.snapshot, cfg.identity, cfg.version, cfg.edns_udp_size)
    share(responder.table)
    return Generation(number, cfg, answers, responder, list(zones), [z.name for z in zones])


def rebuild(number: int, cfg: ServerConfig, payload: bytes, locator: Locator | None,
            sites: dict[str, tuple[float, float]] | None) -> Generation:
    """A shed generation compiled again from the zones an old worker sent (`ZonesOf`)."""
    return build(number, cfg, pickle.loads(payload), locator, sites)


def before_fork() -> None:
    """Move everything alive out of the collector's reach, so no worker's collection writes to
    (and so copies) the shared pages."""
    gc.collect()
    gc.freeze()


def counts(responder: Responder, extra: list[dict[Any, Entry]]) -> dict[tuple[str, int, int], int]:
    """`Responder.counts` without visiting every shared entry: the ones that counted, plus what
    this worker made itself (misses, templates, GSLB answers in `extra`, CHAOS)."""
    seen: dict[int, Entry] = dict(SharedEntry.counted)
    for entry in responder.entries(extra, shared=False):
        seen[id(entry)] = entry
    out = dict(responder.retired)
    for entry in seen.values():
        if entry.hits:
            key = (entry.zone, entry.qtype, entry.rcode)
            out[key] = out.get(key, 0) + entry.hits
    for rcode, n in responder.stats.by_rcode.items():
        out[("", 0, rcode)] = out.get(("", 0, rcode), 0) + n
    return out
