"""The job settings the panel offers, declared once: the Blender properties, the panel rows and
the job's parameters all come from these tables.

Defaults and ranges are the daemon's (`framerelay.engine.params.EngineParams`, checked by a test);
a job sends only the values the user changed, so the daemon's own defaults apply otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Blender's IntProperty is a signed 32-bit integer; the daemon takes seeds up to 2**32 - 1.
BLENDER_INT_MAX = 2**31 - 1


@dataclass(frozen=True)
class Param:
    name: str  # the JobSpec params field (snake_case)
    label: str
    kind: type  # int, float or bool
    default: Any
    low: Any = None
    high: Any = None
    description: str = ""
    advanced: bool = False


PARAMS: tuple[Param, ...] = (
    Param("steps", "Steps", int, 25, 1, 200, "Denoising steps of the editing sampler"),
    Param("seed", "Seed", int, 23, 0, BLENDER_INT_MAX, "Same seed, same take"),
    Param(
        "lora_steps",
        "LoRA Steps",
        int,
        250,
        0,
        1000,
        "Motion LoRA training steps per window; 0 skips it for a quick draft",
    ),
    Param(
        "window",
        "Window",
        int,
        14,
        2,
        64,
        "Frames per model window: 14 for SVD img2vid, 25 for img2vid-xt",
        advanced=True,
    ),
    Param("lora_rank", "LoRA Rank", int, 32, 1, 256, "Rank of the motion LoRA", advanced=True),
    Param(
        "min_guidance",
        "Min Guidance",
        float,
        1.0,
        1.0,
        20.0,
        "Classifier-free guidance on the first frame",
        advanced=True,
    ),
    Param(
        "max_guidance",
        "Max Guidance",
        float,
        2.0,
        1.0,
        20.0,
        "Classifier-free guidance on the last frame",
        advanced=True,
    ),
    Param(
        "skip_interval",
        "Skip-Interval Attention",
        bool,
        True,
        description="Later windows of a long clip attend to the first window",
        advanced=True,
    ),
    Param(
        "attention_matching",
        "Attention Matching",
        bool,
        True,
        description="Impose the source's motion through attention (the presets' stages)",
        advanced=True,
    ),
)

# (identifier, label, description); the first is the daemon's default.
PRESETS: tuple[tuple[str, str, str], ...] = (
    ("auto", "Auto", "framerelay picks one from how much and where the edit differs"),
    ("local", "Local", "A local edit: an object or a region changes"),
    ("style", "Style", "A global edit that keeps shapes: colour, look, style"),
    ("shape", "Shape", "A global edit that changes shapes"),
)
OUTPUT_FORMATS: tuple[tuple[str, str, str], ...] = (
    ("mov", "ProRes (.mov)", "ProRes 422 HQ movie at the clip's rate"),
    ("mp4", "H.264 (.mp4)", "H.264 movie at the clip's rate"),
    ("png", "PNG Sequence", "A folder of numbered PNG frames"),
)


def changed_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters whose value differs from the daemon's default."""
    changed = {}
    for param in PARAMS:
        value = values[param.name]
        if param.kind is float:
            if abs(float(value) - param.default) > 1e-9:
                changed[param.name] = float(value)
        elif value != param.default:
            changed[param.name] = param.kind(value)
    return changed
