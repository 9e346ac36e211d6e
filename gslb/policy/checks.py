"""Which health check decides each GSLB value: derived from the zones, shared by probes and DNS."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gslb.health import check_key
from gslb.zone.dynamic import Dynamic
from gslb.zone.model import Record, Zone


@dataclass(frozen=True)
class CheckSpec:
    """Everything a probe needs to run one check; `key` names its verdicts in the store."""

    protocol: str  # "tcp" | "http" | "https"
    address: str
    port: int
    path: str
    host: str
    interval: float
    timeout: float
    rise: int
    fall: int
    expect_status: tuple[int, ...]
    body_match: str | None

    @property
    def key(self) -> str:
        return check_key(self.protocol, self.address, self.port, self.path, self.host)

    def kwargs(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def value_checks(record: Record) -> dict[str, CheckSpec]:
    """value → the check that decides it (values without an address to check have none)."""
    dyn: Dynamic = record.dynamic
    hc = dyn.healthcheck
    out = {}
    for value in dyn.values() | {r.to_text() for r in record.rdatas}:
        address = dyn.options.targets.get(value, value if record.rtype in ("A", "AAAA") else None)
        if address is None:
            continue
        protocol = hc.protocol.lower()
        out[value] = CheckSpec(protocol=protocol, address=address, port=hc.port,
                               path=hc.path if protocol != "tcp" else "", host=hc.host if protocol != "tcp" else "",
                               interval=hc.interval, timeout=hc.timeout, rise=hc.rise, fall=hc.fall,
                               expect_status=hc.expect_status, body_match=hc.body_match)
    return out


def zone_checks(zones: list[Zone]) -> dict[str, CheckSpec]:
    """Every distinct check the zones ask for, by key: what `gslb probe` runs."""
    out: dict[str, CheckSpec] = {}
    for zone in zones:
        for record in zone.records:
            if record.dynamic is None:
                continue
            statuses = {v.value: v.status for p in record.dynamic.pools.values() for v in p.values}
            for value, spec in value_checks(record).items():
                if statuses.get(value, "obey") == "obey":
                    out.setdefault(spec.key, spec)
    return out
