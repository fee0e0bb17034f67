"""Where a take goes: the first channel above its source that is free over the whole range.

Blender's `strips.new_movie/new_image` put a strip wherever they are told, on top of other strips
too, so the channel is chosen here and the result is read back afterwards.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

MAX_CHANNEL = 128  # the sequencer's top channel (4.2 to 5.3)
NAME_LIMIT = 60  # strip names are cut at 61 to 63 bytes depending on the version


class NoFreeChannel(ValueError):
    pass


@dataclass(frozen=True)
class Span:
    """A strip's place: channel and timeline frames [start, end)."""

    channel: int
    start: int
    end: int

    def overlaps(self, other: Span) -> bool:
        return self.channel == other.channel and self.start < other.end and other.start < self.end


def free_channel(
    occupied: Iterable[Span],
    above: int,
    start: int,
    end: int,
    locked: Iterable[int] = (),
    top: int = MAX_CHANNEL,
) -> int:
    """The lowest unlocked channel above `above` with no strip in [start, end)."""
    taken = list(occupied)
    skipped = set(locked)
    for channel in range(above + 1, top + 1):
        wanted = Span(channel, start, end)
        if channel not in skipped and not any(wanted.overlaps(span) for span in taken):
            return channel
    raise NoFreeChannel(
        f"no free channel above channel {above} over frames {start}–{end - 1}.",
    )


def take_name(source_name: str, take: int) -> str:
    """ "<source> take <n>", the source name shortened to fit Blender's limit."""
    suffix = f" take {take}"
    room = NAME_LIMIT - len(suffix.encode())
    head = source_name.encode()[:room].decode(errors="ignore")
    return head + suffix


def readback_mismatches(
    wanted: Span, placed: Span, frames_wanted: int, frames_placed: int
) -> list[str]:
    """What differs between the planned placement and what Blender made of it."""
    problems = []
    if placed.channel != wanted.channel:
        problems.append(f"it landed on channel {placed.channel} instead of {wanted.channel}")
    if placed.start != wanted.start:
        problems.append(f"it starts at frame {placed.start} instead of {wanted.start}")
    if placed.end != wanted.end:
        problems.append(f"it ends before frame {placed.end} instead of {wanted.end}")
    if frames_placed != frames_wanted:
        problems.append(f"it holds {frames_placed} frames instead of {frames_wanted}")
    return problems
