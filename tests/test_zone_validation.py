"""What `gslb check` catches in zone files beyond the record data: GSLB site references, the
octoDNS spellings of type and TTL, settings that would silently do nothing, missing zones."""

from __future__ import annotations

import subprocess
import sys

from gslb.config import load_config
from gslb.zone.load import load_zones
from tests.support.dnsserver import ROOT

PROXIMITY = """\
www:
  type: A
  value: 192.0.2.10
  dynamic:
    pools:
      main:
        values:
        - value: 192.0.2.10
        - value: 192.0.2.11
    rules:
    - pool: main
  octodns:
    gslb:
      policy: proximity
      sites:
        192.0.2.10: atlantis
        192.0.2.11: [95, 500]
        192.0.2.99: ams
"""


def check(path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gslb", "check", str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def test_gslb_sites_are_validated_like_targets(tmp_path):
    path = tmp_path / "gslb.example.yaml"
    path.write_text(PROXIMITY)
    r = check(path)
    assert r.returncode == 1, r.stdout
    out = r.stdout.replace(str(path), "z")
    assert "z:16: www.A.octodns.gslb.sites.192.0.2.10: unknown site 'atlantis' (known: " in out, out
    assert "z:17: www.A.octodns.gslb.sites.192.0.2.11: [95, 500] is not a place" in out, out
    assert "z:18: www.A.octodns.gslb.sites: 192.0.2.99 is not a value of any pool" in out, out


def test_known_sites_and_coordinates_pass(tmp_path):
    path = tmp_path / "gslb.example.yaml"
    path.write_text(PROXIMITY.replace("atlantis", "ams").replace("[95, 500]", "[52.4, 4.9]")
                    .replace("        192.0.2.99: ams\n", ""))
    r = check(path)
    assert r.returncode == 0, r.stdout + r.stderr


def test_types_and_ttls_are_spelled_as_octodns_reads_them(tmp_path):
    path = tmp_path / "example.com.yaml"
    path.write_text("'':\n  type: NS\n  value: ns1.example.net.\n"
                    "a:\n  type: a\n  value: 192.0.2.1\n"
                    "b:\n  type: A\n  ttl: '300'\n  value: 192.0.2.2\n")
    r = check(path)
    out = r.stdout.replace(str(path), "z")
    assert r.returncode == 1
    assert "z:5: a.type: record types are upper case: 'A', not 'a'" in out, out
    assert "b." not in out, out  # a quoted TTL is a TTL, as in octoDNS


def test_health_settings_on_a_static_record_are_pointed_out(tmp_path):
    path = tmp_path / "example.com.yaml"
    path.write_text("'':\n  type: NS\n  value: ns1.example.net.\n"
                    "www:\n  type: A\n  value: 192.0.2.1\n  octodns:\n    healthcheck:\n      port: 80\n")
    r = check(path)
    assert r.returncode == 0
    assert "www.A.octodns.healthcheck: warning: only used by dynamic records" in r.stdout, r.stdout


def test_empty_folder_and_configured_zone_without_file_warn(tmp_path):
    zones = tmp_path / "zones"
    zones.mkdir()
    r = check(zones)
    assert "no zone files (*.yaml) here" in r.stdout, r.stdout
    cfg = tmp_path / "gslb.yaml"
    cfg.write_text("zones:\n  missing.example: {ttl: 60}\n")
    (zones / "example.com.yaml").write_text("'':\n  type: NS\n  value: ns1.example.net.\n")
    _zones, problems = load_zones(str(zones), load_config(str(cfg)))
    assert [f"{cfg}:1: zones.missing.example: warning: configured but {zones} has no missing.example.yaml: "
            "nothing is served for it"] == [str(p) for p in problems]
