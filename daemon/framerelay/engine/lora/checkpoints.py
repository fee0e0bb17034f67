"""Checkpoints of motion-LoRA training: `<dir>/step-<n>/` holds the adapter, the optimizer and
RNG states and the losses, written atomically (`framerelay.files`); an interrupted job resumes
from the latest one made with the same settings."""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from framerelay.engine.lora.adapter import load_motion_lora, save_motion_lora
from framerelay.engine.lora.schedule import LoraTrainingParams
from framerelay.files import replacing

log = logging.getLogger(__name__)

ADAPTER_FILE = "adapter.safetensors"
TRAINING_STATE_FILE = "training.pt"
CHECKPOINT_META_FILE = "state.json"
CHECKPOINT_PREFIX = "step-"
# Staging names: `.step-<n>.partial-*` (and `.step-<n>.old-*` while one replaces another);
# `.tmp-step-*` is what versions before framerelay.files left.
_LEFTOVER_PREFIXES = (f".{CHECKPOINT_PREFIX}", f".tmp-{CHECKPOINT_PREFIX}")


@dataclass
class TrainingState:
    """Everything a checkpoint must restore besides the adapter weights."""

    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler | None  # fp16 autocast only
    generator: torch.Generator  # σ and noise draws (CPU, so runs match across devices)
    device: torch.device  # its global RNG drives LoRA dropout
    losses: list[float] = field(default_factory=list)

    @classmethod
    def fresh(
        cls,
        parameters: list[torch.Tensor],
        params: LoraTrainingParams,
        device: torch.device,
        autocast_dtype: torch.dtype | None,
    ) -> TrainingState:
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


def resumable_checkpoint(checkpoint_dir: Path, fingerprint: dict, steps: int) -> Path | None:
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
    remove_checkpoints(checkpoint_dir, keep=None)
    return None


def save_checkpoint(
    checkpoint_dir: Path,
    step: int,
    unet: torch.nn.Module,
    state: TrainingState,
    fingerprint: dict,
) -> Path:
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir / f"{CHECKPOINT_PREFIX}{step}"
    cuda = state.device.type == "cuda"
    training = {
        "optimizer": state.optimizer.state_dict(),
        "scaler": state.scaler.state_dict() if state.scaler is not None else None,
        "generator": state.generator.get_state(),
        "cpu_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(state.device) if cuda else None,
        "losses": list(state.losses),
    }
    meta = {"step": step, "fingerprint": fingerprint}
    with replacing(final) as staged:
        staged.mkdir()
        save_motion_lora(unet, staged / ADAPTER_FILE)
        torch.save(training, staged / TRAINING_STATE_FILE)
        (staged / CHECKPOINT_META_FILE).write_text(json.dumps(meta), encoding="utf-8")
    remove_checkpoints(checkpoint_dir, keep=final)
    return final


def restore_checkpoint(checkpoint: Path, unet: torch.nn.Module, state: TrainingState) -> int:
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


def remove_checkpoints(checkpoint_dir: Path, keep: Path | None) -> None:
    """Delete every checkpoint and leftover staging except `keep`."""
    for path in checkpoint_dir.iterdir():
        is_ours = path.name.startswith((CHECKPOINT_PREFIX, *_LEFTOVER_PREFIXES))
        if is_ours and path.is_dir() and path != keep:
            shutil.rmtree(path, ignore_errors=True)
