"""The editing sampler: EDM Euler from the inverted latents, conditioned on the edited frame."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import torch

from framerelay.engine.attention import AttentionController, SourceAttentionStore
from framerelay.engine.conditioning import Condition, stack_conditions
from framerelay.engine.denoiser import predict_v
from framerelay.engine.edm import denoised, euler_step
from framerelay.engine.inversion import Inversion
from framerelay.progress import CancelToken, Progress, ProgressSink, ignore_progress


def frame_guidance(frames: int, low: float, high: float) -> torch.Tensor:
    """Classifier-free guidance rising linearly over frames, shape (1, F, 1, 1, 1)."""
    return torch.linspace(low, high, frames).view(1, frames, 1, 1, 1)


def record_source_step(
    pipe,
    controller: AttentionController,
    inversion: Inversion,
    step: int,
    before_call: Callable[[float], None] | None = None,
) -> None:
    """Record the source branch at `inversion.sigmas[step]` into `controller.store`, with exactly
    the call the inversion recorded it with: the same latents, condition and sigma, a batch of
    one, `before_call(sigma)` first. What is recorded is then bit-identical to the inversion's,
    so an edit does not depend on which steps the store kept (its budget, a cache hit)."""
    sigma = float(inversion.sigmas[step])
    x = inversion.trajectory[step]
    controller.record(sigma, x.shape[1])
    if before_call is not None:
        before_call(sigma)
    predict_v(pipe.unet, x, sigma, inversion.condition)
    controller.finish_call()


@contextmanager
def source_step_store(
    pipe,
    controller: AttentionController,
    inversion: Inversion,
    step: int,
    before_call: Callable[[float], None] | None = None,
) -> Iterator[None]:
    """Within, `controller.store` holds the source branch at `inversion.sigmas[step]`: the
    window's store when it kept that step, else a store of that one step, recorded now."""
    store = controller.store
    if store.has(float(inversion.sigmas[step])):
        yield
        return
    controller.store = SourceAttentionStore(math.inf, device=inversion.trajectory[step].device)
    try:
        record_source_step(pipe, controller, inversion, step, before_call)
        yield
    finally:
        controller.store = store


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
    before_call: Callable[[int, float], None] | None = None,
    trajectory: list[torch.Tensor] | None = None,
    before_source: Callable[[float], None] | None = None,
) -> torch.Tensor:
    """Denoise the inverted latents under the edited-frame condition; returns (1, F, 4, h, w).

    With a controller, each step matches attention against the source branch at the same sigma:
    from the RAM store when it holds that sigma, else recorded just before in a call of its own
    (`record_source_step`; `before_source(sigma)` runs before it). The editing batch is always
    [uncond, cond], so the result is the same bit for bit whichever way the source came.
    `before_call(step, sigma)` runs before every editing UNet call; `trajectory`, when given,
    receives the latents each step starts from.
    """
    unet, steps = pipe.unet, inversion.steps
    x = inversion.trajectory[0].clone()
    frames = x.shape[1]

    # 1. Guidance per frame, and the conditions of the [uncond, cond] branches.
    guidance = frame_guidance(frames, min_guidance, max_guidance).to(x.device)
    use_cfg = max_guidance > 1.0
    branches = [condition.unconditional(), condition] if use_cfg else [condition]
    batch_condition = stack_conditions(branches)

    # 2. Euler steps down the denoising schedule.
    for i in range(steps):
        sigma, sigma_next = float(inversion.sigmas[i]), float(inversion.sigmas[i + 1])
        with ExitStack() as stack:
            if controller is not None:
                stack.enter_context(
                    source_step_store(pipe, controller, inversion, i, before_source)
                )
                controller.edit(i, steps, sigma, frames, len(branches), False)
            if before_call is not None:
                before_call(i, sigma)
            if trajectory is not None:
                trajectory.append(x)
            v = predict_v(unet, torch.cat([x] * len(branches)), sigma, batch_condition)
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
