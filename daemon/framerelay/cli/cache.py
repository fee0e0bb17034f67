"""`framerelay cache ls | gc | clear`: inspect and trim the artifact cache (LoRAs, inversions)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from framerelay.cache import ArtifactCache, Entry, default_cache_root, format_size, parse_size
from framerelay.errors import InvalidSpecError

DEFAULT_MAX_SIZE = "20GB"
KEY_PREFIX = 12


def register(commands: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help=f"cache root (default: $FRAMERELAY_CACHE_DIR or {default_cache_root()})",
    )
    parser = commands.add_parser("cache", help="inspect and trim the artifact cache")
    actions = parser.add_subparsers(dest="cache_command", required=True, metavar="ACTION")

    ls = actions.add_parser("ls", parents=[common], help="list entries, most recently used first")
    ls.set_defaults(func=list_entries)

    gc = actions.add_parser(
        "gc", parents=[common], help="delete least-recently-used entries down to a size"
    )
    gc.add_argument(
        "--max-size",
        default=DEFAULT_MAX_SIZE,
        help=f"size to keep, e.g. 500MB, 20GB, 8GiB (default {DEFAULT_MAX_SIZE})",
    )
    gc.set_defaults(func=collect)

    clear = actions.add_parser("clear", parents=[common], help="delete every entry")
    clear.set_defaults(func=clear_all)


def list_entries(args: argparse.Namespace) -> int:
    cache = ArtifactCache(args.cache_dir)
    entries = cache.ls()
    unfinished = cache.unfinished_bytes(entries)
    also = f"{format_size(unfinished)} of LoRA checkpoints and temporary files of unfinished runs"
    if not entries:
        print(
            f"no finished entries; {also} in {cache.root}"
            if unfinished
            else f"cache is empty ({cache.root})"
        )
        return 0
    print(format_table(entries))
    total = sum(entry.bytes for entry in entries)
    print(f"{len(entries)} entries, {format_size(total)} in {cache.root}")
    if unfinished:
        print(f"and {also}")
    return 0


def collect(args: argparse.Namespace) -> int:
    try:
        max_bytes = parse_size(args.max_size)
    except ValueError as error:
        raise InvalidSpecError(str(error), "Pass a size such as --max-size 20GB.") from error
    cache = ArtifactCache(args.cache_dir)
    freed = cache.gc(max_bytes)
    left = cache.ls()
    print(
        f"freed {format_size(freed)}; {len(left)} entries, "
        f"{format_size(sum(e.bytes for e in left))} left in {cache.root}"
    )
    return 0


def clear_all(args: argparse.Namespace) -> int:
    cache = ArtifactCache(args.cache_dir)
    count = len(cache.ls())
    freed = cache.clear()
    print(f"removed {count} entries, freed {format_size(freed)} in {cache.root}")
    return 0


def format_table(entries: list[Entry]) -> str:
    rows = [("KEY", "KIND", "SIZE", "LAST USED")]
    rows += [
        (
            entry.key[:KEY_PREFIX],
            entry.kind,
            format_size(entry.bytes),
            time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(entry.last_used)),
        )
        for entry in entries
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [
            cell.rjust(width) if column == 2 else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
