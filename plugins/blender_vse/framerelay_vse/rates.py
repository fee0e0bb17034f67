"""Exact frame rates from the floats Blender stores.

Blender keeps a movie strip's rate as a 32-bit float (30000/1001 reads back as 29.97002983) and a
scene's as `fps / fps_base` with a float base (24 / 1.001 reads back as 23.9760229). Jobs need the
exact rational, so a float is snapped to an integer rate, an NTSC rate (n × 1000/1001) or a
half rate when it lies within what a 32-bit float can blur, and kept as the nearest small
fraction otherwise.
"""

from __future__ import annotations

from fractions import Fraction

# A float32 holds about 7 significant digits; 2997/100 and 30000/1001 differ by 1.0e-6
# relatively, so the tolerance has to sit between the two.
RELATIVE_TOLERANCE = 5e-7
NTSC = Fraction(1000, 1001)


def snap_rate(value: float) -> Fraction:
    """The exact rate a stored float stands for; raises ValueError for a rate that is not > 0."""
    if not value > 0:
        raise ValueError(f"a frame rate must be above 0, got {value!r}")
    for unit in (Fraction(1), NTSC, Fraction(1, 2)):
        count = round(value / unit)
        candidate = count * unit
        if count > 0 and abs(value - candidate) <= RELATIVE_TOLERANCE * value:
            return candidate
    return Fraction(value).limit_denominator(1001)


def scene_rate(fps: int, fps_base: float) -> Fraction:
    """A scene's rate from `render.fps` and `render.fps_base`."""
    return snap_rate(fps / fps_base)


def format_rate(rate: Fraction) -> str:
    """24, 29.97, 23.976, 12.5: how editors write rates."""
    if rate.denominator == 1:
        return str(rate.numerator)
    return f"{float(rate):.3f}".rstrip("0").rstrip(".")


def rate_text(rate: Fraction) -> str:
    """The exact form kept in job context: "24/1", "30000/1001"."""
    return f"{rate.numerator}/{rate.denominator}"
