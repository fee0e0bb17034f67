"""Reading the source strip and placing a take, on the main thread."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import bpy

from . import compat
from .placement import Span, free_channel, readback_mismatches
from .rates import scene_rate, snap_rate
from .source import StripFacts

IMAGE_SUFFIXES = (".png",)


def strip_facts(strip: Any, scene: Any) -> StripFacts:
    kind = strip.type
    filepath = ""
    media_rate = media_frames = None
    if kind == "MOVIE":
        library = getattr(strip.id_data, "library", None)
        filepath = os.path.normpath(bpy.path.abspath(strip.filepath, library=library))
        fps = getattr(strip, "fps", 0.0)
        media_rate = snap_rate(fps) if fps > 0 else None
        media_frames = probe_frame_count(filepath)
    retiming = getattr(strip, "retiming_keys", None)
    return StripFacts(
        name=strip.name,
        kind=kind,
        filepath=filepath,
        channel=strip.channel,
        left_handle=int(compat.strip_value(strip, "left_handle")),
        duration=int(compat.strip_value(strip, "duration")),
        content_start=float(compat.strip_value(strip, "content_start")),
        left_offset=float(compat.strip_value(strip, "left_offset")),
        content_duration=int(compat.strip_value(strip, "content_duration")),
        media_rate=media_rate,
        media_frames=media_frames,
        retiming_keys=len(retiming) if retiming is not None else 0,
        in_meta=compat.in_meta(strip),
        scene_rate=scene_rate(scene.render.fps, scene.render.fps_base),
    )


def probe_frame_count(filepath: str) -> int | None:
    """The file's frame count as Blender's own decoder reads it (through a temporary clip)."""
    if not os.path.isfile(filepath):
        return None
    known = {clip.as_pointer() for clip in bpy.data.movieclips}
    try:
        clip = bpy.data.movieclips.load(filepath, check_existing=True)
    except RuntimeError:
        return None
    try:
        return int(clip.frame_duration) or None
    finally:
        if clip.as_pointer() not in known:
            bpy.data.movieclips.remove(clip)


@dataclass(frozen=True)
class Placed:
    strip_name: str
    channel: int
    start: int
    end: int
    frames: int
    problems: tuple[str, ...]  # read-back mismatches, empty when exact


def occupied_spans(editor: Any) -> list[Span]:
    return [
        Span(
            s.channel,
            int(compat.strip_value(s, "left_handle")),
            int(compat.strip_value(s, "right_handle")),
        )
        for s in compat.top_level_strips(editor)
    ]


def locked_channels(editor: Any, above: int) -> set[int]:
    channels = getattr(editor, "channels", ())
    return {n for n in range(above + 1, len(channels)) if compat.channel_locked(editor, n)}


def place_take(
    scene: Any,
    *,
    output: str,
    source_channel: int,
    record_start: int,
    frame_count: int,
    name: str,
) -> Placed:
    """Adds the take on the first free channel above the source and reads it back."""
    editor = scene.sequence_editor or scene.sequence_editor_create()
    end = record_start + frame_count
    channel = free_channel(
        occupied_spans(editor),
        source_channel,
        record_start,
        end,
        locked=locked_channels(editor, source_channel),
    )
    with compat.PrefetchPaused(editor):
        strip = add_strip(editor, output, name, channel, record_start)
    placed = Span(
        strip.channel,
        int(compat.strip_value(strip, "left_handle")),
        int(compat.strip_value(strip, "right_handle")),
    )
    frames = int(compat.strip_value(strip, "content_duration"))
    problems = readback_mismatches(Span(channel, record_start, end), placed, frame_count, frames)
    return Placed(strip.name, placed.channel, placed.start, placed.end, frames, tuple(problems))


def add_strip(editor: Any, output: str, name: str, channel: int, start: int) -> Any:
    strips = compat.top_level_strips(editor)
    if os.path.isdir(output):
        files = sorted(f for f in os.listdir(output) if f.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise FileNotFoundError(f"the take's folder holds no PNG frame: {output}")
        strip = strips.new_image(
            name=name,
            filepath=os.path.join(output, files[0]),
            channel=channel,
            frame_start=start,
            fit_method="FIT",
        )
        for filename in files[1:]:
            strip.elements.append(filename)
        return strip
    if not os.path.isfile(output):
        raise FileNotFoundError(f"the take's file is missing: {output}")
    return strips.new_movie(
        name=name, filepath=output, channel=channel, frame_start=start, fit_method="FIT"
    )
