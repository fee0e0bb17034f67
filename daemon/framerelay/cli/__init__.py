"""The `framerelay` command. Sub-commands live in their own modules and register themselves here.

Start-up imports neither torch nor the engine: each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from framerelay import __version__
from framerelay.errors import FramerelayError

COMMAND_MODULES = (
    "edit",
    "doctor",
    "cache",
    "serve",
    "submit",
    "jobs",
    "watch",
    "cancel",
    "attach",
    "editor",
    "control",
    "defaults",
    "resolve",
    "install_resolve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="framerelay", description="Edit one frame, propagate the edit through the clip."
    )
    parser.add_argument("--version", action="version", version=f"framerelay {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"framerelay.cli.{name}").register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, format="%(levelname)s %(message)s"
    )
    if not args.debug:  # the libraries' own chatter and progress bars, before they are imported
        for variable in ("TRANSFORMERS_VERBOSITY", "DIFFUSERS_VERBOSITY"):
            os.environ.setdefault(variable, "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        return int(args.func(args) or 0)
    except FramerelayError as error:
        if args.debug:
            raise
        print(f"framerelay: error: {error.message}", file=sys.stderr)
        print(f"hint: {error.hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("framerelay: interrupted", file=sys.stderr)
        return 130
