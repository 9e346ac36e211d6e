"""Probe agents: run health checks from one region and publish verdicts to the store."""
