"""EDM inversion: the Euler sampler run backwards along the probability-flow ODE."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from framerelay.engine.attention import AttentionController
from framerelay.engine.conditioning import Condition
from framerelay.engine.denoiser import predict_v
from framerelay.engine.edm import (
    denoised,
    denoising_sigmas,
    euler_step,
    init_noise_sigma,
    inversion_sigmas,
)
from framerelay.progress import CancelToken, Progress, ProgressSink, ignore_progress


@dataclass
class Inversion:
    """The source clip's path from clean latents to noise, in denoising order."""

    sigmas: torch.Tensor  # denoising schedule: sigma_max ... sigma_min, 0
    trajectory: list[torch.Tensor]  # trajectory[i]: source latents at sigmas[i]; [0] is x_T
    condition: Condition  # what the source branch is conditioned on
    init_noise_sigma: float
    clean: torch.Tensor | None = None  # the inverted latents, at sigma_min' (inversion's first call)

    @property
    def first_sigma(self) -> float:
        """sigma_min': where the inversion first evaluates the UNet, on the clean latents."""
        return float(inversion_sigmas(self.sigmas)[0])

    def latents_at(self, sigma: float) -> torch.Tensor:
        """The source latents at one of the sigmas the inversion evaluated."""
        for i, value in enumerate(self.sigmas[:-1].tolist()):
            if abs(value - sigma) <= 1e-9 * max(1.0, sigma):
                return self.trajectory[i]
        if self.clean is not None and abs(self.first_sigma - sigma) <= 1e-12:
            return self.clean
        raise KeyError(f"no source latents at sigma {sigma}")

    @property
    def noise(self) -> torch.Tensor:
        """x_T divided by init_noise_sigma: diffusers' SVD pipeline accepts it as `latents`."""
        return self.trajectory[0] / self.init_noise_sigma

    @property
    def steps(self) -> int:
        return len(self.sigmas) - 1

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.trajectory)


@torch.no_grad()
def invert(
    pipe,
    latents: torch.Tensor,
    condition: Condition,
    steps: int,
    controller: AttentionController | None = None,
    progress: ProgressSink = ignore_progress,
    cancel: CancelToken | None = None,
    before_call: Callable[[float], None] | None = None,
) -> Inversion:
    """Invert scaled video latents (1, F, 4, h, w), conditioned on the source first frame, no CFG.

    The UNet is evaluated at sigma_min' (one step below sigma_min) and at every denoising sigma but
    sigma_max; with a controller, what the source branch provides is recorded at each denoising
    sigma, and once more at sigma_max on x_T so that editing step 0 has its source data too.
    `before_call(sigma)` runs before every UNet call (skip-interval uses it).
    """
    unet, frames = pipe.unet, latents.shape[1]
    config = pipe.scheduler.config

    # 1. Schedules: the denoising sigmas and the ascending inversion sigmas.
    sigmas = denoising_sigmas(config, steps)
    ascending = inversion_sigmas(sigmas).tolist()

    # 2. Euler steps upwards in sigma; ascending[k] == sigmas[steps - k] for k >= 1.
    x = latents.to(torch.float32)
    trajectory: list[torch.Tensor] = [x] * steps
    for k in range(steps):
        sigma, sigma_next = ascending[k], ascending[k + 1]
        if controller is not None and k > 0:
            controller.record(sigma, frames)
        if before_call is not None:
            before_call(sigma)
        v = predict_v(unet, x, sigma, condition)
        if controller is not None:
            controller.finish_call()
        x = euler_step(x, denoised(v, x, sigma), sigma, sigma_next)
        trajectory[steps - 1 - k] = x
        progress(Progress("invert", k + 1, steps))
        if cancel is not None:
            cancel.raise_if_cancelled()

    # 3. Record the source branch at sigma_max, where the inversion itself never evaluates.
    if controller is not None and not controller.store.full:
        controller.record(float(sigmas[0]), frames)
        if before_call is not None:
            before_call(float(sigmas[0]))
        predict_v(unet, x, float(sigmas[0]), condition)
        controller.finish_call()

    clean = latents.to(torch.float32)
    return Inversion(sigmas, trajectory, condition, init_noise_sigma(config), clean)
