"""Generated large octoDNS zones (A/AAAA/MX/TXT/CNAME) for the scale test and bench/zone_scale."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator


def host(i: int) -> str:
    return f"h{i}"


def records(i: int) -> list[tuple[str, int, list[str]]]:
    """The (type, ttl, values) of name i: every 10th a CNAME, the rest A (+AAAA, +TXT, +MX)."""
    if i % 10 == 9:
        return [("CNAME", 300, [f"{host(i - 1)}.example.com."])]
    out = [("A", 300, [f"192.0.2.{i % 250 + 1}"] + ([f"198.51.100.{i % 200 + 1}"] if i % 3 == 0 else []))]
    if i % 2 == 0:
        out.append(("AAAA", 300, [f"2001:db8::{i >> 16:x}:{i & 0xffff:x}"]))
    if i % 4 == 1:
        out.append(("TXT", 600, [f"v=spf1 ip4:192.0.2.{i % 250 + 1} -all", f"id {i}"]))
    if i % 5 == 2:
        out.append(("MX", 3600, [f"10 mx{i % 7}.example.net."]))
    return out


def _value(rtype: str, value: str) -> str:
    if rtype == "MX":
        pref, exchange = value.split()
        return f"{{preference: {pref}, exchange: {exchange}}}"
    if rtype == "TXT":
        return '"' + value + '"'
    return value


def yaml_text(names: int, edit: int | None = None) -> str:
    """The zone as octoDNS YAML; `edit` changes name `edit`'s A record to 203.0.113.77."""
    return "".join(yaml_lines(names, edit))


def write(directory: str, names: int, edit: int | None = None, zone: str = "example.com") -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{zone}.yaml")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(yaml_text(names, edit))
    os.replace(tmp, path)
    return path


# Streaming writers: the zone's YAML, and the same records as an RFC 1035 zone file, produced
# line by line so that a million names never sit in memory as one string.

EDIT_ADDRESS = "203.0.113.77"


def yaml_lines(names: int, edit: int | None = None) -> Iterator[str]:
    """The zone's YAML (see yaml_text), newline included, one name at a time."""
    yield ("---\n'':\n  - type: NS\n    values: [ns1.example.net., ns2.example.net.]\n"
           "  - type: A\n    value: 192.0.2.1\n")
    for i in range(names):
        out = [f"{host(i)}:\n"]
        for rtype, ttl, values in records(i):
            if edit == i and rtype == "A":
                values = [EDIT_ADDRESS]
            out.append(f"  - type: {rtype}\n")
            if ttl != 300:
                out.append(f"    ttl: {ttl}\n")
            if len(values) == 1:
                out.append(f"    value: {_value(rtype, values[0])}\n")
            else:
                out.append("    values:\n")
                out.extend(f"      - {_value(rtype, v)}\n" for v in values)
        yield "".join(out)


def zone_file_lines(names: int, serial: int = 1, edit: int | None = None,
                    origin: str = "example.com.") -> Iterator[str]:
    """The same records (SOA as gslb makes it, NS, apex A) as an RFC 1035 zone file for the peers."""
    yield (f"$ORIGIN {origin}\n$TTL 3600\n"
           f"@ 3600 IN SOA ns1.example.net. hostmaster.{origin} {serial} 3600 600 604800 300\n"
           "@ 3600 IN NS ns1.example.net.\n@ 3600 IN NS ns2.example.net.\n@ 3600 IN A 192.0.2.1\n")
    for i in range(names):
        name = host(i)
        out = []
        for rtype, ttl, values in records(i):
            if edit == i and rtype == "A":
                values = [EDIT_ADDRESS]
            if rtype == "TXT":
                out.extend(f'{name} {ttl} IN TXT "{v}"\n' for v in values)
            else:
                out.extend(f"{name} {ttl} IN {rtype} {v}\n" for v in values)
        yield "".join(out)


def stream_to(path: str, lines: Iterable[str]) -> str:
    """Write `lines` to `path` through a temporary file and a rename (a reader never sees half)."""
    tmp = path + ".tmp"
    with open(tmp, "w", buffering=1 << 20) as f:
        f.writelines(lines)
    os.replace(tmp, path)
    return path


def write_streamed(directory: str, names: int, edit: int | None = None, zone: str = "example.com") -> str:
    """What write() makes, streamed: the same file, without the whole zone as one string."""
    os.makedirs(directory, exist_ok=True)
    return stream_to(os.path.join(directory, f"{zone}.yaml"), yaml_lines(names, edit))
