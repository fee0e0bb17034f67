"""EDM bookkeeping for SVD's v-prediction UNet (sigma_data = 1).

The diffusers pipeline splits this between the scheduler and the pipeline; the engine needs it in one
place because inversion runs the same ODE backwards and the editing sampler runs two branches.
"""

from __future__ import annotations

import math

import torch
from diffusers import EulerDiscreteScheduler


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


def c_in(sigma: float) -> float:
    return 1.0 / math.sqrt(sigma**2 + 1)


def c_noise(sigma: float) -> float:
    return 0.25 * math.log(sigma)


def denoised(v: torch.Tensor, x: torch.Tensor, sigma: float) -> torch.Tensor:
    """x0 estimate from a v-prediction: c_skip * x + c_out * v."""
    return x / (sigma**2 + 1) - v * (sigma / math.sqrt(sigma**2 + 1))


def euler_step(x: torch.Tensor, x0: torch.Tensor, sigma: float, sigma_next: float) -> torch.Tensor:
    """One Euler step of the probability-flow ODE; works in either direction of sigma."""
    return x + (sigma_next - sigma) * (x - x0) / sigma
