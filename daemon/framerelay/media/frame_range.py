"""A job's frame range, as hosts and the daemon count it: frames [first, stop) from the source's
first frame (0), at the rate the host counts the clip at. Torch- and media-free."""

from __future__ import annotations

from fractions import Fraction


def to_source_frames(
    first: int, stop: int, rate: Fraction | None, source_fps: Fraction
) -> tuple[int, int]:
    """[first, stop) at `rate` as frames of the source at its own rate: the same frames when the
    rates agree (or `rate` is None), else the frames at the same times, to the nearest frame."""
    if rate is None or rate == source_fps:
        return first, stop
    scale = Fraction(source_fps) / Fraction(rate)
    return round(first * scale), round(stop * scale)
