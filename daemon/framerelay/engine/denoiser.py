"""One evaluation of the SVD UNet as an EDM denoiser."""

from __future__ import annotations

import torch

from framerelay.engine.conditioning import Condition
from framerelay.engine.edm import c_in, c_noise


def predict_v(unet, x: torch.Tensor, sigma: float, condition: Condition) -> torch.Tensor:
    """v-prediction for latents x of shape (B, F, 4, h, w) at noise level sigma."""
    frames = x.shape[1]
    image_latents = condition.image_latent.unsqueeze(1).expand(-1, frames, -1, -1, -1)
    model_input = torch.cat([(x * c_in(sigma)).to(unet.dtype), image_latents], dim=2)
    timestep = torch.full((x.shape[0],), c_noise(sigma), device=x.device, dtype=torch.float32)
    v = unet(
        model_input,
        timestep,
        encoder_hidden_states=condition.image_embeddings,
        added_time_ids=condition.added_time_ids,
        return_dict=False,
    )[0]
    return v.to(torch.float32)
