"""The seam between the worker and whatever runs a job: the engine, or a fake in tests.

An executor runs in the worker's thread, reports through a `Reporter`, checks the `CancelToken` at
every step boundary (raising `framerelay.errors.CancelledError`), raises catalogue errors for what
the user can fix, and returns only once every output is completely written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Protocol

from framerelay.engine.presets import PresetChoice
from framerelay.jobs.spec import JobSpec
from framerelay.progress import CancelToken, Progress


@dataclass(frozen=True)
class Execution:
    """One run of one job."""

    job_id: str
    spec: JobSpec
    outputs: tuple[Path, ...]  # where to write, one per edited frame
    work_dir: Path  # kept across restarts until the job ends: room for resumable state
    attempt: int  # 1 on the first run; more after a restart interrupted earlier runs


@dataclass(frozen=True)
class ExecutionResult:
    """What a run did; the worker publishes all of it in the finished event."""

    outputs: tuple[Path, ...]
    frame_count: int
    fps: Fraction
    size: tuple[int, int]  # (width, height)
    preset: str = ""  # the preset used, resolved when the job asked for auto; comma-separated
    preset_choices: tuple[PresetChoice, ...] = ()  # one per output: the preset and why
    seed: int = 0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    windows: int = 1
    cache_hits: int = 0  # windows whose LoRA and inversion came from the cache
    lora_steps_run: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ExecutorStatus:
    device: str  # cuda:0, cpu, or "auto" before anything is loaded
    model_loaded: bool
    model: str = ""
    vram_used_bytes: int = 0
    vram_total_bytes: int = 0


class Reporter(Protocol):
    def progress(self, progress: Progress) -> None: ...

    def preview(self, png: bytes, width: int, height: int, phase: str) -> None: ...


class Executor(Protocol):
    def execute(self, run: Execution, report: Reporter, cancel: CancelToken) -> ExecutionResult:
        """Runs one job; called from the worker's thread, one job at a time."""
        ...

    def status(self) -> ExecutorStatus:
        """Cheap and thread-safe: called from the event loop while a job runs."""
        ...

    def unload(self) -> None:
        """Frees the model after the idle time; the next job loads it again."""
        ...
