"""`gslb bgp …`: generate the ExaBGP config, run ExaBGP for a site, drain, undrain, status."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time

from bgp.config import load_site
from bgp.exabgp_conf import EXABGP_ENV, render
from gslb.conf.problems import load_or_exit
from gslb.store import SITE, StoreError, drains, open_store


def _site(path: str):
    return load_or_exit(load_site, path)


def cmd_config(args: argparse.Namespace) -> int:
    text = render(_site(args.site), log_file=args.api_log)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Write the ExaBGP config and become ExaBGP (for containers and service managers)."""
    cfg = _site(args.site)
    beside = os.path.join(os.path.dirname(sys.executable), "exabgp")  # the one installed with us
    exabgp = beside if os.access(beside, os.X_OK) else shutil.which("exabgp")
    if not exabgp:
        print("gslb bgp: exabgp is not installed (pip install exabgp)", file=sys.stderr)
        return 2
    workdir = tempfile.mkdtemp(prefix=f"gslb-bgp-{cfg.site}-")
    conf = os.path.join(workdir, "exabgp.conf")
    with open(conf, "w") as f:
        f.write(render(cfg, log_file=args.api_log))
    os.execve(exabgp, [exabgp, conf], {**os.environ, **EXABGP_ENV})
    return 0  # not reached


def _store_url(args: argparse.Namespace) -> str:
    """The shared store: drains and states live there, an in-process store would see nothing."""
    url = args.redis or (_site(args.site_file).store if getattr(args, "site_file", None) else None)
    url = url or os.environ.get("GSLB_REDIS")
    if not url or url.startswith("memory:"):
        print("gslb bgp: needs the shared store the sites use: --redis URL, --site-file SITE.yaml (its store:) "
              "or GSLB_REDIS", file=sys.stderr)
        raise SystemExit(2)
    return url


def cmd_drain(args: argparse.Namespace) -> int:
    """Drain or undrain a site the store knows; a repeated request changes nothing and says so."""

    async def go() -> tuple[int, str]:
        store = open_store(_store_url(args))
        try:
            own = _site(args.site_file).site if getattr(args, "site_file", None) else None
            if args.undrain:
                result = await drains.undrain(store, args.site, "cli", args.reason or "", also_known=own)
            else:
                result = await drains.drain(store, args.site, os.environ.get("USER", "cli"), args.reason or "",
                                            args.force, also_known=own)
            return (0, result.message) if result.known else (2, f"gslb bgp {result.message}")
        finally:
            await store.close()

    try:
        code, message = asyncio.run(go())
    except StoreError as exc:
        print(f"gslb bgp: {exc}", file=sys.stderr)
        return 2
    print(message, file=sys.stderr if code else sys.stdout)
    return code


def cmd_status(args: argparse.Namespace) -> int:
    async def go() -> dict:
        store = open_store(_store_url(args))
        try:
            return await store.scan(SITE)
        finally:
            await store.close()

    try:
        sites = asyncio.run(go())
    except StoreError as exc:
        print(f"gslb bgp: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(sites, indent=2, sort_keys=True))
        return 0
    if not sites:
        print("no site has published its state (is `gslb bgp run` up, with this store?)")
    for site, doc in sorted(sites.items()):
        peers = ", ".join(f"{p} {s}" for p, s in doc.get("peers", {}).items())
        print(f"{site}: {'healthy' if doc.get('healthy') else 'UNHEALTHY'}; peers: {peers}")
        for name, sig in sorted(doc.get("signals", {}).items()):
            print(f"  signal {name:17} {'up' if sig.get('up') else 'DOWN':10} {sig.get('detail', '')}")
        for prefix, st in sorted(doc.get("prefixes", {}).items()):
            flags = [f for f in ("guarded", "leaving") if st.get(f)]
            if st.get("hold_until") and st["hold_until"] > time.time():
                flags.append(f"held down until {time.strftime('%H:%M:%S', time.localtime(st['hold_until']))}")
            since = time.strftime("%H:%M:%S", time.localtime(st["since"]))
            print(f"  {prefix:24} {st['state']:10} since {since}  {st['reason']}"
                  + (f"  [{', '.join(flags)}]" if flags else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bgp", help="anycast controller: ExaBGP config, run, drain, status")
    bsub = p.add_subparsers(dest="bgp_command", required=True, metavar="ACTION")
    c = bsub.add_parser("config", help="print the ExaBGP config for a site file")
    c.add_argument("site")
    c.add_argument("-o", "--output")
    c.add_argument("--api-log", help="the API process also logs to this file")
    c.set_defaults(func=cmd_config)
    r = bsub.add_parser("run", help="run ExaBGP for a site file (replaces this process)")
    r.add_argument("site")
    r.add_argument("--api-log")
    r.set_defaults(func=cmd_run)
    for name, undrain in (("drain", False), ("undrain", True)):
        d = bsub.add_parser(name, help=f"{'lift the' if undrain else 'request a'} maintenance drain of SITE")
        d.add_argument("site", help="the site name (one the store knows: `gslb bgp status` lists them)")
        d.add_argument("--redis", help="store URL (default: the store of --site-file, else $GSLB_REDIS)")
        d.add_argument("--site-file", help="a site YAML to take the store URL (and a known site name) from")
        d.add_argument("--reason", help="why, for the change log")
        if undrain:
            d.set_defaults(force=False)
        else:
            d.add_argument("--force", action="store_true",
                           help="withdraw even the last announcement (the guard otherwise keeps it)")
        d.set_defaults(func=cmd_drain, undrain=undrain)
    s = bsub.add_parser("status", help="every site's prefixes and sessions, from the store")
    s.add_argument("--redis", help="store URL (default: the store of --site-file, else $GSLB_REDIS)")
    s.add_argument("--site-file")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_status)
