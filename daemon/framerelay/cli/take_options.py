"""`framerelay edit`'s switches for issue 19 besides the parameter table's (crossfade, drift, QC):
the frame each edit is of, a segment of an earlier take, and the pre-flight estimate
(docs/edit-any-frame.md, docs/segments.md, docs/estimates.md)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from framerelay.errors import InvalidSpecError
from framerelay.jobs.spec import JobSpec, ParamOverrides, SegmentSpec

if TYPE_CHECKING:
    from framerelay.engine.estimate import Estimate, JobShape
    from framerelay.jobs.executor import ExecutionResult


def add_take_switches(parser: argparse.ArgumentParser, *, of_job: bool) -> None:
    """--at and the segment switches, for `framerelay edit` (a segment of a take file, read from
    its QC sidecar) and `framerelay submit` (`of_job`: of a finished job on the daemon)."""
    group = parser.add_argument_group("edit any frame, segments (docs/edit-any-frame.md)")
    group.add_argument(
        "--at",
        type=int,
        action="append",
        metavar="K",
        help="the frame each edited frame is an edit of, counted from the range's first (once per "
        "edited frame; default 0); the edit propagates forward and backward from it",
    )
    if of_job:
        group.add_argument(
            "--segment-of", metavar="JOB", help="re-render a segment of this finished job's take"
        )
    else:
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


def apply(spec: JobSpec, args: argparse.Namespace) -> JobSpec:
    """The job with the frames edited and a segment as the switches ask."""
    spec = replace(spec, edit_frames=tuple(args.at or ()))
    if args.segment_of is None:
        if args.segment_from is not None or args.segment_new_frame or args.segment_whole:
            raise InvalidSpecError(
                "--segment-from, --segment-new-frame and --segment-whole need --segment-of.",
                "Name the earlier take: --segment-of TAKE --segment-from N.",
            )
        return spec.validate()
    return with_segment(spec, args).validate()


def with_segment(spec: JobSpec, args: argparse.Namespace) -> JobSpec:
    from framerelay.engine import segments
    from framerelay.jobs.spec import OVERRIDABLE

    if args.segment_from is None:
        raise InvalidSpecError(
            "a segment needs the frame to start at.",
            "Add --segment-from N (from the range's first).",
        )
    job = segments.segment_of_take(args.segment_of)
    frame_range = (
        [spec.frame_range.in_frame, spec.frame_range.out_frame] if spec.frame_range else None
    )
    if Path(job["source"]) != spec.source or job["frame_range"] != frame_range:
        raise InvalidSpecError(
            "a segment re-renders the same source and range as the earlier take.",
            f"Give the take's source ({Path(job['source']).name}) and its --in/--out or "
            "--start/--end.",
        )
    base_frame = Path(job["edited_frames"][0])
    if not args.segment_new_frame and spec.edited_frames != (base_frame,):
        raise InvalidSpecError(
            "without --segment-new-frame the segment keeps the take's edited frame.",
            f"Pass {base_frame} as the edited frame, or add --segment-new-frame.",
        )
    base = job["params"]
    segment = SegmentSpec(
        of_job=str(args.segment_of),
        from_frame=args.segment_from,
        new_edited_frame=args.segment_new_frame,
        whole=args.segment_whole,
        base_preset=base.get("preset", "auto"),
        base_params=ParamOverrides({k: v for k, v in base.items() if k in OVERRIDABLE}),
        base_edited_frame=base_frame,
    )
    return replace(spec, edit_frames=(job["edit_frames"][0],), segment=segment)


@dataclass
class Preflight:
    """What `framerelay edit` checked before it started, and keeps after."""

    shape: JobShape
    device: str
    gpu_total: int
    estimate: Estimate

    @property
    def line(self) -> str:
        return describe(self.estimate, self.gpu_total)

    def record(self, spec: JobSpec, result: ExecutionResult) -> None:
        """Keeps how fast this machine ran the job (the daemon reads the same file)."""
        from framerelay.jobs import preflight as checks
        from framerelay.service.config import data_dir

        checks.MachineRecord(data_dir()).record(
            self.shape,
            checks.model_key(spec),
            self.device,
            self.gpu_total,
            dict(result.compute_seconds),
            dict(result.work),
        )


def preflight(
    spec: JobSpec, outputs: tuple[Path, ...], device: str | None, cache_dir: Path | None
) -> Preflight:
    """What the job will take here, as the daemon estimates it at submit; raises when it cannot
    fit (the CLI exits 2)."""
    from framerelay.jobs import preflight as checks
    from framerelay.jobs.spec import probe_clip
    from framerelay.service.config import data_dir

    clip = probe_clip(spec)
    where, total = _device(device)
    record = checks.MachineRecord(data_dir())
    checked = checks.check(
        spec,
        clip,
        record,
        checks.model_key(spec),
        where,
        total,
        outputs[0].parent,
        cache_dir,
    )
    return Preflight(checks.shape_of(spec, clip), where, total, checked.estimate)


def _device(asked: str | None) -> tuple[str, int]:
    import torch

    if (asked or "cuda").startswith("cuda") and torch.cuda.is_available():
        index = torch.device(asked or "cuda").index or 0
        return f"cuda:{index}", torch.cuda.mem_get_info(index)[1]
    return "cpu", 0


def describe(estimate: Estimate, gpu_total: int) -> str:
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
