"""Drift control for chained windows: anchor each window's colour and contrast to the first's.

Later windows of a long take drift: each is conditioned on the previous one's last frame, and
small shifts of colour and contrast add up. The anchor window (the first of a half) shows what the
edit does to the source; each later window should do the same to its own source frames. Per
channel, on the model's canvas in [-1, 1]:

    target mean = source mean (this window) + (output mean - source mean) (anchor window)
    target std  = source std (this window) * (output std / source std) (anchor window)

measured over the regions the edit did not touch (region "unedited": outside the mask, or outside
what the edited frame changed when there is no mask) or over everything (region "all", for
global edits; "auto" picks "all" for the style and shape presets, "unedited" for local ones).
With strength s, the window's statistics move the fraction s of the way to the target: a per
channel gain and offset. To avoid a step between windows, the correction ramps from the previous
window's at the shared first frame to this window's at its last frame.

The anchoring changes the written frames only; the chain (the next window's condition) keeps the
model's own latent, as in the official code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEVELS = 127.5  # [-1, 1] -> 8-bit levels
MIN_STD = 1e-3  # below this a channel is flat: no gain


def resolve_region(region: str, preset: str) -> str:
    if region != "auto":
        return region
    return "unedited" if preset == "local" else "all"


@dataclass(frozen=True)
class Stats:
    mean: np.ndarray  # (3,)
    std: np.ndarray  # (3,)


def window_stats(frames: np.ndarray, weights: np.ndarray | None = None) -> Stats:
    """Per channel over frames (F, 3, H, W), weighted by (F, H, W) (or (H, W)) when given."""
    x = frames.astype(np.float64)
    if weights is None:
        mean = x.mean(axis=(0, 2, 3))
        var = ((x - mean[None, :, None, None]) ** 2).mean(axis=(0, 2, 3))
        return Stats(mean, np.sqrt(var))
    w = np.broadcast_to(weights, (x.shape[0], *x.shape[2:])).astype(np.float64)[:, None]
    total = w.sum()
    if total <= 0:
        return window_stats(frames)  # nothing unedited: all of it
    mean = (x * w).sum(axis=(0, 2, 3)) / total
    var = (((x - mean[None, :, None, None]) ** 2) * w).sum(axis=(0, 2, 3)) / total
    return Stats(mean, np.sqrt(var))


def target_stats(output_anchor: Stats, source_anchor: Stats, source: Stats) -> Stats:
    """What this window's output statistics would be if it did to its source what the anchor
    window did to its own."""
    gain = output_anchor.std / np.maximum(source_anchor.std, MIN_STD)
    return Stats(source.mean + (output_anchor.mean - source_anchor.mean), source.std * gain)


@dataclass(frozen=True)
class Correction:
    """x -> gain * x + offset, per channel."""

    gain: np.ndarray
    offset: np.ndarray

    @classmethod
    def identity(cls) -> Correction:
        return cls(np.ones(3), np.zeros(3))

    def apply(self, frames: np.ndarray) -> np.ndarray:
        gain = self.gain[None, :, None, None]
        offset = self.offset[None, :, None, None]
        return (frames * gain + offset).astype(np.float32)


def correction(current: Stats, target: Stats, strength: float) -> Correction:
    """Moves `current` the fraction `strength` of the way to `target` (means and stds)."""
    mean = current.mean + strength * (target.mean - current.mean)
    std = current.std + strength * (target.std - current.std)
    flat = current.std < MIN_STD
    gain = np.where(flat, 1.0, std / np.where(flat, 1.0, current.std))
    return Correction(gain, mean - gain * current.mean)


def ramp(frames: np.ndarray, previous: Correction, current: Correction) -> np.ndarray:
    """Frame f of F gets the blend (1 - f/(F-1)) previous + f/(F-1) current; clipped to [-1, 1]."""
    count = len(frames)
    out = np.empty_like(frames, dtype=np.float32)
    for f in range(count):
        t = f / (count - 1) if count > 1 else 1.0
        gain = (1 - t) * previous.gain + t * current.gain
        offset = (1 - t) * previous.offset + t * current.offset
        out[f] = Correction(gain, offset).apply(frames[f : f + 1])[0]
    return np.clip(out, -1.0, 1.0)


def distance(stats: Stats, target: Stats) -> float:
    """How far `stats` is from `target`, in 8-bit levels: mean over channels of the mean's and
    the std's differences."""
    return float(
        (np.abs(stats.mean - target.mean) + np.abs(stats.std - target.std)).mean() * LEVELS
    )


@dataclass
class Anchoring:
    """The drift control of one chain (an edit along one half): fed window after window."""

    strength: float
    region: str  # "unedited" or "all", resolved
    anchor_output: Stats | None = None
    anchor_source: Stats | None = None
    previous: Correction | None = None

    def weights(self, regions: np.ndarray | None, content: np.ndarray | None) -> np.ndarray | None:
        """Where the statistics are measured: (F, H, W), or None for every pixel."""
        weights = None
        if self.region == "unedited" and regions is not None:
            weights = np.clip(1.0 - regions, 0.0, 1.0)
        if content is not None:
            weights = content if weights is None else weights * content
        return weights

    def process(
        self,
        frames: np.ndarray,
        sources: np.ndarray,
        regions: np.ndarray | None = None,
        content: np.ndarray | None = None,
    ) -> tuple[np.ndarray, float, float | None]:
        """One window's decoded frames -> (frames to write, drift before, drift after).

        The first window is the anchor: it is measured and passes through unchanged."""
        weights = self.weights(regions, content)
        stats = window_stats(frames, weights)
        source = window_stats(sources, weights)
        if self.anchor_output is None:
            self.anchor_output, self.anchor_source = stats, source
            self.previous = Correction.identity()
            return frames, 0.0, 0.0 if self.strength > 0 else None
        assert self.anchor_source is not None  # measured with anchor_output
        target = target_stats(self.anchor_output, self.anchor_source, source)
        before = distance(stats, target)
        if self.strength <= 0:
            return frames, before, None
        current = correction(stats, target, self.strength)
        assert self.previous is not None
        out = ramp(frames, self.previous, current)
        self.previous = current
        return out, before, distance(window_stats(out, weights), target)
