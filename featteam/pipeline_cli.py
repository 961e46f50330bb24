"""Subcommands that run the method's steps (``fit``); filled in as the steps land."""

from __future__ import annotations

import argparse

COMMANDS: dict = {}


def add_commands(sub: argparse._SubParsersAction) -> None:
    """Register the pipeline's subcommands on the ``featteam`` parser."""
