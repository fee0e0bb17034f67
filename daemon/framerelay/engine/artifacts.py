"""A window's reusable artifacts in the content-addressed cache: its motion LoRA and its
inversion (latent trajectory and source condition). Attention is never stored: it is kept in RAM
or recomputed (docs/engine-notes.md)."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from framerelay.cache import ArtifactCache, Entry, cache_key
from framerelay.engine.conditioning import Condition
from framerelay.engine.inversion import Inversion
from framerelay.engine.params import EngineParams, cache_values

ARTIFACT_FORMAT_VERSION = 3  # 2: SARP-perturbed source condition, zero-padded SARP gradient;
# 3: one EDM preconditioning (edm.py) for sampling, inversion and the LoRA loss (last-bit changes)
LORA_FILE = "motion_lora.safetensors"
INVERSION_FILE = "inversion.safetensors"


def window_key(
    frames_hash: str,
    params: EngineParams,
    model: str,
    dtype: str,
    frame_count: int,
    anchor_key: str | None,
) -> str:
    """Everything that determines a window's LoRA and inversion: its frames, the model, and every
    parameter the table marks `keys_cache`. Later windows depend on the anchor's artifacts through
    skip-interval attention, hence `anchor_key`."""
    return cache_key(
        kind="window",
        format=ARTIFACT_FORMAT_VERSION,
        frames=frames_hash,
        frame_count=frame_count,
        model=model,
        dtype=dtype,
        params=cache_values(params),
        anchor=anchor_key,
    )


def save_inversion(inversion: Inversion, path: Path) -> None:
    condition = inversion.condition
    tensors = {
        "sigmas": inversion.sigmas,
        "trajectory": torch.stack(inversion.trajectory),
        "image_embeddings": condition.image_embeddings,
        "image_latent": condition.image_latent,
        "added_time_ids": condition.added_time_ids,
    }
    if inversion.clean is not None:
        tensors["clean"] = inversion.clean
    tensors = {name: t.detach().cpu().contiguous() for name, t in tensors.items()}
    save_file(tensors, str(path), metadata={"init_noise_sigma": repr(inversion.init_noise_sigma)})


def load_inversion(path: Path, device: torch.device) -> Inversion:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = {name: t.to(device) for name, t in load_file(str(path)).items()}
    condition = Condition(
        tensors["image_embeddings"], tensors["image_latent"], tensors["added_time_ids"]
    )
    return Inversion(
        sigmas=tensors["sigmas"].cpu(),
        trajectory=list(tensors["trajectory"].unbind(0)),
        condition=condition,
        init_noise_sigma=float(metadata["init_noise_sigma"]),
        clean=tensors.get("clean"),
    )


def store_window(
    cache: ArtifactCache, key: str, inversion: Inversion, lora_file: Path | None, clip: str = ""
) -> Entry:
    """Stores a window's inversion and LoRA; `clip` (the source's path) groups entries in lists."""

    def write(folder: Path) -> None:
        save_inversion(inversion, folder / INVERSION_FILE)
        if lora_file is not None:
            (folder / LORA_FILE).write_bytes(lora_file.read_bytes())

    meta = {"kind": "window", "frames": inversion.trajectory[0].shape[1], "clip": clip}
    return cache.put(key, write, meta)


def checkpoint_dir(cache: ArtifactCache, key: str) -> Path:
    """Where a window's LoRA training checkpoints live until its entry is stored."""
    return cache.root / "checkpoints" / key
