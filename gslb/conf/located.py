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
    """SafeLoader that keeps line numbers and collects duplicate keys (keeping the first).

    The pure-Python reference; `load_collecting` uses the libyaml path below when PyYAML has it."""

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

_STR = "tag:yaml.org,2002:str"
_MAP = yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG
_SEQ = yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG
_MERGE = "tag:yaml.org,2002:merge"
_ScalarNode, _MappingNode = yaml.ScalarNode, yaml.MappingNode


if getattr(yaml, "__with_libyaml__", False):
    class _CLoader(yaml.CSafeLoader):
        """libyaml scans, parses and composes; plain scalars' tags are memoised (most repeat)."""

        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            self._tags: dict[str, str] = {}

        def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
            """BaseResolver.resolve without path resolvers (none are registered), memoised."""
            if kind is _ScalarNode:
                if not implicit[0]:
                    return _STR
                tag = self._tags.get(value)
                if tag is None:
                    tag = yaml.resolver.BaseResolver.resolve(self, kind, value, implicit)
                    if len(self._tags) < 100_000:
                        self._tags[value] = tag
                return tag
            return _MAP if kind is _MappingNode else _SEQ

        def descend_resolver(self, current_node: Any, current_index: Any) -> None:
            pass

        def ascend_resolver(self) -> None:
            pass


else:  # pragma: no cover - PyYAML without libyaml
    _CLoader = None  # type: ignore[misc,assignment]  # conditional class: None without libyaml


class _Builder:
    """Nodes → Located/LocatedList/scalars in one lean pass; the SafeConstructor only for
    non-string scalars (int, bool, null, float, timestamps) and merge keys."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.duplicates: list[DuplicateKey] = []
        self.scalars: dict[tuple[str, str], Any] = {}

    def scalar(self, node: Any) -> Any:
        tag = node.tag
        if tag == _STR:
            return node.value
        key = (tag, node.value)
        try:
            return self.scalars[key]
        except KeyError:
            pass
        value = self.loader.construct_object(node, deep=True)
        self.scalars[key] = value
        return value

    def build(self, node: Any) -> Any:
        if type(node) is _ScalarNode:
            return self.scalar(node)
        tag = node.tag
        if tag == _MAP:
            return self.mapping(node)
        if tag == _SEQ:
            out = LocatedList([self.build(child) for child in node.value])
            out.line = node.start_mark.line + 1
            out.item_lines = [child.start_mark.line + 1 for child in node.value]
            return out
        return self.loader.construct_object(node, deep=True)  # explicit tags: the constructor decides

    def mapping(self, node: Any) -> Located:
        pairs = node.value
        if any(k.tag == _MERGE for k, _ in pairs):
            self.loader.flatten_mapping(node)
            pairs = node.value
        out = Located()
        out.line = node.start_mark.line + 1
        key_lines: dict[Any, int] = {}
        out.key_lines = key_lines
        build = self.build
        for key_node, value_node in pairs:
            if type(key_node) is _ScalarNode:
                key = key_node.value if key_node.tag == _STR else self.scalar(key_node)
            else:
                key = build(key_node)
            if key is None:  # `:` or `~:` → treat as the apex spelling ''
                key = ""
            line = key_node.start_mark.line + 1
            try:
                first = key_lines.get(key)
            except TypeError as exc:
                raise yaml.constructor.ConstructorError(
                    None, None, f"unhashable key at line {line}", key_node.start_mark) from exc
            if first is not None:
                self.duplicates.append(DuplicateKey(key, line, first))
                continue
            value = value_node.value if type(value_node) is _ScalarNode and value_node.tag == _STR \
                else build(value_node)
            out[key] = value
            key_lines[key] = line
        return out


def load(text: str) -> Any:
    """Parse one YAML document with line information; raises yaml.YAMLError (duplicates too)."""
    doc, duplicates = load_collecting(text)
    if duplicates:
        raise duplicates[0]
    return doc


def load_collecting(text: str) -> tuple[Any, list[DuplicateKey]]:
    """Parse one document; duplicate keys are returned (the first value kept), not raised.

    With libyaml: C composition, then one Python pass over the nodes (the cyclic collector is
    paused meanwhile: it would otherwise rescan the growing tree again and again)."""
    if _CLoader is None:
        return load_collecting_pure(text)
    import gc

    enabled = gc.isenabled()
    gc.disable()
    loader = _CLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, []
        builder = _Builder(loader)
        return builder.build(node), builder.duplicates
    except (yaml.YAMLError, RecursionError):
        pass  # a broken file: the pure-Python parser words the error (its messages, its marks)
    finally:
        loader.dispose()
        if enabled:
            gc.enable()
    return load_collecting_pure(text)


def load_collecting_pure(text: str) -> tuple[Any, list[DuplicateKey]]:
    """The pure-Python reference loader (same results, slower)."""
    loader = _Loader(text)
    loader.duplicates = []
    try:
        return loader.get_single_data(), loader.duplicates
    except yaml.MarkedYAMLError as exc:
        raise YamlSyntaxError(exc, text) from None
    finally:
        loader.dispose()


class YamlSyntaxError(yaml.MarkedYAMLError):
    """PyYAML's error, readable on one line: the message, the column and the offending line (not
    `in "<unicode string>", line 7, column 9:` and a caret on lines of their own). The marks
    stay, so `error_line` and `format_yaml_error` work on it as on PyYAML's own."""

    def __init__(self, exc: yaml.MarkedYAMLError, text: str) -> None:
        super().__init__(exc.context, exc.context_mark, exc.problem, exc.problem_mark, exc.note)
        self.text = text

    def __str__(self) -> str:
        mark = self.problem_mark
        lines = self.text.splitlines()
        if mark is None or not (0 <= mark.line < len(lines) and lines[mark.line].strip()):
            return _message(self)  # at the end of the file: the message says where it started
        return f"{_message(self)} (column {mark.column + 1}: {lines[mark.line].strip()!r})"


def _message(exc: yaml.YAMLError) -> str:
    if not isinstance(exc, yaml.MarkedYAMLError):
        return str(exc)
    problem = exc.problem or "not valid YAML"
    context, mark = exc.context, exc.context_mark
    if context and mark is not None and (exc.problem_mark is None or mark.line != exc.problem_mark.line):
        problem += f" ({context} started at line {mark.line + 1}, column {mark.column + 1})"
    elif context:
        problem = f"{problem} ({context})"
    return problem + (f"; {exc.note}" if exc.note else "")


def _excerpt(exc: yaml.YAMLError, text: str) -> tuple[int, int, str, int]:
    """(line, column) of the error, both 1-based, and the source line to show with the caret's
    column (0-based): where the problem is, or where the unclosed construct began when the
    problem is the end of the file."""
    if isinstance(exc, DuplicateKey):
        lines = text.splitlines()
        source = lines[exc.line - 1] if 0 < exc.line <= len(lines) else ""
        return exc.line, len(source) - len(source.lstrip()) + 1, source, len(source) - len(source.lstrip())
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is None:
        return 1, 1, "", 0
    lines = text.splitlines()
    shown = mark
    context = getattr(exc, "context_mark", None)
    if not (0 <= mark.line < len(lines) and lines[mark.line].strip()) and context is not None:
        shown = context
    source = lines[shown.line] if 0 <= shown.line < len(lines) else ""
    return mark.line + 1, mark.column + 1, source, shown.column


def format_yaml_error(path: str, text: str, exc: yaml.YAMLError) -> str:
    """`path:line:col: message`, then the offending line and a caret under the column."""
    line, column, source, caret = _excerpt(exc, text)
    out = f"{path}:{line}:{column}: {_message(exc)}"
    if source.strip():
        shown = source.expandtabs(1)
        out += f"\n    {shown}\n    {' ' * min(caret, len(shown))}^"
    return out


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

    text = ""
    try:
        text = Path(path).read_text()
        return load(text)
    except OSError as exc:
        raise ConfigError([Problem(path, 1, what, f"cannot read: {exc.strerror}")]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([yaml_problem(path, text, exc)]) from None


def yaml_problem(path: str, text: str, exc: yaml.YAMLError, field: str = "yaml"):
    """The Problem for a YAML error: printed as `path:line:col: field: message` and the
    offending line with a caret (see `format_yaml_error`)."""
    from gslb.conf.problems import Problem

    line, column, _source, _caret = _excerpt(exc, text)
    detail = format_yaml_error(path, text, exc).split("\n", 1)
    return Problem(path, line, field, _message(exc) + ("\n" + detail[1] if len(detail) > 1 else ""), column=column)
