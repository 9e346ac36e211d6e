"""The ExaBGP configuration for a site: one neighbor block per session, our API process, and
nothing that would keep a dead site's routes alive (no graceful restart, no static routes)."""

from __future__ import annotations

import os
import shlex
import sys

from bgp.config import SiteConfig

# ExaBGP's own settings: stay in the foreground, keep root (it must open the API process's
# pipes and, with md5, set TCP_MD5SIG), and acknowledge every API command.
EXABGP_ENV = {
    "exabgp_daemon_daemonize": "false",
    "exabgp_daemon_user": "root",
    "exabgp_api_ack": "true",
    "exabgp_log_destination": "stderr",
    "exabgp_log_level": "INFO",
}


def api_command(site_path: str, python: str | None = None, log_file: str | None = None) -> str:
    args = [python or sys.executable, "-m", "bgp", "api", os.path.abspath(site_path)]
    if log_file:
        args += ["--log", os.path.abspath(log_file)]
    return " ".join(shlex.quote(x) for x in args)


def render(cfg: SiteConfig, python: str | None = None, log_file: str | None = None) -> str:
    lines = [
        "process gslb-anycast {",
        f"    run {api_command(cfg.path, python, log_file)};",
        "    encoder json;",
        "}",
        "",
    ]
    for n in cfg.neighbors:
        family = "ipv4 unicast" if n.address.version == 4 else "ipv6 unicast"
        lines += [f"neighbor {n.address} {{",
                  f"    router-id {cfg.router_id};",
                  f"    local-as {cfg.local_as};",
                  f"    peer-as {n.peer_as};",
                  f"    hold-time {n.hold_time};",
                  "    group-updates false;"]
        if n.local_address is not None:
            lines.append(f"    local-address {n.local_address};")
        if n.md5:
            lines.append(f'    md5-password "{n.md5}";')
        lines += ["    family {", f"        {family};", "    }",
                  "    api {", "        processes [ gslb-anycast ];", "        neighbor-changes;", "    }",
                  "}", ""]
    return "\n".join(lines)
