"""`gslb explain`: the decision for a client, step by step, from the real zones and geo data."""

from __future__ import annotations

import subprocess
import sys

from tests.support.dnsserver import ROOT


def explain(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "gslb", "explain", *args, "--zones", "zones"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_explains_a_geo_decision_for_an_ecs_subnet():
    out = explain("www.gslb.example.com", "A", "--client", "198.51.100.64/26")
    assert "location    EU-GB-ENG EU-GB EU" in out
    assert "region      eu-west" in out
    assert "matched rule 1 (EU,AF) → pool eu" in out
    assert "pool eu: 192.0.2.10 up, 192.0.2.11 up" in out
    assert out.splitlines()[-1].startswith("answer      192.0.2.1")
    assert "[eu]" in out


def test_explains_the_catch_all_and_static_names():
    out = explain("www.gslb.example.com", "--client", "198.51.100.130")
    assert "matched rule 3 (*) → pool us" in out and "region      us-west" in out
    out = explain("www.example.com", "--client", "198.51.100.130")
    assert "answer      static" in out and "192.0.2.10" in out
