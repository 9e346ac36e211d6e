"""One problem collector for every config file: zones, gslb.yaml, BGP sites, dataplane, regions.

Parsing a file means calling small typed readers on located YAML (`gslb.conf.located`). A reader
that finds a bad value records a `Problem` with the file, line and field, and returns a fallback,
so parsing goes on and the operator sees every problem of the file at once (`raise_if_any`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

from gslb.conf import located
from gslb.conf.listen import ListenError, parse_listen
from gslb.conf.problems import ConfigError, Problem
from gslb.conf.store_url import StoreUrlError, store_scheme

T = TypeVar("T")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_MISSING = object()


def line_of(doc: Any, key: Any, default: int) -> int:
    """Where `key` of a located mapping or list was written, else `default`."""
    if isinstance(doc, located.Located | located.LocatedList):
        return doc.line_of(key)
    return default


def field_name(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


class Problems:
    """Collects every problem of one file; the readers below report and fall back."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.items: list[Problem] = []

    def add(self, line: int, where: str, message: str, severity: str = "error") -> None:
        self.items.append(Problem(self.path, line, where, message, severity))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    def raise_if_any(self) -> None:
        """ConfigError with every problem, if any of them is an error."""
        if self.errors:
            raise ConfigError(self.items)

    # -- structure ------------------------------------------------------------------------

    def mapping(self, doc: Any, where: str, line: int, what: str = "a mapping") -> dict:
        """`doc` if it is a mapping, else a problem and an empty one."""
        if isinstance(doc, dict):
            return doc
        self.add(getattr(doc, "line", line) or line, where, f"expected {what}")
        return located.Located()

    def keys(self, doc: dict, allowed: Iterable[str], where: str, line: int) -> None:
        """Every key not in `allowed` is a problem naming the ones that are."""
        allowed = tuple(allowed)
        for key in doc:
            if key not in allowed:
                self.add(line_of(doc, key, line), field_name(where, key),
                         f"unknown key (one of {', '.join(allowed)})")

    def entries(self, doc: dict, key: str, line: int, what: str) -> list[tuple[int, Any, int]]:
        """A required, non-empty list: its (index, item, line) triples, or a problem and none."""
        items = doc.get(key)
        if not isinstance(items, located.LocatedList) or not items:
            self.add(line_of(doc, key, line), key, what)
            return []
        return [(i, item, items.line_of(i)) for i, item in enumerate(items)]

    # -- values ---------------------------------------------------------------------------

    def number(self, doc: dict, key: str, where: str, line: int, lo: float, hi: float, default: T,
               integer: bool = False, unit: str = "") -> float | T:
        """A number in [lo, hi] (an integer if `integer`); absent gives `default`."""
        if key not in doc:
            return default
        v = doc[key]
        numeric = isinstance(v, int) if integer else isinstance(v, int | float)
        if isinstance(v, bool) or not numeric or not lo <= v <= hi:
            what = "an integer" if integer else "a number"
            self.add(line_of(doc, key, line), field_name(where, key), f"{what} {lo:g}..{hi:g}{unit}, not {v!r}")
            return default
        return v

    def integer(self, doc: dict, key: str, where: str, line: int, lo: int, hi: int, default: T,
                unit: str = "") -> int | T:
        value = self.number(doc, key, where, line, lo, hi, default, integer=True, unit=unit)
        return value if value is default else int(value)  # type: ignore[arg-type]  # value is a number here

    def seconds(self, doc: dict, key: str, where: str, line: int, lo: float, hi: float, default: float) -> float:
        return float(self.number(doc, key, where, line, lo, hi, default, unit=" seconds"))

    def boolean(self, doc: dict, key: str, where: str, line: int, default: bool) -> bool:
        v = doc.get(key, default)
        if not isinstance(v, bool):
            self.add(line_of(doc, key, line), field_name(where, key), f"true or false, not {v!r}")
            return default
        return v

    def string(self, doc: dict, key: str, where: str, line: int, default: Any = _MISSING,
               what: str = "a string") -> str | None:
        """A non-empty string; absent gives `default` (a problem if there is none: required)."""
        if key not in doc or doc[key] is None:
            if default is _MISSING:
                self.add(line, field_name(where, key), f"required: {what}")
                return None
            return default
        v = doc[key]
        if not isinstance(v, str) or not v:
            self.add(line_of(doc, key, line), field_name(where, key), f"{what}, not {v!r}")
            return None if default is _MISSING else default
        return v

    def one_of(self, doc: dict, key: str, where: str, line: int, choices: Sequence[T], default: T) -> T:
        v = doc.get(key, default)
        if isinstance(v, str):
            v = v.lower()
        if v not in choices:
            self.add(line_of(doc, key, line), field_name(where, key),
                     f"{' or '.join(str(c) for c in choices)}, not {doc.get(key)!r}")
            return default
        return v

    def address(self, doc: dict, key: str, where: str, line: int, version: int | None = None,
                required: bool = True) -> Address | None:
        if key not in doc and not required:
            return None
        try:
            ip = ipaddress.ip_address(str(doc.get(key)))
        except ValueError:
            self.add(line_of(doc, key, line), field_name(where, key), f"{doc.get(key)!r} is not an IP address")
            return None
        if version is not None and ip.version != version:
            self.add(line_of(doc, key, line), field_name(where, key), f"an IPv{version} address, not {ip}")
            return None
        return ip

    def networks(self, doc: dict, key: str, where: str, line: int) -> tuple[Network, ...]:
        """A prefix or a list of them (host bits allowed, as in ACLs)."""
        value = doc.get(key) or []
        items = value if isinstance(value, list) else [value]
        nets = []
        for i, item in enumerate(items):
            try:
                nets.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError:
                self.add(line_of(value, i, line_of(doc, key, line)), field_name(where, key),
                         f"{item!r} is not an address or prefix")
        return tuple(nets)

    def listen(self, doc: dict, key: str, where: str, line: int, default: str) -> str:
        """`ADDR:PORT` (IPv6 as `[ADDR]:PORT`)."""
        text = str(doc.get(key, default))
        try:
            parse_listen(text)
        except ListenError as exc:
            self.add(line_of(doc, key, line), field_name(where, key), str(exc))
            return default
        return text

    def store_url(self, doc: dict, key: str, where: str, line: int) -> str | None:
        v = doc.get(key)
        if v is None:
            return None
        try:
            if not isinstance(v, str):
                raise StoreUrlError(f"a store URL, not {v!r}")
            store_scheme(v)
        except StoreUrlError as exc:
            self.add(line_of(doc, key, line), field_name(where, key), str(exc))
            return None
        return v
