"""The dashboard, its JSON API, the admin API and Prometheus metrics: everything via the store."""

from gslb.web.app import make_app

__all__ = ["make_app"]
