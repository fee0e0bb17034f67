"""Load Stable Video Diffusion from a hub id or a local diffusers folder, on the right device."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from framerelay.errors import InvalidSpecError, ModelMissingError

log = logging.getLogger(__name__)

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Placement:
    device: torch.device
    dtype: torch.dtype


def choose_placement(device: str | None = None, dtype: str | None = None) -> Placement:
    """cuda in bf16 (fp16 where bf16 is unsupported) when available, else cpu in fp32."""
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        torch_device = torch.device(device)
    except RuntimeError as error:
        raise InvalidSpecError(f"unknown device {device!r}.", "Use cpu, cuda or cuda:N.") from error
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidSpecError(
            f"device {device!r} was asked for, but torch sees no CUDA GPU.",
            "Install a CUDA build of torch, or pass --device cpu.",
        )
    if dtype is None:
        if torch_device.type == "cuda":
            dtype = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        else:
            dtype = "fp32"
    if dtype not in DTYPES:
        raise InvalidSpecError(f"unknown dtype {dtype!r}.", f"Use one of {', '.join(DTYPES)}.")
    return Placement(torch_device, DTYPES[dtype])


def _missing_model(model: str, reason: str) -> ModelMissingError:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    if is_folder_path(model):  # not a hub id: no hub address to suggest
        return ModelMissingError(
            f"cannot load the model {model!r}: {reason}",
            "Pass --model with a diffusers folder (the one holding model_index.json), or a hub "
            "id such as stabilityai/stable-video-diffusion-img2vid.",
        )
    hint = (
        f"Download it first: `hf auth login`, accept the licence on https://huggingface.co/{model}, "
        f"then `hf download {model}`; or pass --model /path/to/a/diffusers/folder."
    )
    if offline:
        hint = "HF_HUB_OFFLINE is set, so nothing is downloaded. " + hint
    return ModelMissingError(f"cannot load the model {model!r}: {reason}", hint)


def is_folder_path(model: str) -> bool:
    """A path rather than a hub id (`owner/name`): /abs, ./rel, ~/home, or deeper than one /."""
    return (
        model.startswith((".", "/", "~"))
        or os.sep in model.strip("/").replace("/", "", 1)
        or Path(model).exists()
    )


def _reason(error: Exception | None) -> str:
    text = str(error or "unknown error")
    if "not fully cached" in text or "outgoing traffic has been disabled" in text:
        return "it is not in the local Hugging Face cache and cannot be downloaded now"
    if "gated" in text.lower() or "401" in text or "403" in text:
        return "the hub refused access (gated model: log in and accept its licence)"
    first = text.splitlines()[0]
    return first if len(first) <= 160 else first[:157] + "..."


def load_pipeline(model: str, placement: Placement, local_files_only: bool = False):
    """A StableVideoDiffusionPipeline from a folder or hub id, moved to `placement`.

    Hub ids try the `fp16` weight variant first when loading in half precision, as the SVD repos
    ship one; HF_HUB_OFFLINE / HF_HOME / HF_HUB_CACHE are honoured by huggingface_hub itself.
    """
    from diffusers import StableVideoDiffusionPipeline
    from diffusers.utils import logging as diffusers_logging

    diffusers_logging.disable_progress_bar()

    folder = Path(model).expanduser()
    if folder.exists():
        if not (folder / "model_index.json").is_file():
            raise _missing_model(
                model, "the folder has no model_index.json (not a diffusers folder)"
            )
        source = str(folder)
    elif is_folder_path(model):
        raise _missing_model(model, "no such folder")
    else:
        source = model
    variants = (
        ["fp16", None] if placement.dtype != torch.float32 and not folder.exists() else [None]
    )
    pipe = None
    last_error: Exception | None = None
    for variant in variants:
        try:
            pipe = StableVideoDiffusionPipeline.from_pretrained(
                source, dtype=placement.dtype, variant=variant, local_files_only=local_files_only
            )
            break
        except (OSError, ValueError) as error:  # hub errors derive from OSError
            last_error = error
            log.debug("loading %s (variant %s) failed: %s", source, variant, error)
    if pipe is None:
        raise _missing_model(model, _reason(last_error)) from last_error
    if placement.dtype == torch.float16 and pipe.vae.config.get("force_upcast", False):
        pipe.vae.to(torch.float32)  # SVD's VAE overflows in fp16
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(placement.device)
