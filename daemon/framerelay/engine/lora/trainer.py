"""Training the motion LoRA on one clip: the batch, SVD's EDM objective (`engine.edm`'s
preconditioning) and the resumable training loop."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers.models.modeling_utils import ModelMixin

from framerelay.engine import edm
from framerelay.engine.lora.adapter import (
    has_motion_lora,
    initialise_motion_lora,
    inject_motion_lora,
    motion_lora_parameters,
    motion_lora_rank,
    seed_dropout,
)
from framerelay.engine.lora.checkpoints import (
    TrainingState,
    restore_checkpoint,
    resumable_checkpoint,
    save_checkpoint,
)
from framerelay.engine.lora.schedule import LoraTrainingParams
from framerelay.engine.memory import checkpoint_temporal_blocks, lora_in_compute_dtype
from framerelay.errors import InternalError, OutOfMemoryError
from framerelay.progress import CancelToken, Progress, ProgressSink, ignore_progress

log = logging.getLogger(__name__)


def make_added_time_ids(
    fps_id: int = 6, motion_bucket_id: int = 127, noise_aug_strength: float = 0.02
) -> torch.Tensor:
    """SVD's micro-conditioning, (1, 3), in the order diffusers' UNet and pipeline use.

    The official training code builds [fps, noise_aug, motion_bucket], so during training its UNet
    sees motion bucket 0.02 and noise augmentation 127, while inference uses [fps, 127, 0.02]. We
    train with the inference order: the LoRA then adapts to the conditioning it will be used with.
    """
    return torch.tensor([[float(fps_id), float(motion_bucket_id), float(noise_aug_strength)]])


@dataclass(frozen=True)
class TrainingBatch:
    """One clip, encoded once by the caller (VAE and CLIP do not run during training)."""

    video_latents: torch.Tensor  # (1, F, 4, h, w): VAE latents x vae.config.scaling_factor
    condition_latent: torch.Tensor  # (1, 4, h, w): latent_dist.mode() of source frame 0, unscaled
    image_embeddings: torch.Tensor  # (1, 1, D): CLIP image embedding of source frame 0
    added_time_ids: torch.Tensor  # (1, 3): make_added_time_ids(...)

    def validate(self) -> TrainingBatch:
        video, condition = self.video_latents, self.condition_latent
        if video.ndim != 5 or video.shape[0] != 1 or video.shape[1] < 2:
            raise ValueError(f"video_latents must be (1, F>=2, C, h, w), got {tuple(video.shape)}")
        if condition.shape != (1, *video.shape[2:]):
            raise ValueError(
                f"condition_latent must be {(1, *video.shape[2:])} to match video_latents, "
                f"got {tuple(condition.shape)}"
            )
        if self.image_embeddings.ndim != 3 or self.image_embeddings.shape[:2] != (1, 1):
            raise ValueError(
                f"image_embeddings must be (1, 1, D), got {tuple(self.image_embeddings.shape)}"
            )
        if self.added_time_ids.shape != (1, 3):
            raise ValueError(
                f"added_time_ids must be (1, 3), got {tuple(self.added_time_ids.shape)}"
            )
        return self

    @property
    def frames(self) -> int:
        return self.video_latents.shape[1]

    def to(self, device: torch.device) -> TrainingBatch:
        def move(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.detach().to(device, torch.float32)

        return TrainingBatch(
            move(self.video_latents),
            move(self.condition_latent),
            move(self.image_embeddings),
            move(self.added_time_ids),
        )


@dataclass(frozen=True)
class TrainingResult:
    steps_run: int  # steps executed by this call (0 when a finished checkpoint was found)
    final_loss: float  # loss of the last step (nan if no step ever ran)
    losses: list[float]  # one per step from step 1, including steps run before a resume
    resumed_from: int = 0  # the checkpoint step this call started from


def denoising_loss(
    unet: torch.nn.Module,
    batch: TrainingBatch,
    sigma: torch.Tensor,
    noise: torch.Tensor,
    condition_noise: torch.Tensor,
    noise_aug_strength: float,
    autocast_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """SVD's EDM training loss at noise level `sigma` (shape (1,)), with σ_data = 1.

    x_σ = x0 + σ·ε; the UNet sees [c_in·x_σ, condition] and c_noise = ln(σ)/4, predicts v, and
    x̂0 = c_skip·x_σ + c_out·v. The loss is the mean of λ(σ)·(x̂0 − x0)² with λ = (1 + σ²)/σ².
    """
    x0 = batch.video_latents
    s = sigma.to(x0.device, torch.float32).reshape(-1, 1, 1, 1, 1)
    x_sigma = x0 + s * noise
    condition = batch.condition_latent + noise_aug_strength * condition_noise
    condition = condition.unsqueeze(1).expand(-1, batch.frames, -1, -1, -1)
    sample = torch.cat([edm.c_in(s) * x_sigma, condition], dim=2)
    with (
        _autocast(x0.device, autocast_dtype),
        lora_in_compute_dtype(unet, torch.is_autocast_enabled(x0.device.type)),
    ):
        v = unet(
            sample,
            edm.c_noise(s).reshape(-1),
            encoder_hidden_states=batch.image_embeddings,
            added_time_ids=batch.added_time_ids,
            return_dict=False,
        )[0]
    x0_hat = edm.denoised(v.float(), x_sigma, s)
    return (edm.loss_weight(s) * (x0_hat - x0) ** 2).mean()


def train_motion_lora(
    unet: ModelMixin,
    batch: TrainingBatch,
    params: LoraTrainingParams,
    checkpoint_dir: Path,
    progress: ProgressSink = ignore_progress,
    cancel: CancelToken | None = None,
    device: torch.device | str | None = None,
    autocast_dtype: torch.dtype | None = None,
    before_step: Callable[[float], None] | None = None,
) -> TrainingResult:
    """Train the motion LoRA on one clip; resumable from the latest checkpoint in checkpoint_dir.

    Injects the adapter (params.rank, params.dropout) when the UNet has none. The UNet stays where
    the caller put it; the batch is moved to `device` (default: the UNet's). Every checkpoint_every
    steps and after the last step a checkpoint (adapter, optimizer, RNG states, losses) is written
    atomically to checkpoint_dir/step-<n>/ and older ones are deleted. A checkpoint made with other
    training params is discarded. Every draw comes from generators seeded from params.seed (the
    adapter's initial weights, σ and noise, and each dropout mask, a function of the seed, the step
    and the layer), never from torch's global RNG, whose state is left as it was. autocast_dtype (bf16 or fp16) applies on CUDA only; fp16
    uses a gradient scaler. `before_step(sigma)` runs before each step's forward pass, with the
    sampled noise level (skip-interval cross-attention captures the anchor's K/V there).
    """
    params.validate()
    batch.validate()
    cancel = cancel or CancelToken()
    device = torch.device(device) if device is not None else next(unet.parameters()).device
    if autocast_dtype is not None and device.type != "cuda":
        log.info("autocast_dtype %s ignored on %s; training in float32", autocast_dtype, device)
        autocast_dtype = None
    noise_aug = float(batch.added_time_ids[0, 2])
    if not math.isclose(noise_aug, params.noise_aug_strength, rel_tol=1e-5, abs_tol=1e-7):
        raise ValueError(
            f"added_time_ids announces noise_aug {noise_aug} but params.noise_aug_strength is "
            f"{params.noise_aug_strength}; they must agree"
        )
    batch = batch.to(device)
    checkpoint_dir = Path(checkpoint_dir)
    fingerprint = _checkpoint_fingerprint(params, batch)

    # peft's own initialisation draws from the global RNG (then overwritten): keep the caller's.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        parameters = _adapter_for_training(unet, params)
        clock = seed_dropout(unet, params.seed)
        state = TrainingState.fresh(parameters, params, device, autocast_dtype)
        checkpoint = resumable_checkpoint(checkpoint_dir, fingerprint, params.steps)
        start = restore_checkpoint(checkpoint, unet, state) if checkpoint is not None else 0
        progress(Progress("lora", start, params.steps, message=_start_message(start)))

        with (
            _training_mode(unet, params.gradient_checkpointing, autocast_dtype is not None),
            _out_of_memory_as_error(batch),
        ):
            for step in range(start + 1, params.steps + 1):
                cancel.raise_if_cancelled()
                clock.step = step
                loss = _train_step(unet, batch, params, state, autocast_dtype, before_step)
                if not math.isfinite(loss) and state.scaler is None:
                    raise InternalError(
                        f"Motion LoRA training diverged: loss {loss} at step {step}."
                    )
                state.losses.append(loss)
                if step % params.checkpoint_every == 0 or step == params.steps:
                    save_checkpoint(checkpoint_dir, step, unet, state, fingerprint)
                progress(Progress("lora", step, params.steps, message=f"loss {loss:.4f}"))

    return TrainingResult(
        steps_run=params.steps - start,
        final_loss=state.losses[-1] if state.losses else math.nan,
        losses=list(state.losses),
        resumed_from=start,
    )


def _train_step(
    unet: torch.nn.Module,
    batch: TrainingBatch,
    params: LoraTrainingParams,
    state: TrainingState,
    autocast_dtype: torch.dtype | None,
    before_step: Callable[[float], None] | None = None,
) -> float:
    device = batch.video_latents.device
    generator = state.generator
    sigma = params.sigma_schedule.sigma(torch.rand(1, generator=generator))
    if before_step is not None:
        before_step(float(sigma))
    noise = torch.randn(batch.video_latents.shape, generator=generator).to(device)
    condition_noise = torch.randn(batch.condition_latent.shape, generator=generator).to(device)
    state.optimizer.zero_grad(set_to_none=True)
    loss = denoising_loss(
        unet, batch, sigma, noise, condition_noise, params.noise_aug_strength, autocast_dtype
    )
    if state.scaler is not None:
        state.scaler.scale(loss).backward()
        state.scaler.step(state.optimizer)
        state.scaler.update()
    else:
        loss.backward()
        state.optimizer.step()
    return float(loss.detach())


def _adapter_for_training(unet: torch.nn.Module, params: LoraTrainingParams) -> list[torch.Tensor]:
    if not has_motion_lora(unet):
        parameters = inject_motion_lora(unet, rank=params.rank, dropout=params.dropout)
        initialise_motion_lora(unet, params.rank, torch.Generator().manual_seed(params.seed))
        return parameters
    if motion_lora_rank(unet) != params.rank:
        raise ValueError(
            f"the UNet's motion LoRA has rank {motion_lora_rank(unet)}; params ask {params.rank}"
        )
    unet.requires_grad_(False)
    parameters = motion_lora_parameters(unet)
    for parameter in parameters:
        parameter.requires_grad_(True)
    return parameters


@contextlib.contextmanager
def _training_mode(
    unet: ModelMixin, gradient_checkpointing: bool, autocast: bool = False
) -> Iterator[None]:
    was_training = unet.training
    was_checkpointing = bool(getattr(unet, "is_gradient_checkpointing", False))
    if gradient_checkpointing and not was_checkpointing:
        unet.enable_gradient_checkpointing()
    elif was_checkpointing and not gradient_checkpointing:
        unet.disable_gradient_checkpointing()
    unet.train()
    try:
        with (
            torch.enable_grad(),
            checkpoint_temporal_blocks(unet, gradient_checkpointing),
            lora_in_compute_dtype(unet, autocast),  # also while blocks are replayed in backward
        ):
            yield
    finally:
        unet.train(was_training)
        if was_checkpointing and not unet.is_gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        elif not was_checkpointing and unet.is_gradient_checkpointing:
            unet.disable_gradient_checkpointing()


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is None or device.type != "cuda":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=dtype)


@contextlib.contextmanager
def _out_of_memory_as_error(batch: TrainingBatch) -> Iterator[None]:
    try:
        yield
    except torch.OutOfMemoryError as error:
        _, frames, _, height, width = batch.video_latents.shape
        raise OutOfMemoryError(
            f"Out of GPU memory while training the motion LoRA on {frames} frames of "
            f"{height * 8}x{width * 8} px."
        ) from error


def _start_message(start: int) -> str:
    return f"resumed from step {start}" if start else "training motion LoRA"


def _checkpoint_fingerprint(params: LoraTrainingParams, batch: TrainingBatch) -> dict:
    return {
        "params": params.resume_fingerprint(),
        "video_latents": list(batch.video_latents.shape),
        "image_embeddings": list(batch.image_embeddings.shape),
        "added_time_ids": [float(x) for x in batch.added_time_ids.flatten()],
    }
