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



def _field(key: str, value: Any) -> dict[str, Any]:
    """One dataclass field by name, for `replace` (the key was checked against the known ones)."""
    return {key: value}

def _int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _num(v: Any, lo: float, hi: float) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi


def _nets(sec: dict, section: str, path: str, line: int, problems: list[Problem]) -> tuple:
    """`exempt:` prefixes, read by the shared collector's reader."""
    out = Problems(path)
    nets = out.networks(sec, "exempt", section, line)
    problems.extend(out.items)
    return nets


def _secret(value: Any, where: str, path: str, line: int, problems: list[Problem]) -> bytes | None:
    text = str(value).strip().lower().removeprefix("0x") if isinstance(value, str | int) else None
    try:
        raw = bytes.fromhex(text) if text is not None else b""
    except ValueError:
        raw = b""
    if len(raw) != 16:
        problems.append(Problem(path, line, where, "expected 16 octets as 32 hex digits"))
        return None
    return raw


def _when(value: Any, where: str, path: str, line: int, problems: list[Problem]) -> float:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.UTC)
        return value.timestamp()
    if isinstance(value, datetime.date):
        return datetime.datetime(value.year, value.month, value.day, tzinfo=datetime.UTC).timestamp()
    if _num(value, 0, 2**40):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            return _when(parsed, where, path, line, problems)
        except ValueError:
            pass
    problems.append(Problem(path, line, where, "expected a time (ISO 8601, e.g. 2026-12-02T00:00:00Z, "
                                               "or epoch seconds)"))
    return 0.0


def _section(doc: Any, name: str, path: str, problems: list[Problem]) -> tuple[Any, int] | None:
    if name not in doc:
        return None
    value = doc[name]
    line = line_of(doc, name, 1)
    if value is None:
        return located.Located(), line
    if not isinstance(value, dict):
        problems.append(Problem(path, line, name, "expected a mapping"))
        return None
    return value, line


def _cookies(doc: Any, path: str, problems: list[Problem]) -> CookieConfig:
    cfg = CookieConfig()
    found = _section(doc, "cookies", path, problems)
    if found is None:
        return cfg
    sec, _ = found
    for key, value in sec.items():
        line = line_of(sec, key, 1)
        where = f"cookies.{key}"
        if key in ("enabled", "badcookie"):
            if not isinstance(value, bool):
                problems.append(Problem(path, line, where, "expected true or false"))
            else:
                cfg = replace(cfg, **_field(key, value))
        elif key in ("secret", "previous_secret"):
            cfg = replace(cfg, **_field(key, _secret(value, where, path, line, problems)))
        elif key in ("previous_valid_until", "rotation_time"):
            cfg = replace(cfg, previous_valid_until=_when(value, where, path, line, problems))
        else:
            problems.append(Problem(path, line, where, "unknown key (enabled, secret, previous_secret, "
                                                       "previous_valid_until, badcookie)"))
    if cfg.previous_secret is not None and not cfg.previous_valid_until:
        problems.append(Problem(path, line_of(sec, "previous_secret", 1), "cookies.previous_secret",
                                "needs previous_valid_until (until when the old secret is accepted)"))
    return cfg


_RATE_MAX = 10_000_000


def _rrl(doc: Any, path: str, problems: list[Problem]) -> RrlConfig:
    cfg = RrlConfig()
    found = _section(doc, "rrl", path, problems)
    if found is None:
        return cfg
    sec, _ = found
    cfg = replace(cfg, enabled=True)  # writing an rrl: section turns it on unless it says enabled: false
    ranges = {"rate": (1, _RATE_MAX), "nxdomain_rate": (1, _RATE_MAX), "nodata_rate": (1, _RATE_MAX),
              "referral_rate": (1, _RATE_MAX), "error_rate": (1, _RATE_MAX), "window": (1, 3600),
              "slip": (0, 10), "ipv4_prefix": (8, 32), "ipv6_prefix": (16, 128), "table_size": (1, 1 << 24)}
    for key, value in sec.items():
        line = line_of(sec, key, 1)
        where = f"rrl.{key}"
        if key in ranges:
            lo, hi = ranges[key]
            if not _int(value, lo, hi):
                problems.append(Problem(path, line, where, f"must be an integer {lo}..{hi}, got {value!r}"))
            else:
                cfg = replace(cfg, **_field(key, value))
        elif key in ("enabled", "log_only"):
            if not isinstance(value, bool):
                problems.append(Problem(path, line, where, "expected true or false"))
            else:
                cfg = replace(cfg, **_field(key, value))
        elif key == "exempt":
            cfg = replace(cfg, exempt=_nets(sec, "rrl", path, line, problems))
        else:
            problems.append(Problem(path, line, where, f"unknown key (one of {', '.join(sorted(ranges))}, "
                                                       "enabled, log_only, exempt)"))
    return cfg


def _query_limits(doc: Any, path: str, problems: list[Problem], asndb: Any) -> QueryLimitConfig:
    cfg = QueryLimitConfig()
    found = _section(doc, "query_limits", path, problems)
    if found is None:
        return cfg
    sec, sline = found
    ranges = {"prefix_rate": (0, _RATE_MAX), "asn_rate": (0, _RATE_MAX), "ipv4_prefix": (8, 32),
              "ipv6_prefix": (16, 128), "table_size": (1, 1 << 24)}
    for key, value in sec.items():
        line = line_of(sec, key, 1)
        where = f"query_limits.{key}"
        if key in ranges:
            lo, hi = ranges[key]
            if not _int(value, lo, hi):
                problems.append(Problem(path, line, where, f"must be an integer {lo}..{hi}, got {value!r}"))
            else:
                cfg = replace(cfg, **_field(key, value))
        elif key == "action":
            if value not in ("refuse", "drop"):
                problems.append(Problem(path, line, where, f"must be refuse or drop, got {value!r}"))
            else:
                cfg = replace(cfg, action=value)
        elif key == "exempt":
            cfg = replace(cfg, exempt=_nets(sec, "query_limits", path, line, problems))
        elif key == "asns":
            if not isinstance(value, dict):
                problems.append(Problem(path, line, where, "expected a mapping of AS number → queries/s"))
                continue
            rates = {}
            for asn, rate in value.items():
                aline = line_of(value, asn, line)
                text = str(asn).upper().removeprefix("AS")
                if not text.isdigit() or not 0 < int(text) < 2**32:
                    problems.append(Problem(path, aline, f"{where}.{asn}", "not an AS number"))
                elif not _int(rate, 1, _RATE_MAX):
                    problems.append(Problem(path, aline, f"{where}.{asn}", f"must be an integer 1..{_RATE_MAX}"))
                else:
                    rates[int(text)] = rate
            cfg = replace(cfg, asn_rates=rates)
        else:
            problems.append(Problem(path, line, where, f"unknown key (one of {', '.join(sorted(ranges))}, "
                                                       "action, asns, exempt)"))
    if (cfg.asn_rate or cfg.asn_rates) and not asndb:
        problems.append(Problem(path, sline, "query_limits", "per-ASN limits need asndb (an ASN database)"))
    return cfg


def _tcp(doc: Any, path: str, problems: list[Problem]) -> TcpLimits:
    cfg = TcpLimits()
    found = _section(doc, "tcp", path, problems)
    if found is None:
        return cfg
    sec, _ = found
    for key, value in sec.items():
        line = line_of(sec, key, 1)
        where = f"tcp.{key}"
        if key == "max_connections" or key == "per_client":
            if not _int(value, 1, 1_000_000):
                problems.append(Problem(path, line, where, f"must be an integer 1..1000000, got {value!r}"))
            else:
                cfg = replace(cfg, **_field(key, value))
        elif key in ("idle_timeout", "message_timeout"):
            if not _num(value, 0.05, 3600):
                problems.append(Problem(path, line, where, f"must be seconds 0.05..3600, got {value!r}"))
            else:
                cfg = replace(cfg, **_field(key, float(value)))
        else:
            problems.append(Problem(path, line, where, "unknown key (max_connections, per_client, idle_timeout, "
                                                       "message_timeout)"))
    return cfg


def parse(doc: Any, path: str) -> tuple[AbuseConfig, list[Problem]]:
    """The abuse settings of a top-level gslb.yaml mapping, and every problem with them."""
    problems: list[Problem] = []
    if not isinstance(doc, dict):
        return AbuseConfig(), problems
    cfg = AbuseConfig(cookies=_cookies(doc, path, problems), rrl=_rrl(doc, path, problems),
                      query_limits=_query_limits(doc, path, problems, doc.get("asndb")), tcp=_tcp(doc, path, problems))
    return cfg, problems


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
