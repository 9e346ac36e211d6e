"""gslb.yaml: every setting is checked, every problem reported at once with its file and line."""

from __future__ import annotations

import pytest

from gslb.conf.problems import ConfigError
from gslb.config import load_config

BAD = """\
listen: [127.0.0.1:5353, "nonsense"]
workers: -1
edns_udp_size: 100
tcp_idle_timeout: -5
tcp_max_connections: 0
watch: maybe
quorum: 0
redis: http://192.0.2.1/
web: 192.0.2.1
defaults:
  ttl: -1
  soa: {refresh: -3, minimum: 2147483648, serial: 7}
zones:
  example.com: {ttl: "x", axfr_allow: [not-a-net]}
colour: blue
"""


def problems_of(tmp_path, text: str) -> list[str]:
    path = tmp_path / "gslb.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    return [str(p).replace(str(path), "gslb.yaml") for p in info.value.problems]


def test_every_bad_setting_is_reported_with_its_line(tmp_path):
    found = problems_of(tmp_path, BAD)
    expected = {  # line: field
        1: "listen", 2: "workers", 3: "edns_udp_size", 4: "tcp_idle_timeout", 5: "tcp_max_connections",
        6: "watch", 7: "quorum", 8: "redis", 9: "web", 11: "defaults.ttl", 15: "colour",
    }
    for line, name in expected.items():
        assert any(p.startswith(f"gslb.yaml:{line}: {name}") for p in found), (line, name, found)
    assert any(p.startswith("gslb.yaml:12: defaults.soa.refresh") for p in found), found
    assert any("defaults.soa.minimum" in p for p in found), found
    assert any("defaults.soa.serial: unknown key" in p for p in found), found
    assert any(p.startswith("gslb.yaml:14: zones.example.com.ttl") for p in found), found
    assert any("zones.example.com.axfr_allow" in p and "not-a-net" in p for p in found), found


def test_negative_tcp_idle_timeout_is_refused_not_applied(tmp_path):
    (problem,) = problems_of(tmp_path, "tcp_idle_timeout: -5\n")
    assert problem.startswith("gslb.yaml:1: tcp_idle_timeout: a number 0.1..3600 seconds, not -5"), problem


def test_good_settings_load(tmp_path):
    path = tmp_path / "gslb.yaml"
    path.write_text("workers: 2\ntcp_idle_timeout: 2.5\nquorum: 2\nredis: redis://127.0.0.1:6379/0\n"
                    "listen: ['[::1]:5353', 127.0.0.1:5353]\nversion: false\n"
                    "defaults: {ttl: 60, soa: {minimum: 30}}\nzones: {Example.COM.: {ttl: 10}}\n")
    cfg = load_config(str(path))
    assert (cfg.workers, cfg.tcp_idle_timeout, cfg.quorum, cfg.version) == (2, 2.5, 2, None)
    assert cfg.listen == ("[::1]:5353", "127.0.0.1:5353")
    assert cfg.zone("example.com").ttl == 10 and cfg.zone("example.com").soa.minimum == 30
    assert cfg.zone("other.example").ttl == 60
