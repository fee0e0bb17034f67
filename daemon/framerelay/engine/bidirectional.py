"""Edit any frame, propagate both ways: which frames each edited frame's halves cover, and how
the halves are stitched back into one take at the source's frame numbers. Torch-free.

An edited frame at k (counted from the start of the range) propagates forward over k, k+1, ...
and backward over k, k-1, ... (the same engine on the reversed frames, with k first). The take's
frame k is the forward half's frame 0; the backward half's frames after its first are put back in
source order before it. Several edited frames at different k split the range between them: each
owns the frames nearest to it (a tie goes to the earlier one), and at each boundary the two
neighbours either cut hard or cross-fade over a few frames, both halves running that far.

A half of one frame is not run (the model needs two): frame k then comes from the other half; when
both would be one frame long, the backward half is lengthened by one frame it does not own.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from framerelay.errors import InvalidSpecError

FORWARD, BACKWARD = 1, -1
MIN_KEYFRAME_GAP = 2  # frames between two edited frames of one take
MAX_CROSSFADE = 48


@dataclass(frozen=True)
class Half:
    """One run of the engine: the frames it processes, in order, as indices into the range."""

    keyframe: int  # position in Plan.keyframes
    direction: int  # FORWARD or BACKWARD
    frames: range  # frames[0] is the edited frame's index; a step of -1 when BACKWARD

    @property
    def name(self) -> str:
        way = "forward" if self.direction == FORWARD else "backward"
        return f"{way} from frame {self.frames[0]}"


@dataclass(frozen=True)
class Contribution:
    half: int  # position in Plan.halves
    position: int  # frame position within that half
    weight: float


@dataclass(frozen=True)
class Plan:
    frame_count: int  # of the range
    keyframes: tuple[int, ...]  # sorted, distinct
    halves: tuple[Half, ...]  # in the order they run: by the frames they cover
    sources: tuple[tuple[Contribution, ...], ...]  # per frame of the range
    first: int = 0  # the take starts here (a re-rendered segment); earlier frames are not written

    def contributions(self, frame: int) -> tuple[Contribution, ...]:
        return self.sources[frame]

    @property
    def output_frames(self) -> range:
        return range(self.first, self.frame_count)

    def owner(self, frame: int) -> int:
        """The keyframe with the largest weight at `frame`."""
        best = max(self.sources[frame], key=lambda c: c.weight)
        return self.halves[best.half].keyframe

    def needed(self, half: int) -> bool:
        """Whether any written frame uses this half."""
        return any(
            c.half == half and c.weight > 0
            for frame in self.output_frames
            for c in self.sources[frame]
        )


def check_keyframes(frame_count: int, keyframes: tuple[int, ...]) -> None:
    for k in keyframes:
        if not 0 <= k < frame_count:
            raise InvalidSpecError(
                f"edited frame index {k} is outside the range's {frame_count} frames.",
                f"Give indices from 0 to {frame_count - 1}, counted from the range's first frame.",
            )
    ordered = sorted(keyframes)
    for a, b in itertools.pairwise(ordered):
        if b - a < MIN_KEYFRAME_GAP:
            raise InvalidSpecError(
                f"edited frames {a} and {b} are {b - a} frame(s) apart; one take needs them at "
                f"least {MIN_KEYFRAME_GAP} apart.",
                "Edit frames further apart, or submit them as separate takes.",
            )


def plan(frame_count: int, keyframes: tuple[int, ...], crossfade: int = 0, first: int = 0) -> Plan:
    """The halves and the per-frame stitching of one take; see the module docstring."""
    if frame_count < 2:
        raise InvalidSpecError(f"a take needs at least two frames, got {frame_count}.")
    if not keyframes:
        raise InvalidSpecError("a take needs at least one edited frame.")
    if not 0 <= crossfade <= MAX_CROSSFADE:
        raise InvalidSpecError(
            f"the cross-fade must be 0..{MAX_CROSSFADE} frames, got {crossfade}.",
            "0 cuts hard between edited frames; a few frames soften the change.",
        )
    check_keyframes(frame_count, keyframes)
    keys = tuple(sorted(keyframes))
    # 1. What each keyframe owns: [start, stop), and how far each side runs for the fades.
    owned, reach = [], []
    for i, k in enumerate(keys):
        start = 0 if i == 0 else (keys[i - 1] + k) // 2 + 1
        stop = frame_count if i == len(keys) - 1 else (k + keys[i + 1]) // 2 + 1
        owned.append((start, stop))
        reach.append([start, stop])
    fades: dict[int, tuple[int, int]] = {}  # boundary i (between keys i and i+1): [s, s + c)
    for i in range(len(keys) - 1):
        boundary = owned[i][1]  # first frame of key i + 1
        c = min(crossfade, keys[i + 1] - keys[i] - 1)
        s = max(keys[i] + 1, boundary - c // 2)
        s = min(s, keys[i + 1] - c)
        if c > 0:
            fades[i] = (s, c)
            reach[i][1] = max(reach[i][1], s + c)
            reach[i + 1][0] = min(reach[i + 1][0], s)
    # 2. The halves: forward over [k, reach stop), backward over [k, reach start] reversed.
    halves: list[Half] = []
    forward_of: dict[int, int] = {}
    backward_of: dict[int, int] = {}
    for i, k in enumerate(keys):
        low, high = reach[i]
        back = range(k, low - 1, -1)
        fore = range(k, high)
        if len(back) < 2 and len(fore) < 2:
            back = range(k, k - 2, -1) if k > 0 else back
            fore = fore if k > 0 else range(k, k + 2)
        if len(back) >= 2:
            backward_of[i] = len(halves)
            halves.append(Half(i, BACKWARD, back))
        if len(fore) >= 2:
            forward_of[i] = len(halves)
            halves.append(Half(i, FORWARD, fore))
    # 3. Per frame, who contributes with what weight.
    sources: list[tuple[Contribution, ...]] = []
    for frame in range(frame_count):
        i = next(j for j, (a, b) in enumerate(owned) if a <= frame < b)
        sources.append(_contributions(frame, i, keys, fades, forward_of, backward_of, halves))
    return Plan(frame_count, keys, tuple(halves), tuple(sources), first)


def _from_key(
    frame: int,
    i: int,
    keys: tuple[int, ...],
    forward_of: dict[int, int],
    backward_of: dict[int, int],
    halves: list[Half],
) -> tuple[int, int]:
    """(half, position) of keyframe i's frame `frame`."""
    k = keys[i]
    forward = frame > k or (frame == k and i in forward_of)
    half = forward_of[i] if forward else backward_of[i]
    return half, halves[half].frames.index(frame)


def _contributions(frame, i, keys, fades, forward_of, backward_of, halves):
    for boundary, (s, c) in fades.items():
        if s <= frame < s + c:
            t = (frame - s + 1) / (c + 1)  # the later keyframe's share
            early = _from_key(frame, boundary, keys, forward_of, backward_of, halves)
            late = _from_key(frame, boundary + 1, keys, forward_of, backward_of, halves)
            return (Contribution(*early, 1.0 - t), Contribution(*late, t))
    return (Contribution(*_from_key(frame, i, keys, forward_of, backward_of, halves), 1.0),)
