"""The streaming zone reader (gslb/zone/stream.py) reads what the full located loader reads:
the same values, lines, duplicates and problems, and hands every YAML feature it does not read
itself (anchors, aliases, tags, merge keys, other roots, syntax errors) back to that loader."""

from __future__ import annotations

import glob
import os

import pytest

from gslb.conf import located
from gslb.config import ServerConfig
from gslb.zone import load, stream
from tests.support import bigzone
from tests.support.dnsserver import ROOT

TRICKY = """\
'':
  - type: NS
    values: [ns1.example.net., ns2.example.net.]
  - {type: A, value: 192.0.2.1, ttl: '300'}
~:
  type: TXT
  value: "apex again"
www:
  type: A
  ttl: 0x1f
  values:
    - 192.0.2.10
    - 192.0.2.10
  octodns: {excluded: [], healthcheck: {port: 80}}
www:
  type: AAAA
  value: 2001:db8::1
"1": {type: TXT, value: yes}
true: {type: TXT, value: 'on'}
txt:
  type: TXT
  value: |
    multi line
mx:
  type: MX
  value: {preference: 10, exchange: mx.example.net., preference: 20}
bad:
  type: A
  value: 192.0.2.300
Upper:
  type: a
  value: 192.0.2.4
f: {type: TXT, value: 1.5}
n: {type: TXT, value: null}
"""

LEFT_TO_THE_LOADER = {
    "anchor": "a: &x {type: A, value: 192.0.2.1}\nb: *x\n",
    "merge": "a: {type: A, value: 192.0.2.1}\nb:\n  <<: {type: A}\n  value: 192.0.2.2\n",
    "tag": "a: {type: TXT, value: !!str 12}\n",
    "root list": "- a\n- b\n",
    "root scalar": "hello\n",
    "empty": "",
    "two documents": "a: {type: A, value: 192.0.2.1}\n---\nb: {type: A, value: 192.0.2.2}\n",
    "syntax late": "a: {type: A, value: 192.0.2.1}\nb: [unclosed\n",
    "syntax early": "a: {type: A\n",
}


def plain(value):
    """A located value with its lines, comparable with ==."""
    if isinstance(value, located.Located):
        return ("map", value.line, [(k, value.line_of(k), plain(v)) for k, v in value.items()])
    if isinstance(value, located.LocatedList):
        return ("list", value.line, list(value.item_lines), [plain(v) for v in value])
    return (type(value).__name__, value)


def streamed(text: str):
    entries, duplicates, line = stream.names(text)
    items = [(k, kline, plain(v)) for k, kline, v in entries]
    return line, items, [(d.key, d.line, d.first) for d in duplicates]


def composed(text: str):
    doc, duplicates = located.load_collecting(text)
    return doc.line, [(k, doc.line_of(k), plain(v)) for k, v in doc.items()], [
        (d.key, d.line, d.first) for d in duplicates]


def zone_texts() -> list[tuple[str, str]]:
    out = [("tricky", TRICKY), ("generated", bigzone.yaml_text(300))]
    for path in sorted(glob.glob(os.path.join(ROOT, "zones", "*.yaml"))
                       + glob.glob(os.path.join(ROOT, "tests", "data", "**", "*.yaml"), recursive=True)):
        with open(path) as f:
            out.append((os.path.relpath(path, ROOT), f.read()))
    return out


@pytest.mark.parametrize(("label", "text"), zone_texts(), ids=[label for label, _ in zone_texts()])
def test_streamed_values_equal_the_located_tree(label, text):
    try:
        got = streamed(text)
    except stream.NotLean:
        pytest.skip(f"{label}: left to the full loader")
    assert got == composed(text)


def full_loader_only(monkeypatch):
    def refuse(text):
        raise stream.NotLean("test")

    monkeypatch.setattr(stream, "names", refuse)


def records(zone):
    return [(r.name, r.rtype, r.ttl, r.rdatas, r.line, r.options) for r in zone.records] if zone else None


@pytest.mark.parametrize(("label", "text"), [*zone_texts(), *LEFT_TO_THE_LOADER.items()],
                         ids=[label for label, _ in [*zone_texts(), *LEFT_TO_THE_LOADER.items()]])
def test_zone_and_problems_equal_the_full_loaders(label, text, monkeypatch):
    cfg = ServerConfig()
    zone, problems = load.load_zone_text(text, "example.com.yaml", cfg, serial=1)
    full_loader_only(monkeypatch)
    zone2, problems2 = load.load_zone_text(text, "example.com.yaml", cfg, serial=1)
    assert problems == problems2
    assert records(zone) == records(zone2)


def test_the_tricky_zone_is_streamed_and_its_problems_keep_their_lines():
    streamed(TRICKY)  # no NotLean: duplicates, odd keys and scalars are read here
    _zone, problems = load.load_zone_text(TRICKY, "example.com.yaml", ServerConfig(), serial=1)
    lines = TRICKY.splitlines()

    def line(text: str, nth: int = 0) -> int:
        return [i + 1 for i, source in enumerate(lines) if text in source][nth]

    seen = {(p.line, p.field) for p in problems}
    assert (line("www:", 1), "yaml") in seen  # the second `www`
    assert (line("~:"), "yaml") in seen  # `~` is the apex '' again
    assert (line("preference: 20"), "yaml") in seen  # preference given twice
    assert (line("192.0.2.300"), "bad.A.value") in seen


@pytest.mark.parametrize("label", sorted(LEFT_TO_THE_LOADER))
def test_what_the_stream_does_not_read_goes_to_the_full_loader(label):
    with pytest.raises(stream.NotLean):
        streamed(LEFT_TO_THE_LOADER[label])
