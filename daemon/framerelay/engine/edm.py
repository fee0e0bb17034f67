"""EDM bookkeeping for SVD's v-prediction UNet (sigma_data = 1).

The diffusers pipeline splits this between the scheduler and the pipeline; the engine needs it in one
place because inversion runs the same ODE backwards, the editing sampler runs two branches and the
motion LoRA trains on the same objective. The preconditioning takes a float σ (sampling) or a tensor
of σ (training) alike.
"""

from __future__ import annotations

import math
from typing import TypeVar

import torch
from diffusers import EulerDiscreteScheduler

Sigma = TypeVar("Sigma", float, torch.Tensor)


def denoising_sigmas(scheduler_config: dict, steps: int) -> torch.Tensor:
    """The pipeline's Karras sigmas, descending from sigma_max, ending with 0 (steps + 1 values)."""
    scheduler = EulerDiscreteScheduler.from_config(scheduler_config)
    scheduler.set_timesteps(steps)
    return scheduler.sigmas.to(torch.float64)


ONE_STEP_SIGMA_MIN = 0.002  # SVD's sigma_min: where a one-step inversion starts


def inversion_sigmas(sigmas: torch.Tensor) -> torch.Tensor:
    """The denoising sigmas reversed, with the final 0 replaced by sigma[-2]**2 / sigma[-3].

    The UNet cannot be evaluated at sigma 0 (c_noise = ln sigma / 4), so inversion starts one
    geometric step below sigma_min. A one-step schedule (sigma_max, 0) has no step to extrapolate
    from: its inversion starts at SVD's sigma_min and goes to sigma_max in one Euler step.
    """
    if len(sigmas) < 2:
        raise ValueError(f"inversion needs at least 1 step, got {len(sigmas) - 1}")
    ascending = sigmas.clone()
    if len(sigmas) == 2:
        ascending[-1] = ONE_STEP_SIGMA_MIN
    else:
        ascending[-1] = sigmas[-2] ** 2 / sigmas[-3]
    return ascending.flip(0)


def init_noise_sigma(scheduler_config: dict) -> float:
    """What diffusers' SVD pipeline multiplies user `latents` by ("leading" spacing)."""
    sigma_max = float(scheduler_config.get("sigma_max") or 700.0)
    return math.sqrt(sigma_max**2 + 1)


def c_in(sigma: Sigma) -> Sigma:
    """The UNet input's scale, 1/sqrt(σ² + 1)."""
    return (sigma**2 + 1) ** -0.5


def c_skip(sigma: Sigma) -> Sigma:
    return 1 / (sigma**2 + 1)


def c_out(sigma: Sigma) -> Sigma:
    return -sigma * c_in(sigma)


def c_noise(sigma: Sigma) -> Sigma:
    """The UNet's timestep input, ln(σ)/4."""
    return 0.25 * (sigma.log() if isinstance(sigma, torch.Tensor) else math.log(sigma))


def loss_weight(sigma: Sigma) -> Sigma:
    """EDM's λ(σ) = (σ² + 1)/σ², which makes the x0 loss a unit-weight v loss."""
    return (sigma**2 + 1) / sigma**2


def denoised(v: torch.Tensor, x: torch.Tensor, sigma: Sigma) -> torch.Tensor:
    """x0 estimate from a v-prediction: c_skip * x + c_out * v."""
    return c_skip(sigma) * x + c_out(sigma) * v


def euler_step(x: torch.Tensor, x0: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One Euler step of the probability-flow ODE; works in either direction of sigma."""
    return x + (sigma_next - sigma) * (x - x0) / sigma
