"""Endpoint health from many probe regions: the quorum decision every consumer shares.

Probe agents write one verdict per (region, check) into the store's `probe` space. DNS nodes,
the BGP controller and the dataplane all turn those verdicts into one decision per check with
`HealthView`, so they can never disagree about what "up" means. `HealthMap` is the compact
form handed to answers, BGP signals and the dataplane.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import asdict, dataclass, field
from typing import Any

HealthMap = dict[str, tuple[bool, dict[str, float]]]  # check key → (up, smoothed RTT by region)
Quorum = int | str  # "majority" or how many fresh regions must report a check down
MAJORITY = "majority"


def parse_quorum(value: object) -> Quorum:
    """The one spelling check for `quorum:` wherever it is read (gslb.yaml, the store)."""
    if value == MAJORITY:
        return MAJORITY
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    raise ValueError(f"quorum must be 'majority' or a positive integer, not {value!r}")


def check_key(protocol: str, address: str, port: int, path: str = "", host: str = "") -> str:
    """The stable name of one health check, e.g. `http://192.0.2.10:80/health#www.example.com`.

    The same spelling is derived from zone files (probes, DNS nodes) and from the BGP and
    dataplane configs, so all of them look up the same store keys.
    """
    protocol = protocol.lower()
    try:
        ip = ipaddress.ip_address(address)
        where = f"[{ip}]" if ip.version == 6 else str(ip)
    except ValueError:
        where = address.lower().rstrip(".")
    key = f"{protocol}://{where}:{port}"
    if protocol in ("http", "https"):
        key += path or "/"
        if host:
            key += f"#{host.lower().rstrip('.')}"
    return key


@dataclass(frozen=True)
class Verdict:
    """One region's view of one check, after that region's rise/fall hysteresis."""

    region: str
    check: str
    up: bool
    rtt_ms: float | None
    checked_at: float
    expires_at: float
    error: str = ""

    @property
    def store_key(self) -> str:
        return f"{self.region}|{self.check}"

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Verdict:
        return cls(region=str(doc["region"]), check=str(doc["check"]), up=bool(doc["up"]),
                   rtt_ms=None if doc.get("rtt_ms") is None else float(doc["rtt_ms"]),
                   checked_at=float(doc["checked_at"]), expires_at=float(doc["expires_at"]),
                   error=str(doc.get("error", "")))


@dataclass
class CheckHealth:
    """The decision for one check."""

    check: str
    up: bool
    known: bool  # at least one fresh verdict (or an override) decided it
    up_regions: list[str] = field(default_factory=list)
    down_regions: list[str] = field(default_factory=list)
    rtt_ms: dict[str, float] = field(default_factory=dict)  # region -> smoothed RTT
    override: str | None = None


class HealthView:
    """Fresh verdicts in, one decision per check out.

    `quorum` is how many fresh regions must report a check down to call it down; the default
    "majority" means more than half of the regions with fresh verdicts. A check nobody has
    fresh data for is unknown and counts as up (fail open), so a dead probe fleet cannot take
    every answer away.
    """

    def __init__(self, quorum: Quorum = MAJORITY) -> None:
        self.quorum = parse_quorum(quorum)
        self.verdicts: dict[str, Verdict] = {}  # store key -> verdict
        self.overrides: dict[str, str] = {}  # check -> "up" | "down"
        self.heartbeats: dict[str, float] = {}  # region -> its agent's heartbeat expiry
        self.agents: dict[str, dict[str, Any]] = {}  # region -> its agent's last heartbeat document
        self.override_docs: dict[str, dict[str, Any]] = {}  # check -> who forced it, why, when

    def heartbeat(self, region: str, expires_at: float) -> None:
        """A live agent keeps all its verdicts fresh: it re-writes them without announcing."""
        self.heartbeats[region] = expires_at

    def fresh(self, verdict: Verdict, now: float) -> bool:
        """A region that sends heartbeats is alive exactly as long as they come; its silent
        refreshes do not reach readers, so its verdicts' own expiry says nothing."""
        beat = self.heartbeats.get(verdict.region)
        return beat > now if beat is not None else verdict.expires_at > now

    def put(self, verdict: Verdict) -> None:
        self.verdicts[verdict.store_key] = verdict

    def remove(self, store_key: str) -> None:
        self.verdicts.pop(store_key, None)

    def set_override(self, check: str, doc: dict[str, Any] | None) -> None:
        """An operator's forced status for a check (None lifts it)."""
        if doc is None:
            self.overrides.pop(check, None)
            self.override_docs.pop(check, None)
        else:
            self.overrides[check] = str(doc.get("status", "up"))
            self.override_docs[check] = doc

    def merge(self, probes: dict[str, dict[str, Any]], regions: dict[str, dict[str, Any]],
              overrides: dict[str, dict[str, Any]]) -> None:
        """Fold in full scans of the probe, region and override spaces. Verdicts are merged, not
        replaced: a store that restarted empty must not erase what we know before the agents have
        written again (deletes still arrive as changes)."""
        for doc in probes.values():
            self.put(Verdict.from_doc(doc))
        for region, doc in regions.items():
            self.heartbeat(region, float(doc.get("expires_at", 0)))
            self.agents[region] = doc
        self.overrides = {}
        self.override_docs = {}
        for check, doc in overrides.items():
            self.set_override(check, doc)

    def next_expiry(self, now: float | None = None) -> float | None:
        """When the next fresh verdict goes stale: the time to decide again."""
        now = time.time() if now is None else now
        times = [self.heartbeats.get(v.region, v.expires_at) for v in self.verdicts.values()]
        times = [t for t in times if t > now]
        return min(times) if times else None

    def decide(self, now: float | None = None) -> dict[str, CheckHealth]:
        now = time.time() if now is None else now
        by_check: dict[str, list[Verdict]] = {}
        for v in self.verdicts.values():
            if self.fresh(v, now):
                by_check.setdefault(v.check, []).append(v)
        out: dict[str, CheckHealth] = {}
        for check in set(by_check) | set(self.overrides):
            fresh = by_check.get(check, [])
            down = sorted(v.region for v in fresh if not v.up)
            up = sorted(v.region for v in fresh if v.up)
            need = len(fresh) // 2 + 1 if self.quorum == "majority" else int(self.quorum)
            is_up = not fresh or len(down) < need
            override = self.overrides.get(check)
            if override is not None:
                is_up = override == "up"
            out[check] = CheckHealth(
                check=check, up=is_up, known=bool(fresh) or override is not None,
                up_regions=up, down_regions=down,
                rtt_ms={v.region: v.rtt_ms for v in fresh if v.rtt_ms is not None},
                override=override)
        return out

    def health_map(self, now: float | None = None) -> HealthMap:
        return summarize(self.decide(now))


def summarize(decided: dict[str, CheckHealth]) -> HealthMap:
    return {k: (h.up, dict(h.rtt_ms)) for k, h in decided.items()}
