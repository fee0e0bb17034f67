"""`framerelay submit`: queue an edit on the daemon."""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

from framerelay.cli.footage_options import add_footage_switches
from framerelay.cli.param_flags import add_param_flags, given_params
from framerelay.engine.params import JOB, TABLE
from framerelay.engine.request import OUTPUT_FORMATS
from framerelay.errors import InvalidSpecError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("submit", help="queue an edit on the daemon")
    parser.add_argument("source", type=Path, help="the source clip")
    parser.add_argument(
        "edited",
        type=Path,
        nargs="*",
        help="edited first frame(s), one output each; none with --roundtrip",
    )
    parser.add_argument("--in", dest="in_frame", type=int, help="first source frame (0-based)")
    parser.add_argument("--out", dest="out_frame", type=int, help="frame after the last one")
    parser.add_argument("--fps", help="source frame rate, e.g. 24 or 24000/1001 (with --in/--out)")
    parser.add_argument("--mask", type=Path, help="mask of the edited region")
    parser.add_argument(
        "--format", choices=OUTPUT_FORMATS, help="output format (default: the daemon's)"
    )
    parser.add_argument(
        "--output-dir", type=Path, help="folder for the outputs (under the daemon's output roots)"
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
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
    add_footage_switches(parser)
    add_param_flags(parser, (JOB,), preset_default="the daemon's, see `framerelay defaults`")
    roundtrip = parser.add_argument_group(
        "round trip with an image editor",
        "The daemon exports the frame, opens it in your editor and queues the job when you save.",
    )
    roundtrip.add_argument(
        "--roundtrip", action="store_true", help="edit the frame in your image editor"
    )
    roundtrip.add_argument(
        "--frame",
        type=int,
        default=0,
        metavar="N",
        help="the frame to edit, counted from --in (default: 0, the first)",
    )
    roundtrip.add_argument(
        "--tiff", action="store_true", help="export a 16-bit TIFF instead of an 8-bit PNG"
    )
    roundtrip.add_argument(
        "--no-open", action="store_true", help="only print the file to edit; open it yourself"
    )
    roundtrip.add_argument(
        "--follow-saves",
        action="store_true",
        help="a save after the job started queues a new job with it",
    )
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


def check_edited(args: argparse.Namespace) -> None:
    roundtrip_only = args.frame or args.tiff or args.no_open or args.follow_saves
    if args.roundtrip and args.edited:
        raise InvalidSpecError(
            "--roundtrip takes no edited frame: the edit comes from your image editor.",
            "Drop the edited frame(s), or drop --roundtrip.",
        )
    if not args.roundtrip and roundtrip_only:
        raise InvalidSpecError("--frame, --tiff, --no-open and --follow-saves need --roundtrip.")
    if not args.roundtrip and not args.edited:
        raise InvalidSpecError(
            "no edited frame.", "Give the edited frame(s), or --roundtrip to edit it in an editor."
        )


def check_numbers(args: argparse.Namespace) -> None:
    """The daemon's own ranges, checked before anything is sent."""
    from framerelay.jobs.spec import FrameRange, check_range, engine_params

    overrides = given_params(args)
    overrides.pop("preset", None)
    engine_params(args.preset or "auto", overrides).validate()  # the preset is checked by choices
    if args.in_frame is not None and args.out_frame is not None:
        fps = parse_fps(args.fps) if args.fps else None
        check_range(FrameRange(args.in_frame, args.out_frame), fps)
    if args.frame < 0:
        raise InvalidSpecError(f"--frame must be 0 or more, got {args.frame}.")


def assign(message, field: str, value, flag: str) -> None:
    """Sets a protobuf field; a number beyond the field's type is a one-line error."""
    try:
        setattr(message, field, value)
    except (ValueError, TypeError):
        raise InvalidSpecError(
            f"{flag} {value} is out of range.", f"See `framerelay submit --help` for {flag}."
        ) from None


def build_spec(args: argparse.Namespace):
    from framerelay.proto.v1 import specs_pb2

    check_edited(args)
    check_numbers(args)
    spec = specs_pb2.JobSpec(
        source_path=str(args.source.resolve()),
        edited_frame_paths=[str(p.resolve()) for p in args.edited],
        mask_path=str(args.mask.resolve()) if args.mask else "",
        params=specs_pb2.EditParams(
            preset=specs_pb2.Preset.Value(f"PRESET_{args.preset.upper()}")
            if args.preset
            else specs_pb2.PRESET_UNSPECIFIED
        ),
        output=specs_pb2.OutputSpec(
            format=specs_pb2.OutputFormat.Value(f"OUTPUT_FORMAT_{args.format.upper()}")
            if args.format
            else specs_pb2.OUTPUT_FORMAT_UNSPECIFIED,
            folder=str(args.output_dir.resolve()) if args.output_dir else "",
            overwrite=args.overwrite,
        ),
        host_context=parse_context(args.context),
        model=args.model,
        label=args.label,
    )
    for name, value in given_params(args).items():
        if name != "preset":
            assign(spec.params, name, value, TABLE[name].cli_flag)
    if args.in_frame is not None or args.out_frame is not None:
        if args.in_frame is None or args.out_frame is None:
            raise InvalidSpecError("--in and --out go together.")
        assign(spec.frame_range, "in_frame", args.in_frame, "--in")
        assign(spec.frame_range, "out_frame", args.out_frame, "--out")
    if args.fps:
        fps = parse_fps(args.fps)
        assign(spec.source_fps, "num", fps.numerator, "--fps")
        assign(spec.source_fps, "den", fps.denominator, "--fps")
    if args.input_lut:
        spec.input_lut_path = str(args.input_lut.resolve())
    if not args.keep_unedited:
        spec.keep_unedited = False
    if not args.audio:
        spec.copy_audio = False
    if args.roundtrip:
        assign(spec.edit_session, "frame_index", args.frame, "--frame")
        spec.edit_session.sixteen_bit = args.tiff
        spec.edit_session.follow_saves = args.follow_saves
        if args.no_open:
            spec.edit_session.open_editor = False
    return spec


def run(args: argparse.Namespace) -> int:
    from framerelay.cli.progress_view import follow, print_finished
    from framerelay.service.client import DaemonClient

    spec = build_spec(args)
    with DaemonClient.connect() as client:
        job = client.submit(spec)
        if job.HasField("edit"):
            print(f"job {job.id} awaits your edit of {job.edit.exported_path}")
            print("save the edited frame in the same folder (PNG, TIFF, JPEG or PSD)")
        else:
            print(f"job {job.id} queued at position {job.position}")
        if args.watch:
            print_finished(job.id, follow(client, job.id))
    return 0
