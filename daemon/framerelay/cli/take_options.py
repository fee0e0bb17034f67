"""`framerelay edit`'s switches for issue 19: edit any frame, several edited frames, drift control,
QC, a segment of an earlier take, and the pre-flight estimate (docs/edit-any-frame.md,
docs/drift-and-qc.md, docs/segments.md, docs/estimates.md)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

from framerelay.engine.estimate import JobShape
from framerelay.engine.params import DRIFT_REGIONS, EngineParams
from framerelay.engine.request import EditRequest, Segment
from framerelay.errors import InvalidSpecError


def add_take_switches(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "edit any frame, QC, drift, segments (docs/edit-any-frame.md)"
    )
    group.add_argument(
        "--at",
        type=int,
        action="append",
        metavar="K",
        help="the frame each edited frame is an edit of, counted from the range's first (once per "
        "edited frame; default 0); the edit propagates forward and backward from it",
    )
    group.add_argument(
        "--crossfade-frames",
        type=int,
        metavar="N",
        help="edited frames at different frames: frames cross-faded at each boundary (0: a hard "
        "cut; default 4)",
    )
    group.add_argument(
        "--drift-strength",
        type=float,
        metavar="S",
        help="hold each window's colour and contrast to the first window's: 0 off (default) .. 1",
    )
    group.add_argument("--drift-region", choices=DRIFT_REGIONS, help="where drift is measured")
    group.add_argument(
        "--no-qc", action="store_true", help="no QC report (sidecar <output>.qc.json)"
    )
    group.add_argument(
        "--segment-of",
        type=Path,
        metavar="TAKE",
        help="re-render a segment of this earlier take (its .qc.json records how it was made)",
    )
    group.add_argument(
        "--segment-from",
        type=int,
        metavar="N",
        help="the frame (from the range's first) to start at",
    )
    group.add_argument(
        "--segment-new-frame",
        action="store_true",
        help="EDITED is a new edit of the take's frame N, which must start a window",
    )
    group.add_argument(
        "--segment-whole",
        action="store_true",
        help="write the whole range (earlier frames bit for bit) instead of the segment only",
    )


def with_params(params: EngineParams, args: argparse.Namespace) -> EngineParams:
    return params.with_overrides(
        crossfade_frames=args.crossfade_frames,
        drift_strength=args.drift_strength,
        drift_region=args.drift_region,
    )


def apply(request: EditRequest, args: argparse.Namespace) -> EditRequest:
    """The request with the frames edited, QC and a segment as the switches ask."""
    request = replace(request, edit_frames=tuple(args.at or ()), qc=not args.no_qc)
    if args.segment_of is None:
        if args.segment_from is not None or args.segment_new_frame or args.segment_whole:
            raise InvalidSpecError(
                "--segment-from, --segment-new-frame and --segment-whole need --segment-of.",
                "Name the earlier take: --segment-of TAKE --segment-from N.",
            )
        return request
    return with_segment(request, args)


def with_segment(request: EditRequest, args: argparse.Namespace) -> EditRequest:
    from framerelay.engine import segments

    if args.segment_from is None:
        raise InvalidSpecError(
            "a segment needs the frame to start at.",
            "Add --segment-from N (from the range's first).",
        )
    job = segments.segment_of_take(args.segment_of)
    if Path(job["source"]) != request.source or (
        (job["in_frame"], job["out_frame"], job["start"], job["end"])
        != (request.in_frame, request.out_frame, request.start, request.end)
    ):
        raise InvalidSpecError(
            "a segment re-renders the same source and range as the earlier take.",
            f"Give the take's source ({Path(job['source']).name}) and its --in/--out or "
            "--start/--end.",
        )
    base_frame = Path(job["edited_frames"][0])
    if not args.segment_new_frame and request.edited_frames != (base_frame,):
        raise InvalidSpecError(
            "without --segment-new-frame the segment keeps the take's edited frame.",
            f"Pass {base_frame} as the edited frame, or add --segment-new-frame.",
        )
    at = job["edit_frames"][0]
    start = segments.window_for(args.segment_from, at, request.params, args.segment_new_frame)
    segment = Segment(
        start_window=start,
        base=segments.params_from_record(job["params"]),
        base_edited_frame=base_frame,
        new_frame=args.segment_new_frame,
        whole=args.segment_whole,
    )
    return replace(request, edit_frames=(at,), segment=segment)


@dataclass
class Preflight:
    shape: JobShape
    device: str
    gpu_total: int
    line: str  # what to print

    def record(self, request: EditRequest, result) -> None:
        """Keeps how fast this machine ran the job (the daemon reads the same file)."""
        from framerelay.jobs import preflight as checks
        from framerelay.service.config import data_dir

        work = {**result.work, "lora_steps": result.lora_steps_run}
        checks.MachineRecord(data_dir()).record(
            self.shape, request.model, self.device, self.gpu_total, dict(result.timings), work
        )


def preflight(request: EditRequest) -> Preflight:
    """What the job will take here; raises when it cannot fit (exit 2)."""
    from framerelay.engine import estimate as est
    from framerelay.engine.run import edit_frames
    from framerelay.jobs import preflight as checks
    from framerelay.media import footage
    from framerelay.service.config import data_dir

    found = footage.probe(request.source, request.sequence_fps)
    span = footage.select(
        found, request.start, request.end, in_frame=request.in_frame, out_frame=request.out_frame
    )
    params = request.params
    frames = edit_frames(request)
    width, height = found.stored_size
    fmt = request.output_format or (request.outputs[0].suffix.lstrip(".") or "png")
    shape = est.JobShape(
        frame_count=span.frame_count,
        keyframes=tuple(sorted(set(frames))),
        edits=len(request.edited_frames),
        height=params.height,
        width=params.width,
        window=params.window,
        overlap=params.overlap,
        steps=params.steps,
        lora_steps=params.lora.steps,
        lora_rank=params.lora.rank,
        lora_height=params.lora.height,
        lora_width=params.lora.width,
        skip_interval=params.skip_interval,
        decode_chunk=params.decode_chunk_size,
        source_width=width,
        source_height=height,
        output_format=fmt if fmt in ("mp4", "mov", "png") else "png",
        deep=found.bit_depth > 8,
        outputs=len(request.outputs),
        cache=request.use_cache,
    )
    device, total = _device(request.device)
    record = checks.MachineRecord(data_dir())
    speeds = record.speeds(device, request.model)
    estimate = est.estimate(shape, speeds, gpu=device != "cpu")
    if total:
        problem = est.vram_problem(estimate, total)
        if problem is not None:
            from framerelay.errors import OutOfMemoryError

            raise OutOfMemoryError(*problem)
    checks.check_disk(estimate, request.outputs[0].parent, request.cache_dir)
    return Preflight(shape, device, total, describe(estimate, total))


def _device(asked: str | None) -> tuple[str, int]:
    import torch

    if (asked or "cuda").startswith("cuda") and torch.cuda.is_available():
        index = torch.device(asked or "cuda").index or 0
        return f"cuda:{index}", torch.cuda.mem_get_info(index)[1]
    return "cpu", 0


def describe(estimate, gpu_total: int) -> str:
    from framerelay.engine.estimate import GIB

    times = ", ".join(f"{phase} {seconds:.0f} s" for phase, seconds in estimate.seconds.items())
    guess = "" if estimate.calibrated else " (a first guess until a job has run here)"
    memory = f"peak VRAM {estimate.peak_vram_bytes / GIB:.1f} GB ({estimate.peak_phase})"
    if gpu_total:
        memory += f" of {gpu_total / GIB:.0f}"
    disk = estimate.disk_bytes / 1e9
    return (
        f"estimate: {memory}, disk {disk:.1f} GB, {estimate.windows} window(s), "
        f"{estimate.total_seconds:.0f} s{guess}: {times}"
    )
