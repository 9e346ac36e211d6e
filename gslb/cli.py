"""The `gslb` command. Each subcommand lives with the part it drives and registers itself here.

Only the module of the subcommand asked for is imported: `gslb --help` and `gslb check` must not
pay for aiohttp, redis, the BGP or XDP code. `COMMANDS` therefore carries each subcommand's
one-line help for the top-level listing (tests/test_cli.py keeps it equal to what the modules
register).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from gslb import __version__

# subcommand → (module providing `register(subparsers)`, its help); the order of `gslb --help`.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("gslb.commands", "serve the zones (DNS over UDP and TCP)"),
    "check": ("gslb.commands", "validate a zone file or a folder of them"),
    "probe": ("gslb.commands", "run the zones' health checks from one region into the store"),
    "explain": ("gslb.commands", "show how the answer to NAME is decided for a client"),
    "reload": ("gslb.commands", "reload the zones of a running server (or send it SIGHUP)"),
    "demo": ("gslb.demo", "run the local HTTP endpoints the example zones health-check"),
    "bgp": ("bgp.cli", "anycast controller: ExaBGP config, run, drain, status"),
    "dataplane": ("dataplane.cli", "XDP L4 balancer: run, attach, detach, stats"),
    "web": ("gslb.web.cli", "the probe dashboard, JSON/admin API and /metrics"),
    "dnssec": ("gslb.dnssec.cli", "DNSSEC keys: keygen, ds, status, rollover"),
}
COMMAND_MODULES = list(dict.fromkeys(module for module, _help in COMMANDS.values()))


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option)."""
    for arg in argv:
        if arg == "--":
            return None
        if not arg.startswith("-"):
            return arg
    return None


def build_parser(modules: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser with the full parsers of `modules` (default: all of them) and one-line
    stand-ins for every other subcommand."""
    parser = argparse.ArgumentParser(prog="gslb", description="GSLB authoritative DNS and anycast controller")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("--version", action="version", version=f"gslb {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES if modules is None else modules:
        importlib.import_module(module).register(sub)
    for name, (_module, help_text) in COMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=help_text)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    name = _command_in(sys.argv[1:] if argv is None else argv)
    args = build_parser([COMMANDS[name][0]] if name in COMMANDS else []).parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2) if args.verbose else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
