"""The presets, in one place: their names, what each is for, their temporal matching stages, and
how `auto` chooses one. Torch-free (numpy is imported only to choose), so the daemon, the CLIs and
the tests read the names and stages from here.

`auto`'s rule, on both frames at the model size in [0, 1]:
1. changed area: the fraction of pixels whose largest per-channel difference, box-blurred over
   5x5, exceeds 0.08 (about 20 grey levels). Below 35 % of the frame the edit is `local`.
2. otherwise the edit is global, and the question is whether it keeps the source's structure:
   the Pearson correlation between the two frames' Sobel gradient magnitudes (grey). At least 0.5
   (edges where they were: recolouring, stylisation) gives `style`; below gives `shape`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

AUTO = "auto"
# Temporal attention matching stages (beta1, beta2) per edit type, from the paper's section 5.1.
PRESETS: dict[str, tuple[float, float]] = {
    "local": (0.5, 0.8),
    "style": (0.8, 0.9),
    "shape": (0.4, 0.5),
}
PRESET_NAMES = (*PRESETS, AUTO)
DESCRIPTIONS: dict[str, str] = {
    AUTO: "framerelay picks one from how much and where the edit differs",
    "local": "a local edit: an object or a region changes",
    "style": "a global edit that keeps shapes: colour, look, style",
    "shape": "a global edit that changes shapes",
}

CHANGE_LEVEL = 0.08
LOCAL_AREA = 0.35
STRUCTURE_KEPT = 0.5


@dataclass(frozen=True)
class PresetChoice:
    """The preset one edit used, and why: measured when `auto` chose it, else asked for."""

    preset: str
    chosen_by_auto: bool = False
    changed_fraction: float = 0.0  # auto only: the fraction of the frame the edit changed
    structure_correlation: float = 0.0  # auto only: how well the edges stayed where they were

    @property
    def reason(self) -> str:
        if not self.chosen_by_auto:
            return f"{self.preset}: asked for"
        changed = f"the edit changed {self.changed_fraction:.0%} of the frame"
        if self.preset == "local":
            return f"local: {changed} (under {LOCAL_AREA:.0%})"
        kept = "kept" if self.preset == "style" else "moved"
        return (
            f"{self.preset}: {changed} (at least {LOCAL_AREA:.0%}) and {kept} its edges "
            f"(structure correlation {self.structure_correlation:.2f}, "
            f"{'at least' if kept == 'kept' else 'under'} {STRUCTURE_KEPT})"
        )


def _box_blur(image: np.ndarray, radius: int = 2) -> np.ndarray:
    import numpy as np

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
    import numpy as np

    padded = np.pad(grey, 1, mode="edge")
    gx = padded[1:-1, 2:] - padded[1:-1, :-2]
    gy = padded[2:, 1:-1] - padded[:-2, 1:-1]
    return np.hypot(gx, gy)


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    import numpy as np

    a, b = a.ravel() - a.mean(), b.ravel() - b.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 1.0


def choose_preset(source: np.ndarray, edited: np.ndarray) -> PresetChoice:
    """Both (H, W, 3) float in [0, 1], the same size."""
    import numpy as np

    if source.shape != edited.shape:
        raise ValueError(f"frames differ in shape: {source.shape} vs {edited.shape}")
    difference = _box_blur(np.abs(edited - source).max(axis=2))
    changed = float((difference > CHANGE_LEVEL).mean())
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
    return PresetChoice(preset, True, changed, correlation)
