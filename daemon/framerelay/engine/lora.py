"""Motion LoRA (I2VEdit paper, section 4.1): a peft LoRA on every Linear of SVD's temporal
transformer blocks, trained on one clip's cached latents with SVD's EDM objective.

The SVD UNet has no PeftAdapterMixin (no `add_adapter`), so the adapter goes in with
`peft.inject_adapter_in_model`; the module stays a `UNetSpatioTemporalConditionModel` and the
pipeline and attention processors keep working. Deliberate differences from the official code are
listed in the docstrings of `inject_motion_lora`, `SigmaSchedule` and `make_added_time_ids`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from peft import (
    LoraConfig,
    get_peft_model_state_dict,
    inject_adapter_in_model,
    set_peft_model_state_dict,
)
from peft.tuners.lora import LoraLayer
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from framerelay.engine.memory import checkpoint_temporal_blocks, lora_in_compute_dtype
from framerelay.errors import InternalError, OutOfMemoryError
from framerelay.progress import CancelToken, Progress, ProgressSink, ignore_progress

log = logging.getLogger(__name__)

MOTION_ADAPTER = "motion"
# Every Linear of each TemporalBasicTransformerBlock: ff_in, attn1, attn2 (cross-attention to the
# CLIP embedding) and ff. 12 per block; 16 blocks in the real SVD UNet = 192. Matched by fullmatch.
MOTION_LORA_TARGETS = (
    r".*temporal_transformer_blocks\.\d+\."
    r"(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff_in\.net\.(0\.proj|2)|ff\.net\.(0\.proj|2))"
)
ADAPTER_FORMAT = "framerelay-motion-lora/1"
ADAPTER_FILE = "adapter.safetensors"
TRAINING_STATE_FILE = "training.pt"
CHECKPOINT_META_FILE = "state.json"
CHECKPOINT_PREFIX = "step-"


# the adapter


def motion_lora_target_names(unet: torch.nn.Module) -> list[str]:
    """Names of the modules the motion LoRA wraps (before injection: the plain Linears)."""
    return [
        name
        for name, module in unet.named_modules()
        if re.fullmatch(MOTION_LORA_TARGETS, name) and isinstance(module, torch.nn.Linear)
    ]


def inject_motion_lora(
    unet: torch.nn.Module,
    rank: int = 32,
    dropout: float = 0.1,
    adapter_name: str = MOTION_ADAPTER,
) -> list[torch.nn.Parameter]:
    """Freeze the UNet, add the motion LoRA and return its (trainable) parameters.

    lora_alpha = rank, so the LoRA scale is 1 as in the official code; A starts ~ N(0, 1/rank),
    B at zero. The adapter is float32 whatever the UNet's dtype (AdamW needs fp32 weights; peft
    casts the branch's input). Unlike the official (cloneofsimo-style) LoRA, peft applies dropout
    to the LoRA's input rather than its output; both only regularise the low-rank branch.
    """
    if rank < 1:
        raise ValueError(f"LoRA rank must be >= 1, got {rank}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout}")
    if has_motion_lora(unet, adapter_name):
        raise ValueError(f"the UNet already has a {adapter_name!r} adapter")
    if not motion_lora_target_names(unet):
        raise ValueError("the UNet has no temporal transformer Linear layers to adapt")
    unet.requires_grad_(False)
    config = LoraConfig(
        r=rank,
        lora_alpha=rank,
        lora_dropout=dropout,
        init_lora_weights="gaussian",
        target_modules=MOTION_LORA_TARGETS,
    )
    inject_adapter_in_model(config, unet, adapter_name=adapter_name)
    for module in _lora_layers(unet, adapter_name):
        module.lora_A[adapter_name].to(torch.float32)
        module.lora_B[adapter_name].to(torch.float32)
    parameters = motion_lora_parameters(unet, adapter_name)
    for parameter in parameters:
        parameter.requires_grad_(True)
    return parameters


def motion_lora_parameters(
    unet: torch.nn.Module, adapter_name: str = MOTION_ADAPTER
) -> list[torch.nn.Parameter]:
    """The adapter's parameters in module order (A then B of each layer)."""
    return [
        parameter
        for module in _lora_layers(unet, adapter_name)
        for parameter in (
            module.lora_A[adapter_name].weight,
            module.lora_B[adapter_name].weight,
        )
    ]


def has_motion_lora(unet: torch.nn.Module, adapter_name: str = MOTION_ADAPTER) -> bool:
    return any(True for _ in _lora_layers(unet, adapter_name))


def motion_lora_rank(unet: torch.nn.Module, adapter_name: str = MOTION_ADAPTER) -> int:
    for module in _lora_layers(unet, adapter_name):
        return int(module.r[adapter_name])
    raise ValueError(f"the UNet has no {adapter_name!r} adapter")


def save_motion_lora(unet: torch.nn.Module, path: Path, adapter_name: str = MOTION_ADAPTER) -> Path:
    """Write the adapter's weights (fp32 safetensors) atomically: temp file, fsync, rename."""
    state = get_peft_model_state_dict(unet, adapter_name=adapter_name)
    if not state:
        raise ValueError(f"the UNet has no {adapter_name!r} adapter to save")
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    metadata = {
        "format": ADAPTER_FORMAT,
        "rank": str(motion_lora_rank(unet, adapter_name)),
        "target_modules": MOTION_LORA_TARGETS,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{secrets.token_hex(4)}")
    try:
        save_file(tensors, str(tmp), metadata=metadata)
        _fsync_file(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_motion_lora(
    unet: torch.nn.Module,
    path: Path,
    adapter_name: str = MOTION_ADAPTER,
    dropout: float = 0.0,
) -> None:
    """Load weights written by save_motion_lora.

    Injects the adapter first if the UNet has none (frozen: for inference); otherwise loads into
    the existing one and leaves its requires_grad flags alone.
    """
    path = Path(path)
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != ADAPTER_FORMAT:
        raise ValueError(
            f"{path} is not a framerelay motion LoRA (format {metadata.get('format')!r})"
        )
    rank = int(metadata["rank"])
    if not has_motion_lora(unet, adapter_name):
        for parameter in inject_motion_lora(unet, rank, dropout, adapter_name):
            parameter.requires_grad_(False)
    elif motion_lora_rank(unet, adapter_name) != rank:
        raise ValueError(
            f"{path} holds a rank-{rank} LoRA; the UNet's {adapter_name!r} adapter has rank "
            f"{motion_lora_rank(unet, adapter_name)}"
        )
    state = load_file(str(path))
    try:
        result = set_peft_model_state_dict(unet, state, adapter_name=adapter_name)
    except RuntimeError as error:  # shape mismatches: a LoRA trained on another UNet
        raise ValueError(f"{path} does not fit this UNet: {error}") from error
    missing = [k for k in result.missing_keys if ".lora_" in k and f".{adapter_name}." in k]
    if result.unexpected_keys or missing:
        raise ValueError(
            f"{path} does not fit this UNet: {len(missing)} adapter weights missing, "
            f"{len(result.unexpected_keys)} unexpected (e.g. "
            f"{(missing + list(result.unexpected_keys))[:2]})"
        )


def set_motion_lora_enabled(
    unet: torch.nn.Module, enabled: bool, adapter_name: str = MOTION_ADAPTER
) -> None:
    """Switch the adapter on or off without touching its weights or their requires_grad flags."""
    layers = list(_lora_layers(unet, adapter_name))
    if not layers:
        raise ValueError(f"the UNet has no {adapter_name!r} adapter")
    flags = [(p, p.requires_grad) for p in motion_lora_parameters(unet, adapter_name)]
    for module in layers:
        module.enable_adapters(enabled)
    for parameter, requires_grad in flags:
        parameter.requires_grad_(requires_grad)


def remove_motion_lora(unet: torch.nn.Module, adapter_name: str = MOTION_ADAPTER) -> None:
    """Put the original Linears back (unmerged weights, so the UNet is exactly the base again)."""
    wrapped = [
        (name, module)
        for name, module in unet.named_modules()
        if isinstance(module, LoraLayer) and adapter_name in module.lora_A
    ]
    for name, module in wrapped:
        parent_name, _, child = name.rpartition(".")
        parent = unet.get_submodule(parent_name) if parent_name else unet
        setattr(parent, child, module.get_base_layer())
    configs = getattr(unet, "peft_config", None)
    if isinstance(configs, dict):
        configs.pop(adapter_name, None)
        if not configs:
            del unet.peft_config


def _lora_layers(unet: torch.nn.Module, adapter_name: str) -> Iterator[LoraLayer]:
    for module in unet.modules():
        if isinstance(module, LoraLayer) and adapter_name in module.lora_A:
            yield module


# training inputs and parameters


@dataclass(frozen=True)
class SigmaSchedule:
    """Training noise levels: the official code's choice, re-derived from its definition.

    σ = σ_data·exp(-logSNR(u)/2) with u ~ U(0, 1) and logSNR the shifted-cosine schedule of
    "simple diffusion" (Hoogeboom et al. 2023) interpolated from noise_d_low to noise_d_high as u
    goes 0 -> 1 (k-diffusion's `rand_cosine_interpolated`), within [sigma_min, sigma_max].
    Its median σ is 0.71 and 10 % of draws exceed 3.4 (EDM's default log-normal: 0.30 and 2 %),
    so more steps land at the high noise levels that shape coarse structure and motion.
    """

    sigma_min: float = 0.002
    sigma_max: float = 700.0
    sigma_data: float = 0.5  # the official setting; the loss itself uses σ_data = 1 (SVD's)
    image_d: float = 64.0
    noise_d_low: float = 32.0
    noise_d_high: float = 64.0

    def sigma(self, u: torch.Tensor) -> torch.Tensor:
        """Map u in [0, 1] monotonically to σ in [sigma_min, sigma_max]."""
        u = u.to(torch.float64)
        logsnr_at_0 = -2.0 * math.log(self.sigma_min / self.sigma_data)
        logsnr_at_1 = -2.0 * math.log(self.sigma_max / self.sigma_data)

        def shifted_cosine(noise_d: float) -> torch.Tensor:
            shift = 2.0 * math.log(noise_d / self.image_d)
            start = math.atan(math.exp(-0.5 * (logsnr_at_0 - shift)))
            end = math.atan(math.exp(-0.5 * (logsnr_at_1 - shift)))
            return -2.0 * torch.log(torch.tan(start + u * (end - start))) + shift

        logsnr = torch.lerp(shifted_cosine(self.noise_d_low), shifted_cosine(self.noise_d_high), u)
        sigma = self.sigma_data * torch.exp(-0.5 * logsnr)
        return sigma.clamp(self.sigma_min, self.sigma_max).to(torch.float32)


@dataclass(frozen=True)
class LoraTrainingParams:
    steps: int = 250  # the paper edits with the 250th checkpoint
    rank: int = 32
    lr: float = 5e-4  # constant, no warm-up
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    dropout: float = 0.1
    checkpoint_every: int = 50
    gradient_checkpointing: bool = True
    seed: int = 23
    noise_aug_strength: float = 0.02  # latent-space noise on the condition latent
    sigma_schedule: SigmaSchedule = field(default_factory=SigmaSchedule)

    def validate(self) -> LoraTrainingParams:
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, got {self.checkpoint_every}")
        if self.rank < 1:
            raise ValueError(f"rank must be >= 1, got {self.rank}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.noise_aug_strength < 0:
            raise ValueError(f"noise_aug_strength must be >= 0, got {self.noise_aug_strength}")
        return self

    def resume_fingerprint(self) -> dict:
        """What a checkpoint must share with these params to be resumed (steps may grow)."""
        fields = dataclasses.asdict(self)
        for name in ("steps", "checkpoint_every", "gradient_checkpointing"):
            fields.pop(name)
        return json.loads(json.dumps(fields))  # tuples -> lists, as read back from JSON


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


# the objective


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
    c_in = (s**2 + 1).rsqrt()
    c_skip = 1 / (s**2 + 1)
    c_out = -s * c_in
    condition = batch.condition_latent + noise_aug_strength * condition_noise
    condition = condition.unsqueeze(1).expand(-1, batch.frames, -1, -1, -1)
    sample = torch.cat([c_in * x_sigma, condition], dim=2)
    c_noise = 0.25 * torch.log(sigma.to(x0.device, torch.float32)).reshape(-1)
    with (
        _autocast(x0.device, autocast_dtype),
        lora_in_compute_dtype(unet, torch.is_autocast_enabled(x0.device.type)),
    ):
        v = unet(
            sample,
            c_noise,
            encoder_hidden_states=batch.image_embeddings,
            added_time_ids=batch.added_time_ids,
            return_dict=False,
        )[0]
    x0_hat = c_skip * x_sigma + c_out * v.float()
    weight = (1 + s**2) / s**2
    return (weight * (x0_hat - x0) ** 2).mean()


# training


def train_motion_lora(
    unet: torch.nn.Module,
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
        clock = _seed_dropout(unet, params.seed)
        state = _TrainingState.fresh(parameters, params, device, autocast_dtype)
        checkpoint = _resumable_checkpoint(checkpoint_dir, fingerprint, params.steps)
        start = _restore_checkpoint(checkpoint, unet, state) if checkpoint is not None else 0
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
                    _save_checkpoint(checkpoint_dir, step, unet, state, fingerprint)
                progress(Progress("lora", step, params.steps, message=f"loss {loss:.4f}"))

    return TrainingResult(
        steps_run=params.steps - start,
        final_loss=state.losses[-1] if state.losses else math.nan,
        losses=list(state.losses),
        resumed_from=start,
    )


@dataclass
class _TrainingState:
    """Everything a checkpoint must restore besides the adapter weights."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None  # fp16 autocast only
    generator: torch.Generator  # σ and noise draws (CPU, so runs match across devices)
    device: torch.device  # its global RNG drives LoRA dropout
    losses: list[float] = field(default_factory=list)

    @classmethod
    def fresh(
        cls,
        parameters: list[torch.nn.Parameter],
        params: LoraTrainingParams,
        device: torch.device,
        autocast_dtype: torch.dtype | None,
    ) -> _TrainingState:
        optimizer = torch.optim.AdamW(
            parameters,
            lr=params.lr,
            betas=params.betas,
            eps=params.eps,
            weight_decay=params.weight_decay,
        )
        scaler = torch.amp.GradScaler("cuda") if autocast_dtype == torch.float16 else None
        generator = torch.Generator("cpu").manual_seed(params.seed)
        return cls(optimizer, scaler, generator, device)


def _train_step(
    unet: torch.nn.Module,
    batch: TrainingBatch,
    params: LoraTrainingParams,
    state: _TrainingState,
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


def _adapter_for_training(
    unet: torch.nn.Module, params: LoraTrainingParams
) -> list[torch.nn.Parameter]:
    if not has_motion_lora(unet):
        parameters = inject_motion_lora(unet, rank=params.rank, dropout=params.dropout)
        _initialise(unet, params.rank, torch.Generator().manual_seed(params.seed))
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


def _initialise(unet: torch.nn.Module, rank: int, generator: torch.Generator) -> None:
    """peft's "gaussian" initialisation (A ~ N(0, 1/rank), B = 0), drawn from `generator`."""
    with torch.no_grad():
        for module in _lora_layers(unet, MOTION_ADAPTER):
            weight = module.lora_A[MOTION_ADAPTER].weight
            weight.copy_(torch.randn(weight.shape, generator=generator) / rank)
            module.lora_B[MOTION_ADAPTER].weight.zero_()


class _DropoutClock:
    """The training step that seeds every dropout mask drawn in it."""

    def __init__(self, seed: int):
        self.seed, self.step = seed, 0


class SeededDropout(torch.nn.Module):
    """Dropout whose mask is a function of (seed, training step, layer), drawn from a generator of
    its own: no global RNG, and the same mask when gradient checkpointing replays the layer."""

    def __init__(self, p: float, clock: _DropoutClock, layer: int):
        super().__init__()
        self.p, self.clock, self.layer = p, clock, layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        seed = ((self.clock.seed * 1_000_003 + self.clock.step) * 10_007 + self.layer) % 2**63
        generator = torch.Generator(x.device).manual_seed(seed)
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=generator)
        return x * keep / (1.0 - self.p)


def _seed_dropout(unet: torch.nn.Module, seed: int) -> _DropoutClock:
    """Replace the adapter's dropout modules (torch.nn.Dropout draws from the global RNG)."""
    clock = _DropoutClock(seed)
    for layer, module in enumerate(_lora_layers(unet, MOTION_ADAPTER)):
        dropout = module.lora_dropout[MOTION_ADAPTER]
        p = dropout.p if isinstance(dropout, (torch.nn.Dropout, SeededDropout)) else 0.0
        module.lora_dropout[MOTION_ADAPTER] = SeededDropout(p, clock, layer)
    return clock


@contextlib.contextmanager
def _training_mode(
    unet: torch.nn.Module, gradient_checkpointing: bool, autocast: bool = False
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


# checkpoints


def latest_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step, if any."""
    best, best_step = None, -1
    if not Path(checkpoint_dir).is_dir():
        return None
    for path in Path(checkpoint_dir).iterdir():
        match = re.fullmatch(rf"{CHECKPOINT_PREFIX}(\d+)", path.name)
        complete = all(
            (path / name).is_file()
            for name in (ADAPTER_FILE, TRAINING_STATE_FILE, CHECKPOINT_META_FILE)
        )
        if match and complete and int(match.group(1)) > best_step:
            best, best_step = path, int(match.group(1))
    return best


def _checkpoint_fingerprint(params: LoraTrainingParams, batch: TrainingBatch) -> dict:
    return {
        "params": params.resume_fingerprint(),
        "video_latents": list(batch.video_latents.shape),
        "image_embeddings": list(batch.image_embeddings.shape),
        "added_time_ids": [float(x) for x in batch.added_time_ids.flatten()],
    }


def _resumable_checkpoint(checkpoint_dir: Path, fingerprint: dict, steps: int) -> Path | None:
    checkpoint = latest_checkpoint(checkpoint_dir)
    if checkpoint is None:
        return None
    try:
        meta = json.loads((checkpoint / CHECKPOINT_META_FILE).read_text(encoding="utf-8"))
        compatible = meta["fingerprint"] == fingerprint and int(meta["step"]) <= steps
    except (OSError, ValueError, KeyError, TypeError):
        compatible = False
    if compatible:
        return checkpoint
    log.warning("discarding LoRA checkpoints in %s: made with other settings", checkpoint_dir)
    _remove_checkpoints(checkpoint_dir, keep=None)
    return None


def _save_checkpoint(
    checkpoint_dir: Path,
    step: int,
    unet: torch.nn.Module,
    state: _TrainingState,
    fingerprint: dict,
) -> Path:
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / f"{CHECKPOINT_PREFIX}{step}"
    tmp = checkpoint_dir / f".tmp-{CHECKPOINT_PREFIX}{step}-{secrets.token_hex(4)}"
    tmp.mkdir()
    try:
        save_motion_lora(unet, tmp / ADAPTER_FILE)
        cuda = state.device.type == "cuda"
        training = {
            "optimizer": state.optimizer.state_dict(),
            "scaler": state.scaler.state_dict() if state.scaler is not None else None,
            "generator": state.generator.get_state(),
            "cpu_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(state.device) if cuda else None,
            "losses": list(state.losses),
        }
        torch.save(training, tmp / TRAINING_STATE_FILE)
        _fsync_file(tmp / TRAINING_STATE_FILE)
        meta = {"step": step, "fingerprint": fingerprint}
        (tmp / CHECKPOINT_META_FILE).write_text(json.dumps(meta), encoding="utf-8")
        _fsync_file(tmp / CHECKPOINT_META_FILE)
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    _remove_checkpoints(checkpoint_dir, keep=final)
    return final


def _restore_checkpoint(checkpoint: Path, unet: torch.nn.Module, state: _TrainingState) -> int:
    """Load the adapter and the training state; the step the checkpoint was taken at."""
    meta = json.loads((checkpoint / CHECKPOINT_META_FILE).read_text(encoding="utf-8"))
    load_motion_lora(unet, checkpoint / ADAPTER_FILE)
    training = torch.load(checkpoint / TRAINING_STATE_FILE, map_location="cpu", weights_only=True)
    state.optimizer.load_state_dict(training["optimizer"])
    if state.scaler is not None and training["scaler"] is not None:
        state.scaler.load_state_dict(training["scaler"])
    state.generator.set_state(training["generator"])
    torch.set_rng_state(training["cpu_rng"])
    if state.device.type == "cuda" and training["cuda_rng"] is not None:
        torch.cuda.set_rng_state(training["cuda_rng"], state.device)
    state.losses[:] = [float(x) for x in training["losses"]]
    log.info("resuming motion LoRA training from %s", checkpoint)
    return int(meta["step"])


def _remove_checkpoints(checkpoint_dir: Path, keep: Path | None) -> None:
    """Delete every checkpoint and leftover temp dir except `keep`."""
    for path in checkpoint_dir.iterdir():
        is_ours = path.name.startswith((CHECKPOINT_PREFIX, f".tmp-{CHECKPOINT_PREFIX}"))
        if is_ours and path.is_dir() and path != keep:
            shutil.rmtree(path, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as stream:
        os.fsync(stream.fileno())
