"""GSLB: authoritative DNS with health-, geo- and latency-aware answers."""

__version__ = "0.1.0"
