"""`gslb dataplane …`: run the agent, attach/detach, read counters, prepare veth peers."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import socket
import sys

from dataplane import config as dpconfig
from dataplane import libbpf
from dataplane.libbpf import BpfError
from gslb.conf.problems import load_or_exit


def _load(path: str) -> dpconfig.DataplaneConfig:
    return load_or_exit(dpconfig.load, path)


def cmd_run(args: argparse.Namespace) -> int:
    from dataplane.agent import Agent

    _load(args.config)
    try:
        agent = Agent(args.config)
        asyncio.run(agent.run(detach_on_exit=not args.keep_attached))
    except BpfError as exc:
        logging.getLogger("gslb.dataplane").error("%s", exc)
        return 1
    return 0


def cmd_attach(args: argparse.Namespace) -> int:
    """Attach and program once, then exit: the program stays attached, the maps stay pinned."""
    from dataplane.balancer import Balancer
    from dataplane.control import Control

    cfg = _load(args.config)
    try:
        lb = Balancer(cfg.name, pin_root=cfg.pin_root)
        mode = lb.attach(cfg.interface, cfg.xdp_mode)
        applied = Control(lb).apply(cfg)
    except BpfError as exc:
        print(f"gslb dataplane: {exc}", file=sys.stderr)
        return 1
    print(f"attached to {cfg.interface} ({mode}); {applied.vips} VIP(s), {applied.backends} backend(s)")
    return 0


def cmd_detach(args: argparse.Namespace) -> int:
    from dataplane.balancer import Balancer

    cfg = _load(args.config)
    lb = Balancer(cfg.name, pin_root=cfg.pin_root)
    for flags in (libbpf.XDP_FLAGS_DRV_MODE, libbpf.XDP_FLAGS_SKB_MODE):
        try:
            libbpf.xdp_detach(socket.if_nametoindex(cfg.interface), flags)
        except (BpfError, OSError):
            pass
    lb.unpin()
    lb.close()
    print(f"detached from {cfg.interface}; maps unpinned")
    return 0


def cmd_stats(args: argparse.Namespace) -> int:
    from dataplane.balancer import Balancer
    from dataplane.control import Control, vip_key

    cfg = _load(args.config)
    lb = Balancer(cfg.name, pin_root=cfg.pin_root)  # reuses the pinned maps
    control = Control(lb)
    out = {}
    for vip in cfg.vips:
        vid = control.vip_ids.get(bytes(vip_key(vip)))
        if vid is None:
            continue
        packets, nbytes = lb.counters("vip_stats", vid)
        backends = {}
        for b in vip.backends:
            bp, bb = lb.counters("backend_stats", control.backend_id(b))
            backends[b.address] = {"packets": bp, "bytes": bb}
        out[vip.label] = {"packets": packets, "bytes": nbytes, "backends": backends}
    lb.close()
    print(json.dumps(out, indent=2))
    return 0


def cmd_pass(args: argparse.Namespace) -> int:
    """Attach the do-nothing program to a veth peer so it accepts XDP_TX frames."""
    from dataplane.balancer import Balancer

    lb = Balancer(f"pass-{args.interface}", pin=False)
    try:
        lb.attach_pass(args.interface)
    except BpfError as exc:
        print(f"gslb dataplane: {exc}", file=sys.stderr)
        return 1
    lb.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dataplane", help="XDP L4 balancer: run, attach, detach, stats")
    dsub = p.add_subparsers(dest="dataplane_command", required=True, metavar="ACTION")
    r = dsub.add_parser("run", help="attach, program the maps and follow config and backend health")
    r.add_argument("config")
    r.add_argument("--keep-attached", action="store_true", help="leave the program attached on exit")
    r.set_defaults(func=cmd_run)
    a = dsub.add_parser("attach", help="attach and program once (the program stays attached)")
    a.add_argument("config")
    a.set_defaults(func=cmd_attach)
    d = dsub.add_parser("detach", help="detach and unpin the maps")
    d.add_argument("config")
    d.set_defaults(func=cmd_detach)
    s = dsub.add_parser("stats", help="packets and bytes per VIP and backend (from the pinned maps)")
    s.add_argument("config")
    s.set_defaults(func=cmd_stats)
    x = dsub.add_parser("pass", help="attach an XDP_PASS program to a veth peer (for XDP_TX on veth)")
    x.add_argument("interface")
    x.set_defaults(func=cmd_pass)
