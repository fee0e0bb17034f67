"""Engine parameters and presets. Torch-free: the daemon validates jobs with these.

Defaults are the paper's and the official code's; the deliberate differences are listed in
docs/engine-notes.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from framerelay.errors import InvalidSpecError

DEFAULT_MODEL = "stabilityai/stable-video-diffusion-img2vid"

# Temporal attention matching stages (beta1, beta2) per edit type, from the paper's section 5.1.
PRESETS: dict[str, tuple[float, float]] = {
    "local": (0.5, 0.8),
    "style": (0.8, 0.9),
    "shape": (0.4, 0.5),
}
PRESET_NAMES = (*PRESETS, "auto")


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
    source_memory_budget_mb: int = 4096  # RAM for source-branch attention; the rest is recomputed
    matching: MatchingParams = field(default_factory=MatchingParams)
    lora: MotionLoraParams = field(default_factory=MotionLoraParams)

    def with_overrides(self, **changes) -> EngineParams:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def validate(self) -> EngineParams:
        for name in ("height", "width"):
            value = getattr(self, name)
            if value < 64 or value % 64:
                raise InvalidSpecError(
                    f"{name} must be a positive multiple of 64, got {value}.",
                    "Use 576x1024 (SVD's training size) or another multiple of 64.",
                )
        if not 2 <= self.window <= 64:
            raise InvalidSpecError(f"window must be 2..64 frames, got {self.window}.")
        if not 0 <= self.overlap < self.window:
            raise InvalidSpecError(
                f"overlap must be 0..window-1, got {self.overlap} for a {self.window}-frame window."
            )
        if self.skip_interval and self.overlap < 1:
            raise InvalidSpecError(
                "skip-interval cross-attention chains windows through an overlapping frame.",
                "Use --overlap 1 (the default) or turn skip-interval off.",
            )
        lora = self.lora
        if not 0 <= lora.steps <= 5000 or not 1 <= lora.rank <= 256:
            raise InvalidSpecError(
                f"LoRA steps must be 0..5000 and rank 1..256, got {lora.steps} and {lora.rank}."
            )
        if (lora.height is None) != (lora.width is None) or any(
            v is not None and (v < 64 or v % 64) for v in (lora.height, lora.width)
        ):
            raise InvalidSpecError(
                f"LoRA training size must be two multiples of 64, got {lora.height}x{lora.width}."
            )
        if not 1 <= self.steps <= 200:
            raise InvalidSpecError(f"steps must be 1..200, got {self.steps}.")
        if self.min_guidance < 1.0 or self.max_guidance < self.min_guidance:
            raise InvalidSpecError(
                f"guidance must satisfy 1 <= min <= max, got {self.min_guidance}..{self.max_guidance}."
            )
        m = self.matching
        if m.preset not in PRESET_NAMES:
            raise InvalidSpecError(
                f"unknown preset {m.preset!r}.", f"Choose one of {', '.join(PRESET_NAMES)}."
            )
        for beta in (m.beta1, m.beta2):
            if beta is not None and not 0.0 <= beta <= 1.0:
                raise InvalidSpecError(f"beta must be within [0, 1], got {beta}.")
        if m.beta1 is not None and m.beta2 is not None and m.beta1 > m.beta2:
            raise InvalidSpecError(f"beta1 must not exceed beta2, got {m.beta1} > {m.beta2}.")
        if not all(0.0 <= t <= 1.0 for t in m.mask_threshold):
            raise InvalidSpecError(f"mask threshold must be within [0, 1], got {m.mask_threshold}.")
        return self
