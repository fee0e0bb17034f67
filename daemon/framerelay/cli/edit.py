"""`framerelay edit SOURCE EDITED_FRAME... -o OUTPUT`."""

from __future__ import annotations

import argparse
import logging
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from framerelay.cli.footage_options import add_footage_switches
from framerelay.cli.param_flags import add_param_flags, given_params
from framerelay.engine.params import DEFAULT_MODEL, JOB, MACHINE, EngineParams
from framerelay.engine.presets import AUTO, PresetChoice
from framerelay.engine.request import OUTPUT_FORMATS
from framerelay.errors import InvalidSpecError
from framerelay.jobs.spec import FrameRange, JobSpec, ParamOverrides
from framerelay.progress import CancelToken, Progress

if TYPE_CHECKING:
    from framerelay.jobs.executor import ExecutionResult

log = logging.getLogger(__name__)


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
    parser.add_argument("--cache-dir", type=Path, help="artifact cache (default: user cache dir)")
    parser.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
    parser.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available)")
    parser.add_argument("--dtype", choices=("fp32", "fp16", "bf16"))
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_param_flags(parser, (JOB, MACHINE))
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
    stems = [edit.stem for edit in args.edited]
    repeated = next((stem for stem in stems if stems.count(stem) > 1), None)
    if repeated is not None:
        raise InvalidSpecError(
            f"two edited frames are named {repeated!r}; each output in {args.output} is named "
            "after its edited frame.",
            "Rename the edited frames so that their names differ (the extension does not count).",
        )
    suffix = "" if args.format == "png" else f".{args.format or 'mp4'}"
    return tuple(args.output / f"{edit.stem}{suffix}" for edit in args.edited)


def engine_params(args: argparse.Namespace) -> EngineParams:
    """The parameters the flags set, checked before any file is read."""
    return EngineParams().with_values(given_params(args, (JOB, MACHINE))).validate()


def build_job(args: argparse.Namespace) -> tuple[JobSpec, tuple[Path, ...]]:
    """The job `framerelay submit` would send for these inputs, and the outputs it writes. Times
    (--start/--end) and a sequence's frame numbers (--in/--out) become frames from the source's
    first frame at its rate here, once: the job carries frames and a rational rate from then on."""
    from framerelay.media import writer

    engine_params(args)
    outputs = _outputs(args)
    formats = {writer.output_format(output, args.format) for output in outputs}
    params = given_params(args)
    spec = JobSpec(
        source=args.source.resolve(),
        edited_frames=tuple(path.resolve() for path in args.edited),
        mask=args.mask.resolve() if args.mask else None,
        preset=params.pop("preset", AUTO),
        params=ParamOverrides(params),
        output_format=formats.pop(),
        overwrite=args.overwrite,
        model=args.model,
        sequence_fps=args.fps,
        input_lut=args.input_lut.resolve() if args.input_lut else None,
        keep_unedited=args.keep_unedited,
        audio=args.audio,
    ).validate()
    return with_frame_range(spec, args), outputs


def with_frame_range(spec: JobSpec, args: argparse.Namespace) -> JobSpec:
    """The spec with the range the flags select, as frames at the source's rate."""
    if (args.start, args.end, args.in_frame, args.out_frame) == (None,) * 4:
        return spec
    from framerelay.media import footage

    found = footage.probe(spec.source, args.fps)
    if found.kind == "sequence" and args.fps is None:  # the engine is told the rate from here on
        for warning in found.warnings:
            log.warning("%s", warning)
    span = footage.select(
        found, args.start, args.end, in_frame=args.in_frame, out_frame=args.out_frame
    )
    frames = FrameRange(span.frames.start, span.frames.stop)
    # The rate the frames count at is the job's source_fps (a sequence's too, as submit sends it).
    return replace(spec, frame_range=frames, source_fps=found.fps, sequence_fps=None).validate()


class BarsReporter:
    """The executor's reporter for a terminal: progress bars, no previews."""

    def __init__(self, bars: Callable[[Progress], None]):
        self.bars = bars

    def progress(self, progress: Progress) -> None:
        self.bars(progress)

    def preview(self, png: bytes, width: int, height: int, phase: str) -> None:
        pass


def run(args: argparse.Namespace) -> int:
    """Runs the job in this process through the daemon worker's executor."""
    spec, outputs = build_job(args)
    from framerelay.cli.progress_bars import PhaseBars
    from framerelay.errors import from_os_error
    from framerelay.jobs.engine_executor import EngineExecutor
    from framerelay.jobs.executor import Execution
    from framerelay.jobs.output_policy import check_writable

    for output in outputs:
        check_writable(output)
    executor = EngineExecutor(
        default_model=args.model,
        device=args.device,
        dtype=args.dtype,
        cache_dir=args.cache_dir,
        use_cache=not args.no_cache,
        settings=given_params(args, (MACHINE,)),
    )
    bars = PhaseBars(enabled=not args.quiet)
    with tempfile.TemporaryDirectory(prefix="framerelay-edit-") as work:
        execution = Execution(uuid.uuid4().hex, spec, outputs, Path(work), attempt=1)
        try:
            result = executor.execute(execution, BarsReporter(bars), CancelToken())
        except OSError as error:  # a late failure (the disk filled up, a folder went away)
            raise from_os_error(error) from error
        finally:
            bars.close()
    print_result(result)
    return 0


def print_result(result: ExecutionResult) -> None:
    """What the job did: the finished event's content, as lines."""
    width, height = result.size
    times = " · ".join(
        f"{phase} {seconds:.1f} s" for phase, seconds in result.phase_seconds.items()
    )
    print(f"seed {result.seed}; {times}")
    for warning in result.warnings:
        print(f"warning: {warning}")
    presets = result.preset_choices or tuple(PresetChoice(p) for p in result.preset.split(","))
    seconds = sum(result.phase_seconds.values())
    for output, choice in zip(result.outputs, presets, strict=False):
        print(
            f"wrote {output}: {result.frame_count} frames, {result.fps} fps, {width}x{height}, "
            f"preset {choice.reason}, {result.windows} window(s), "
            f"{result.lora_steps_run} LoRA steps, {result.cache_hits} cache hit(s), {seconds:.1f} s"
        )
