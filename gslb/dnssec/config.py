"""The per-zone `dnssec:` settings of gslb.yaml (under `zones: {NAME: …}` or `defaults:`).

    zones:
      gslb.example.com:
        dnssec:
          algorithm: 13            # 13 ECDSAP256SHA256 (default) or 15 ED25519
          scheme: csk              # csk (one combined key, default) or ksk+zsk
          keys_dir: keys           # relative to gslb.yaml; holds K<zone>+<alg>+<tag>.key/.private
          signature_validity: 14d  # RRSIG expiration - inception
          inception_backdate: 1h   # RRSIG inception set this far in the past (clock skew)
          refresh_margin: 7d       # re-sign when a signature has less than this left
          dnskey_ttl: 1h           # TTL of DNSKEY, CDS and CDNSKEY
          propagation_delay: 5m    # rollover margin for every node to serve a change
          parent_ds_ttl: 1d        # rollover: how long the parent's old DS may stay cached

`dnssec: true` signs with every default; `dnssec: false` (or no key) leaves the zone unsigned.
Durations are seconds or a number with s/m/h/d/w.

What others default to, for comparison (their documentation; check the version you run):
Knot DNS signs with ECDSAP256SHA256 and a single KSK/ZSK pair by default, RRSIG lifetime 14 days,
DNSKEY TTL from the zone's SOA TTL; PowerDNS makes signatures valid for three weeks with the
inception set to the previous Thursday (so up to a week of backdating), refreshed weekly, and
signs with ECDSAP256SHA256 by default. BIND's dnssec-policy default is a CSK of
ECDSAP256SHA256, signature validity 14 days, refresh 5 days, DNSKEY TTL 1 hour, inception one hour back.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from typing import Any

from gslb.conf import located
from gslb.conf.problems import Problem

MAX_TTL = 2**31 - 1
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class DnssecConfig:
    algorithm: int = 13
    scheme: str = "csk"  # "csk" or "ksk+zsk"
    keys_dir: str = "keys"
    signature_validity: int = 14 * 86400
    inception_backdate: int = 3600
    refresh_margin: int = 7 * 86400
    dnskey_ttl: int = 3600
    propagation_delay: int = 300
    parent_ds_ttl: int = 86400


_DURATIONS = ("signature_validity", "inception_backdate", "refresh_margin", "dnskey_ttl", "propagation_delay",
              "parent_ds_ttl")
KEYS = ("algorithm", "scheme", "keys_dir", *_DURATIONS)


def duration(value: Any) -> int | None:
    """Seconds from an int or '14d'/'1h'/'90m'/'3600'; None when it is not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        m = re.fullmatch(r"\s*(\d+)\s*([smhdw]?)\s*", value.lower())
        if m:
            return int(m.group(1)) * _UNITS.get(m.group(2) or "s", 1)
    return None


def parse_dnssec(value: Any, base: DnssecConfig | None, where: str, path: str, line: int,
                 problems: list[Problem]) -> DnssecConfig | None:
    """The `dnssec:` value of one zone (or `defaults`) → DnssecConfig, or None for unsigned.

    `base` is what the zone inherits (the defaults' setting); problems are appended, never
    raised. A relative `keys_dir` is taken relative to the config file's folder."""
    if value is False or value is None:
        return None
    if value is True:
        out = base or DnssecConfig()
        return _absolute_keys_dir(out, path)
    if not isinstance(value, dict):
        problems.append(Problem(path, line, where, "expected true, false or a mapping of DNSSEC settings"))
        return base
    out = base or DnssecConfig()
    for key, val in value.items():
        kline = value.line_of(key) if isinstance(value, located.Located) else line
        out, error = _setting(out, str(key), val)
        if error:
            problems.append(Problem(path, kline, f"{where}.{key}", error))
    if out.refresh_margin >= out.signature_validity:
        problems.append(Problem(path, line, f"{where}.refresh_margin",
                                "must be shorter than signature_validity (signatures would be re-made at once)"))
    if out.signature_validity < 3600:
        problems.append(Problem(path, line, f"{where}.signature_validity", "must be at least 1h"))
    return _absolute_keys_dir(out, path)


def _setting(out: DnssecConfig, key: str, val: Any) -> tuple[DnssecConfig, str | None]:
    """One `dnssec:` key applied to `out`, or `out` unchanged and what is wrong with it."""
    from gslb.dnssec.keys import parse_algorithm

    if key == "algorithm":
        try:
            return replace(out, algorithm=parse_algorithm(val)), None
        except ValueError as exc:
            return out, str(exc)
    if key == "scheme":
        text = str(val).lower().replace(" ", "")
        if text in ("csk", "combined"):
            return replace(out, scheme="csk"), None
        if text in ("ksk+zsk", "kskzsk", "split"):
            return replace(out, scheme="ksk+zsk"), None
        return out, f"expected csk or ksk+zsk, got {val!r}"
    if key == "keys_dir":
        if not isinstance(val, str) or not val:
            return out, "expected a folder path"
        return replace(out, keys_dir=val), None
    if key in _DURATIONS:
        secs = duration(val)
        if secs is None or secs > MAX_TTL:
            return out, f"expected a duration (seconds, or 1h/14d…), got {val!r}"
        changes: dict[str, Any] = {key: secs}  # key is one of the int _DURATIONS fields
        return replace(out, **changes), None
    return out, f"unknown DNSSEC setting (one of {', '.join(KEYS)})"


def _absolute_keys_dir(cfg: DnssecConfig, path: str) -> DnssecConfig:
    if os.path.isabs(cfg.keys_dir) or not path:
        return cfg
    return replace(cfg, keys_dir=os.path.join(os.path.dirname(os.path.abspath(path)), cfg.keys_dir))
