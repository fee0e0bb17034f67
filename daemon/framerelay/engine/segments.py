"""Re-render one segment of a chained take: windows k... of the forward half, with a changed
parameter or a new edited frame for window k. Torch-free: the daemon checks segments with it.

Windows before k run as the earlier take ran them (its parameters, its edited frame): their
edited latents come from the artifact cache (docs/engine-notes.md, "takes"), so they cost no LoRA
training, no inversion and no editing pass, only a decode; windows from k on reuse each window's
analysis (LoRA and inversion) from the cache unless the change touches it. The re-rendered frames
start after window k's shared first frame, or at it when a new edited frame conditions window k
(the new frame is an edit of the take's frame there). Earlier frames are not written (a segment
take that a host places over the earlier take), or, with `whole`, written again bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from framerelay.engine.params import PARAMS, EngineParams
from framerelay.errors import InvalidSpecError

# What cannot change between the earlier take and a segment: the windows and the steps the
# skip-interval anchor replays must line up.
STRUCTURE = ("height", "width", "window", "overlap", "skip_interval", "steps")


def check(request, params: EngineParams) -> None:
    segment = request.segment
    if len(request.edited_frames) != 1:
        raise InvalidSpecError(
            f"a segment re-render continues one take, got {len(request.edited_frames)} edited "
            "frames.",
            "Give the take's edited frame (or a new edit of the segment's first frame).",
        )
    for name in STRUCTURE:
        before, after = getattr(segment.base, name), getattr(params, name)
        if before != after:
            raise InvalidSpecError(
                f"{name.replace('_', ' ')} cannot change for a segment ({before} -> {after}).",
                "Re-render the whole take to change it.",
            )
    if segment.start_window < 1:
        raise InvalidSpecError(
            f"a segment starts at window 1 or later, got {segment.start_window}.",
            "Window 0 is the whole take: submit it as a new job.",
        )


def window_start(start_window: int, at: int, params: EngineParams) -> int:
    """The range index of the segment's window's first frame (shared with the previous window)."""
    return at + start_window * (params.window - params.overlap)


def window_of_frame(frame: int, at: int, params: EngineParams) -> int:
    """The window of the forward half from `at` that first writes range index `frame`."""
    position = frame - at
    if position < params.window:
        return 0
    return (position - params.overlap) // (params.window - params.overlap)


def window_count(frame_count: int, at: int, params: EngineParams) -> int:
    length = frame_count - at
    if length < 2:
        return 0
    step = params.window - params.overlap
    return 1 + max(0, -(-(length - params.window) // step))


def check_start(start_window: int, at: int, frame_count: int, params: EngineParams) -> None:
    windows = window_count(frame_count, at, params)
    if start_window >= windows:
        first = window_start(1, at, params) + params.overlap
        raise InvalidSpecError(
            f"the take from frame {at} has {windows} window(s); window {start_window} does not "
            "exist.",
            f"Start the segment at a frame from {first} to {frame_count - 1}."
            if windows > 1
            else "The take is one window long: re-render it whole.",
        )


def first_frame(segment, at: int, frame_count: int, params: EngineParams) -> int:
    """The range index where the segment's output starts (0 when it writes the whole range)."""
    check_start(segment.start_window, at, frame_count, params)
    if segment.whole:
        return 0
    start = window_start(segment.start_window, at, params)
    return start if segment.new_frame else start + params.overlap


def window_for(frame: int, at: int, params: EngineParams, new_frame: bool) -> int:
    """The window a segment from range index `frame` re-renders from. A new edited frame must be
    an edit of a window's first frame: otherwise the refusal names the nearest ones."""
    start = window_of_frame(frame, at, params)
    if not new_frame:
        return max(1, start)
    step = params.window - params.overlap
    index = max(1, round((frame - at) / step))
    if window_start(index, at, params) != frame:
        before = window_start(max(1, (frame - at) // step), at, params)
        after = window_start(max(1, (frame - at) // step + 1), at, params)
        raise InvalidSpecError(
            f"frame {frame} does not start a window, so a new edited frame cannot condition one "
            "there.",
            f"Edit the take's frame {before} or {after} (windows start every {step} frames).",
        )
    return index


# -- the take's record, in its QC sidecar: what `framerelay edit --segment-of TAKE` continues ------


def take_record(request, params: EngineParams, edits, take: int) -> dict[str, Any]:
    """What made a take: enough to re-render a segment of it without the job that made it.
    Parameters by their table names (engine/params.py)."""
    mine = [e for e in edits if e.take == take]
    rate = request.frame_rate
    return {
        "source": str(request.source),
        "frame_range": list(request.frame_range) if request.frame_range else None,
        "frame_rate": [rate.numerator, rate.denominator] if rate is not None else None,
        "edited_frames": [str(e.path) for e in mine],
        "edit_frames": [e.at for e in mine],
        "params": {row.name: params.value(row.name) for row in PARAMS},
        "segment": request.segment is not None,
    }


def segment_of_take(sidecar: Path) -> dict[str, Any]:
    """The record of the take whose QC sidecar is `sidecar` (or that sits beside the take)."""
    import json

    path = (
        sidecar
        if sidecar.name.endswith(".qc.json")
        else sidecar.with_name(sidecar.name + ".qc.json")
    )
    try:
        job = json.loads(path.read_text(encoding="utf-8")).get("job")
    except (OSError, ValueError):
        job = None
    if not job:
        raise InvalidSpecError(
            f"no QC sidecar with the take's job next to {sidecar.name} ({path.name}).",
            "Re-render a take made with QC on (its .qc.json records how it was made).",
        )
    if job.get("segment"):
        raise InvalidSpecError(
            f"{sidecar.name} is itself a re-rendered segment.",
            "Re-render a segment of the original take, or the whole take.",
        )
    if len(job["edited_frames"]) != 1:
        raise InvalidSpecError(
            f"{sidecar.name} is a take of {len(job['edited_frames'])} edited frames.",
            "Segments re-render takes of one edited frame; render the whole take again.",
        )
    return job
