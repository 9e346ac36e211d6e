"""The `gslb` command line itself: what it imports, what its help says, and that it agrees with the README."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from gslb import __version__
from gslb.cli import COMMANDS, build_parser
from tests.support.dnsserver import ROOT

# What only serving, the web, BGP or the dataplane need: `--help` and `check` must not pay for it.
HEAVY = ("aiohttp", "redis", "exabgp", "uvloop", "geoip2", "maxminddb", "dns.message", "dns.query", "asyncio",
         "gslb.server.fastpath", "gslb.server.tcp", "gslb.answers", "gslb.node", "gslb.web", "gslb.store", "bgp",
         "dataplane")


def gslb(*args: str, importtime: bool = False) -> subprocess.CompletedProcess:
    flags = ["-X", "importtime"] if importtime else []
    return subprocess.run([sys.executable, *flags, "-m", "gslb", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def imported(stderr: str) -> set[str]:
    """Module names from `python -X importtime` output."""
    out = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":
                out.add(name)
    return out


@pytest.mark.parametrize("args", [("--help",), ("check", "zones"), ("check", "--help"), ("--version",)],
                         ids=["help", "check", "check-help", "version"])
def test_only_the_subcommand_asked_for_is_imported(args):
    r = gslb(*args, importtime=True)
    assert r.returncode == 0, r.stderr[-2000:]
    modules = imported(r.stderr)
    assert "gslb.cli" in modules  # the measurement works
    heavy = sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in HEAVY))
    assert heavy == []
    if args[0] != "check" or args[-1] == "--help":
        assert not any(m.startswith(("gslb.zone", "gslb.config", "gslb.policy", "dns.")) for m in modules)


def test_version():
    r = gslb("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"gslb {__version__}"


def test_help_lists_every_subcommand_with_the_help_its_module_registers():
    parser = build_parser()  # every module loaded
    sub = next(a for a in parser._actions if a.dest == "command")
    registered = {a.dest: a.help for a in sub._choices_actions}
    assert registered == {name: help_text for name, (_module, help_text) in COMMANDS.items()}
    out = gslb("--help").stdout
    for name, (_module, help_text) in COMMANDS.items():
        assert re.search(rf"^\s+{name}\s+{re.escape(help_text)}$", out, re.M), name


def test_every_subcommand_still_parses_its_own_flags():
    r = gslb("explain", "www.example.com", "--client", "192.0.2.1", "--zones", "zones")
    assert r.returncode == 0 and "answer" in r.stdout
    r = gslb("bgp", "status")
    assert r.returncode == 2 and "needs the shared store" in r.stderr
    r = gslb("-v", "check", "zones")
    assert r.returncode == 0 and r.stdout.startswith("ok:")


def test_check_help_does_not_promise_flags_it_lacks():
    out = gslb("check", "--help").stdout
    assert "flags override" not in out and "--config" in out


def readme_commands() -> dict[str, str]:
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    section = text.split("## Command line", 1)[1].split("```", 2)[1]
    out: dict[str, str] = {}
    name = ""
    for line in section.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) >= 2 and words[0] == "gslb":
            name = words[1]
            out[name] = " ".join(words[2:])
        elif name and words:
            out[name] += " " + " ".join(words)
    return out


@pytest.mark.parametrize("command", ["probe", "web", "serve", "explain", "check"])
def test_readme_and_help_agree_on_which_flags_are_required(command):
    """A flag the README shows outside brackets is required by argparse, and the other way round."""
    synopsis = readme_commands()[command]
    optional = set(re.findall(r"\[(--[a-z-]+)", synopsis))
    required_in_readme = set(re.findall(r"(?<!\[)(--[a-z-]+)", synopsis)) - optional
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    required = {a.option_strings[-1] for a in sub._actions if a.option_strings and a.required}
    assert required_in_readme == required
    for flag in optional:
        action = next(a for a in sub._actions if flag in a.option_strings)
        assert not action.required, flag
    if command in ("probe", "web"):
        redis = next(a for a in sub._actions if "--redis" in a.option_strings)
        assert "default" in redis.help and "in-process" in redis.help
