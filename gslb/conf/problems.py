"""A problem found in a zone or config file, reported as `file:line: field: message`."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


@dataclass(frozen=True, order=True)
class Problem:
    file: str
    line: int
    field: str
    message: str
    severity: str = "error"  # "error" rejects the file; "warning" is reported and served
    column: int = 0  # 1-based, where known (YAML syntax errors): file:line:col

    def __str__(self) -> str:
        tag = "" if self.severity == "error" else "warning: "
        where = f"{self.file}:{self.line}" + (f":{self.column}" if self.column else "")
        return f"{where}: {self.field}: {tag}{self.message}"


class ConfigError(Exception):
    """Raised, with every problem found, by every config and zone file that cannot be used."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def load_or_exit(load: Callable[..., T], *args: Any) -> T:
    """For commands: load a file, or print every problem and exit with status 1."""
    try:
        return load(*args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None
