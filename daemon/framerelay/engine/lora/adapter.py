"""The motion LoRA adapter: a peft LoRA on every Linear of SVD's temporal transformer blocks.

The SVD UNet has no PeftAdapterMixin (no `add_adapter`), so the adapter goes in with
`peft.inject_adapter_in_model`; the module stays a `UNetSpatioTemporalConditionModel` and the
pipeline and attention processors keep working. Its randomness (initial weights, dropout masks)
comes from generators seeded by the caller, never from torch's global RNG.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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

from framerelay.files import replacing

MOTION_ADAPTER = "motion"
# Every Linear of each TemporalBasicTransformerBlock: ff_in, attn1, attn2 (cross-attention to the
# CLIP embedding) and ff. 12 per block; 16 blocks in the real SVD UNet = 192. Matched by fullmatch.
MOTION_LORA_TARGETS = (
    r".*temporal_transformer_blocks\.\d+\."
    r"(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ff_in\.net\.(0\.proj|2)|ff\.net\.(0\.proj|2))"
)
ADAPTER_FORMAT = "framerelay-motion-lora/1"


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
) -> list[torch.Tensor]:
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
    for module in lora_layers(unet, adapter_name):
        module.lora_A[adapter_name].to(torch.float32)
        module.lora_B[adapter_name].to(torch.float32)
    parameters = motion_lora_parameters(unet, adapter_name)
    for parameter in parameters:
        parameter.requires_grad_(True)
    return parameters


def initialise_motion_lora(
    unet: torch.nn.Module, rank: int, generator: torch.Generator, adapter_name: str = MOTION_ADAPTER
) -> None:
    """peft's "gaussian" initialisation (A ~ N(0, 1/rank), B = 0), drawn from `generator`."""
    with torch.no_grad():
        for module in lora_layers(unet, adapter_name):
            down, up = _linears(module, adapter_name)
            down.weight.copy_(torch.randn(down.weight.shape, generator=generator) / rank)
            up.weight.zero_()


def motion_lora_parameters(
    unet: torch.nn.Module, adapter_name: str = MOTION_ADAPTER
) -> list[torch.Tensor]:
    """The adapter's parameters in module order (A then B of each layer)."""
    return [
        linear.weight
        for module in lora_layers(unet, adapter_name)
        for linear in _linears(module, adapter_name)
    ]


def has_motion_lora(unet: torch.nn.Module, adapter_name: str = MOTION_ADAPTER) -> bool:
    return any(True for _ in lora_layers(unet, adapter_name))


def motion_lora_rank(unet: torch.nn.Module, adapter_name: str = MOTION_ADAPTER) -> int:
    for module in lora_layers(unet, adapter_name):
        return int(module.r[adapter_name])
    raise ValueError(f"the UNet has no {adapter_name!r} adapter")


def save_motion_lora(unet: torch.nn.Module, path: Path, adapter_name: str = MOTION_ADAPTER) -> Path:
    """Write the adapter's weights (fp32 safetensors) atomically (`framerelay.files`)."""
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
    with replacing(path) as staged:
        save_file(tensors, str(staged), metadata=metadata)
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
        result: Any = set_peft_model_state_dict(unet, state, adapter_name=adapter_name)  # untyped
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
    layers = list(lora_layers(unet, adapter_name))
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


def lora_layers(unet: torch.nn.Module, adapter_name: str = MOTION_ADAPTER) -> Iterator[LoraLayer]:
    for module in unet.modules():
        if isinstance(module, LoraLayer) and adapter_name in module.lora_A:
            yield module


def _linears(module: LoraLayer, adapter_name: str) -> tuple[torch.nn.Linear, torch.nn.Linear]:
    """A LoRA layer's down (A) and up (B) projections; Linears, as the targets are Linears."""
    down, up = module.lora_A[adapter_name], module.lora_B[adapter_name]
    assert isinstance(down, torch.nn.Linear) and isinstance(up, torch.nn.Linear)
    return down, up


# seeded dropout


class DropoutClock:
    """The training step that seeds every dropout mask drawn in it."""

    def __init__(self, seed: int):
        self.seed, self.step = seed, 0


class SeededDropout(torch.nn.Module):
    """Dropout whose mask is a function of (seed, training step, layer), drawn from a generator of
    its own: no global RNG, and the same mask when gradient checkpointing replays the layer."""

    def __init__(self, p: float, clock: DropoutClock, layer: int):
        super().__init__()
        self.p, self.clock, self.layer = p, clock, layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        seed = ((self.clock.seed * 1_000_003 + self.clock.step) * 10_007 + self.layer) % 2**63
        generator = torch.Generator(x.device).manual_seed(seed)
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=generator)
        return x * keep / (1.0 - self.p)


def seed_dropout(
    unet: torch.nn.Module, seed: int, adapter_name: str = MOTION_ADAPTER
) -> DropoutClock:
    """Replace the adapter's dropout modules (torch.nn.Dropout draws from the global RNG)."""
    clock = DropoutClock(seed)
    for layer, module in enumerate(lora_layers(unet, adapter_name)):
        dropout = module.lora_dropout[adapter_name]
        p = dropout.p if isinstance(dropout, (torch.nn.Dropout, SeededDropout)) else 0.0
        module.lora_dropout[adapter_name] = SeededDropout(p, clock, layer)
    return clock
