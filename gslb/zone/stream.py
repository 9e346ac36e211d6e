"""A zone file's top-level names one at a time, straight from libyaml's events.

Why: composing the whole document first (libyaml's nodes, then our located tree) makes a
transient copy of a large zone many times the size of the zone that is kept; the records built
meanwhile land scattered over that heap, and most of it stays mapped after it is freed (about
7 KB per name at 100,000 names). Reading events, only one name's values exist at a time, so
the model is allocated compactly and the peak is barely above what is kept.

The values are what `gslb.conf.located.load_collecting` builds (Located / LocatedList with
the same lines, scalars resolved and constructed by the same SafeLoader rules, the first of
duplicate keys kept and the duplicates returned). YAML features this reader leaves to the full
loader (anchors, aliases, explicit tags, merge keys, a root that is not a mapping, several
documents) raise `NotLean`, and so does a syntax error, which the full loader words: the caller
then starts again with the full loader.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from gslb.conf.located import DuplicateKey, Located, LocatedList

_STR = "tag:yaml.org,2002:str"
_MERGE = "tag:yaml.org,2002:merge"
_Scalar, _MapStart, _MapEnd = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.MappingEndEvent
_SeqStart, _SeqEnd = yaml.SequenceStartEvent, yaml.SequenceEndEvent
_MAX_TAGS = 100_000


class NotLean(Exception):
    """The text needs the full loader (see the module docstring)."""


class _Reader:
    """libyaml's parser (no composer) and the scalar resolution the loaders use, memoised."""

    def __init__(self, text: str) -> None:
        if not getattr(yaml, "__with_libyaml__", False):
            raise NotLean("PyYAML without libyaml")
        self.parser = yaml.CSafeLoader(text)
        self.resolver = yaml.resolver.Resolver()
        self.constructor = yaml.constructor.SafeConstructor()
        self.tags: dict[str, str] = {}
        self.values: dict[tuple[str, str], Any] = {}
        self.duplicates: list[DuplicateKey] = []
        self.next: Any = self.parser.get_event  # raises yaml.YAMLError: `names` makes it NotLean

    def scalar(self, ev: Any) -> Any:
        if ev.anchor is not None or (ev.tag is not None and ev.tag != "!"):
            raise NotLean("anchor or explicit tag")
        if not ev.implicit[0]:  # quoted (or a block scalar): a string
            return ev.value
        value = ev.value
        tag = self.tags.get(value)
        if tag is None:
            tag = self.resolver.resolve(yaml.ScalarNode, value, ev.implicit)
            if len(self.tags) < _MAX_TAGS:
                self.tags[value] = tag
        if tag == _STR:
            return value
        if tag == _MERGE:
            raise NotLean("merge key")
        key = (tag, value)
        try:
            return self.values[key]
        except KeyError:
            pass
        out = self.constructor.construct_object(yaml.ScalarNode(tag, value, ev.start_mark, ev.end_mark), deep=True)
        self.constructor.constructed_objects.clear()
        self.values[key] = out
        return out

    def value(self, ev: Any) -> Any:
        kind = type(ev)
        if kind is _Scalar:
            return self.scalar(ev)
        if ev.__class__ is not _MapStart and kind is not _SeqStart:
            raise NotLean("alias")
        if ev.anchor is not None or (ev.tag is not None and ev.tag != "!"):
            raise NotLean("anchor or explicit tag")
        if kind is _SeqStart:
            return self.sequence(ev)
        return self.mapping(ev)

    def sequence(self, start: Any) -> LocatedList:
        items, lines = [], []
        ev = self.next()
        while type(ev) is not _SeqEnd:
            lines.append(ev.start_mark.line + 1)
            items.append(self.value(ev))
            ev = self.next()
        out = LocatedList(items)
        out.line = start.start_mark.line + 1
        out.item_lines = lines
        return out

    def mapping(self, start: Any) -> Located:
        out = Located()
        out.line = start.start_mark.line + 1
        key_lines: dict[Any, int] = {}
        out.key_lines = key_lines
        for key, _at, value in self.pairs(key_lines):
            out[key] = value
        return out

    def pairs(self, seen: dict[Any, int]) -> Iterator[tuple[Any, int, Any]]:
        """A mapping's (key, line, value) up to its end, the first of duplicate keys kept (`seen`
        gets each key's line) and the others reported in `duplicates`."""
        ev = self.next()
        while type(ev) is not _MapEnd:
            key, line = self.key(ev)
            value = self.value(self.next())
            first = seen.get(key)
            if first is not None:
                self.duplicates.append(DuplicateKey(key, line, first))
            else:
                seen[key] = line
                yield key, line, value
            ev = self.next()

    def key(self, ev: Any) -> tuple[Any, int]:
        if type(ev) is not _Scalar:
            raise NotLean("a key that is not a scalar")
        key = self.scalar(ev)
        return ("" if key is None else key), _line(ev)  # `:` or `~:` is the apex ''


def _line(ev: Any) -> int:
    return int(ev.start_mark.line) + 1


def names(text: str) -> tuple[Iterator[tuple[Any, int, Any]], list[DuplicateKey], int]:
    """(an iterator of (key, line, value) for each top-level key, duplicates (filled as it
    goes), the root mapping's line). Raises `NotLean`, also while iterating."""
    reader = _Reader(text)
    try:
        for expected in (yaml.StreamStartEvent, yaml.DocumentStartEvent):
            if type(reader.next()) is not expected:
                raise NotLean("no document")
        root = reader.next()
    except yaml.YAMLError:
        raise NotLean("syntax") from None
    if type(root) is not _MapStart or root.anchor is not None or (root.tag is not None and root.tag != "!"):
        raise NotLean("the root is not a plain mapping")

    def entries() -> Iterator[tuple[Any, int, Any]]:
        try:
            yield from _entries(reader)
        except yaml.YAMLError:
            raise NotLean("syntax") from None

    return entries(), reader.duplicates, _line(root)


def _entries(reader: _Reader) -> Iterator[tuple[Any, int, Any]]:
    """The top-level entries, the first of duplicate keys kept."""
    yield from reader.pairs({})
    if type(reader.next()) is not yaml.DocumentEndEvent or type(reader.next()) is not yaml.StreamEndEvent:
        raise NotLean("more than one document")
