"""The editing sampler: EDM Euler from the inverted latents, conditioned on the edited frame."""

from __future__ import annotations

from collections.abc import Callable

import torch

from framerelay.engine.attention import AttentionController
from framerelay.engine.conditioning import Condition, stack_conditions
from framerelay.engine.denoiser import predict_v
from framerelay.engine.edm import denoised, euler_step
from framerelay.engine.inversion import Inversion
from framerelay.progress import CancelToken, Progress, ProgressSink, ignore_progress


def frame_guidance(frames: int, low: float, high: float) -> torch.Tensor:
    """Classifier-free guidance rising linearly over frames, shape (1, F, 1, 1, 1)."""
    return torch.linspace(low, high, frames).view(1, frames, 1, 1, 1)


@torch.no_grad()
def sample_edit(
    pipe,
    inversion: Inversion,
    condition: Condition,
    min_guidance: float,
    max_guidance: float,
    controller: AttentionController | None = None,
    progress: ProgressSink = ignore_progress,
    cancel: CancelToken | None = None,
    before_call: Callable[[int, float, bool], None] | None = None,
    trajectory: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Denoise the inverted latents under the edited-frame condition; returns (1, F, 4, h, w).

    With a controller, each step matches attention against the source branch at the same sigma:
    from the RAM store when it holds that sigma, else recomputed inline as a third batch element on
    the source latents of the inversion trajectory. `before_call(step, sigma, inline)` runs before
    every UNet call; `trajectory`, when given, receives the latents each step starts from.
    """
    unet, steps = pipe.unet, inversion.steps
    x = inversion.trajectory[0].clone()
    frames = x.shape[1]

    # 1. Guidance per frame, and the conditions of the [uncond, cond] branches.
    guidance = frame_guidance(frames, min_guidance, max_guidance).to(x.device)
    use_cfg = max_guidance > 1.0
    branches = [condition.unconditional(), condition] if use_cfg else [condition]

    # 2. Euler steps down the denoising schedule.
    for i in range(steps):
        sigma, sigma_next = float(inversion.sigmas[i]), float(inversion.sigmas[i + 1])
        inline = controller is not None and not controller.store.has(sigma)
        batch = [inversion.trajectory[i]] * inline + [x] * len(branches)
        batch_condition = stack_conditions([inversion.condition] * inline + branches)
        if controller is not None:
            controller.edit(i, steps, sigma, frames, len(batch), inline)
        if before_call is not None:
            before_call(i, sigma, inline)
        if trajectory is not None:
            trajectory.append(x)
        v = predict_v(unet, torch.cat(batch), sigma, batch_condition)
        if controller is not None:
            controller.finish_call()
        if use_cfg:
            v_uncond, v_cond = v[-2:-1], v[-1:]
            v = v_uncond + guidance * (v_cond - v_uncond)
        else:
            v = v[-1:]
        x = euler_step(x, denoised(v, x, sigma), sigma, sigma_next)
        progress(Progress("edit", i + 1, steps))
        if cancel is not None:
            cancel.raise_if_cancelled()
    return x
