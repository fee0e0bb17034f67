"""Resolve's frame rates and timecode, and the frame arithmetic of mixed rates.

Resolve reports rates as decimals ("23.976", 29.97, "29.97 DF") that stand for the exact NTSC
rates n*1000/1001; the client package's `timecode` reads them exactly. When a clip's rate differs
from the timeline's, Resolve plays it in real time and turns a source range of `n` frames into
`floor(n * timeline_fps / media_fps)` record frames (measured by davinci-resolve-mcp: a range
planned to fill a slot can land one frame short). A take must cover exactly the record frames of
its source clip, so the number of source frames sent is chosen for that conversion to give the
clip's record duration; where no whole number does, the clip is refused rather than placed one
frame short or long.
"""

from __future__ import annotations

from fractions import Fraction

from .errors import ClipRefused
from .vendor.framerelay_client import timecode


def parse_rate(value) -> Fraction:
    """Resolve's rate (23.976, "29.97 DF", "24") as an exact fraction, or ClipRefused."""
    try:
        return timecode.parse_fps(value if isinstance(value, (int, float)) else str(value))
    except ValueError:
        raise ClipRefused(
            f"Resolve reported a frame rate framerelay cannot read: {value!r}.",
            "Set the clip's and the timeline's frame rates in Resolve, then try again.",
        ) from None


def is_drop_frame(rate_setting, drop_setting=None) -> bool:
    """Whether the timeline counts drop-frame timecode ("29.97 DF", or the DF setting "1")."""
    if str(drop_setting).strip().lower() in ("1", "true", "yes"):
        return True
    return timecode.parse_rate(str(rate_setting))[1]


def timeline_frame(text: str, rate: Fraction, drop_frame: bool) -> int:
    """The absolute frame of a timeline timecode as Resolve writes it."""
    if drop_frame and ";" not in text and text.count(":") == 3:
        text = text[: text.rfind(":")] + ";" + text[text.rfind(":") + 1 :]
    try:
        return timecode.timecode_to_frames(text, rate, drop_frame)
    except ValueError as error:
        raise ClipRefused(f"Resolve reported the timecode {text!r}: {error}") from None


def timeline_timecode(frame: int, rate: Fraction, drop_frame: bool) -> str:
    try:
        return timecode.frames_to_timecode(frame, rate, drop_frame)
    except ValueError:
        return f"frame {frame}"


def rate_text(rate: Fraction) -> str:
    """ "24", "24000/1001": exact, for the daemon and host_context."""
    return str(rate.numerator) if rate.denominator == 1 else str(rate)


def display_rate(rate: Fraction) -> str:
    """ "24", "23.976": as Resolve shows it."""
    return f"{round(float(rate), 3):g}"


def placed_duration(source_frames: int, media_fps: Fraction, timeline_fps: Fraction) -> int:
    """The record frames Resolve gives `source_frames` frames of `media_fps` media."""
    if media_fps == timeline_fps:
        return source_frames
    return timecode.convert_frame_count(source_frames, media_fps, timeline_fps, "floor")


def source_frames_for(record_frames: int, media_fps: Fraction, timeline_fps: Fraction) -> int:
    """How many source frames cover exactly `record_frames` record frames, or ClipRefused."""
    if media_fps == timeline_fps:
        return record_frames
    first = timecode.convert_frame_count(record_frames, timeline_fps, media_fps, "ceil")
    for count in (first - 1, first, first + 1):
        if count > 0 and placed_duration(count, media_fps, timeline_fps) == record_frames:
            return count
    raise ClipRefused(
        f"a {record_frames}-frame clip of {display_rate(media_fps)} fps media on a "
        f"{display_rate(timeline_fps)} fps timeline has no exact length in source "
        "frames: its take would land one frame short or long.",
        "Trim the clip by one frame, or set the clip's frame rate to the timeline's "
        "(Clip Attributes), then send it again.",
    )


def source_frame_at(record_offset: int, timeline_fps: Fraction, media_fps: Fraction) -> int:
    """The source frame (counted from the clip's first) shown `record_offset` record frames into
    a clip whose media runs at another rate: the one whose time span holds that record frame."""
    return timecode.rescale_frame(record_offset, timeline_fps, media_fps, "floor")
