"""A job's window analyses as tasks for other workers (docs/scale.md). Torch-free: the daemon
hands these around without the engine.

A window's analysis (motion LoRA + inversion) is what its artifact-cache entry holds, and it
depends only on the window's frames, the parameters and, with skip-interval, the anchor's entry.
So other workers can compute entries ahead of the editing chain, which then loads them as cache
hits: window 0 (the anchor) first, windows 1..n in parallel.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from framerelay.engine.request import EditRequest


@dataclass(frozen=True)
class WindowTask:
    """One window's analysis, computed into the artifact cache under `key`."""

    job_id: str
    index: int  # the window's place in the job, 0 = the anchor
    windows: int  # how many windows the job has
    key: str  # the cache entry it produces (artifacts.window_key)
    anchor_key: str | None  # the entry it needs first (skip-interval), else None
    frames: Path  # .npy, float32 (F, 3, H, W): the window's frames on the model's canvas
    request: EditRequest | None  # model, parameters and cache folder (None for the fake executor)
    dtype: str  # the chain's compute dtype: part of the key, so helpers compute in it too

    @property
    def id(self) -> str:
        return f"{self.job_id}:{self.index}"


class WindowHooks(Protocol):
    """What `run_edit` tells a pool about its windows, and waits for."""

    def ready(self, index: int, key: str) -> None:
        """Returns once window `index` is in the cache or is this process's to compute; waits
        while a helper computes it. Raises when the job must stop (cancel, cluster gone)."""
        ...

    def analysed(self, index: int, key: str) -> None:
        """This process stored window `index`'s entry (later windows may depend on it)."""
        ...
