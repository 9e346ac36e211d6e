"""Response rate limiting (RRL) with the semantics of BIND and Knot, and per-prefix/per-ASN
query limits.

RRL looks only at the bytes the Responder produced (rcode, counts, AA, the question, the owner of
the first authority record) to put each response in a class:

- positive answers, accounted by client prefix + QNAME + QTYPE;
- NXDOMAIN and NODATA, by client prefix + zone (the SOA owner in the authority section);
- referrals, by client prefix + delegation (the NS owner);
- errors (FORMERR, SERVFAIL, REFUSED, NOTIMP, ...), by client prefix.

Each account is a bucket in a fixed-size table (hashed, like Knot's): memory does not grow with
the number of sources; a collision just restarts the bucket. A bucket earns `rate` responses a
second and holds at most one second of credit; with `window` > 1 it also keeps up to window-1
seconds of debt (BIND's window: a source that keeps flooding stays limited; one that stops recovers
within the window). window 1 is Knot's behaviour: `rate` responses pass every second. A limited
response is dropped, except every `slip`-th one, sent as a minimal TC=1 answer (header and
question) so a real resolver behind a spoofed-looking flood retries over TCP. TCP is never limited
(these wrappers are only on the UDP loops) and neither is a query with a valid server cookie.

The state per query is small and fixed (one table slot, one clock), so the native engine can do
the same in C.
"""

from __future__ import annotations

import ipaddress
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

log = logging.getLogger(__name__)

POSITIVE, NXDOMAIN, NODATA, REFERRAL, ERROR = range(5)
CLASS_NAMES = ("positive", "nxdomain", "nodata", "referral", "error")
_MAPPED = b"\x00" * 10 + b"\xff\xff"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class RrlConfig:
    enabled: bool = False  # off by default, like Knot's and BIND's
    rate: int = 20  # responses/s per prefix and name (Knot rate-limit: 20 in its examples; BIND 5..20)
    nxdomain_rate: int | None = None  # None: the same as rate
    nodata_rate: int | None = None
    referral_rate: int | None = None
    error_rate: int | None = None
    window: int = 1  # 1: `rate` a second and no memory of the excess (Knot); BIND's 15 keeps a bucket in
    # debt for up to 14 s of its rate, so a sustained flood stays limited until it stops
    slip: int = 2  # every 2nd limited response is a TC=1 answer (Knot and BIND default 2)
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    exempt: tuple[Network, ...] = ()
    log_only: bool = False  # count what would be limited, limit nothing (BIND log-only, Knot dry-run)
    table_size: int = 65536  # buckets (Knot rate-limit-table-size 393241)

    def rates(self) -> tuple[int, int, int, int, int]:
        r = self.rate
        return (r, self.nxdomain_rate if self.nxdomain_rate is not None else r,
                self.nodata_rate if self.nodata_rate is not None else r,
                self.referral_rate if self.referral_rate is not None else r,
                self.error_rate if self.error_rate is not None else r)


@dataclass(frozen=True)
class QueryLimitConfig:
    prefix_rate: int = 0  # queries/s per client prefix; 0: no limit
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    asn_rate: int = 0  # queries/s per AS number (from the ASN database); 0: no limit
    asn_rates: dict[int, int] = field(default_factory=dict)  # per-ASN overrides
    action: str = "refuse"  # "refuse" (REFUSED) or "drop"
    exempt: tuple[Network, ...] = ()
    table_size: int = 16384

    @property
    def enabled(self) -> bool:
        return bool(self.prefix_rate or self.asn_rate or self.asn_rates)


def prefix_key(client: bytes, v4_bits: int, v6_bits: int) -> bytes:
    """The client's prefix as bytes (family told apart by length): IPv4-mapped counts as IPv4."""
    if len(client) == 16 and client[:12] == _MAPPED:
        client = client[12:]
    bits = v4_bits if len(client) == 4 else v6_bits
    whole, rest = divmod(bits, 8)
    if not rest:
        return client[:whole] + (b"\x04" if len(client) == 4 else b"\x06")
    return client[:whole] + bytes((client[whole] & (0xFF << (8 - rest)) & 0xFF,)) + (
        b"\x04" if len(client) == 4 else b"\x06")


def _exempt(client: bytes, nets: tuple[Network, ...]) -> bool:
    if not nets:
        return False
    if len(client) == 16 and client[:12] == _MAPPED:
        client = client[12:]
    addr = ipaddress.ip_address(client)
    return any(addr.version == n.version and addr in n for n in nets)


def _name(msg: bytes, pos: int) -> bytes:
    """The lower-cased wire name at `pos`, compression pointers followed (bounded)."""
    out = []
    for _ in range(128):
        length = msg[pos]
        if length == 0:
            out.append(b"\x00")
            return b"".join(out).lower()
        if length >= 0xC0:
            pos = ((length & 0x3F) << 8) | msg[pos + 1]
            continue
        out.append(msg[pos:pos + length + 1])
        pos += length + 1
    raise ValueError("name loop")


def classify(out: bytes) -> tuple[int, bytes]:
    """(class, account name) of a response: what RRL counts it under besides the prefix."""
    rcode = out[3] & 0x0F
    qd = (out[4] << 8) | out[5]
    pos = 12
    qname = b""
    if qd:
        end = pos
        while out[end]:
            end += out[end] + 1
        qname = out[pos:end + 1].lower()
        pos = end + 5
    if rcode == 3 or rcode == 0:
        an = (out[6] << 8) | out[7]
        if rcode == 0 and (an or out[2] & 0x02):  # an answer, or one too big for UDP (TC, no records)
            return POSITIVE, qname + out[pos - 4:pos - 2]
        ns = (out[8] << 8) | out[9]
        owner = _name(out, pos) if ns and pos < len(out) else qname
        if rcode == 3:
            return NXDOMAIN, owner
        if out[2] & 0x04 or not ns:  # AA: no data
            return NODATA, owner
        return REFERRAL, owner
    return ERROR, b""


class Stats:
    """Counters for /metrics, by response class where it applies; the `*6` lists are the IPv6
    clients' part of each (so /metrics can say which prefix length, ipv4_prefix or ipv6_prefix)."""

    __slots__ = ("cookie_passed", "dropped", "dropped6", "exempt", "limited", "limited6", "slipped", "slipped6",
                 "would_limit", "would_limit6")

    def __init__(self) -> None:
        self.limited = [0] * 5  # responses over the rate (dropped + slipped, or would_limit in log-only)
        self.dropped = [0] * 5
        self.slipped = [0] * 5
        self.would_limit = [0] * 5
        self.limited6 = [0] * 5
        self.dropped6 = [0] * 5
        self.slipped6 = [0] * 5
        self.would_limit6 = [0] * 5
        self.exempt = 0  # over the rate but from an exempt prefix
        self.cookie_passed = 0  # over the rate but carrying a valid server cookie


class Buckets:
    """A fixed table of token buckets keyed by a hash: slot = hash % size."""

    __slots__ = ("credit", "keys", "size", "stamp")

    def __init__(self, size: int) -> None:
        self.size = size
        self.keys: list[object] = [None] * size
        self.credit = [0.0] * size
        self.stamp = [0.0] * size

    def take(self, key: object, rate: int, window: int, now: float) -> bool:
        """Spend one from `key`'s bucket; False when it is over its rate."""
        i = hash(key) % self.size
        if self.keys[i] != key:  # new account, or a collision: start it full
            self.keys[i] = key
            self.stamp[i] = now
            self.credit[i] = rate - 1.0
            return True
        credit = self.credit[i] + (now - self.stamp[i]) * rate
        self.stamp[i] = now
        if credit > rate:
            credit = float(rate)
        if credit >= 1.0:
            self.credit[i] = credit - 1.0
            return True
        if window > 1:  # BIND: limited responses are debited too, down to the window's floor
            credit -= 1.0
            floor = -float(rate * (window - 1))
            if credit < floor:
                credit = floor
        self.credit[i] = credit
        return False


def _truncated(out: bytes) -> bytes | None:
    """The slip answer: the response's header with TC set and no records, and its question (cut
    where the response ends); None (nothing to send) for a response shorter than a header. The
    same bytes as rrl.h's `rrl_truncated`."""
    if len(out) < 12:
        return None
    pos = 12
    if (out[4] << 8) | out[5]:
        while pos < len(out) and out[pos]:
            pos += out[pos] + 1
        pos += 5
    pos = min(pos, len(out))
    flags = ((out[2] << 8) | out[3]) & 0xFFF0 | 0x0200  # rcode cleared, TC
    return out[:2] + struct.pack(">HHHHH", flags & 0xFFFF, (out[4] << 8) | out[5], 0, 0, 0) + out[12:pos]


class Limiter:
    """RRL for one worker: `filter(query, client, response)` → the response, a TC answer, or None."""

    def __init__(self, cfg: RrlConfig, valid_cookie: Callable[[bytes, bytes], bool] | None = None,
                 clock=time.monotonic, share: int = 1) -> None:
        self.cfg = cfg
        # `share` loops (workers) split the traffic: SO_REUSEPORT spreads a source's packets over them
        # by source port, so each enforces its share of the rate and the node as a whole the rate
        self.rates = tuple(max(1, round(r / share)) for r in cfg.rates())
        self.window = max(1, cfg.window)
        self.slip = cfg.slip
        self.v4 = cfg.ipv4_prefix
        self.v6 = cfg.ipv6_prefix
        self._v4_octets = cfg.ipv4_prefix // 8 if cfg.ipv4_prefix % 8 == 0 else 0  # the common /24: a slice
        self.table = Buckets(cfg.table_size)
        self.valid_cookie = valid_cookie
        self.clock = clock
        self.stats = Stats()
        self._slip_count = 0
        self._next_log = 0.0

    def filter(self, query: bytes, client: bytes, out: bytes) -> bytes | None:
        try:
            cls, name = classify(out)
        except (IndexError, ValueError):
            cls, name = ERROR, b""
        if len(client) == 4 and self._v4_octets:
            prefix = client[:self._v4_octets] + b"\x04"
        else:
            prefix = prefix_key(client, self.v4, self.v6)
        now = self.clock()
        if self.table.take((cls, prefix, name), self.rates[cls], self.window, now):
            return out
        # over the rate: the (rarer) checks that let a response through anyway
        if self.cfg.exempt and _exempt(client, self.cfg.exempt):
            self.stats.exempt += 1
            return out
        if self.valid_cookie is not None and query[11] and self.valid_cookie(query, client):
            self.stats.cookie_passed += 1
            return out
        stats = self.stats
        v6 = prefix[-1] == 6
        stats.limited[cls] += 1
        if v6:
            stats.limited6[cls] += 1
        if now >= self._next_log:
            self._next_log = now + 10.0
            log.info("RRL %s %s responses to %s (%s)", "would limit" if self.cfg.log_only else "limiting",
                     CLASS_NAMES[cls], _prefix_text(prefix, self.v4, self.v6), name_text(name))
        if self.cfg.log_only:
            stats.would_limit[cls] += 1
            if v6:
                stats.would_limit6[cls] += 1
            return out
        if self.slip:
            self._slip_count += 1
            if self._slip_count >= self.slip:
                self._slip_count = 0
                stats.slipped[cls] += 1
                if v6:
                    stats.slipped6[cls] += 1
                return _truncated(out)
        stats.dropped[cls] += 1
        if v6:
            stats.dropped6[cls] += 1
        return None


def name_text(name: bytes) -> str:
    labels = []
    pos = 0
    while pos < len(name) and name[pos]:
        labels.append(name[pos + 1:pos + 1 + name[pos]].decode("ascii", "replace"))
        pos += name[pos] + 1
    return ".".join(labels) + "."


def _prefix_text(prefix: bytes, v4: int, v6: int) -> str:
    raw = prefix[:-1]
    if prefix[-1:] == b"\x04":
        return f"{ipaddress.ip_address(raw + bytes(4 - len(raw)))}/{v4}"
    return f"{ipaddress.ip_address(raw + bytes(16 - len(raw)))}/{v6}"


def refused(query: bytes) -> bytes | None:
    """A REFUSED answer to a query (header and question), None when it is not a query."""
    if len(query) < 12 or query[2] & 0x80:
        return None
    pos = 12
    qd = 0
    if (query[4] << 8) | query[5] == 1:
        try:
            while query[pos]:
                if query[pos] > 63:
                    raise IndexError
                pos += query[pos] + 1
            pos += 5
            if pos <= len(query):
                qd = 1
        except IndexError:
            pass
    if not qd:
        pos = 12
    flags = (((query[2] << 8) | query[3]) & 0x7910) | 0x8000 | 5
    return query[:2] + struct.pack(">HHHHH", flags, qd, 0, 0, 0) + query[12:pos]


class QueryStats:
    __slots__ = ("asn_dropped", "asn_refused", "by_asn", "prefix_dropped", "prefix_refused")

    def __init__(self) -> None:
        self.prefix_refused = 0
        self.prefix_dropped = 0
        self.asn_refused = 0
        self.asn_dropped = 0
        self.by_asn: dict[int, int] = {}  # limited queries per AS number (bounded)


class QueryLimiter:
    """Caps on queries per second per client prefix and per AS number, checked before answering."""

    ASN_CACHE_MAX = 65536

    def __init__(self, cfg: QueryLimitConfig, asn_of: Callable[[bytes], int | None] | None = None,
                 clock=time.monotonic, share: int = 1) -> None:
        if share > 1:  # as for RRL: each of `share` workers enforces its part of the caps
            cfg = replace(cfg, prefix_rate=cfg.prefix_rate and max(1, round(cfg.prefix_rate / share)),
                          asn_rate=cfg.asn_rate and max(1, round(cfg.asn_rate / share)),
                          asn_rates={a: max(1, round(r / share)) for a, r in cfg.asn_rates.items()})
        self.cfg = cfg
        self.table = Buckets(cfg.table_size)
        self.asn_of = asn_of if (cfg.asn_rate or cfg.asn_rates) else None
        self._asn_cache: dict[bytes, int | None] = {}
        self.clock = clock
        self.stats = QueryStats()
        self.refuse = cfg.action == "refuse"

    def over(self, _data: bytes, client: bytes) -> bool:
        """True when this query (unused yet: the caps are per source) is beyond a cap, counted as such."""
        cfg = self.cfg
        now = self.clock()
        prefix = prefix_key(client, cfg.ipv4_prefix, cfg.ipv6_prefix)
        if cfg.prefix_rate and not self.table.take((0, prefix), cfg.prefix_rate, 1, now):
            if _exempt(client, cfg.exempt):
                return False
            if self.refuse:
                self.stats.prefix_refused += 1
            else:
                self.stats.prefix_dropped += 1
            return True
        if self.asn_of is not None:
            asn = self._asn_cache.get(prefix, -1)
            if asn == -1:
                asn = self.asn_of(client)
                if len(self._asn_cache) >= self.ASN_CACHE_MAX:
                    self._asn_cache.clear()
                self._asn_cache[prefix] = asn
            if asn is not None:
                rate = cfg.asn_rates.get(asn, cfg.asn_rate)
                if rate and not self.table.take((1, asn), rate, 1, now):
                    if _exempt(client, cfg.exempt):
                        return False
                    if self.refuse:
                        self.stats.asn_refused += 1
                    else:
                        self.stats.asn_dropped += 1
                    by = self.stats.by_asn
                    if asn in by or len(by) < 1000:
                        by[asn] = by.get(asn, 0) + 1
                    return True
        return False


def guard(answer: Callable[[bytes, bytes], bytes | None], rrl: Limiter | None,
          limits: QueryLimiter | None) -> Callable[[bytes, bytes], bytes | None]:
    """`answer` with the query limits in front and RRL behind; `answer` itself when both are off."""
    if rrl is None and limits is None:
        return answer
    if limits is None:
        assert rrl is not None
        rfilter = rrl.filter

        def rrl_only(data: bytes, client: bytes) -> bytes | None:
            out = answer(data, client)
            return out if out is None else rfilter(data, client, out)
        return rrl_only
    over = limits.over
    refuse = limits.refuse
    after = rrl.filter if rrl is not None else None

    def guarded(data: bytes, client: bytes) -> bytes | None:
        if over(data, client):
            return refused(data) if refuse else None
        out = answer(data, client)
        if out is None or after is None:
            return out
        return after(data, client, out)
    return guarded


def asn_lookup(path: str) -> Callable[[bytes], int | None]:
    """An ASN-of-address function over a MaxMind-format ASN database."""
    import maxminddb

    reader = maxminddb.open_database(path, maxminddb.MODE_AUTO)

    def asn_of(client: bytes) -> int | None:
        if len(client) == 16 and client[:12] == _MAPPED:
            client = client[12:]
        record = cast(dict[str, Any] | None, reader.get(ipaddress.ip_address(client)))
        asn = record.get("autonomous_system_number") if record else None
        return int(asn) if asn is not None else None
    return asn_of
