"""`--preset auto`: choose local, style or shape from how the edited first frame differs.

The rule, on both frames at the model size in [0, 1]:
1. changed area: the fraction of pixels whose largest per-channel difference, box-blurred over
   5x5, exceeds 0.08 (about 20 grey levels). Below 35 % of the frame the edit is `local`.
2. otherwise the edit is global, and the question is whether it keeps the source's structure:
   the Pearson correlation between the two frames' Sobel gradient magnitudes (grey). At least 0.5
   (edges where they were: recolouring, stylisation) gives `style`; below gives `shape`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHANGE_LEVEL = 0.08
LOCAL_AREA = 0.35
STRUCTURE_KEPT = 0.5


@dataclass(frozen=True)
class PresetChoice:
    preset: str
    changed_fraction: float
    structure_correlation: float


def _box_blur(image: np.ndarray, radius: int = 2) -> np.ndarray:
    size = 2 * radius + 1
    padded = np.pad(image, radius, mode="edge")
    cumulative = padded.cumsum(0).cumsum(1)
    cumulative = np.pad(cumulative, ((1, 0), (1, 0)))
    total = (
        cumulative[size:, size:]
        - cumulative[:-size, size:]
        - cumulative[size:, :-size]
        + cumulative[:-size, :-size]
    )
    return total / (size * size)


def _gradient_magnitude(grey: np.ndarray) -> np.ndarray:
    padded = np.pad(grey, 1, mode="edge")
    gx = padded[1:-1, 2:] - padded[1:-1, :-2]
    gy = padded[2:, 1:-1] - padded[:-2, 1:-1]
    return np.hypot(gx, gy)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 1.0


def changed_area(source: np.ndarray, edited: np.ndarray) -> np.ndarray:
    """Where the edit changed the frame (rule 1): bool (H, W); both (H, W, 3) in [0, 1]."""
    if source.shape != edited.shape:
        raise ValueError(f"frames differ in shape: {source.shape} vs {edited.shape}")
    return _box_blur(np.abs(edited - source).max(axis=2)) > CHANGE_LEVEL


def choose_preset(source: np.ndarray, edited: np.ndarray) -> PresetChoice:
    """Both (H, W, 3) float in [0, 1], the same size."""
    changed = float(changed_area(source, edited).mean())
    weights = np.array([0.299, 0.587, 0.114])
    correlation = _correlation(
        _gradient_magnitude(source @ weights), _gradient_magnitude(edited @ weights)
    )
    if changed < LOCAL_AREA:
        preset = "local"
    elif correlation >= STRUCTURE_KEPT:
        preset = "style"
    else:
        preset = "shape"
    return PresetChoice(preset, changed, correlation)
