"""Skip-interval cross-attention (I2VEdit section 4.1): later windows attend to the first.

The first window is the anchor. In every temporal self-attention layer of a later window, the
anchor's keys and values at the same step are put before the window's own
([K_anchor; K_current], queries from the current window only): the anchor's *source* K/V while
inverting (and training the motion LoRA), its *edited* K/V while editing.

Keeping those K/V would cost about 1.4 GB per step at 576×1024, so they are recomputed instead: a
capture pass replays the anchor's own UNet call at that step (its latents from the stored
trajectories, its conditions, its LoRA and its attention matching) and keeps each temporal layer's
K/V; the current window's call then prepends them. The anchor needs only its source and edited
latent trajectories on hand, a few MB per step.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from framerelay.engine.attention import AttentionController, MatchingConfig, SourceAttentionStore
from framerelay.engine.conditioning import Condition, stack_conditions
from framerelay.engine.denoiser import predict_v
from framerelay.engine.editing import record_source_step
from framerelay.engine.inversion import Inversion

AdapterSwitch = Callable[[str], None]  # "anchor" or "current": which motion LoRA is active

_STATE = (
    "mode",
    "sigma",
    "step",
    "steps",
    "branches",
    "num_frames",
    "_inline",
    "_temporal_source",
    "_source",
    "config",
    "store",
    "kv_mode",
    "region",
    "_region_tokens",
)


@contextmanager
def _acting_as_anchor(controller: AttentionController, unet) -> Iterator[None]:
    """Replay an anchor call: capture K/V, in eval mode (no LoRA dropout), then put the
    controller and the UNet back as they were, set to prepend what was captured."""
    saved = {name: getattr(controller, name) for name in _STATE}
    was_training = unet.training
    controller.kv_mode, controller.anchor_kv = "capture", {}
    unet.eval()
    try:
        yield
    finally:
        unet.train(was_training)
        for name, value in saved.items():
            setattr(controller, name, value)
        controller.kv_mode = "prepend"


@dataclass
class AnchorEdit:
    """What the anchor window's edit used, per edited frame."""

    condition: Condition
    trajectory: list[torch.Tensor]  # the latents each editing step started from
    matching: MatchingConfig | None  # the anchor's own attention matching during its edit
    region: torch.Tensor | None = None  # the anchor's edit region (F, h, w), if any


@dataclass
class Anchor:
    inversion: Inversion  # the anchor window's source trajectory and condition
    switch_adapter: AdapterSwitch | None = None

    def _use(self, adapter: str) -> None:
        if self.switch_adapter is not None:
            self.switch_adapter(adapter)


@torch.no_grad()
def capture_source_kv(pipe, anchor: Anchor, controller: AttentionController, sigma: float) -> None:
    """Before an inversion (or LoRA training) call of a later window at `sigma`."""
    latents = anchor.inversion.latents_at(sigma)
    anchor._use("anchor")
    try:
        with _acting_as_anchor(controller, pipe.unet):
            controller.plain(latents.shape[1], sigma)
            predict_v(pipe.unet, latents, sigma, anchor.inversion.condition)
    finally:
        anchor._use("current")
    controller.anchor_sigma = sigma


@torch.no_grad()
def capture_edit_kv(
    pipe,
    anchor: Anchor,
    edit: AnchorEdit,
    controller: AttentionController,
    step: int,
    sigma: float,
    use_cfg: bool,
) -> None:
    """Before editing step `step` of a later window: replay the anchor's edit call at that step.

    The replay is the anchor's own call, bit for bit: its source branch recorded first in a call
    of its own (as the anchor's edit had it, from its store or recorded the same way), then its
    [uncond, cond] batch with its attention matching.
    """
    x = edit.trajectory[step]
    branches = [edit.condition.unconditional(), edit.condition] if use_cfg else [edit.condition]
    frames = x.shape[1]
    anchor._use("anchor")
    try:
        with _acting_as_anchor(controller, pipe.unet):
            controller.set_region(edit.region)
            if edit.matching is None:
                controller.plain(frames, sigma)
            else:
                controller.config = edit.matching
                controller.store = SourceAttentionStore(math.inf, device=x.device)
                record_source_step(pipe, controller, anchor.inversion, step)
                controller.anchor_kv = {}  # keep the edit call's K/V only
                controller.edit(step, len(edit.trajectory), sigma, frames, len(branches), False)
            predict_v(pipe.unet, torch.cat([x] * len(branches)), sigma, stack_conditions(branches))
            captured = controller.anchor_kv
    finally:
        anchor._use("current")
    controller.anchor_kv = captured
    controller.anchor_sigma = sigma
