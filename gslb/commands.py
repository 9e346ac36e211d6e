"""Core subcommands: serve, check, reload (and probe, explain with the GSLB answers)."""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from gslb.conf.problems import ConfigError, load_or_exit

if TYPE_CHECKING:
    from gslb.config import ServerConfig

# The config and zone loaders (dnspython, YAML) are imported by the commands that use them, so
# `gslb --help`, `gslb check --help` and `gslb reload` start quickly.


def _config(args: argparse.Namespace) -> ServerConfig:
    """The config file (if any) with command-line flags on top."""
    from gslb.config import load_config

    cfg = load_config(getattr(args, "config", None))
    overrides = {}
    for flag, key in (("zones", "zones_dir"), ("geodb", "geodb"), ("redis", "redis"), ("workers", "workers"),
                      ("identity", "identity"), ("control", "control"), ("web", "web"), ("region", "region")):
        value = getattr(args, flag, None)
        if value is not None:
            overrides[key] = value
    if getattr(args, "listen", None):
        overrides["listen"] = tuple(args.listen)
    return replace(cfg, flags=tuple(overrides.items()), **overrides)


def _config_or_exit(args: argparse.Namespace) -> ServerConfig:
    return load_or_exit(_config, args)


def cmd_serve(args: argparse.Namespace) -> int:
    from gslb import node
    from gslb.server import abuse_config

    cfg = _config_or_exit(args)
    abuse_config.warn_if_random(cfg.abuse)
    return node.serve(cfg, cfg.control)


def cmd_check(args: argparse.Namespace) -> int:
    from gslb.zone.bulk import record_count
    from gslb.zone.load import load_zone, load_zones

    cfg = _config_or_exit(args)
    path = args.path
    if os.path.isdir(path):
        try:
            zones, problems = load_zones(path, cfg)
        except ConfigError as exc:
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
    records = sum(record_count(z) for z in zones)
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


def cmd_probe(args: argparse.Namespace) -> int:
    """Run the checks the zones ask for from one region, publishing verdicts to the store."""
    import asyncio
    import logging
    import signal

    from gslb.conf.watch import FileWatch
    from gslb.policy.checks import zone_checks
    from gslb.probe.agent import ProbeAgent
    from gslb.store import REGION, StoreError, open_store
    from gslb.zone.load import load_zones, zone_files

    cfg = _config_or_exit(args)
    log = logging.getLogger("gslb.probe")
    if not cfg.redis:
        log.warning("no --redis: verdicts stay in this process (useful only for testing checks)")

    def load() -> list:
        zones, _ = load_zones(cfg.zones_dir, cfg)
        return list(zone_checks(zones).values())

    try:
        specs = load()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1

    async def main() -> None:
        store = open_store(cfg.redis)
        agent = ProbeAgent(args.region, store, specs, heartbeat=args.heartbeat, source=args.source)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        runner = asyncio.ensure_future(agent.run())
        log.info("region %s: %d check(s) from %s", args.region, len(specs), cfg.zones_dir)

        files = FileWatch(lambda: zone_files(cfg.zones_dir))
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 2.0)
            except TimeoutError:
                pass
            if files.changed():
                try:
                    new = load()
                    agent.update_checks(new)
                    log.info("zones changed: %d check(s)", len(new))
                except ConfigError as exc:
                    log.error("zones changed but do not load; keeping the current checks:\n%s", exc)
        agent.stop()
        runner.cancel()
        try:  # leave at once, so the other regions decide without waiting for our expiry
            await store.delete(REGION, args.region)
        except StoreError:
            pass
        await store.close()

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Print how the server decides the answer to NAME for a client address."""
    import asyncio
    import ipaddress

    import dns.name
    import dns.rdatatype

    from gslb.answers import Answers
    from gslb.geo import locator_for
    from gslb.health.model import summarize
    from gslb.health.reader import read_view
    from gslb.store import StoreError, open_store
    from gslb.zone.load import load_zones

    cfg = _config_or_exit(args)
    try:
        zones, _ = load_zones(cfg.zones_dir, cfg)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    locator, sites = locator_for(cfg.geodb, cfg.asndb, cfg.regions)
    answers = Answers(zones, locator, sites)
    health_note = "no store given: every check counts as up (unknown)"
    if cfg.redis:
        async def read() -> dict:
            store = open_store(cfg.redis)
            try:
                view = await read_view(store)
                if cfg.quorum is not None:  # what this config would publish
                    view.quorum = cfg.quorum
                return view.decide()
            finally:
                await store.close()
        try:
            decided = asyncio.run(read())
            answers.set_health(summarize(decided))
            health_note = f"health from {cfg.redis}: {len(decided)} check(s) with fresh verdicts"
        except StoreError as exc:
            health_note = f"store unreachable ({exc}): every check counts as up"
    try:
        ip = ipaddress.ip_address(args.client.split("/")[0])
    except ValueError:
        print(f"gslb explain: --client {args.client!r} is not an IP address", file=sys.stderr)
        return 2
    ecs = None
    if "/" in args.client:
        from gslb.policy.client import ClientSubnet

        net = ipaddress.ip_network(args.client, strict=False)
        nbytes = (net.prefixlen + 7) // 8
        ecs = ClientSubnet(1 if net.version == 4 else 2, net.prefixlen, net.network_address.packed[:nbytes])
    key = locator.key(ip.packed, ecs)
    client = locator.client(key)
    loc = client.location
    print(f"client      {args.client}  (decided per {client.ip()}/{client.prefix})")
    print(f"location    {' '.join(loc.codes) or 'unknown'}"
          + (f"  lat {loc.latitude} lon {loc.longitude}" if loc.latitude is not None else "")
          + (f"  AS{loc.asn}" if loc.asn else "") + (f"  network {loc.network}" if loc.network else ""))
    print(f"region      {client.region or 'none'}")
    print(f"health      {health_note}")
    qname = dns.name.from_text(args.name)
    qtype = dns.rdatatype.from_text(args.type)
    result = answers.explain(qname, qtype, client)
    for line in _explain_lines(result, qname.to_text(), args.type.upper()):
        print(line)
    return 0


def _explain_lines(result: dict, qname: str, qtype: str) -> list[str]:
    """`gslb explain`'s account of an answer: rcode, decision, each record, the negative TTL."""
    def block(label: str, rows: list[str]) -> list[str]:
        return [f"{label if i == 0 else '':11} {row}" for i, row in enumerate(rows)]

    kind = result.get("kind")
    flags = "  aa" if result.get("aa") else ""
    rcode = result["rcode"] + {"NODATA": f" (NODATA: {qname} has no {qtype} records)",
                               "NXDOMAIN": f" (no name {qname} in {result.get('zone')})",
                               "referral": " (referral: the name is delegated)"}.get(kind or "", "")
    out = [f"rcode       {rcode}{flags}" + ("  (wildcard)" if result.get("wildcard") else "")]
    sections = result.get("sections", {})
    tail = block("authority", sections.get("authority", [])) + block("additional", sections.get("additional", []))
    negative = result.get("negative")
    if negative:
        tail.append(f"negative    ttl {negative['ttl']}: the lower of the SOA's ttl {negative['soa_ttl']} and its "
                    f"minimum {negative['minimum']} (RFC 2308 section 5), from the SOA of {negative['soa']}")
    if result["answer"] != "dynamic":
        answer = sections.get("answer", [])
        out.append(f"answer      {result['answer']}" + ("" if answer or result["rcode"] == "REFUSED" else
                                                           "  (no records)"))
        return out + block("", answer) + tail
    out.append(f"record      {result['record']}  policy {result['policy']}")
    out += [f"chain       {line}" for line in result["cname_chain"]]
    out += [f"decision    {line}" for line in result["trace"]]
    out += block("records", sections.get("answer", [])) + tail
    decision = result["decision"]
    values = " ".join(decision.values) or "(empty)"
    if decision.candidates:  # `pick: random`
        values = (f"{decision.answers} drawn per answer from "
                  + ", ".join(f"{value} (weight {weight})" for value, weight in decision.candidates))
    out.append(f"answer      {values}  ttl {decision.ttl}  ecs scope /{decision.scope}  [{decision.label}]")
    return out


def _common(p: argparse.ArgumentParser, help_text: str = "server config file (gslb.yaml); flags override it") -> None:
    p.add_argument("--config", help=help_text)


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
    _common(p, "server config file (gslb.yaml) whose zone settings (defaults, SOA values, per-zone entries) "
               "the zones are checked with")
    p.add_argument("path", help="a zone file, or a folder of them")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("probe", help="run the zones' health checks from one region into the store")
    _common(p)
    p.add_argument("--region", required=True, help="name of the region this agent probes from")
    p.add_argument("--redis", help="store URL the verdicts go to (default: in-process, seen only by this "
                                   "process: for trying the checks)")
    p.add_argument("--zones", help="folder of zone files whose checks to run (default: zones)")
    p.add_argument("--heartbeat", type=float, default=1.0, help="seconds between liveness heartbeats")
    p.add_argument("--source", metavar="ADDR", help="local address the checks connect from (multi-homed probe hosts)")
    p.set_defaults(func=cmd_probe)

    p = sub.add_parser("explain", help="show how the answer to NAME is decided for a client")
    _common(p)
    p.add_argument("name")
    p.add_argument("type", nargs="?", default="A")
    p.add_argument("--client", required=True, help="client address, or a subnet as ECS would send it")
    p.add_argument("--zones", help="folder of zone files (default: zones)")
    p.add_argument("--geodb", help="GeoLite2/GeoIP2 City or Country .mmdb (default: bundled test data)")
    p.add_argument("--redis", help="read current health from this store")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("reload", help="reload the zones of a running server (or send it SIGHUP)")
    _common(p)
    p.add_argument("--control", help="the server's control socket")
    p.set_defaults(func=cmd_reload)
