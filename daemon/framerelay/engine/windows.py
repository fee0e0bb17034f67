"""Splitting a clip into model windows that share an overlap frame."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np


def plan_windows(frame_count: int, window: int, overlap: int) -> list[range]:
    """Consecutive windows of at most `window` frames, each starting `overlap` frames before
    the previous one ends; the last one may be shorter (at least overlap + 1 frames)."""
    if frame_count < 1 or window < 2 or not 0 <= overlap < window:
        raise ValueError(
            f"cannot plan windows: {frame_count} frames, window {window}, overlap {overlap}"
        )
    windows, start = [], 0
    while True:
        end = min(start + window, frame_count)
        windows.append(range(start, end))
        if end == frame_count:
            return windows
        start = end - overlap


def group_frames(
    frames: Iterable[np.ndarray], windows: list[range]
) -> Iterator[tuple[range, np.ndarray]]:
    """The frames of each window, holding at most one window in memory."""
    iterator = iter(frames)
    held: list[np.ndarray] = []
    position = 0  # index of held[0]
    for window in windows:
        held = held[window.start - position :]
        position = window.start
        while len(held) < len(window):
            held.append(next(iterator))
        yield window, np.stack(held)
