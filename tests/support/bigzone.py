"""Generated large octoDNS zones (A/AAAA/MX/TXT/CNAME) for the scale test and bench/zone_scale."""

from __future__ import annotations

import os


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
    lines = ["---", "'':", "  - type: NS", "    values: [ns1.example.net., ns2.example.net.]",
             "  - type: A", "    value: 192.0.2.1"]
    for i in range(names):
        lines.append(f"{host(i)}:")
        for rtype, ttl, values in records(i):
            if edit == i and rtype == "A":
                values = ["203.0.113.77"]
            lines.append(f"  - type: {rtype}")
            if ttl != 300:
                lines.append(f"    ttl: {ttl}")
            if len(values) == 1:
                lines.append(f"    value: {_value(rtype, values[0])}")
            else:
                lines.append("    values:")
                lines.extend(f"      - {_value(rtype, v)}" for v in values)
    return "\n".join(lines) + "\n"


def write(directory: str, names: int, edit: int | None = None, zone: str = "example.com") -> str:
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{zone}.yaml")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(yaml_text(names, edit))
    os.replace(tmp, path)
    return path
