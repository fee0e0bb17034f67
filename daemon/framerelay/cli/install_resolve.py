"""`framerelay install-resolve [--uninstall]`: the scripts in Resolve's Workspace > Scripts."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "install-resolve",
        help="install the DaVinci Resolve scripts (Workspace > Scripts > Utility)",
        description="Copies framerelay's scripts into DaVinci Resolve's per-user Scripts/Utility "
        "folder (every one on this machine, Mac App Store builds included), or removes them.",
    )
    parser.add_argument("--uninstall", action="store_true", help="remove the scripts")
    parser.add_argument(
        "--fusion-dir",
        type=Path,
        action="append",
        metavar="DIR",
        help="Resolve's Fusion folder (the one holding Scripts/), instead of the usual ones; "
        "repeatable",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from framerelay_resolve import install

    found = install.targets(args.fusion_dir)
    if args.uninstall:
        print("Removing framerelay's DaVinci Resolve scripts:")
        removed = install.uninstall(found)
        print(f"Removed {len(removed)} item(s)." if removed else "Nothing was installed.")
        return 0
    print("Installing framerelay's DaVinci Resolve scripts:")
    install.install(found)
    print(
        "Restart DaVinci Resolve, then use Workspace > Scripts > framerelay Send Clip (Studio, "
        "and free up to 21.0) or framerelay Bridge (free 21.1 and newer)."
    )
    return 0
