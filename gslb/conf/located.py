"""YAML that remembers where each value came from, so every problem can name file:line."""

from __future__ import annotations

from typing import Any

import yaml


class Located(dict):
    """A mapping whose `line_of(key)` says where the key was written (1-based)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.line = 0
        self.key_lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LocatedList(list):
    """A sequence whose `line_of(index)` says where each item was written (1-based)."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.line = 0
        self.item_lines: list[int] = []

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if 0 <= index < len(self.item_lines) else self.line


class DuplicateKey(yaml.YAMLError):
    """A key given twice in one mapping; YAML would silently keep the last, we report it."""

    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r} (first at line {first})")
        self.key, self.line, self.first = key, line, first


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps line numbers and collects duplicate keys (keeping the first)."""

    duplicates: list[DuplicateKey]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Located:  # noqa: ARG002
        self.flatten_mapping(node)
        out = Located()
        out.line = node.start_mark.line + 1
        out.key_lines = {}
        for key_node, value_node in node.value:
            key = self.construct_object(key_node, deep=True)
            if key is None:  # `:` or `~:` → treat as the apex spelling ''
                key = ""
            try:
                hash(key)
            except TypeError as exc:
                raise yaml.constructor.ConstructorError(
                    None, None, f"unhashable key at line {key_node.start_mark.line + 1}",
                    key_node.start_mark) from exc
            line = key_node.start_mark.line + 1
            if key in out:
                self.duplicates.append(DuplicateKey(key, line, out.key_lines[key]))
                continue
            out[key] = self.construct_object(value_node, deep=True)
            out.key_lines[key] = line
        return out

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> LocatedList:  # noqa: ARG002
        out = LocatedList(self.construct_object(child, deep=True) for child in node.value)
        out.line = node.start_mark.line + 1
        out.item_lines = [child.start_mark.line + 1 for child in node.value]
        return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _Loader.construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _Loader.construct_sequence)


def load(text: str) -> Any:
    """Parse one YAML document with line information; raises yaml.YAMLError (duplicates too)."""
    doc, duplicates = load_collecting(text)
    if duplicates:
        raise duplicates[0]
    return doc


def load_collecting(text: str) -> tuple[Any, list[DuplicateKey]]:
    """Parse one document; duplicate keys are returned (the first value kept), not raised."""
    loader = _Loader(text)
    loader.duplicates = []
    try:
        return loader.get_single_data(), loader.duplicates
    finally:
        loader.dispose()


def error_line(exc: yaml.YAMLError) -> int:
    """Best line number for a YAML error."""
    if isinstance(exc, DuplicateKey):
        return exc.line
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return mark.line + 1 if mark is not None else 1


def load_file(path: str, what: str) -> Any:
    """Read and parse a config file; ConfigError (file:line) when it cannot be read or parsed."""
    from pathlib import Path

    from gslb.conf.problems import ConfigError, Problem

    try:
        return load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError([Problem(path, 1, what, f"cannot read: {exc.strerror}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem(path, error_line(exc), "yaml", str(exc))]) from None
