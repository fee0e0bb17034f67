"""SMPTE timecode: read a source's start timecode and move it to the first processed frame.

Timecode counts frames at the nominal rate (30 for 30000/1001). Drop-frame timecode (written with
`;`) skips frame numbers 0 and 1 of every minute except each tenth, for 29.97 and 59.94 fps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

_PATTERN = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.,])(\d{2,3})$")


@dataclass(frozen=True)
class Timecode:
    frames: int  # frame number since 00:00:00:00
    rate: int  # nominal frames per second
    drop: bool = False

    @classmethod
    def parse(cls, text: str, fps: Fraction) -> Timecode | None:
        """'01:00:00:00' (or ';' for drop-frame) at a rate; None when it is not a timecode."""
        match = _PATTERN.match(text.strip())
        if match is None:
            return None
        hours, minutes, seconds, separator, frame = match.groups()
        rate = max(1, round(fps))
        drop = separator in ";," and rate % 30 == 0 and Fraction(fps).denominator == 1001
        if int(minutes) > 59 or int(seconds) > 59 or int(frame) >= rate:
            return None
        count = ((int(hours) * 60 + int(minutes)) * 60 + int(seconds)) * rate + int(frame)
        if drop:
            skipped = 2 * rate // 30
            total_minutes = int(hours) * 60 + int(minutes)
            count -= skipped * (total_minutes - total_minutes // 10)
        return cls(count, rate, drop)

    def plus(self, frames: int) -> Timecode:
        return Timecode(self.frames + frames, self.rate, self.drop)

    def __str__(self) -> str:
        count = self.frames % (24 * 3600 * self.rate)
        if self.drop:
            skipped = 2 * self.rate // 30
            per_ten = self.rate * 600 - skipped * 9
            per_minute = self.rate * 60 - skipped
            tens, rest = divmod(count, per_ten)
            extra = 0 if rest < skipped else skipped * ((rest - skipped) // per_minute)
            count += skipped * 9 * tens + extra
        frame = count % self.rate
        seconds = count // self.rate
        separator = ";" if self.drop else ":"
        return (
            f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
            f"{separator}{frame:02d}"
        )


def shifted(text: str | None, fps: Fraction, frames: int) -> str | None:
    """The timecode `frames` frames after `text`; None when there is none or it is unreadable."""
    if not text:
        return None
    start = Timecode.parse(text, fps)
    return None if start is None else str(start.plus(frames))
