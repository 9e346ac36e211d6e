"""Endpoint health: probe verdicts, the quorum decision, and the one reader every consumer uses."""

from gslb.health.model import CheckHealth, HealthView, Verdict, check_key

__all__ = ["CheckHealth", "HealthView", "Verdict", "check_key"]
