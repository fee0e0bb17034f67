"""Device and host memory: what fits where, and the training switches that make it fit.

The figures behind the constants here come from `bench/real_size.py` (FLOPs, bytes and peaks of
the real SVD at 576x1024 under fake tensors), recorded in bench/RESULTS.md.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.utils.checkpoint

log = logging.getLogger(__name__)

GIB = 2**30

# Activation peaks (weights excluded) that bench/real_size.py measured at 576x1024x14 in bf16:
# VAE decode of 8 frames 9.8 GB; an inline matched edit call 7.0 GB; a skip-interval capture (the
# anchor's replayed call plus its K/V, kept for the window's own call) 11.4 GB (9.9 GB since the
# capture keeps only the rows the window uses; the reserve keeps the larger figure). With headroom,
# per decoded pixel-frame and byte of the VAE dtype, and per latent element of one branch in bf16:
DECODE_BYTES_PER_PIXEL_FRAME = 0.65e9 / (576 * 1024)
EDIT_CALL_BYTES_PER_LATENT = 12.1e9 / (14 * 4 * 72 * 128)
# Host memory a source store leaves to everything else (the OS, the decoder, other programs).
HOST_RESERVE_FRACTION = 0.25
HOST_RESERVE_MIN = 4 * GIB


# -- training -------------------------------------------------------------------------------------


def temporal_blocks(unet: torch.nn.Module) -> list[torch.nn.Module]:
    """Every TemporalBasicTransformerBlock of an SVD UNet (the blocks that carry the motion LoRA)."""
    return [m for m in unet.modules() if type(m).__name__ == "TemporalBasicTransformerBlock"]


@contextlib.contextmanager
def checkpoint_temporal_blocks(unet: torch.nn.Module, active: bool = True) -> Iterator[None]:
    """Recompute each temporal transformer block in the backward pass instead of keeping its
    activations.

    diffusers' gradient checkpointing covers the resnets and the spatial transformer blocks but not
    the temporal ones, which carry the LoRA and so keep every activation for backward: at 576x1024
    one training step then needs 56 GB (bench/real_size.py). Non-reentrant checkpointing replays
    the block with the same RNG state (LoRA dropout draws the same mask), so the gradients equal
    those of an uncheckpointed step.
    """
    if not active:
        yield
        return
    blocks = temporal_blocks(unet)
    for block in blocks:
        block.forward = _checkpointed(block.forward)
    try:
        yield
    finally:
        for block in blocks:
            block.__dict__.pop("forward", None)


def _checkpointed(forward):
    def run(*args, **kwargs):
        if not torch.is_grad_enabled():
            return forward(*args, **kwargs)
        return torch.utils.checkpoint.checkpoint(forward, *args, use_reentrant=False, **kwargs)

    return run


@contextlib.contextmanager
def lora_in_compute_dtype(unet: torch.nn.Module, active: bool) -> Iterator[None]:
    """Under autocast, run the LoRA branch in the autocast dtype.

    peft casts a LoRA layer's input to its weight's dtype; with fp32 master weights that upcasts
    every adapted activation to fp32 (and its dropout mask and autocast's bf16 copy are kept for
    backward too). With the cast off, autocast runs the branch in bf16/fp16 from a cached cast of
    the fp32 weights, and the optimiser still updates the fp32 weights.
    """
    if not active:
        yield
        return
    from peft.helpers import disable_input_dtype_casting

    with disable_input_dtype_casting(unet):
        yield


@contextlib.contextmanager
def off_device(modules, active: bool = True, host: torch.device | str = "cpu") -> Iterator[None]:
    """Move modules a phase does not use (the VAE and CLIP while the LoRA trains: 1.5 GB in bf16)
    to host memory, and back afterwards."""
    if not active:
        yield
        return
    places = [(module, next(module.parameters()).device) for module in modules]
    for module, _ in places:
        module.to(host)
    try:
        yield
    finally:
        for module, device in places:
            module.to(device)


# -- VAE decode -----------------------------------------------------------------------------------


def decode_bytes(frames: int, height: int, width: int, dtype: torch.dtype) -> int:
    """Estimated activation peak of decoding `frames` frames of height x width pixels at once."""
    size = torch.empty((), dtype=dtype).element_size()
    return int(DECODE_BYTES_PER_PIXEL_FRAME * height * width * frames * size)


def decode_chunk_that_fits(
    requested: int, height: int, width: int, dtype: torch.dtype, free_bytes: int | None
) -> int:
    """The largest chunk <= requested whose decode fits `free_bytes` (None: no limit, e.g. CPU).

    The temporal decoder mixes frames within a chunk, so a smaller chunk changes the output
    slightly; it is only reduced where the requested one would not fit.
    """
    if free_bytes is None:
        return requested
    per_frame = decode_bytes(1, height, width, dtype)
    return max(1, min(requested, free_bytes // max(1, per_frame)))


def device_free_bytes(device: torch.device) -> int | None:
    """Free memory on a CUDA device, counting what torch's allocator holds but does not use;
    None elsewhere."""
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    reserved = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    return free + reserved


# -- the source store -----------------------------------------------------------------------------


def host_available_bytes() -> int:
    """RAM that can be used without swapping (psutil; /proc/meminfo or sysconf as fallbacks)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except ImportError:  # pragma: no cover - psutil is an engine dependency
        pages = os.sysconf("SC_AVPHYS_PAGES") if hasattr(os, "sysconf") else 0
        return int(pages * os.sysconf("SC_PAGE_SIZE")) if pages else 0


def edit_call_bytes(frames: int, latent_height: int, latent_width: int, dtype: torch.dtype) -> int:
    """Estimated device memory the editing calls need for activations (the largest: a skip-interval
    capture followed by the window's own call)."""
    size = torch.empty((), dtype=dtype).element_size() / 2  # calibrated in bf16
    return int(EDIT_CALL_BYTES_PER_LATENT * frames * 4 * latent_height * latent_width * size)


@dataclass(frozen=True)
class StoreBudget:
    """Where the source-branch data may go: the device first, then (pinned) host memory."""

    device_bytes: int
    host_bytes: int

    @property
    def total(self) -> int:
        return self.device_bytes + self.host_bytes

    def describe(self) -> str:
        return f"{self.device_bytes / GIB:.1f} GiB on the device, {self.host_bytes / GIB:.1f} GiB in host memory"


def default_store_budget(
    device: torch.device,
    frames: int,
    latent_height: int,
    latent_width: int,
    dtype: torch.dtype,
    decode_chunk: int,
    host_available: int | None = None,
    device_free: int | None = None,
    decode_dtype: torch.dtype | None = None,
) -> StoreBudget:
    """The default budget, from the machine's free memory rather than a fixed size.

    Device: what is free now (weights loaded) minus what the edit calls and the decoder will need
    later in the window. Host: the available RAM minus a reserve (a quarter, at least 4 GiB). On
    the CPU the device is the host, so everything goes to the host budget.
    """
    host_available = host_available_bytes() if host_available is None else host_available
    reserve = max(HOST_RESERVE_MIN, int(HOST_RESERVE_FRACTION * host_available))
    host = max(0, host_available - reserve)
    if device.type != "cuda":
        return StoreBudget(0, host)
    device_free = device_free_bytes(device) if device_free is None else device_free
    needed = max(
        edit_call_bytes(frames, latent_height, latent_width, dtype),
        decode_bytes(decode_chunk, latent_height * 8, latent_width * 8, decode_dtype or dtype),
    )
    margin = GIB  # the allocator's fragmentation and the CUDA context's growth
    return StoreBudget(max(0, (device_free or 0) - needed - margin), host)


def steps_message(kept: int, steps: int, nbytes: int, budget: StoreBudget) -> str:
    """The line that says how much of the source branch the store kept."""
    if kept >= steps:
        head = f"source attention kept for all {steps} steps"
    else:
        head = (
            f"source attention kept for {kept} of {steps} steps "
            f"(the other {steps - kept} recompute the source branch)"
        )
    return f"{head}: {nbytes / GIB:.2f} GiB (budget {budget.describe()})"
