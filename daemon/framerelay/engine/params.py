"""Engine parameters and presets. Torch-free: the daemon validates jobs with these.

Defaults are the paper's and the official code's; the deliberate differences are listed in
docs/engine-notes.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from framerelay.errors import InvalidSpecError
from framerelay.limits import MAX_GUIDANCE, MAX_MEMORY_BUDGET_MB, MAX_SEED, MAX_SIZE

DEFAULT_MODEL = "stabilityai/stable-video-diffusion-img2vid"

# Temporal attention matching stages (beta1, beta2) per edit type, from the paper's section 5.1.
PRESETS: dict[str, tuple[float, float]] = {
    "local": (0.5, 0.8),
    "style": (0.8, 0.9),
    "shape": (0.4, 0.5),
}
PRESET_NAMES = (*PRESETS, "auto")
DRIFT_REGIONS = ("auto", "unedited", "all")
DRAFT_STEPS = 12  # the draft mode's sampling steps (and no LoRA)


@dataclass(frozen=True)
class MatchingParams:
    """Fine-grained attention matching (paper section 4.2)."""

    preset: str = "auto"
    beta1: float | None = None  # overrides the preset
    beta2: float | None = None
    mask_threshold: tuple[float, float] = (0.35, 0.35)  # first frame -> last frame
    enabled: bool = True

    def betas(self, resolved_preset: str) -> tuple[float, float]:
        beta1, beta2 = PRESETS[resolved_preset]
        return (
            self.beta1 if self.beta1 is not None else beta1,
            self.beta2 if self.beta2 is not None else beta2,
        )


@dataclass(frozen=True)
class MotionLoraParams:
    """Per-window motion LoRA on the temporal transformer blocks (paper section 4.1)."""

    steps: int = 250  # 0 skips motion extraction (a quick draft)
    rank: int = 32
    lr: float = 5e-4
    dropout: float = 0.1
    checkpoint_every: int = 50
    gradient_checkpointing: bool = True
    height: int | None = None  # training resolution; None: the processing size
    width: int | None = None


@dataclass(frozen=True)
class EngineParams:
    height: int = 576
    width: int = 1024
    window: int = 14  # frames per model window (SVD img2vid); 25 for -xt
    overlap: int = 1  # frames shared by consecutive windows (written once)
    skip_interval: bool = True  # later windows attend to the first window's keys and values
    steps: int = 25
    seed: int = 23
    min_guidance: float = 1.0
    max_guidance: float = 2.0
    # One SVD micro-conditioning for inversion, editing and LoRA training (see docs/engine-notes.md).
    fps_id: int = 6  # what the UNet sees: the pipeline's default fps 7, minus one
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    sarp_threshold: float = 0.001
    sarp_alpha: float = 0.005
    decode_chunk_size: int = 8
    # Memory for the source branch's attention data (device first, then host), MB; None: sized
    # from the machine's free memory. Steps that do not fit are recomputed inline.
    source_memory_budget_mb: int | None = None
    # Several edited frames in one take (docs/edit-any-frame.md): frames cross-faded at each
    # boundary between two edited frames' shares; 0 cuts hard.
    crossfade_frames: int = 4
    # Drift control (docs/drift-and-qc.md): 0 off .. 1 every window held to the first's colour.
    drift_strength: float = 0.0
    drift_region: str = "auto"  # auto | unedited | all
    matching: MatchingParams = field(default_factory=MatchingParams)
    lora: MotionLoraParams = field(default_factory=MotionLoraParams)

    def draft(self) -> EngineParams:
        """The draft mode: DRAFT_STEPS steps and no motion LoRA (a quick look at an edit; its cost
        is in bench/RESULTS.md). The motion then comes from the temporal attention matching only."""
        return replace(self, steps=min(self.steps, DRAFT_STEPS), lora=replace(self.lora, steps=0))

    def with_overrides(self, **changes) -> EngineParams:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def validate(self) -> EngineParams:
        """Checks every parameter's range; the CLI and the daemon share these limits."""
        check_size(self.height, self.width, "")
        check_windows(self)
        check_lora(self.lora)
        check_int("steps", self.steps, 1, 200)
        check_int("seed", self.seed, 0, MAX_SEED)
        check_guidance(self.min_guidance, self.max_guidance)
        check_conditioning(self)
        if self.source_memory_budget_mb is not None:
            check_int(
                "the source memory budget (MB)",
                self.source_memory_budget_mb,
                0,
                MAX_MEMORY_BUDGET_MB,
            )
        check_matching(self.matching)
        check_int("the cross-fade (frames)", self.crossfade_frames, 0, 48)
        check_fraction("the drift strength", self.drift_strength)
        if self.drift_region not in DRIFT_REGIONS:
            raise InvalidSpecError(
                f"unknown drift region {self.drift_region!r}.",
                f"Choose one of {', '.join(DRIFT_REGIONS)}.",
            )
        return self


def check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidSpecError(f"{name} must be {low}..{high}, got {value!r}.")


def check_fraction(name: str, value: float, low: float = 0.0, high: float = 1.0) -> None:
    """A finite number within [low, high] (NaN fails every comparison, so it fails here too)."""
    if not (isinstance(value, int | float) and low <= value <= high):
        raise InvalidSpecError(f"{name} must be within [{low}, {high}], got {value!r}.")


def check_size(height: int | None, width: int | None, what: str) -> None:
    for name, value in ((f"{what}height", height), (f"{what}width", width)):
        if not isinstance(value, int) or value < 64 or value % 64 or value > MAX_SIZE:
            raise InvalidSpecError(
                f"{name} must be a multiple of 64 from 64 to {MAX_SIZE}, got {value!r}.",
                "Use 576x1024 (SVD's training size) or another multiple of 64.",
            )


def check_windows(params: EngineParams) -> None:
    if not 2 <= params.window <= 64:
        raise InvalidSpecError(f"window must be 2..64 frames, got {params.window}.")
    if not 0 <= params.overlap < params.window:
        raise InvalidSpecError(
            f"overlap must be 0..window-1, got {params.overlap} for a {params.window}-frame window."
        )
    if params.skip_interval and params.overlap < 1:
        raise InvalidSpecError(
            "skip-interval cross-attention chains windows through an overlapping frame.",
            "Use --overlap 1 (the default) or turn skip-interval off.",
        )


def check_lora(lora: MotionLoraParams) -> None:
    if not 0 <= lora.steps <= 5000 or not 1 <= lora.rank <= 256:
        raise InvalidSpecError(
            f"LoRA steps must be 0..5000 and rank 1..256, got {lora.steps} and {lora.rank}.",
            "250 steps at rank 32 is the default; 0 steps skips motion extraction.",
        )
    if (lora.height is None) != (lora.width is None):
        raise InvalidSpecError(
            f"LoRA training size must be two multiples of 64, got {lora.height}x{lora.width}."
        )
    if lora.height is not None:
        check_size(lora.height, lora.width, "LoRA training ")
    if not (isinstance(lora.lr, int | float) and 0.0 < lora.lr <= 1.0):
        raise InvalidSpecError(f"the LoRA learning rate must be within (0, 1], got {lora.lr!r}.")
    if not (isinstance(lora.dropout, int | float) and 0.0 <= lora.dropout < 1.0):
        raise InvalidSpecError(f"the LoRA dropout must be within [0, 1), got {lora.dropout!r}.")
    check_int("the LoRA checkpoint interval", lora.checkpoint_every, 1, 5000)


def check_guidance(low: float, high: float) -> None:
    finite = all(isinstance(v, int | float) and math.isfinite(v) for v in (low, high))
    if not finite or not 1.0 <= low <= high <= MAX_GUIDANCE:
        raise InvalidSpecError(
            f"guidance must satisfy 1 <= min <= max <= {MAX_GUIDANCE:g}, got {low}..{high}.",
            "SVD's default is min 1, max 2; stronger guidance rarely helps beyond 3.",
        )


def check_conditioning(params: EngineParams) -> None:
    check_int("fps_id", params.fps_id, 0, 1000)
    check_int("motion_bucket_id", params.motion_bucket_id, 0, 1023)
    check_fraction("noise_aug_strength", params.noise_aug_strength)
    check_fraction("the SARP threshold", params.sarp_threshold)
    check_fraction("the SARP alpha", params.sarp_alpha)
    check_int("decode_chunk_size", params.decode_chunk_size, 1, 64)


def check_matching(m: MatchingParams) -> None:
    if m.preset not in PRESET_NAMES:
        raise InvalidSpecError(
            f"unknown preset {m.preset!r}.", f"Choose one of {', '.join(PRESET_NAMES)}."
        )
    for beta in (m.beta1, m.beta2):
        if beta is not None and not 0.0 <= beta <= 1.0:
            raise InvalidSpecError(f"beta must be within [0, 1], got {beta}.")
    if m.beta1 is not None and m.beta2 is not None and m.beta1 > m.beta2:
        raise InvalidSpecError(f"beta1 must not exceed beta2, got {m.beta1} > {m.beta2}.")
    if len(m.mask_threshold) != 2 or not all(0.0 <= t <= 1.0 for t in m.mask_threshold):
        raise InvalidSpecError(f"mask threshold must be within [0, 1], got {m.mask_threshold}.")
