"""Switchable faster paths for the loaded pipeline. All are off by default: the default path stays
bit for bit what it was on the CPU.

* ``compile``: `torch.compile` of the UNet in place (the module object stays the same, so the
  attention processors, the LoRA and the hooks keep working). The matching processors read
  per-call state from the controller, set before each UNet call, so a compiled UNet neither breaks
  its graph nor recompiles per step; it compiles once per kind of call (plain, record, edit per
  stage, from the store or inline).
* ``channels_last``: 2-D convolution weights in channels-last layout (faster cuDNN kernels on
  tensor cores; the temporal Conv3d layers keep their layout).

Attention already runs through fused SDPA everywhere it can (flash / memory-efficient kernels on
CUDA); the only explicit attention products left are the temporal F x F maps the store keeps and
injects, and the spatial mask, which is fused on CUDA (`fused_mask`). The draft mode is a job
setting (`EngineParams.draft`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Speedups:
    compile: bool = False
    channels_last: bool = False

    @classmethod
    def from_env(cls) -> Speedups:
        """FRAMERELAY_COMPILE=1, FRAMERELAY_CHANNELS_LAST=1 (for the daemon and the CLI alike)."""

        def flag(name: str) -> bool:
            return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}

        return cls(flag("FRAMERELAY_COMPILE"), flag("FRAMERELAY_CHANNELS_LAST"))


def apply(pipe, speedups: Speedups) -> None:
    if speedups.channels_last:
        for module in pipe.unet.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.weight.data = module.weight.data.to(memory_format=torch.channels_last)
        log.info("UNet convolutions in channels-last layout")
    if speedups.compile:
        pipe.unet.compile(dynamic=False)
        log.info("UNet compiled with torch.compile (first calls of each kind compile)")
