"""Putting the halves of a take back in source order (engine/bidirectional.py).

Halves deliver frames in the order they make them; the stitcher hands each frame of the take to
`emit` in source order, as soon as every contribution to it has arrived. A frame with one
contribution passes through untouched (the same bits); a cross-faded frame is the weighted sum.
What cannot go out yet (a backward half arrives last frame first) waits in a scratch folder, so a
long take never sits in RAM; a forward-only take streams straight through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from framerelay.engine.bidirectional import Plan


@dataclass
class Piece:
    """One frame of a half on the model's canvas."""

    frame: np.ndarray  # (3, H, W) in [-1, 1]
    region: np.ndarray | None  # (H, W) edit region, when the job has a mask
    source: np.ndarray  # (3, H, W): the source frame it was made from


Emit = Callable[[int, Piece], None]  # (frame index in the range, the finished frame)


class Stitcher:
    def __init__(self, plan: Plan, emit: Emit, scratch: Path):
        self.plan = plan
        self.emit = emit
        self.scratch = scratch
        self.next = plan.first
        self._ram: dict[tuple[int, int], Piece] = {}
        self._disk: set[tuple[int, int]] = set()
        self.spilled = 0  # frames that waited on disk

    def _wanted(self, frame: int) -> list[tuple[int, float]]:
        return [(c.half, c.weight) for c in self.plan.contributions(frame)]

    def add(self, half: int, position: int, piece: Piece) -> None:
        frame = self.plan.halves[half].frames[position]
        if frame < self.next or all(h != half for h, _ in self._wanted(frame)):
            return  # another keyframe's frame, or one before a re-rendered segment
        key = (frame, half)
        if frame == self.next:
            self._ram[key] = piece
        else:
            self._spill(key, piece)
        self._flush()

    def _spill(self, key: tuple[int, int], piece: Piece) -> None:
        self.scratch.mkdir(parents=True, exist_ok=True)
        if piece.region is None:
            np.savez(self._path(key), frame=piece.frame, source=piece.source)
        else:
            np.savez(self._path(key), frame=piece.frame, source=piece.source, region=piece.region)
        self._disk.add(key)
        self.spilled += 1

    def _path(self, key: tuple[int, int]) -> Path:
        return self.scratch / f"{key[0]:06d}_{key[1]:03d}.npz"

    def _take(self, key: tuple[int, int]) -> Piece:
        if key in self._ram:
            return self._ram.pop(key)
        self._disk.remove(key)
        path = self._path(key)
        with np.load(path) as data:
            region = data["region"] if "region" in data.files else None
            piece = Piece(data["frame"], region, data["source"])
        path.unlink()
        return piece

    def _flush(self) -> None:
        while self.next < self.plan.frame_count:
            wanted = self._wanted(self.next)
            keys = [(self.next, half) for half, _ in wanted]
            if not all(k in self._ram or k in self._disk for k in keys):
                return
            pieces = [self._take(k) for k in keys]
            self.emit(self.next, _blend(pieces, [w for _, w in wanted]))
            self.next += 1

    def close(self) -> None:
        if self.next != self.plan.frame_count:
            raise RuntimeError(
                f"the take stopped at frame {self.next} of {self.plan.frame_count}: "
                "a half did not deliver every frame"
            )


def _blend(pieces: list[Piece], weights: list[float]) -> Piece:
    if len(pieces) == 1:
        return pieces[0]
    frame = np.zeros_like(pieces[0].frame, dtype=np.float32)
    for piece, weight in zip(pieces, weights, strict=True):
        frame += np.float32(weight) * piece.frame
    regions = [p.region for p in pieces if p.region is not None]
    region = None
    if len(regions) == len(pieces):
        region = np.zeros_like(regions[0], dtype=np.float32)
        for part, weight in zip(regions, weights, strict=True):
            region += np.float32(weight) * part
    return Piece(frame, region, pieces[0].source)
