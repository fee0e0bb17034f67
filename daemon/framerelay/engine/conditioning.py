"""SVD conditioning: CLIP image embedding, VAE image latent, micro-conditioning, video latents.

One micro-conditioning (fps id, motion bucket, noise augmentation) serves inversion, editing and
LoRA training; the official code uses three different fps values (docs/engine-notes.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from framerelay.engine.params import EngineParams
from framerelay.engine.sarp import perturb_smooth_areas


@dataclass(frozen=True)
class Condition:
    """What the UNet is conditioned on, for a batch of one."""

    image_embeddings: torch.Tensor  # (1, 1, D)
    image_latent: torch.Tensor  # (1, 4, h, w), unscaled, noise-augmented
    added_time_ids: torch.Tensor  # (1, 3): fps id, motion bucket, noise augmentation

    def unconditional(self) -> Condition:
        """The classifier-free-guidance branch: zero embedding and zero image latent."""
        return Condition(
            torch.zeros_like(self.image_embeddings),
            torch.zeros_like(self.image_latent),
            self.added_time_ids,
        )


def stack_conditions(conditions: list[Condition]) -> Condition:
    return Condition(
        torch.cat([c.image_embeddings for c in conditions]),
        torch.cat([c.image_latent for c in conditions]),
        torch.cat([c.added_time_ids for c in conditions]),
    )


def _resize_for_clip(image: torch.Tensor, size: int) -> torch.Tensor:
    """Antialiased resize of [-1, 1] images to the CLIP input size, as the pipeline does for PIL."""
    from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
        _resize_with_antialiasing,
    )

    return _resize_with_antialiasing(image, (size, size))


def _clip_input_size(feature_extractor) -> int:
    crop = getattr(feature_extractor, "crop_size", None)
    if crop is None:
        return 224
    if isinstance(crop, int):
        return crop
    return int(crop["height"])


@torch.no_grad()
def encode_image_embeddings(pipe, image: torch.Tensor) -> torch.Tensor:
    """CLIP embedding of (1, 3, H, W) frames in [-1, 1] -> (1, 1, D)."""
    encoder = pipe.image_encoder
    pixels = _resize_for_clip(image.to(torch.float32), _clip_input_size(pipe.feature_extractor))
    pixels = (pixels + 1.0) / 2.0
    mean = torch.tensor(pipe.feature_extractor.image_mean, device=pixels.device).view(1, 3, 1, 1)
    std = torch.tensor(pipe.feature_extractor.image_std, device=pixels.device).view(1, 3, 1, 1)
    pixels = ((pixels - mean) / std).to(device=encoder.device, dtype=encoder.dtype)
    return encoder(pixels).image_embeds.unsqueeze(1)


@torch.no_grad()
def encode_image_latent(pipe, image: torch.Tensor) -> torch.Tensor:
    """VAE latent of (1, 3, H, W) in [-1, 1]; unscaled, as SVD conditions on it."""
    vae = pipe.vae
    image = image.to(device=vae.device, dtype=vae.dtype)
    return vae.encode(image).latent_dist.mode().contiguous()


@torch.no_grad()
def encode_video_latents(pipe, frames: torch.Tensor, chunk: int) -> torch.Tensor:
    """(F, 3, H, W) in [-1, 1] -> (1, F, 4, h, w), scaled by the VAE's scaling factor."""
    vae = pipe.vae
    parts = [
        vae.encode(frames[i : i + chunk].to(device=vae.device, dtype=vae.dtype)).latent_dist.mode()
        for i in range(0, len(frames), chunk)
    ]
    # Contiguous: the encoder's output is laid out channels-last, and a tensor's layout selects
    # the convolution kernels that later consume it (so it would change their rounding).
    return (torch.cat(parts) * vae.config.scaling_factor).unsqueeze(0).contiguous()


@torch.no_grad()
def decode_video_latents(pipe, latents: torch.Tensor, chunk: int) -> torch.Tensor:
    """(1, F, 4, h, w) -> (F, 3, H, W) float32 in [-1, 1]. The temporal decoder mixes frames
    within a chunk, as in the pipeline's `decode_chunk_size`. Decoded from a contiguous copy:
    the same values laid out otherwise would decode to other rounding."""
    vae = pipe.vae
    latents = (latents[0] / vae.config.scaling_factor).contiguous()
    frames = []
    for i in range(0, len(latents), chunk):
        part = latents[i : i + chunk].to(device=vae.device, dtype=vae.dtype)
        frames.append(vae.decode(part, num_frames=len(part)).sample.float())
    return torch.cat(frames).clamp(-1.0, 1.0)


def added_time_ids(pipe, params: EngineParams) -> torch.Tensor:
    """[fps id, motion bucket, noise augmentation]: the diffusers order."""
    values = [params.fps_id, params.motion_bucket_id, params.noise_aug_strength]
    expected = pipe.unet.config.projection_class_embeddings_input_dim
    got = pipe.unet.config.addition_time_embed_dim * len(values)
    if expected != got:
        raise ValueError(f"UNet expects {expected} time-embedding features, ids give {got}")
    return torch.tensor([values], dtype=pipe.unet.dtype, device=pipe.unet.device)


def encode_condition(
    pipe, first_frame: torch.Tensor, params: EngineParams, generator: torch.Generator
) -> Condition:
    """Condition on one (1, 3, H, W) frame in [-1, 1].

    Noise augmentation is added in latent space, to the conditional branch only, as the official
    editing sampler does; inversion uses the same tensor so the source branch can be recomputed
    exactly during editing.
    """
    latent = encode_image_latent(pipe, first_frame)
    noise = torch.randn(latent.shape, generator=generator, dtype=torch.float32)
    latent = latent + params.noise_aug_strength * noise.to(latent.device, latent.dtype)
    unet = pipe.unet
    return Condition(
        image_embeddings=encode_image_embeddings(pipe, first_frame).to(unet.device, unet.dtype),
        image_latent=latent.to(unet.device, unet.dtype),
        added_time_ids=added_time_ids(pipe, params),
    )


def encode_source_condition(
    pipe, first_frame: torch.Tensor, params: EngineParams, generator: torch.Generator
) -> Condition:
    """The inversion's condition: the window's first frame with its own smooth-area perturbation
    (as the official inversion perturbs its conditioning frames), then `encode_condition`."""
    perturbed = perturb_smooth_areas(
        first_frame, params.sarp_threshold, params.sarp_alpha, generator
    )
    return encode_condition(pipe, perturbed, params, generator)


def resize_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    if frames.shape[-2:] == (height, width):
        return frames
    return F.interpolate(frames, size=(height, width), mode="bilinear", antialias=True)
