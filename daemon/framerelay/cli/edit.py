"""`framerelay edit SOURCE EDITED_FRAME... -o OUTPUT`."""

from __future__ import annotations

import argparse
from fractions import Fraction
from pathlib import Path

from framerelay.cli import take_options
from framerelay.cli.footage_options import add_footage_switches
from framerelay.engine.params import (
    DEFAULT_MODEL,
    PRESET_NAMES,
    EngineParams,
    MatchingParams,
    MotionLoraParams,
)
from framerelay.engine.request import OUTPUT_FORMATS, EditRequest


def register(commands) -> None:
    parser = commands.add_parser(
        "edit",
        help="propagate an edited first frame through a clip",
        description="Propagate each edited first frame through the source clip.",
    )
    parser.add_argument("source", type=Path, help="the source clip")
    parser.add_argument("edited", type=Path, nargs="+", help="edited first frame(s)")
    parser.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="output file (.mp4, .mov or a folder for PNGs); a folder when several edits",
    )
    parser.add_argument("--format", choices=OUTPUT_FORMATS, help="output format (default: by path)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument(
        "--mask", type=Path, help="white where the first frame was edited (optional)"
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, help="hub id or local diffusers folder")
    parser.add_argument("--preset", choices=PRESET_NAMES, default="auto")
    parser.add_argument("--beta1", type=float, help="end of full temporal matching (fraction)")
    parser.add_argument("--beta2", type=float, help="end of low-resolution temporal matching")
    parser.add_argument("--mask-threshold", type=float, nargs="+", metavar="T", default=[0.35])
    parser.add_argument("--no-matching", action="store_true", help="skip attention matching")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--seed", type=int, default=23)
    parser.add_argument("--start", type=float, help="start of the range, seconds")
    parser.add_argument("--end", type=float, help="end of the range, seconds (exclusive)")
    footage = parser.add_argument_group("footage (docs/footage-and-colour.md)")
    footage.add_argument(
        "--in",
        dest="in_frame",
        type=int,
        metavar="N",
        help="first frame (number in a sequence's file names; index from 0 in a video)",
    )
    footage.add_argument(
        "--out", dest="out_frame", type=int, metavar="N", help="end frame (exclusive)"
    )
    footage.add_argument(
        "--fps", type=_rate, help="frame rate of an image-sequence source (default 24)"
    )
    add_footage_switches(footage)
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--window", type=int, default=14, help="frames per model window")
    parser.add_argument("--overlap", type=int, default=1, help="frames shared by windows")
    parser.add_argument(
        "--no-skip-interval",
        action="store_true",
        help="later windows do not attend to the first window",
    )
    parser.add_argument(
        "--lora-steps", type=int, default=250, help="motion LoRA steps per window (0: skip)"
    )
    parser.add_argument("--lora-rank", type=int, default=32)
    parser.add_argument(
        "--draft", action="store_true", help="quick look: 12 steps and no motion LoRA"
    )
    parser.add_argument("--cache-dir", type=Path, help="artifact cache (default: user cache dir)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("--min-guidance", type=float, default=1.0)
    parser.add_argument("--max-guidance", type=float, default=2.0)
    parser.add_argument(
        "--memory-budget",
        type=int,
        metavar="MB",
        help="memory for the source attention store (default: sized from free memory)",
    )
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    take_options.add_take_switches(parser)
    parser.set_defaults(func=run)


def _rate(text: str) -> Fraction:
    """'24', '23.976', '24000/1001' -> an exact rate."""
    try:
        rate = Fraction(text)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"not a frame rate: {text!r}") from None
    if "." in text:  # 23.976 means 24000/1001, as NLEs say it
        ntsc = (Fraction(n * 1000, 1001) for n in (24, 30, 48, 60, 120))
        rate = next((r for r in ntsc if abs(r - rate) < Fraction(1, 200)), rate)
    if rate <= 0:
        raise argparse.ArgumentTypeError(f"the frame rate must be positive, got {text}")
    return rate


def _outputs(args: argparse.Namespace) -> tuple[Path, ...]:
    if len(args.edited) == 1:
        return (args.output,)
    suffix = "" if args.format == "png" else f".{args.format or 'mp4'}"
    return tuple(args.output / f"{edit.stem}{suffix}" for edit in args.edited)


def build_request(args: argparse.Namespace) -> EditRequest:
    thresholds = args.mask_threshold
    matching = MatchingParams(
        preset=args.preset,
        beta1=args.beta1,
        beta2=args.beta2,
        mask_threshold=(thresholds[0], thresholds[-1]),
        enabled=not args.no_matching,
    )
    params = EngineParams(
        height=args.height,
        width=args.width,
        window=args.window,
        overlap=args.overlap,
        skip_interval=not args.no_skip_interval,
        lora=MotionLoraParams(steps=args.lora_steps, rank=args.lora_rank),
        steps=args.steps,
        seed=args.seed,
        min_guidance=args.min_guidance,
        max_guidance=args.max_guidance,
        source_memory_budget_mb=args.memory_budget,
        matching=matching,
    )
    if args.draft:
        params = params.draft()
    params = take_options.with_params(params, args)
    request = EditRequest(
        source=args.source,
        edited_frames=tuple(args.edited),
        outputs=_outputs(args),
        start=args.start,
        end=args.end,
        output_format=args.format,
        overwrite=args.overwrite,
        mask=args.mask,
        model=args.model,
        device=args.device,
        dtype=args.dtype,
        params=params.validate(),
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        in_frame=args.in_frame,
        out_frame=args.out_frame,
        sequence_fps=args.fps,
        input_lut=args.input_lut,
        keep_unedited=args.keep_unedited,
        audio=args.audio,
    )
    return take_options.apply(request, args)


def check_files(request: EditRequest) -> None:
    """Before any work: inputs that are regular files (a pipe or a device would block), outputs
    that can be written."""
    from framerelay.errors import EditUnreadableError, SourceUnreadableError
    from framerelay.jobs.output_policy import check_writable
    from framerelay.jobs.spec import file_problem, is_sequence_source

    problem = None if is_sequence_source(request.source) else file_problem(request.source)
    if problem is not None:
        raise SourceUnreadableError(f"the source {str(request.source)!r} {problem}.")
    inputs = [(p, "edited frame") for p in request.edited_frames]
    for path, what in [*inputs, *([(request.mask, "mask")] if request.mask else [])]:
        problem = file_problem(path)
        if problem is not None:
            raise EditUnreadableError(f"the {what} {str(path)!r} {problem}.")
    for output in request.outputs:
        check_writable(output)


def run(args: argparse.Namespace) -> int:
    request = build_request(args)
    check_files(request)
    from framerelay.cli.progress_bars import PhaseBars
    from framerelay.engine.run import run_edit
    from framerelay.errors import from_os_error

    checked = take_options.preflight(request)  # refuses a job that cannot fit (exit 2)
    print(checked.line)
    bars = PhaseBars(enabled=not args.quiet)
    try:
        result = run_edit(request, progress=bars)
    except OSError as error:  # a late failure (the disk filled up, a folder went away)
        raise from_os_error(error) from error
    finally:
        bars.close()
    checked.record(request, result)
    width, height = result.size
    seconds = sum(result.timings.values())
    for report in result.qc:
        print(f"QC: {report['verdict']} ({report['sidecar']})")
    if result.first_frame:
        print(f"a segment: the take starts at frame {result.first_frame} of the range")
    for output in result.outputs:
        print(
            f"wrote {output}: {result.frame_count} frames, {result.fps} fps, {width}x{height}, "
            f"preset {result.preset}, {result.windows} window(s), "
            f"{result.lora_steps_run} LoRA steps, {result.cache_hits} cache hit(s), {seconds:.1f} s"
        )
    return 0
