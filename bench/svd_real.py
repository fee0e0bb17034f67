"""The real SVD components (UNet, VAE, CLIP image encoder) from their public configs, random weights.

`bench/svd_configs.json` holds the hub configs of stabilityai/stable-video-diffusion-img2vid; the
-xt model differs only in the UNet's num_frames. Used by the accounting (`bench/real_size.py`, on
fake tensors) and by the one-shot GPU check (`bench/gpu_check.py`, on a real GPU).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

CONFIGS = json.loads((Path(__file__).with_name("svd_configs.json")).read_text(encoding="utf-8"))


def _public(config: dict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def real_unet(num_frames: int = 14):
    from diffusers import UNetSpatioTemporalConditionModel

    return UNetSpatioTemporalConditionModel(
        **{**_public(CONFIGS["unet"]), "num_frames": num_frames}
    )


def real_vae():
    from diffusers import AutoencoderKLTemporalDecoder

    return AutoencoderKLTemporalDecoder(**_public(CONFIGS["vae"]))


def real_image_encoder():
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    return CLIPVisionModelWithProjection(CLIPVisionConfig(**_public(CONFIGS["image_encoder"])))


@dataclass
class FeatureExtractor:
    """The attributes the engine reads from the pipeline's CLIPImageProcessor."""

    crop_size: int
    size: int
    image_mean: list[float]
    image_std: list[float]


@dataclass
class Components:
    """What the engine's functions read from a StableVideoDiffusionPipeline."""

    unet: torch.nn.Module
    vae: torch.nn.Module
    image_encoder: torch.nn.Module
    scheduler: object
    feature_extractor: FeatureExtractor
    vae_scale_factor: int = 8


def real_components(dtype: torch.dtype, num_frames: int = 14) -> Components:
    """Random-weight real-size components in `dtype` on the current default device, placed as
    framerelay's loader places them (an fp16 VAE is upcast to fp32: SVD's VAE overflows in fp16)."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    from framerelay.engine.tiny import svd_scheduler

    with unset_fake_temporarily():  # the scheduler computes its tables with real data
        scheduler = svd_scheduler()
    torch.manual_seed(0)
    unet = real_unet(num_frames).to(dtype).eval()
    vae_dtype = torch.float32 if dtype == torch.float16 else dtype
    vae = real_vae().to(vae_dtype).eval()
    clip = real_image_encoder().to(dtype).eval()
    return Components(unet, vae, clip, scheduler, FeatureExtractor(**CONFIGS["feature_extractor"]))
