"""How the motion LoRA is trained: its hyper-parameters and the noise levels each step draws."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field

import torch


@dataclass(frozen=True)
class SigmaSchedule:
    """Training noise levels: the official code's choice, re-derived from its definition.

    σ = σ_data·exp(-logSNR(u)/2) with u ~ U(0, 1) and logSNR the shifted-cosine schedule of
    "simple diffusion" (Hoogeboom et al. 2023) interpolated from noise_d_low to noise_d_high as u
    goes 0 -> 1 (k-diffusion's `rand_cosine_interpolated`), within [sigma_min, sigma_max].
    Its median σ is 0.71 and 10 % of draws exceed 3.4 (EDM's default log-normal: 0.30 and 2 %),
    so more steps land at the high noise levels that shape coarse structure and motion.
    """

    sigma_min: float = 0.002
    sigma_max: float = 700.0
    sigma_data: float = 0.5  # the official setting; the loss itself uses σ_data = 1 (SVD's)
    image_d: float = 64.0
    noise_d_low: float = 32.0
    noise_d_high: float = 64.0

    def sigma(self, u: torch.Tensor) -> torch.Tensor:
        """Map u in [0, 1] monotonically to σ in [sigma_min, sigma_max]."""
        u = u.to(torch.float64)
        logsnr_at_0 = -2.0 * math.log(self.sigma_min / self.sigma_data)
        logsnr_at_1 = -2.0 * math.log(self.sigma_max / self.sigma_data)

        def shifted_cosine(noise_d: float) -> torch.Tensor:
            shift = 2.0 * math.log(noise_d / self.image_d)
            start = math.atan(math.exp(-0.5 * (logsnr_at_0 - shift)))
            end = math.atan(math.exp(-0.5 * (logsnr_at_1 - shift)))
            return -2.0 * torch.log(torch.tan(start + u * (end - start))) + shift

        logsnr = torch.lerp(shifted_cosine(self.noise_d_low), shifted_cosine(self.noise_d_high), u)
        sigma = self.sigma_data * torch.exp(-0.5 * logsnr)
        return sigma.clamp(self.sigma_min, self.sigma_max).to(torch.float32)


@dataclass(frozen=True)
class LoraTrainingParams:
    steps: int = 250  # the paper edits with the 250th checkpoint
    rank: int = 32
    lr: float = 5e-4  # constant, no warm-up
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    dropout: float = 0.1
    checkpoint_every: int = 50
    gradient_checkpointing: bool = True
    seed: int = 23
    noise_aug_strength: float = 0.02  # latent-space noise on the condition latent
    sigma_schedule: SigmaSchedule = field(default_factory=SigmaSchedule)

    def validate(self) -> LoraTrainingParams:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.noise_aug_strength < 0:
            raise ValueError(f"noise_aug_strength must be >= 0, got {self.noise_aug_strength}")
        return self

    def resume_fingerprint(self) -> dict:
        """What a checkpoint must share with these params to be resumed (steps may grow)."""
        fields = dataclasses.asdict(self)
        for name in ("steps", "checkpoint_every", "gradient_checkpointing"):
            fields.pop(name)
        return json.loads(json.dumps(fields))  # tuples -> lists, as read back from JSON
