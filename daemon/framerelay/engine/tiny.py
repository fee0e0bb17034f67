"""Tiny, randomly initialised SVD components built from the real diffusers classes.

Used by tests, by `framerelay doctor` and by the CPU benchmarks: the whole pipeline runs on them in
seconds, with no download. Random weights produce no meaningful picture, only the right shapes.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import (
    AutoencoderKLTemporalDecoder,
    EulerDiscreteScheduler,
    StableVideoDiffusionPipeline,
    UNetSpatioTemporalConditionModel,
)
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

try:  # transformers 5 without torchvision
    from transformers import CLIPImageProcessorPil as _ImageProcessor
except ImportError:  # pragma: no cover - older transformers
    from transformers import CLIPImageProcessor as _ImageProcessor  # type: ignore[assignment]


def svd_scheduler() -> EulerDiscreteScheduler:
    return EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        interpolation_type="linear",
        num_train_timesteps=1000,
        prediction_type="v_prediction",
        sigma_max=700.0,
        sigma_min=0.002,
        steps_offset=1,
        timestep_spacing="leading",
        timestep_type="continuous",
        use_karras_sigmas=True,
    )


def tiny_unet(
    heads: int = 2, num_frames: int = 14, channels: tuple[int, int] = (32, 64)
) -> UNetSpatioTemporalConditionModel:
    torch.manual_seed(0)
    return UNetSpatioTemporalConditionModel(
        block_out_channels=channels,
        layers_per_block=2,
        sample_size=32,
        in_channels=8,
        out_channels=4,
        down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
        up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
        cross_attention_dim=32,
        num_attention_heads=heads,
        projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
        num_frames=num_frames,
    )


def medium_unet(num_frames: int = 14) -> UNetSpatioTemporalConditionModel:
    """About 28 M parameters: the CPU benchmark size."""
    torch.manual_seed(0)
    return UNetSpatioTemporalConditionModel(
        block_out_channels=(64, 128, 256),
        layers_per_block=2,
        sample_size=32,
        in_channels=8,
        out_channels=4,
        down_block_types=(
            "CrossAttnDownBlockSpatioTemporal",
            "CrossAttnDownBlockSpatioTemporal",
            "DownBlockSpatioTemporal",
        ),
        up_block_types=(
            "UpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
            "CrossAttnUpBlockSpatioTemporal",
        ),
        cross_attention_dim=64,
        num_attention_heads=(2, 4, 8),
        projection_class_embeddings_input_dim=96,
        addition_time_embed_dim=32,
        num_frames=num_frames,
    )


def tiny_vae() -> AutoencoderKLTemporalDecoder:
    """Four levels, so the latent is 1/8 of the frame as with the real VAE."""
    torch.manual_seed(0)
    return AutoencoderKLTemporalDecoder(
        block_out_channels=[32, 32, 32, 32],
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 4,
        latent_channels=4,
        layers_per_block=1,
    )


def tiny_image_encoder(projection_dim: int = 32) -> CLIPVisionModelWithProjection:
    """Accepts the pipeline's 224-px input (patch 32: 49 tokens)."""
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=32,
        projection_dim=projection_dim,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=224,
        intermediate_size=37,
        patch_size=32,
    )
    return CLIPVisionModelWithProjection(config)


def tiny_pipeline(unet: str = "tiny", num_frames: int = 14) -> StableVideoDiffusionPipeline:
    if unet == "tiny":
        model, cross_dim = tiny_unet(num_frames=num_frames), 32
    elif unet == "medium":
        model, cross_dim = medium_unet(num_frames=num_frames), 64
    else:
        raise ValueError(f"unknown tiny UNet size {unet!r}; expected 'tiny' or 'medium'")
    pipe = StableVideoDiffusionPipeline(
        vae=tiny_vae(),
        image_encoder=tiny_image_encoder(projection_dim=cross_dim),
        unet=model,
        scheduler=svd_scheduler(),
        feature_extractor=_ImageProcessor(crop_size=224, size=224),
    )
    pipe.set_progress_bar_config(disable=True)  # type: ignore[attr-defined]  # diffusers' lazy bases
    return pipe


def save_tiny_pipeline(folder: Path, unet: str = "tiny") -> Path:
    """A diffusers folder that `framerelay edit --model FOLDER` loads through the real code path."""
    tiny_pipeline(unet).save_pretrained(folder)  # type: ignore[attr-defined]  # lazy bases
    return folder
