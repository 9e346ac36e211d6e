"""The `gslb.yaml` keys for running on the open internet: `cookies:`, `rrl:`, `query_limits:`, `tcp:`.

`parse(doc, path)` reads them from the top-level located mapping and returns an `AbuseConfig` and
the problems found (every bad value, range-checked, with its line). `install(responder, cfg)` puts
the configured cookies on a worker's Responder and keeps the config beside it for the UDP loops
(`udp_guard`) and the TCP server.

    cookies:                       # on by default (like BIND), with a random per-node secret
      secret: 00112233445566778899aabbccddeeff   # 16 octets hex; the same on every anycast node
      previous_secret: ...         # still accepted until previous_valid_until (rotation)
      previous_valid_until: 2026-12-02T00:00:00Z # or epoch seconds
      badcookie: true              # UDP query with a bad server cookie → BADCOOKIE + fresh cookie
    rrl:                           # off by default (like Knot and BIND)
      rate: 20                     # responses/s per prefix and name/type
      nxdomain_rate / nodata_rate / referral_rate / error_rate: N   # default: rate
      window: 1                    # 1: Knot; BIND uses 15
      slip: 2                      # 0 drops all, 1 slips all, N: every Nth limited is TC=1
      ipv4_prefix: 24
      ipv6_prefix: 56
      exempt: [192.0.2.0/24]
      log_only: false
      table_size: 65536
    query_limits:                  # off by default
      prefix_rate: 0               # queries/s per prefix (ipv4_prefix/ipv6_prefix as above)
      asn_rate: 0                  # queries/s per AS number (needs asndb)
      asns: {64500: 1000}          # per-ASN caps
      action: refuse               # or drop
      exempt: []
    tcp:
      max_connections: 1024        # per worker (also the top-level tcp_max_connections)
      per_client: 16               # connections from one address
      idle_timeout: 10             # seconds waiting for a message (also tcp_idle_timeout)
      message_timeout: 5           # seconds to receive a whole message once it starts (slowloris)
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any

from gslb.conf import located
from gslb.conf.collect import Problems, line_of
from gslb.conf.problems import Problem
from gslb.server import cookies as cookies_mod
from gslb.server.rrl import CLASS_NAMES, Limiter, QueryLimitConfig, QueryLimiter, RrlConfig, asn_lookup, guard

log = logging.getLogger(__name__)

KEYS = ("cookies", "rrl", "query_limits", "tcp")


@dataclass(frozen=True)
class CookieConfig:
    enabled: bool = True
    secret: bytes | None = None  # None: the per-node random secret (a warning at start)
    previous_secret: bytes | None = None
    previous_valid_until: float = 0.0  # wall-clock seconds
    badcookie: bool = True


@dataclass(frozen=True)
class TcpLimits:
    max_connections: int | None = None  # None: the top-level tcp_max_connections
    per_client: int = 16
    idle_timeout: float | None = None  # None: the top-level tcp_idle_timeout
    message_timeout: float = 5.0


@dataclass(frozen=True)
class AbuseConfig:
    cookies: CookieConfig = field(default_factory=CookieConfig)
    rrl: RrlConfig = field(default_factory=RrlConfig)
    query_limits: QueryLimitConfig = field(default_factory=QueryLimitConfig)
    tcp: TcpLimits = field(default_factory=TcpLimits)



_RATE_MAX = 10_000_000
_RRL_RANGES = {"rate": (1, _RATE_MAX), "nxdomain_rate": (1, _RATE_MAX), "nodata_rate": (1, _RATE_MAX),
               "referral_rate": (1, _RATE_MAX), "error_rate": (1, _RATE_MAX), "window": (1, 3600),
               "slip": (0, 10), "ipv4_prefix": (8, 32), "ipv6_prefix": (16, 128), "table_size": (1, 1 << 24)}
_QUERY_LIMIT_RANGES = {"prefix_rate": (0, _RATE_MAX), "asn_rate": (0, _RATE_MAX), "ipv4_prefix": (8, 32),
                       "ipv6_prefix": (16, 128), "table_size": (1, 1 << 24)}


def _integers(out: Problems, sec: dict, where: str, line: int, ranges: dict[str, tuple[int, int]],
              defaults: Any) -> dict[str, int]:
    """Every range-checked integer key of a section that is present (a bad one keeps its default)."""
    return {key: out.integer(sec, key, where, line, lo, hi, getattr(defaults, key))
            for key, (lo, hi) in ranges.items() if key in sec}


def _secret(out: Problems, sec: dict, key: str, where: str, line: int) -> bytes | None:
    value = sec.get(key)
    text = str(value).strip().lower().removeprefix("0x") if isinstance(value, str | int) else None
    try:
        raw = bytes.fromhex(text) if text is not None else b""
    except ValueError:
        raw = b""
    if len(raw) != 16:
        out.add(line_of(sec, key, line), f"{where}.{key}", "expected 16 octets as 32 hex digits")
        return None
    return raw


def _epoch(value: Any) -> float | None:
    """A time as wall-clock seconds: a YAML timestamp or date, epoch seconds, or ISO 8601 text."""
    if isinstance(value, datetime.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=datetime.UTC)).timestamp()
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.UTC).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 2**40:
        return float(value)
    if isinstance(value, str):
        try:
            return _epoch(datetime.datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def _section(out: Problems, doc: Any, name: str, keys: tuple[str, ...]) -> tuple[dict, int] | None:
    """A section's mapping (an empty one when written bare) with its unknown keys reported, or
    None when it is absent or not a mapping."""
    if name not in doc:
        return None
    line = line_of(doc, name, 1)
    sec = located.Located() if doc[name] is None else out.mapping(doc[name], name, line)
    if doc[name] is not None and not isinstance(doc[name], dict):
        return None
    out.keys(sec, keys, name, line)
    return sec, line


def _cookies(out: Problems, doc: Any) -> CookieConfig:
    found = _section(out, doc, "cookies", ("enabled", "secret", "previous_secret", "previous_valid_until",
                                           "rotation_time", "badcookie"))
    if found is None:
        return CookieConfig()
    sec, line = found
    until = 0.0
    for key in ("previous_valid_until", "rotation_time"):
        if key in sec:
            when = _epoch(sec[key])
            if when is None:
                out.add(line_of(sec, key, line), f"cookies.{key}",
                        "expected a time (ISO 8601, e.g. 2026-12-02T00:00:00Z, or epoch seconds)")
            until = when or 0.0
    cfg = CookieConfig(enabled=out.boolean(sec, "enabled", "cookies", line, True),
                       secret=_secret(out, sec, "secret", "cookies", line) if "secret" in sec else None,
                       previous_secret=(_secret(out, sec, "previous_secret", "cookies", line)
                                        if "previous_secret" in sec else None),
                       previous_valid_until=until, badcookie=out.boolean(sec, "badcookie", "cookies", line, True))
    if cfg.previous_secret is not None and not cfg.previous_valid_until:
        out.add(line_of(sec, "previous_secret", line), "cookies.previous_secret",
                "needs previous_valid_until (until when the old secret is accepted)")
    return cfg


def _rrl(out: Problems, doc: Any) -> RrlConfig:
    found = _section(out, doc, "rrl", (*_RRL_RANGES, "enabled", "log_only", "exempt"))
    if found is None:
        return RrlConfig()
    sec, line = found
    defaults = RrlConfig()
    # writing an rrl: section turns it on unless it says enabled: false
    return replace(defaults, **_integers(out, sec, "rrl", line, _RRL_RANGES, defaults),
                   enabled=out.boolean(sec, "enabled", "rrl", line, True),
                   log_only=out.boolean(sec, "log_only", "rrl", line, False),
                   exempt=out.networks(sec, "exempt", "rrl", line))


def _asn_rates(out: Problems, sec: dict, line: int) -> dict[int, int]:
    value = out.mapping(sec.get("asns") or located.Located(), "query_limits.asns", line_of(sec, "asns", line),
                        "a mapping of AS number → queries/s")
    rates = {}
    for asn in value:
        where = f"query_limits.asns.{asn}"
        text = str(asn).upper().removeprefix("AS")
        if not text.isdigit() or not 0 < int(text) < 2**32:
            out.add(line_of(value, asn, line), where, "not an AS number")
            continue
        rate = out.integer(value, asn, "query_limits.asns", line, 1, _RATE_MAX, None)
        if rate is not None:
            rates[int(text)] = rate
    return rates


def _query_limits(out: Problems, doc: Any, asndb: Any) -> QueryLimitConfig:
    found = _section(out, doc, "query_limits", (*_QUERY_LIMIT_RANGES, "action", "asns", "exempt"))
    if found is None:
        return QueryLimitConfig()
    sec, line = found
    defaults = QueryLimitConfig()
    cfg = replace(defaults, **_integers(out, sec, "query_limits", line, _QUERY_LIMIT_RANGES, defaults),
                  action=out.one_of(sec, "action", "query_limits", line, ("refuse", "drop"), "refuse"),
                  exempt=out.networks(sec, "exempt", "query_limits", line), asn_rates=_asn_rates(out, sec, line))
    if (cfg.asn_rate or cfg.asn_rates) and not asndb:
        out.add(line, "query_limits", "per-ASN limits need asndb (an ASN database)")
    return cfg


def _tcp(out: Problems, doc: Any) -> TcpLimits:
    found = _section(out, doc, "tcp", ("max_connections", "per_client", "idle_timeout", "message_timeout"))
    if found is None:
        return TcpLimits()
    sec, line = found
    defaults = TcpLimits()
    idle = out.number(sec, "idle_timeout", "tcp", line, 0.05, 3600, None, unit=" seconds")
    return TcpLimits(max_connections=out.integer(sec, "max_connections", "tcp", line, 1, 1_000_000, None),
                     per_client=out.integer(sec, "per_client", "tcp", line, 1, 1_000_000, defaults.per_client),
                     idle_timeout=None if idle is None else float(idle),
                     message_timeout=out.seconds(sec, "message_timeout", "tcp", line, 0.05, 3600,
                                                 defaults.message_timeout))


def parse(doc: Any, path: str) -> tuple[AbuseConfig, list[Problem]]:
    """The abuse settings of a top-level gslb.yaml mapping, and every problem with them."""
    out = Problems(path)
    if not isinstance(doc, dict):
        return AbuseConfig(), out.items
    cfg = AbuseConfig(cookies=_cookies(out, doc), rrl=_rrl(out, doc),
                      query_limits=_query_limits(out, doc, doc.get("asndb")), tcp=_tcp(out, doc))
    return cfg, out.items


# -- in a worker ------------------------------------------------------------------------------

def make_cookies(cfg: CookieConfig, fallback: cookies_mod.Cookies) -> cookies_mod.Cookies:
    secret = fallback.secret if cfg.secret is None else cfg.secret
    return cookies_mod.Cookies(secret, cfg.previous_secret, cfg.previous_valid_until, badcookie=cfg.badcookie,
                               enabled=cfg.enabled)


def warn_if_random(cfg: AbuseConfig) -> None:
    """The warning `gslb serve` gives once at start when cookies use a per-node secret."""
    if cfg.cookies.enabled and cfg.cookies.secret is None:
        log.warning("DNS cookies use a random per-node secret: on an anycast fleet set cookies.secret "
                    "(the same 16 octets on every node) so a cookie from one site is valid at another")


def install(responder: Any, cfg: Any) -> None:
    """Give a worker's Responder its configured cookies and the abuse settings (a ServerConfig or an
    AbuseConfig); the UDP loops (`udp_guard`) and the TCP server read `responder.abuse`."""
    abuse = getattr(cfg, "abuse", cfg)
    responder.cookies = make_cookies(abuse.cookies, type(responder).cookies)
    responder.abuse = abuse
    responder.asndb = getattr(cfg, "asndb", None)
    workers = getattr(cfg, "workers", 1)
    responder.abuse_share = workers if workers > 0 else (os.cpu_count() or 1)  # workers splitting the rates
    _arm_steering(abuse, responder.abuse_share)


def steering_prefixes(abuse: AbuseConfig) -> tuple[int, int] | None:
    """The prefix lengths (v4, v6) UDP is steered by when a limiter counts per prefix: the
    coarsest either uses, so each RRL and query-limit account lives in one worker; None when no
    limiter is on (gslb/server/steering.py)."""
    rrl, ql = abuse.rrl, abuse.query_limits
    used = [(c.ipv4_prefix, c.ipv6_prefix) for c, on in ((rrl, rrl.enabled), (ql, ql.enabled)) if on]
    return (min(v4 for v4, _ in used), min(v6 for _, v6 in used)) if used else None


def _arm_steering(abuse: AbuseConfig, workers: int) -> None:
    from gslb.server import steering

    prefixes = steering_prefixes(abuse)
    if prefixes:
        steering.configure(workers, *prefixes)


def _net_pairs(nets: tuple) -> tuple[tuple[bytes, int], ...]:
    return tuple((n.network_address.packed, n.prefixlen) for n in nets)


def native_limits(abuse: AbuseConfig, cookies: cookies_mod.Cookies, share: int) -> dict[str, Any] | None:
    """The engine's `set_limits` config (gslb/server/rrl.h) for these settings, or None when the
    engine cannot enforce them (per-ASN limits need the ASN database: Python does those)."""
    rrl, ql = abuse.rrl, abuse.query_limits
    if ql.asn_rate or ql.asn_rates:
        return None
    share = max(1, share)
    return {"rrl": int(rrl.enabled), "log_only": int(rrl.log_only), "window": max(1, rrl.window),
            "slip": rrl.slip, "ipv4_prefix": rrl.ipv4_prefix, "ipv6_prefix": rrl.ipv6_prefix,
            "table_size": rrl.table_size, "rates": tuple(max(1, round(r / share)) for r in rrl.rates()),
            "exempt": _net_pairs(rrl.exempt),
            "query_limits": int(ql.enabled), "ql_refuse": int(ql.action == "refuse"),
            "ql_ipv4_prefix": ql.ipv4_prefix, "ql_ipv6_prefix": ql.ipv6_prefix, "ql_table_size": ql.table_size,
            "ql_rate": ql.prefix_rate and max(1, round(ql.prefix_rate / share)), "ql_exempt": _net_pairs(ql.exempt),
            "secret": cookies.secret if cookies.enabled else None,
            "previous_secret": cookies.previous if cookies.enabled else None,
            "previous_valid_until": float(cookies.previous_until)}


def _share(responder: Any) -> int:
    """How many loops split a prefix's traffic: 1 when steering sends each prefix to one worker."""
    from gslb.server import steering

    return 1 if steering.active() else getattr(responder, "abuse_share", 1)


_INSTALLING = threading.Lock()


def udp_guard(responder: Any) -> Any:
    """The per-query callable a UDP loop calls: `responder.answer` behind the query limits and RRL
    (just `responder.answer` when both are off). One per loop: each keeps its own buckets. With
    the native engine the limits go into it (one limiter per worker, rrl.h) and the loop gets
    `responder.answer`, so the engine serves and applies them in C."""
    abuse: AbuseConfig | None = getattr(responder, "abuse", None)
    if abuse is None or not (abuse.rrl.enabled or abuse.query_limits.enabled):
        return responder.answer
    engine = getattr(responder, "engine", None)
    if engine is not None and hasattr(engine, "set_limits"):
        with _INSTALLING:  # the first of a worker's loops configures the engine, once
            if getattr(responder, "native_limits", None) is None:
                cfg = native_limits(abuse, responder.cookies, _share(responder))
                if cfg is not None:
                    engine.set_limits(cfg)
                    responder.native_limits = cfg
        if getattr(responder, "native_limits", None) is not None:
            return responder.answer
    rrl = None
    if abuse.rrl.enabled:
        cookies = responder.cookies
        rrl = Limiter(abuse.rrl, (lambda q, c: cookies_mod.has_valid_cookie(cookies, q, c))
                      if cookies.enabled else None, share=_share(responder))
    limits = None
    if abuse.query_limits.enabled:
        asndb = getattr(responder, "asndb", None)
        limits = QueryLimiter(abuse.query_limits, asn_lookup(asndb) if asndb else None,
                              share=_share(responder))
    guards = getattr(responder, "guards", None)
    if guards is None:
        guards = responder.guards = []
    guards.append((rrl, limits))
    return guard(responder.answer, rrl, limits)


# RRL counters per class: every client, then the IPv6 clients' part ("limited6": of `limited`)
RRL_KINDS = ("limited", "dropped", "slipped", "would_limit", "limited6", "dropped6", "slipped6", "would_limit6")


def stats(responder: Any) -> dict[str, Any]:
    """Every abuse counter of a worker, flat, for /metrics (gslb/web/metrics.abuse_families):
    cookies_<status>, rrl_<kind>_<class> (RRL_KINDS), rrl_exempt, rrl_cookie_passed,
    query_limit_<prefix|asn>_<refused|dropped>, query_limit_by_asn, tcp_<counter>, and the
    prefix lengths the RRL counts by (rrl_ipv4_prefix, rrl_ipv6_prefix)."""
    from gslb.server.cookies import STATUS_NAMES

    out: dict[str, Any] = {}
    ck = responder.cookies
    for i, name in enumerate(STATUS_NAMES[1:], 1):
        out[f"cookies_{name}"] = ck.seen[i]
    out["cookies_badcookie_sent"] = ck.badcookie_sent
    for kind in RRL_KINDS:
        for name in CLASS_NAMES:
            out[f"rrl_{kind}_{name}"] = 0
    out["rrl_exempt"] = out["rrl_cookie_passed"] = 0
    for key in ("prefix_refused", "prefix_dropped", "asn_refused", "asn_dropped"):
        out[f"query_limit_{key}"] = 0
    out["query_limit_by_asn"] = _python_limiter_counts(responder, out)
    engine = getattr(responder, "engine", None)
    native = engine.limit_stats() if engine is not None and getattr(responder, "native_limits", None) else None
    if native is not None:
        _add_native_counts(native, out)
        _log_native(responder, native)
    out["limiter_native"] = 1 if native is not None else 0  # summed: workers whose limits run in C
    abuse: AbuseConfig | None = getattr(responder, "abuse", None)
    if abuse is not None:
        out["rrl_ipv4_prefix"], out["rrl_ipv6_prefix"] = abuse.rrl.ipv4_prefix, abuse.rrl.ipv6_prefix
    tcp = getattr(responder, "tcp_stats", None)
    if tcp is not None:
        out.update({f"tcp_{k}": v for k, v in tcp.items()})
    return out


def _python_limiter_counts(responder: Any, out: dict[str, Any]) -> dict[int, int]:
    """Add the Python limiters' counters to `out`; returns the per-ASN query-limit hits."""
    by_asn: dict[int, int] = {}
    for rrl, limits in getattr(responder, "guards", None) or ():
        if rrl is not None:
            for kind in RRL_KINDS:
                for i, name in enumerate(CLASS_NAMES):
                    out[f"rrl_{kind}_{name}"] += getattr(rrl.stats, kind)[i]
            out["rrl_exempt"] += rrl.stats.exempt
            out["rrl_cookie_passed"] += rrl.stats.cookie_passed
        if limits is not None:
            for key in ("prefix_refused", "prefix_dropped", "asn_refused", "asn_dropped"):
                out[f"query_limit_{key}"] += getattr(limits.stats, key)
            for asn, n in limits.stats.by_asn.items():
                by_asn[asn] = by_asn.get(asn, 0) + n
    return by_asn


def _add_native_counts(native: dict[str, Any], out: dict[str, Any]) -> None:
    """Add the C limiter's counters (the engine's `limit_stats`) to `out`."""
    for kind in RRL_KINDS:
        for i, name in enumerate(CLASS_NAMES):
            out[f"rrl_{kind}_{name}"] += native[kind][i]
    out["rrl_exempt"] += native["exempt"]
    out["rrl_cookie_passed"] += native["cookie_passed"]
    out["query_limit_prefix_refused"] += native["prefix_refused"]
    out["query_limit_prefix_dropped"] += native["prefix_dropped"]


def _log_native(responder: Any, native: dict[str, Any]) -> None:
    """The C limiter cannot log from its loop: say here (at most every 10 s, as rrl.py does) what
    it limited since the last line."""
    limited = sum(native["limited"]) + native["prefix_refused"] + native["prefix_dropped"]
    last, next_at = getattr(responder, "_native_logged", (0, 0.0))
    now = time.monotonic()
    if limited > last and now >= next_at:
        totals = ", ".join(f"{n} {c}" for n, c in zip(native["limited"], CLASS_NAMES, strict=True) if n)
        log.info("%s %d more since the last line (totals: RRL %s; query limits %d)",
                 "RRL log-only: would limit" if any(native["would_limit"]) else "rate limits: limited",
                 limited - last, totals or "0", native["prefix_refused"] + native["prefix_dropped"])
        responder._native_logged = (limited, now + 10.0)


def merge(parts: Any) -> dict[str, Any]:
    """Workers' `stats` dicts summed (the supervisor's totals): counters add up, per-ASN counts
    add up per AS, the configured prefix lengths are the same everywhere and are kept."""
    total: dict[str, Any] = {}
    for part in parts:
        for key, value in (part or {}).items():
            if key.endswith("_prefix"):
                total[key] = value
            elif isinstance(value, dict):
                into = total.setdefault(key, {})
                for k, n in value.items():
                    into[k] = into.get(k, 0) + n
            else:
                total[key] = total.get(key, 0) + value
    return total


__all__ = ["KEYS", "AbuseConfig", "CookieConfig", "TcpLimits", "install", "merge", "native_limits", "parse", "stats",
           "udp_guard", "warn_if_random"]
