"""From what a movie strip shows to what the daemon must process, or a clear refusal.

A movie strip shows source frames `[left_offset, left_offset + duration)` of its file from
timeline frame `left_handle` on, one source frame per timeline frame, as long as nothing changes
the speed: no retiming keys, and the strip's content as long as the file (Blender's "Adjust
Playback Rate" stretches a clip whose rate differs from the scene's, so its content no longer
matches the file frame for frame). A clip whose rate differs from the scene's without that
adjustment plays frame by frame; the take is placed the same way, so it lines up exactly.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction

from .rates import format_rate


class ClipProblem(ValueError):
    """A strip framerelay cannot process as it is: a message and what to change."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip()


@dataclass(frozen=True)
class StripFacts:
    """What Blender says about the strip and its scene (read on the main thread)."""

    name: str
    kind: str  # strip.type: MOVIE, IMAGE, SCENE, META, ...
    filepath: str  # absolute
    channel: int
    left_handle: int  # first visible timeline frame (frame_final_start)
    duration: int  # visible frames (frame_final_duration)
    content_start: float  # timeline frame of the file's first frame (frame_start)
    left_offset: float  # frames trimmed at the head (frame_offset_start)
    content_duration: int  # the content's length in timeline frames (frame_duration)
    media_rate: Fraction | None  # the file's rate (strip.fps)
    media_frames: int | None  # the file's frame count, as Blender's decoder reads it
    retiming_keys: int
    in_meta: bool
    scene_rate: Fraction


@dataclass(frozen=True)
class SourcePlan:
    """What a job sends (source frames and rate) and where its take goes (frozen at submit)."""

    source_name: str
    source_path: str
    in_frame: int
    out_frame: int  # exclusive
    media_rate: Fraction
    scene_rate: Fraction
    channel: int
    record_start: int

    @property
    def frame_count(self) -> int:
        return self.out_frame - self.in_frame

    @property
    def rates_differ(self) -> bool:
        return self.media_rate != self.scene_rate

    def index_at(self, scene_frame: int) -> int:
        """ "Edit current frame": the range index of the frame shown at `scene_frame` (frame for
        frame, as Blender plays it), clamped to the range."""
        return min(max(0, scene_frame - self.record_start), self.frame_count - 1)

    def rate_note(self) -> str:
        """Said to the user when the clip's rate differs from the scene's; empty otherwise."""
        if not self.rates_differ:
            return ""
        return (
            f"{self.source_name} is {format_rate(self.media_rate)} fps in a "
            f"{format_rate(self.scene_rate)} fps scene: Blender shows it frame by frame, and the "
            "take is placed the same way, frame for frame."
        )


def plan_source(facts: StripFacts) -> SourcePlan:
    """The job's source range and insertion point; raises ClipProblem naming what to change."""
    check_kind(facts)
    check_timing(facts)
    in_frame = int(facts.left_offset)
    media_rate = facts.media_rate
    if media_rate is None:
        raise ClipProblem(f"Blender reports no frame rate for {facts.name}.", RELINK_HINT)
    return SourcePlan(
        source_name=facts.name,
        source_path=facts.filepath,
        in_frame=in_frame,
        out_frame=in_frame + facts.duration,
        media_rate=media_rate,
        scene_rate=facts.scene_rate,
        channel=facts.channel,
        record_start=facts.left_handle,
    )


RELINK_HINT = "Check that the clip plays in the sequencer (Strip ▸ Movie Strip ▸ File)."


def check_kind(facts: StripFacts) -> None:
    if facts.kind != "MOVIE":
        raise ClipProblem(
            f"{facts.name} is a {facts.kind.lower()} strip; framerelay works on movie strips.",
            "Select a movie strip, or render this one to a movie file first.",
        )
    if facts.in_meta:
        raise ClipProblem(
            f"{facts.name} is inside a meta strip.",
            "Leave the meta strip (Tab) or ungroup it, then select the movie strip again.",
        )
    if not os.path.isfile(facts.filepath):
        raise ClipProblem(f"the clip of {facts.name} is missing: {facts.filepath}.", RELINK_HINT)


def check_timing(facts: StripFacts) -> None:
    """Refuses every strip whose timeline frames are not its file's frames one for one."""
    if facts.retiming_keys:
        raise ClipProblem(
            f"{facts.name} is retimed (it has retiming keys); framerelay needs the clip at its "
            "own speed.",
            "Reset it (Strip ▸ Retiming ▸ Reset Retiming), or render the retimed part to a movie.",
        )
    if facts.media_frames is not None and facts.content_duration != facts.media_frames:
        raise stretched(facts)
    if facts.left_offset != int(facts.left_offset):
        raise ClipProblem(
            f"{facts.name} starts between two frames of its clip (offset {facts.left_offset}).",
            "Snap its left handle to a whole frame.",
        )
    if facts.left_handle - facts.content_start != facts.left_offset:
        raise ClipProblem(
            f"{facts.name} does not start where its trim says (handle {facts.left_handle}, "
            f"content {facts.content_start}, offset {facts.left_offset}).",
            "Reset the strip's offsets and trim it again.",
        )
    if facts.duration < 1:
        raise ClipProblem(f"{facts.name} shows no frame.", "Widen the strip.")
    end = int(facts.left_offset) + facts.duration
    if facts.left_offset < 0 or (facts.media_frames is not None and end > facts.media_frames):
        raise ClipProblem(
            f"{facts.name} shows frames beyond its clip (held frames at a handle).",
            "Trim the strip so it shows only frames of the clip.",
        )


def stretched(facts: StripFacts) -> ClipProblem:
    """The strip's content is longer or shorter than its file: Blender adapts the clip's rate."""
    shown = (
        f"{facts.name} plays its {facts.media_frames} frames over {facts.content_duration} "
        "timeline frames"
    )
    if facts.media_rate is None or facts.media_rate == facts.scene_rate:
        return ClipProblem(
            f"{shown}, so a take cannot line up frame for frame.",
            "Reload the strip (Strip ▸ Movie Strip ▸ Reload Strips) or add the clip again.",
        )
    media, scene = format_rate(facts.media_rate), format_rate(facts.scene_rate)
    return ClipProblem(
        f"{shown}: its rate, {media} fps, is adjusted to the scene's {scene} fps, so a take "
        "cannot line up frame for frame.",
        f"Set the scene to {media} fps (Output Properties ▸ Format ▸ Frame Rate) and add the "
        "clip again, or add it with Adjust Playback Rate turned off.",
    )
