"""`python -m bgp api SITE.yaml [--log FILE]`: the process ExaBGP runs."""

from __future__ import annotations

import argparse

from bgp.exabgp_process import main

parser = argparse.ArgumentParser(prog="python -m bgp")
sub = parser.add_subparsers(dest="command", required=True)
p = sub.add_parser("api", help="the ExaBGP API process for a site")
p.add_argument("site")
p.add_argument("--log", help="also log to this file")
args = parser.parse_args()
raise SystemExit(main(args.site, args.log))
