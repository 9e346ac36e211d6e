"""`gslb web`: the dashboard on its own, against the shared store."""

from __future__ import annotations

import argparse
import os
import sys

from aiohttp import web

from gslb.server.sockets import ListenError, parse_listen
from gslb.store import open_store
from gslb.web.app import make_app


def read_token(args: argparse.Namespace) -> str | None:
    if args.token_file:
        with open(args.token_file) as f:
            return f.read().strip() or None
    return os.environ.get("GSLB_WEB_TOKEN") or None


def cmd_web(args: argparse.Namespace) -> int:
    try:
        host, port = parse_listen(args.listen)
    except ListenError as exc:
        print(f"gslb web: {exc}", file=sys.stderr)
        return 2
    try:
        token = read_token(args)
    except OSError as exc:
        print(f"gslb web: cannot read the token file: {exc}", file=sys.stderr)
        return 2
    app = make_app(open_store(args.redis), token=token)
    web.run_app(app, host=host, port=port, print=lambda *_: None, access_log=None)
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("web", help="the probe dashboard, JSON/admin API and /metrics")
    p.add_argument("--redis", help="the store (default: an empty in-process store, for trying the pages)")
    p.add_argument("--listen", default="127.0.0.1:8053", help="ADDR:PORT (default 127.0.0.1:8053)")
    p.add_argument("--token-file", help="file holding the bearer token for write endpoints "
                                        "(or GSLB_WEB_TOKEN); without one, writes are disabled")
    p.set_defaults(func=cmd_web)
