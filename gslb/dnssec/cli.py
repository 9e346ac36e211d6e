"""`gslb dnssec keygen|ds|status|rollover`: the keys of signed zones, on the command line.

The keys folder and the algorithm come from the zone's `dnssec:` settings in gslb.yaml
(`--config`), or from `--keys-dir`/`--algorithm`. Nothing here prints private key material.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import dns.name

from gslb.conf.problems import load_or_exit
from gslb.config import ServerConfig, load_config
from gslb.dnssec import keys as keyfiles
from gslb.dnssec import state
from gslb.dnssec.config import DnssecConfig


def _zone(text: str) -> dns.name.Name:
    return dns.name.from_text(text.rstrip(".") + ".")


def _settings(args: argparse.Namespace, zone: dns.name.Name) -> tuple[ServerConfig, DnssecConfig]:
    cfg = load_or_exit(load_config, args.config)
    dcfg = cfg.zone(zone.to_text(omit_final_dot=True)).dnssec or DnssecConfig(
        keys_dir=os.path.abspath("keys"))
    if getattr(args, "keys_dir", None):
        from dataclasses import replace

        dcfg = replace(dcfg, keys_dir=os.path.abspath(args.keys_dir))
    return cfg, dcfg


def _max_ttl(cfg: ServerConfig, zone: dns.name.Name) -> int:
    """The zone's largest TTL (how long a signature may sit in a cache), from its zone file."""
    from gslb.zone.load import load_zones

    try:
        zones, _ = load_zones(cfg.zones_dir, cfg)
    except Exception:
        return 86400
    for z in zones:
        if z.origin == zone:
            ttls = [rrset.ttl for node in z.nodes.values() for rrset in node.values()]
            return max(ttls, default=86400)
    return 86400


def _now(args: argparse.Namespace) -> int:
    return int(args.at) if getattr(args, "at", None) is not None else int(time.time())


def cmd_keygen(args: argparse.Namespace) -> int:
    zone = _zone(args.zone)
    _, dcfg = _settings(args, zone)
    algorithm = keyfiles.parse_algorithm(args.algorithm) if args.algorithm else dcfg.algorithm
    scheme = args.scheme or dcfg.scheme
    try:
        existing = keyfiles.find(dcfg.keys_dir, zone)
        if existing and not args.force:
            print(f"gslb dnssec keygen: {zone} already has keys in {dcfg.keys_dir} "
                  f"({len(existing)} file(s)); use `gslb dnssec rollover` (or --force to add more)", file=sys.stderr)
            return 1
        made = state.keygen(dcfg.keys_dir, zone, algorithm, split=scheme == "ksk+zsk", now=_now(args))
    except (keyfiles.KeyError_, OSError) as exc:
        print(f"gslb dnssec keygen: {exc}", file=sys.stderr)
        return 1
    for key in made:
        role = "KSK" if key.sep and scheme == "ksk+zsk" else ("CSK" if key.sep else "ZSK")
        print(f"{os.path.join(dcfg.keys_dir, key.basename)}  {role} tag {key.tag} algorithm {key.algorithm}")
    print(f"next: give the parent of {zone} its DS (`gslb dnssec ds {zone.to_text(omit_final_dot=True)}`)")
    return 0


def _load_keys(args: argparse.Namespace, zone: dns.name.Name) -> tuple[ServerConfig, DnssecConfig, state.ZoneKeys]:
    cfg, dcfg = _settings(args, zone)
    try:
        return cfg, dcfg, state.ZoneKeys.load(dcfg.keys_dir, zone)
    except keyfiles.KeyError_ as exc:
        print(f"gslb dnssec: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def cmd_ds(args: argparse.Namespace) -> int:
    zone = _zone(args.zone)
    _, _, zk = _load_keys(args, zone)
    sep = zk.sep_active()
    if not sep:
        print(f"gslb dnssec ds: no active KSK/CSK for {zone} in {zk.directory}", file=sys.stderr)
        return 1
    for key in sep:
        ttl = f" {args.ttl}" if args.ttl is not None else ""
        print(f"{zone}{ttl} IN DS {keyfiles.ds(key).to_text()}")
        if args.dnskey:
            print(f"{zone}{ttl} IN DNSKEY {key.dnskey.to_text()}")
    return 0


def _zones_to_show(args: argparse.Namespace) -> list[dns.name.Name]:
    if args.zone:
        return [_zone(z) for z in args.zone]
    cfg = load_or_exit(load_config, args.config)
    names = {name for name, zc in cfg.zones.items() if zc.dnssec is not None}
    if cfg.defaults.dnssec is not None:
        from gslb.zone.load import zone_files

        for path in zone_files(cfg.zones_dir):
            base = os.path.basename(path)
            for suffix in (".yaml", ".yml"):
                base = base.removesuffix(suffix)
            zc = cfg.zones.get(base.lower())
            if zc is None or zc.dnssec is not None:
                names.add(base.lower())
    return sorted(_zone(n) for n in names)


def cmd_status(args: argparse.Namespace) -> int:
    zones = _zones_to_show(args)
    if not zones:
        print("no signed zones (set `dnssec:` for a zone in gslb.yaml, or name a ZONE)")
        return 0
    now = _now(args)
    bad = 0
    for zone in zones:
        _, dcfg = _settings(args, zone)
        print(f"{zone}  keys in {dcfg.keys_dir}")
        try:
            zk = state.ZoneKeys.load(dcfg.keys_dir, zone)
        except keyfiles.KeyError_ as exc:
            print(f"  ERROR {exc}")
            bad += 1
            continue
        for key in zk.keys:
            st = zk.state_of(key)
            since = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(st.since)) if st.since else "-"
            print(f"  {key.basename}  {st.role.upper():3}  tag {key.tag:5}  alg {key.algorithm}  "
                  f"{st.state:9}  since {since}")
        for problem in zk.check():
            print(f"  ERROR {problem}")
            bad += 1
        print(f"  next: {state.next_action(zk, now)}")
    return 1 if bad else 0


def cmd_rollover(args: argparse.Namespace) -> int:
    zone = _zone(args.zone)
    cfg, dcfg, zk = _load_keys(args, zone)
    timing = state.Timing(dnskey_ttl=dcfg.dnskey_ttl, max_zone_ttl=_max_ttl(cfg, zone),
                          propagation=dcfg.propagation_delay, parent_ds_ttl=dcfg.parent_ds_ttl)
    try:
        done = state.rollover(zk, timing, kind=args.key, ds_published=args.ds_published, force=args.force,
                              now=_now(args))
    except state.RolloverError as exc:
        print(f"gslb dnssec rollover: {exc}", file=sys.stderr)
        return 1
    print(done)
    print(f"next: {state.next_action(zk, _now(args))}")
    print("then: `gslb reload` (or SIGHUP) so every node serves the new key state")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dnssec", help="DNSSEC keys: keygen, ds, status, rollover")
    dsub = p.add_subparsers(dest="dnssec_command", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--config", help="gslb.yaml (the zone's dnssec: settings name the keys folder)")
        q.add_argument("--keys-dir", help="the keys folder (overrides the config)")
        q.add_argument("--at", type=int, help=argparse.SUPPRESS)  # the clock, for tests

    q = dsub.add_parser("keygen", help="make the keys of a zone (a CSK, or a KSK and a ZSK)")
    common(q)
    q.add_argument("zone")
    q.add_argument("--algorithm", help="13/ECDSAP256SHA256 (default) or 15/ED25519")
    q.add_argument("--scheme", choices=["csk", "ksk+zsk"], help="one combined key (default) or KSK + ZSK")
    q.add_argument("--force", action="store_true", help="add keys even when the zone has some")
    q.set_defaults(func=cmd_keygen)

    q = dsub.add_parser("ds", help="the DS records (SHA-256) to give the parent zone")
    common(q)
    q.add_argument("zone")
    q.add_argument("--ttl", type=int, help="print this TTL in the records")
    q.add_argument("--dnskey", action="store_true", help="also print the DNSKEY (for parents that want it)")
    q.set_defaults(func=cmd_ds)

    q = dsub.add_parser("status", help="keys, their states and the next rollover action")
    common(q)
    q.add_argument("zone", nargs="*", help="zones (default: every signed zone of the config)")
    q.set_defaults(func=cmd_status)

    q = dsub.add_parser("rollover", help="start a key rollover or run its next step when due")
    common(q)
    q.add_argument("zone")
    q.add_argument("--key", choices=["csk", "ksk", "zsk"], help="which key to roll (default: the CSK, else the ZSK)")
    q.add_argument("--ds-published", action="store_true",
                   help="CSK/KSK rollover: the parent now serves the DS of the new key")
    q.add_argument("--force", action="store_true", help="run the next step before its time (unsafe)")
    q.set_defaults(func=cmd_rollover)


register = add_parser  # gslb.cli's COMMAND_MODULES calls `register(subparsers)`
