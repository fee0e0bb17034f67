"""`framerelay submit`: queue an edit on the daemon."""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

from framerelay.engine.params import PRESET_NAMES
from framerelay.engine.request import OUTPUT_FORMATS
from framerelay.errors import InvalidSpecError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("submit", help="queue an edit on the daemon")
    parser.add_argument("source", type=Path, help="the source clip")
    parser.add_argument(
        "edited", type=Path, nargs="+", help="edited first frame(s), one output each"
    )
    parser.add_argument("--in", dest="in_frame", type=int, help="first source frame (0-based)")
    parser.add_argument("--out", dest="out_frame", type=int, help="frame after the last one")
    parser.add_argument("--fps", help="source frame rate, e.g. 24 or 24000/1001 (with --in/--out)")
    parser.add_argument("--mask", type=Path, help="mask of the edited region")
    parser.add_argument("--preset", choices=PRESET_NAMES, default="auto")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, default="mov", help="output format")
    parser.add_argument(
        "--output-dir", type=Path, help="folder for the outputs (under the daemon's output roots)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--model", default="", help="hub id or folder (default: the daemon's)")
    parser.add_argument("--label", default="", help="a name for job lists")
    parser.add_argument(
        "--context",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="host context returned untouched with the job (repeatable)",
    )
    parser.add_argument("--watch", action="store_true", help="follow the job until it ends")
    parser.set_defaults(func=run)


def parse_fps(text: str) -> Fraction:
    try:
        fps = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise InvalidSpecError(f"--fps must be a number or a fraction, got {text!r}.") from None
    if fps <= 0:
        raise InvalidSpecError(f"--fps must be positive, got {text}.")
    return fps


def parse_context(items: list[str]) -> dict[str, str]:
    context = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidSpecError(f"--context takes KEY=VALUE, got {item!r}.")
        context[key] = value
    return context


def build_spec(args: argparse.Namespace):
    from framerelay.proto.v1 import specs_pb2

    spec = specs_pb2.JobSpec(
        source_path=str(args.source.resolve()),
        edited_frame_paths=[str(p.resolve()) for p in args.edited],
        mask_path=str(args.mask.resolve()) if args.mask else "",
        params=specs_pb2.EditParams(preset=specs_pb2.Preset.Value(f"PRESET_{args.preset.upper()}")),
        output=specs_pb2.OutputSpec(
            format=specs_pb2.OutputFormat.Value(f"OUTPUT_FORMAT_{args.format.upper()}"),
            folder=str(args.output_dir.resolve()) if args.output_dir else "",
            overwrite=args.overwrite,
        ),
        host_context=parse_context(args.context),
        model=args.model,
        label=args.label,
    )
    for name in ("steps", "height", "width", "seed"):
        if getattr(args, name) is not None:
            setattr(spec.params, name, getattr(args, name))
    if args.in_frame is not None or args.out_frame is not None:
        if args.in_frame is None or args.out_frame is None:
            raise InvalidSpecError("--in and --out go together.")
        spec.frame_range.in_frame, spec.frame_range.out_frame = args.in_frame, args.out_frame
    if args.fps:
        fps = parse_fps(args.fps)
        spec.source_fps.num, spec.source_fps.den = fps.numerator, fps.denominator
    return spec


def run(args: argparse.Namespace) -> int:
    from framerelay.cli.progress_view import follow, print_finished
    from framerelay.service.client import DaemonClient

    spec = build_spec(args)
    with DaemonClient.connect() as client:
        job = client.submit(spec)
        print(f"job {job.id} queued at position {job.position}")
        if args.watch:
            print_finished(job.id, follow(client, job.id))
    return 0
