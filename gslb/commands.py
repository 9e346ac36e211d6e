"""Core subcommands: serve, check, reload (and probe, explain with the GSLB engine)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from dataclasses import replace

from gslb.config import ServerConfig, load_config
from gslb.zone.load import load_zone, load_zones
from gslb.zone.problems import ZoneError


def _config(args: argparse.Namespace) -> ServerConfig:
    """The config file (if any) with command-line flags on top."""
    cfg = load_config(args.config)
    overrides = {}
    for flag, key in (("zones", "zones_dir"), ("geodb", "geodb"), ("redis", "redis"), ("workers", "workers"),
                      ("identity", "identity"), ("control", "control"), ("web", "web"), ("region", "region")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "listen", None):
        overrides["listen"] = tuple(args.listen)
    return replace(cfg, **overrides)


def _config_or_exit(args: argparse.Namespace) -> ServerConfig:
    try:
        return _config(args)
    except ZoneError as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(1) from None


def cmd_serve(args: argparse.Namespace) -> int:
    from gslb import node

    cfg = _config_or_exit(args)
    return node.serve(cfg, cfg.control)


def cmd_check(args: argparse.Namespace) -> int:
    cfg = _config_or_exit(args)
    path = args.path
    if os.path.isdir(path):
        try:
            zones, problems = load_zones(path, cfg)
        except ZoneError as exc:
            zones, problems = [], exc.problems
    else:
        zone, problems = load_zone(path, cfg)
        zones = [zone] if zone else []
    for p in problems:
        print(p)
    errors = [p for p in problems if p.severity == "error"]
    warnings = len(problems) - len(errors)
    if errors:
        print(f"{len(errors)} error(s), {warnings} warning(s) in {path}", file=sys.stderr)
        return 1
    records = sum(len(z.records) for z in zones)
    print(f"ok: {len(zones)} zone(s), {records} record(s), {warnings} warning(s) in {path}")
    return 0


def cmd_reload(args: argparse.Namespace) -> int:
    cfg = _config_or_exit(args)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(60)
            s.connect(cfg.control)
            s.sendall(b"reload\n")
            reply = s.makefile().readline()
    except OSError as exc:
        print(f"gslb reload: cannot reach the server at {cfg.control}: {exc.strerror or exc} "
              "(is `gslb serve` running? --control PATH or SIGHUP also work)", file=sys.stderr)
        return 2
    result = json.loads(reply)
    for problem in result.get("problems", []):
        print(problem)
    if result.get("ok"):
        print(f"reloaded: {result['zones']} zone(s), serial {result['serial']}")
        return 0
    print(f"reload rejected; still serving serial {result.get('serial')}", file=sys.stderr)
    return 1


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="server config file (gslb.yaml); flags override it")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the zones (DNS over UDP and TCP)")
    _common(p)
    p.add_argument("--zones", help="folder of octoDNS YAML zone files (default: zones)")
    p.add_argument("--listen", action="append", metavar="ADDR:PORT",
                   help="address to serve on, repeatable; IPv6 as [::1]:5353 (default 127.0.0.1:5353)")
    p.add_argument("--geodb", help="GeoLite2/GeoIP2 City or Country .mmdb (default: bundled test data)")
    p.add_argument("--redis", help="store URL: redis://, redis+sentinel://, redis+cluster:// (default: in-process)")
    p.add_argument("--workers", type=int, help="worker processes sharing the port (default: one per core)")
    p.add_argument("--identity", help="name of this node for NSID and CH TXT id.server (default: hostname)")
    p.add_argument("--control", help="control socket for `gslb reload`")
    p.add_argument("--web", metavar="ADDR:PORT", help="serve the dashboard, /metrics and the admin API here")
    p.add_argument("--region", help="probe region of this node for the embedded probe loop")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("check", help="validate a zone file or a folder of them")
    _common(p)
    p.add_argument("path")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("reload", help="reload the zones of a running server (or send it SIGHUP)")
    _common(p)
    p.add_argument("--control", help="the server's control socket")
    p.set_defaults(func=cmd_reload)
