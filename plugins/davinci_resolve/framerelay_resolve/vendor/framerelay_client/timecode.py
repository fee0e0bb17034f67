"""Frame and timecode arithmetic for hosts, exact: frame rates are `fractions.Fraction`s.

* A frame rate is parsed once (`parse_fps`): "30000/1001", "29.97", 29.97, Blender's
  `fps / fps_base`, Resolve's "23.976" or "29.97 DF" all give the exact NTSC rate.
* Frame numbers are 0-based; ranges are `[in, out)`.
* Converting frames between rates refuses a result that is not a whole frame unless a rounding is
  asked for: "exact" (the default: ValueError when inexact), "floor", "nearest" (halves round up)
  or "ceil".
* Timecode is SMPTE 12M: non-drop `HH:MM:SS:FF`, drop-frame `HH:MM:SS;FF` for 29.97 (frame
  numbers 00 and 01 skipped at the start of every minute but every tenth) and 59.94 (00 to 03).
  Timecode counts a 24-hour day and wraps around it.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Literal

Rate = Fraction | str | float | int
Rounding = Literal["exact", "floor", "nearest", "ceil"]

NTSC_TOLERANCE = 0.005  # a decimal rate this close to N×1000/1001 is that NTSC rate
SNAP = Fraction(1, 10**6)  # float inputs this close to a whole frame are that frame
DROP_FRAMES = {Fraction(30000, 1001): 2, Fraction(60000, 1001): 4}
_TIMECODE = re.compile(r"^\s*(\d{1,2})[:;.,](\d{2})[:;.,](\d{2})([:;.,])(\d{2,3})\s*$")
_RATE_SUFFIX = re.compile(r"\s*(n?df|fps)\s*$", re.IGNORECASE)


def parse_fps(value: Rate) -> Fraction:
    """The exact frame rate: "24000/1001", "23.976", 23.976, 24, Fraction(24000, 1001)...

    Decimal rates within 0.005 of an NTSC rate N×1000/1001 are that rate; other decimals are the
    nearest fraction with a denominator up to 1001 (12.5 -> 25/2).
    """
    if isinstance(value, bool):
        raise ValueError(f"a frame rate cannot be {value!r}.")
    if isinstance(value, Fraction):
        rate = value
    elif isinstance(value, int):
        rate = Fraction(value)
    elif isinstance(value, float):
        rate = _from_decimal(value)
    elif isinstance(value, str):
        rate = _from_text(value)
    else:
        raise ValueError(f"a frame rate must be a number or text, got {type(value).__name__}.")
    if rate <= 0:
        raise ValueError(f"a frame rate must be positive, got {value!r}.")
    return rate


def parse_rate(text: str) -> tuple[Fraction, bool]:
    """A host's rate setting such as Resolve's "29.97 DF": the rate and whether it says DF."""
    drop = bool(re.search(r"(?<![a-z])df\s*$", text.strip(), re.IGNORECASE))
    return parse_fps(text), drop


def _from_text(text: str) -> Fraction:
    cleaned = _RATE_SUFFIX.sub("", text.strip())
    num, slash, den = cleaned.partition("/")
    try:
        if slash:
            return Fraction(int(num), int(den))
        if re.fullmatch(r"\d+", cleaned):
            return Fraction(int(cleaned))
        return _from_decimal(float(cleaned))
    except (ValueError, ZeroDivisionError):
        raise ValueError(
            f"not a frame rate: {text!r}; write e.g. 24, 23.976 or 24000/1001."
        ) from None


def _from_decimal(value: float) -> Fraction:
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"a frame rate must be positive, got {value!r}.")
    whole = round(value)
    if whole >= 1 and abs(value - whole) < 1e-6:
        return Fraction(whole)
    nominal = round(value * 1.001)
    ntsc = Fraction(nominal * 1000, 1001)
    if nominal >= 1 and abs(value - ntsc) < NTSC_TOLERANCE:
        return ntsc
    return Fraction(value).limit_denominator(1001)


def frames_to_seconds(frames: int, fps: Rate) -> Fraction:
    """When frame `frames` starts (or how long `frames` frames last), in exact seconds."""
    return Fraction(frames) / parse_fps(fps)


def seconds_to_frame(
    seconds: Fraction | float | int, fps: Rate, rounding: Rounding = "floor"
) -> int:
    """The frame showing at `seconds` ("floor", the default), or the nearest frame start.

    Float seconds within 1e-6 of a frame's start are that frame (0.1001 s at 30000/1001 is frame 3,
    though 0.1001 × 30000/1001 is 2.9999… in binary floating point).
    """
    exact = Fraction(seconds) * parse_fps(fps)
    if isinstance(seconds, float) and abs(exact - round(exact)) < SNAP:
        exact = Fraction(round(exact))
    return _round(exact, rounding, f"{seconds} s at {fps} fps")


def convert_frame_count(n: int, from_fps: Rate, to_fps: Rate, rounding: Rounding = "exact") -> int:
    """How many frames at `to_fps` last as long as `n` frames at `from_fps`."""
    value = Fraction(n) * parse_fps(to_fps) / parse_fps(from_fps)
    return _round(value, rounding, f"{n} frames at {from_fps} fps in frames at {to_fps} fps")


def rescale_frame(frame: int, from_fps: Rate, to_fps: Rate, rounding: Rounding = "exact") -> int:
    """The frame at `to_fps` that starts when frame `frame` at `from_fps` starts."""
    value = Fraction(frame) * parse_fps(to_fps) / parse_fps(from_fps)
    return _round(value, rounding, f"frame {frame} at {from_fps} fps as a frame at {to_fps} fps")


def record_frame(
    source_frame: int,
    *,
    source_in: int,
    record_in: int,
    source_fps: Rate | None = None,
    record_fps: Rate | None = None,
    rounding: Rounding = "exact",
) -> int:
    """Where `source_frame` of a clip lands on the timeline: the clip shows `source_in` at
    `record_in`. With two different rates the offset is converted by time (a host that plays the
    clip frame for frame, as Blender's VSE does, passes no rates)."""
    return _shift(source_frame, source_in, record_in, source_fps, record_fps, rounding)


def source_frame(
    record: int,
    *,
    source_in: int,
    record_in: int,
    source_fps: Rate | None = None,
    record_fps: Rate | None = None,
    rounding: Rounding = "exact",
) -> int:
    """The inverse of `record_frame`: the clip's source frame showing at timeline frame `record`."""
    return _shift(record, record_in, source_in, record_fps, source_fps, rounding)


def _shift(
    frame: int, start: int, to_start: int, fps: Rate | None, to_fps: Rate | None, rounding: Rounding
) -> int:
    offset = frame - start
    if fps is not None and to_fps is not None:
        offset = rescale_frame(offset, fps, to_fps, rounding)
    return to_start + offset


def _round(value: Fraction, rounding: Rounding, what: str) -> int:
    if rounding == "exact":
        if value.denominator != 1:
            raise ValueError(
                f"{what} is {float(value):.4f}, not a whole frame; pass rounding='floor', "
                "'nearest' or 'ceil' to accept a rounded frame."
            )
        return value.numerator
    if rounding == "floor":
        return math.floor(value)
    if rounding == "ceil":
        return math.ceil(value)
    if rounding == "nearest":
        return math.floor(value + Fraction(1, 2))
    raise ValueError(f"unknown rounding {rounding!r}; use exact, floor, nearest or ceil.")


# --- timecode ---


def is_drop_frame_rate(fps: Rate) -> bool:
    """Whether SMPTE defines drop-frame timecode for the rate: 29.97 and 59.94."""
    return parse_fps(fps) in DROP_FRAMES


def timecode_base(fps: Rate) -> int:
    """Frames per timecode second: the rate itself, or N for an NTSC rate N×1000/1001."""
    rate = parse_fps(fps)
    if rate.denominator == 1:
        return rate.numerator
    if rate.denominator == 1001 and rate.numerator % 1000 == 0:
        return rate.numerator // 1000
    raise ValueError(f"timecode needs a whole or NTSC frame rate, got {rate} fps.")


def frames_per_day(fps: Rate, drop_frame: bool = False) -> int:
    base = timecode_base(fps)
    if not drop_frame:
        return base * 86400
    return 24 * 6 * _frames_per_ten_minutes(fps)


def frames_to_timecode(frame: int, fps: Rate, drop_frame: bool | None = None) -> str:
    """SMPTE timecode of frame `frame` (counted from 00:00:00:00), wrapping around a day.

    `drop_frame` None: drop-frame for 29.97 and 59.94, non-drop otherwise. Say what the host's
    timeline uses: 29.97 NDF footage is common.
    """
    rate = parse_fps(fps)
    drop = is_drop_frame_rate(rate) if drop_frame is None else drop_frame
    base = timecode_base(rate)
    frame %= frames_per_day(rate, drop)
    if drop:
        frame += _dropped_before(frame, rate)
    seconds, ff = divmod(frame, base)
    minutes, ss = divmod(seconds, 60)
    hh, mm = divmod(minutes, 60)
    width = max(2, len(str(base - 1)))
    return f"{hh:02d}:{mm:02d}:{ss:02d}{';' if drop else ':'}{ff:0{width}d}"


def timecode_to_frames(timecode: str, fps: Rate, drop_frame: bool | None = None) -> int:
    """The frame number of `timecode` ("01:00:00:00", or "00:10:00;00" drop-frame).

    `drop_frame` None: drop-frame when the last separator is ";", "." or ",". A label that
    drop-frame timecode skips (00:01:00;00) is refused.
    """
    match = _TIMECODE.match(timecode)
    if match is None:
        raise ValueError(f"not a timecode: {timecode!r}; write HH:MM:SS:FF (or HH:MM:SS;FF).")
    hh, mm, ss, separator, ff = match.groups()
    hours, minutes, seconds, frames = int(hh), int(mm), int(ss), int(ff)
    rate = parse_fps(fps)
    base = timecode_base(rate)
    drop = separator != ":" if drop_frame is None else drop_frame
    if hours >= 24 or minutes >= 60 or seconds >= 60 or frames >= base:
        raise ValueError(f"timecode {timecode!r} is out of range at {rate} fps.")
    total_minutes = hours * 60 + minutes
    count = (total_minutes * 60 + seconds) * base + frames
    if not drop:
        return count
    dropped = _drop_count(rate)
    if seconds == 0 and frames < dropped and minutes % 10 != 0:
        raise ValueError(
            f"{timecode!r} does not exist in drop-frame timecode: frames 00 to "
            f"{dropped - 1:02d} are skipped at the start of minute {minutes}."
        )
    return count - dropped * (total_minutes - total_minutes // 10)


def _drop_count(rate: Fraction) -> int:
    dropped = DROP_FRAMES.get(rate)
    if dropped is None:
        raise ValueError(f"drop-frame timecode exists for 29.97 and 59.94 fps only, not {rate}.")
    return dropped


def _frames_per_ten_minutes(rate: Rate) -> int:
    fps = parse_fps(rate)
    return timecode_base(fps) * 600 - 9 * _drop_count(fps)


def _dropped_before(frame: int, rate: Fraction) -> int:
    """How many frame labels drop-frame timecode has skipped up to real frame `frame`."""
    dropped = _drop_count(rate)
    per_ten = _frames_per_ten_minutes(rate)
    per_minute = timecode_base(rate) * 60 - dropped
    tens, rest = divmod(frame, per_ten)
    skipped = 9 * dropped * tens
    if rest >= dropped:
        skipped += dropped * ((rest - dropped) // per_minute)
    return skipped
