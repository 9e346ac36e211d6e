"""Geo data: the regions file, and a builder for small GeoLite2-City-layout test databases."""

from __future__ import annotations

import os

HERE = os.path.dirname(os.path.abspath(__file__))
REGIONS = os.path.join(HERE, "regions.yaml")
NETWORKS = os.path.join(HERE, "networks.yaml")


def default_mmdb() -> str:
    """The bundled test database, built from networks.yaml on first use (and when it changes)."""
    from geodb.build import build_file

    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = os.path.join(cache, "gslb", "test-city.mmdb")
    if not os.path.exists(path) or os.path.getmtime(path) < os.path.getmtime(NETWORKS):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        build_file(NETWORKS, tmp)
        os.replace(tmp, path)
    return path
