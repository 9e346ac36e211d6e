"""`gslb check`: every problem of a file at once, as file:line: field: message."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from tests.support.dnsserver import ROOT


def check(path: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "gslb", "check", path], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def test_good_zones_pass_with_a_one_line_summary():
    r = check(os.path.join(ROOT, "zones"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1].startswith("ok: ")
    assert "zone(s)" in r.stdout


def test_duplicate_record_names_are_caught_with_both_lines():
    d = tempfile.mkdtemp()
    try:
        path = os.path.join(d, "dup.example.yaml")
        with open(path, "w") as f:
            f.write("www:\n  type: A\n  value: 192.0.2.1\nwww:\n  type: A\n  value: 192.0.2.2\n")
        r = check(path)
        assert r.returncode == 1
        assert f"{path}:4: yaml: duplicate key 'www' (first at line 1)" in r.stdout
    finally:
        shutil.rmtree(d)


def test_every_problem_is_reported_at_once():
    path = os.path.join(ROOT, "tests/data/broken/broken.example.yaml")
    r = check(path)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    expected = [
        f"{path}:7: ''.CNAME: CNAME is not allowed at the zone apex (use ALIAS)",
        f"{path}:13: www.A.value[1]: '192.0.2.999' is not an IPv4 address",
        f"{path}:14: www.CNAME: CNAME cannot sit beside other data (A)",
        f"{path}:18: ttl.A.ttl: TTL must be an integer 0..2147483647, got -5",
        f"{path}:21: bogus.type: unknown or unsupported record type 'WKS'",
        f"{path}:26: yaml: duplicate key 'dup' (first at line 23)",
        f"{path}:33: mx.MX.value.exchange: 'mail.broken.example' is missing the trailing dot",
        f"{path}:36: v6.AAAA.value: '192.0.2.4' is not an IPv6 address",
        f"{path}:39: txt.TXT.value: unescaped ';' (octoDNS requires '\\;' in TXT values)",
        f"{path}:3: ''.NS: name server ns2.broken.example. is inside the zone but has no A/AAAA record "
        "(glue-less in-zone NS)",
    ]
    for line in expected:
        assert any(got.startswith(line) for got in lines), f"missing: {line}\ngot:\n{r.stdout}"
    assert "10 error(s)" in r.stderr


def test_cname_beside_other_data_is_caught():
    d = tempfile.mkdtemp()
    try:
        path = os.path.join(d, "c.example.yaml")
        with open(path, "w") as f:
            f.write("www:\n  - type: A\n    value: 192.0.2.1\n  - type: CNAME\n    value: x.example.\n")
        r = check(path)
        assert r.returncode == 1
        assert f"{path}:4: www.CNAME: CNAME cannot sit beside other data (A)" in r.stdout
    finally:
        shutil.rmtree(d)


def test_yaml_syntax_errors_name_the_line():
    d = tempfile.mkdtemp()
    try:
        path = os.path.join(d, "y.example.yaml")
        with open(path, "w") as f:
            f.write("www:\n  type: A\n  value: [192.0.2.1\n")
        r = check(path)
        assert r.returncode == 1
        assert r.stdout.startswith(f"{path}:4: yaml:") or r.stdout.startswith(f"{path}:3: yaml:")
    finally:
        shutil.rmtree(d)


def test_a_folder_reports_every_file():
    d = tempfile.mkdtemp()
    try:
        shutil.copy(os.path.join(ROOT, "tests/data/broken/broken.example.yaml"), d)
        shutil.copy(os.path.join(ROOT, "zones/example.com.yaml"), d)
        with open(os.path.join(d, "other.example.yaml"), "w") as f:
            f.write("www:\n  type: A\n  ttl: 99999999999\n  value: 192.0.2.1\n")
        r = check(d)
        assert r.returncode == 1
        assert "broken.example.yaml:13:" in r.stdout
        assert "other.example.yaml:3: www.A.ttl:" in r.stdout
    finally:
        shutil.rmtree(d)


# -- YAML syntax errors: file:line:col, the message, the offending line ----------------------

BAD_YAML = "www:\n  type: A\n  value: 192.0.2.1\napi:\n  type: A\n  values:\n    - 192.0.2.1\n  ttl: 60: 3\n"


def test_format_yaml_error_names_file_line_column_and_shows_the_line():
    import yaml

    from gslb.conf import located

    for text, expected in [
        (BAD_YAML, "z.yaml:8:10: mapping values are not allowed here\n      ttl: 60: 3\n             ^"),
        ("a: [1, 2\nb: 3\n", "z.yaml:2:2: expected ',' or ']', but got ':' (while parsing a flow sequence started "
                             "at line 1, column 4)\n    b: 3\n     ^"),
        ("a:\n  b: [1\n", "z.yaml:3:1: expected ',' or ']', but got '<stream end>' (while parsing a flow sequence "
                          "started at line 2, column 6)\n      b: [1\n         ^"),  # at the end: where it began
        ("a: 1\na: 2\n", "z.yaml:2:1: duplicate key 'a' (first at line 1)\n    a: 2\n    ^"),
    ]:
        try:
            located.load(text)
        except yaml.YAMLError as exc:
            assert located.format_yaml_error("z.yaml", text, exc) == expected
            assert "<unicode string>" not in str(exc) and "\n" not in str(exc)
        else:
            raise AssertionError(f"{text!r} parsed")


def test_yaml_syntax_errors_of_config_files_print_file_line_column_and_the_line(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text("site: a\nlocal_as: 65001\nneighbors:\n  - {address: 192.0.2.2, peer_as: 65000\nprefixes: []\n")
    r = subprocess.run([sys.executable, "-m", "gslb", "bgp", "config", str(path)], capture_output=True, text=True,
                       cwd=ROOT, timeout=60)
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        f"{path}:5:9: yaml: expected ',' or '}}', but got ':' (while parsing a flow mapping started at line 4, "
        "column 5)", "    prefixes: []", "            ^"]


def test_yaml_syntax_errors_of_zone_files_are_one_readable_line(tmp_path):
    path = tmp_path / "example.org.yaml"
    path.write_text(BAD_YAML)
    r = check(str(path))
    assert r.returncode == 1
    assert r.stdout == f"{path}:8: yaml: mapping values are not allowed here (column 10: 'ttl: 60: 3')\n"
    cfg = tmp_path / "gslb.yaml"
    cfg.write_text("zones:\n  example.org: {axfr_allow: [1\n")
    r = subprocess.run([sys.executable, "-m", "gslb", "check", "--config", str(cfg), str(tmp_path)],
                       capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 1 and "<unicode string>" not in r.stderr
    assert "while parsing a flow sequence started at line 2, column 29" in r.stderr
