"""Core subcommands: serve, check, reload, probe, explain."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Filled in as the DNS core lands (see issue 2)."""
