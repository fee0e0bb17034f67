"""`framerelay defaults [--preset P] [--format F] [--output-dir DIR | --no-output-dir]`: show or
set the daemon's job defaults, which plugins and the tray app use too."""

from __future__ import annotations

import argparse
from pathlib import Path

from framerelay.engine.params import PRESET_NAMES
from framerelay.engine.request import OUTPUT_FORMATS


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "defaults",
        help="show or set the job defaults (preset, output format and folder)",
        description="Without options, show the defaults. They apply to jobs that leave the "
        "preset, format or folder unset, from every host; the daemon keeps them in config.toml.",
    )
    parser.add_argument("--preset", choices=PRESET_NAMES)
    parser.add_argument("--format", choices=OUTPUT_FORMATS, help="output format")
    folder = parser.add_mutually_exclusive_group()
    folder.add_argument("--output-dir", type=Path, help="folder under the daemon's output roots")
    folder.add_argument(
        "--no-output-dir",
        action="store_true",
        help="outputs go to the daemon's data folder, one sub-folder per job",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from framerelay.proto.v1 import specs_pb2
    from framerelay.service.client import DaemonClient

    with DaemonClient.connect() as client:
        current = client.defaults()
        defaults = current.defaults
        changed = args.preset or args.format or args.output_dir or args.no_output_dir
        if args.preset:
            defaults.preset = specs_pb2.Preset.Value(f"PRESET_{args.preset.upper()}")
        if args.format:
            defaults.output_format = specs_pb2.OutputFormat.Value(
                f"OUTPUT_FORMAT_{args.format.upper()}"
            )
        if args.output_dir:
            defaults.output_folder = str(args.output_dir.resolve())
        if args.no_output_dir:
            defaults.output_folder = ""
        shown = client.set_defaults(defaults).defaults if changed else current.defaults
    preset = specs_pb2.Preset.Name(shown.preset).removeprefix("PRESET_").lower()
    output_format = specs_pb2.OutputFormat.Name(shown.output_format)
    print(f"preset         {'auto' if preset == 'unspecified' else preset}")
    print(f"format         {output_format.removeprefix('OUTPUT_FORMAT_').lower()}")
    print(f"output folder  {shown.output_folder or '(the daemon data folder)'}")
    print(f"kept in        {current.config_path}")
    return 0
