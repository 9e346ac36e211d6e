"""The processing-time histogram a running server exposes: its `_sum` is the workers' exact total
(kept in C beside the buckets), so rate(_sum)/rate(_count) is the true mean handler time."""

from __future__ import annotations

import os
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gslb.server import native
from tests.support.dnsserver import ROOT, gslb_server
from tests.support.procs import free_port


def _histogram(web: str) -> tuple[list[tuple[float, float]], float, float, str]:
    text = urllib.request.urlopen(f"http://{web}/metrics", timeout=5).read().decode()
    family = {f.name: f for f in text_string_to_metric_families(text)}["gslb_dns_processing_seconds"]
    buckets = sorted((float(s.labels["le"]), s.value) for s in family.samples if s.name.endswith("_bucket"))
    total = next(s.value for s in family.samples if s.name.endswith("_sum"))
    count = next(s.value for s in family.samples if s.name.endswith("_count"))
    return buckets, total, count, family.documentation


@pytest.mark.skipif(not native.enabled(), reason="the native engine is not built (or GSLB_NO_NATIVE is set)")
def test_processing_sum_is_exact_and_within_the_buckets():
    web = f"127.0.0.1:{free_port()}"
    with gslb_server(os.path.join(ROOT, "zones"), workers=2, extra_args=("--web", web)) as server:
        for i in range(300):
            server.query("www.example.com" if i % 2 else f"nx{i}.example.com", "A")
        deadline = time.monotonic() + 10
        count = 0.0
        while count < 300 and time.monotonic() < deadline:  # workers report every second
            time.sleep(0.2)
            try:
                buckets, total, count, doc = _histogram(web)
            except (OSError, KeyError):  # the dashboard starts after DNS; no histogram before a report
                continue
    assert count >= 300
    assert "estimated" not in doc, doc
    # Each query lies between its bucket's bounds, so the exact sum does too; the midpoint estimate
    # it replaced would only be by luck (and its text said "estimated").
    lower = upper = 0.0
    previous_le, previous_n = 0.0, 0.0
    for le, n in buckets:
        in_bucket = n - previous_n
        lower += in_bucket * previous_le
        upper += in_bucket * (le if le != float("inf") else 1.0)
        previous_le, previous_n = le, n
    assert total > 0 and lower <= total <= upper, (lower, total, upper)
