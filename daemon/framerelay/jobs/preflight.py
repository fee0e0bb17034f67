"""Before a job is queued: what it will take on this machine, and a refusal when it cannot fit.

The estimate is `framerelay.engine.estimate`'s accounting model scaled to the job. Its times use
this machine's measured speed: after every finished job the worker records how fast each phase
ran (FLOPs of the work done over the seconds it took) in `machine.json` in the daemon's data
folder, with the GPU's memory once the engine has seen it; the daemon reads the file back at
start. Torch-free.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from framerelay.engine import estimate as est
from framerelay.errors import DiskFullError, FramerelayError, OutOfMemoryError
from framerelay.files import write_atomic
from framerelay.jobs.spec import ClipInfo, JobSpec

log = logging.getLogger(__name__)

MACHINE_FILE = "machine.json"
FORMAT = 1
FULL_DISK = 16 * 2**20  # below this much free space a disk counts as full, not too small
KEEP = 0.5  # weight of the speeds kept when a new job is measured (a running average)


@dataclass
class Machine:
    """What the daemon learnt about its machine."""

    device: str = ""  # cuda:0, cpu; empty until a job ran
    gpu_total_bytes: int = 0
    speeds: dict[str, dict[str, float]] = field(default_factory=dict)  # key -> phase -> FLOP/s
    jobs: int = 0  # measured jobs


def speed_key(device: str, model: str) -> str:
    return f"{device.split(':')[0]}|{model}"


def model_key(spec: JobSpec) -> str:
    """The model a job runs, as the speeds are kept: "default" for the default model."""
    from framerelay.engine.params import DEFAULT_MODEL

    return "default" if spec.model in ("", DEFAULT_MODEL) else spec.model


class MachineRecord:
    """`machine.json`: read at start, written (atomically) after each measured job."""

    def __init__(self, folder: Path):
        self.path = folder / MACHINE_FILE
        self._lock = threading.Lock()
        self.machine = self._read()

    def _read(self) -> Machine:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return Machine()
        except (OSError, ValueError) as error:
            log.warning("ignoring %s (%s); speeds are measured again", self.path, error)
            return Machine()
        if data.get("format") != FORMAT:
            return Machine()
        return Machine(
            device=str(data.get("device", "")),
            gpu_total_bytes=int(data.get("gpu_total_bytes", 0)),
            speeds={k: {p: float(v) for p, v in s.items()} for k, s in data["speeds"].items()},
            jobs=int(data.get("jobs", 0)),
        )

    def _write(self) -> None:
        machine = self.machine
        data: dict[str, Any] = {
            "format": FORMAT,
            "device": machine.device,
            "gpu_total_bytes": machine.gpu_total_bytes,
            "speeds": machine.speeds,
            "jobs": machine.jobs,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, json.dumps(data, indent=1).encode("utf-8"))

    def speeds(self, device: str, model: str) -> dict[str, float] | None:
        with self._lock:
            return dict(self.machine.speeds.get(speed_key(device, model), {})) or None

    def record(
        self,
        shape: est.JobShape,
        model: str,
        device: str,
        gpu_total_bytes: int,
        seconds: dict[str, float],
        work: dict[str, int],
    ) -> None:
        """Keeps the speeds a finished job showed; a failure to write is logged, not raised."""
        measured = est.measured_speeds(shape, seconds, work)
        with self._lock:
            machine = self.machine
            machine.device = device or machine.device
            machine.gpu_total_bytes = gpu_total_bytes or machine.gpu_total_bytes
            kept = machine.speeds.setdefault(speed_key(device, model), {})
            for phase, speed in measured.items():
                kept[phase] = (
                    speed if phase not in kept else KEEP * kept[phase] + (1 - KEEP) * speed
                )
            machine.jobs += 1
            try:
                self._write()
            except (OSError, FramerelayError) as error:  # a full disk among them
                log.warning("could not keep this machine's speeds in %s: %s", self.path, error)


def shape_of(spec: JobSpec, clip: ClipInfo | None) -> est.JobShape:
    params = spec.engine_params()
    if clip is not None:
        count = clip.frame_count
    elif spec.frame_range is not None:
        count = spec.frame_range.count
    else:
        count = params.window
    width, height = (clip.width, clip.height) if clip is not None else (1920, 1080)
    frames = spec.edited_frame_indices
    one_take = len(set(frames)) > 1
    return est.JobShape(
        frame_count=count,
        keyframes=tuple(sorted(set(frames))),
        edits=max(1, len(spec.edited_frames)),
        height=params.height,
        width=params.width,
        window=params.window,
        overlap=params.overlap,
        steps=params.steps,
        lora_steps=params.lora.steps,
        lora_rank=params.lora.rank,
        lora_height=params.lora.height,
        lora_width=params.lora.width,
        skip_interval=params.skip_interval,
        decode_chunk=params.decode_chunk_size,
        source_width=width,
        source_height=height,
        output_format=spec.output_format,
        deep=clip.deep if clip is not None else False,
        outputs=1 if one_take else max(1, len(spec.edited_frames)),
    )


@dataclass(frozen=True)
class Preflight:
    estimate: est.Estimate
    gpu_total_bytes: int  # 0: not known (no GPU, or none seen yet)


def check(
    spec: JobSpec,
    clip: ClipInfo | None,
    record: MachineRecord,
    model: str,
    device: str,
    gpu_total_bytes: int,
    output_folder: Path,
    cache_folder: Path | None,
) -> Preflight:
    """The estimate for `spec`; refuses (OutOfMemoryError, DiskFullError) a job that cannot fit.

    `device` is the executor's ("auto" before anything loaded: the recorded one then); VRAM is
    checked only against a known CUDA GPU.
    """
    machine = record.machine
    if device in ("", "auto"):
        device = machine.device or "auto"
    gpu_total = gpu_total_bytes or (machine.gpu_total_bytes if device.startswith("cuda") else 0)
    speeds = record.speeds(device, model)
    shape = shape_of(spec, clip)
    estimate = est.estimate(shape, speeds, gpu=device != "cpu")
    if gpu_total and device.startswith("cuda"):
        problem = est.vram_problem(estimate, gpu_total)
        if problem is not None:
            raise OutOfMemoryError(*problem)
    check_disk(estimate, output_folder, cache_folder)
    return Preflight(estimate, gpu_total)


def check_disk(estimate: est.Estimate, output_folder: Path, cache_folder: Path | None) -> None:
    needs: dict[Path, float] = {}
    for folder, size in (
        (output_folder, estimate.output_bytes),
        (cache_folder, estimate.cache_bytes),
        (Path(os.environ.get("TMPDIR", "/tmp")), estimate.scratch_bytes),
    ):
        if folder is None or not size:
            continue
        existing = _existing(folder)
        if existing is None:
            continue
        device = existing.stat().st_dev
        key = next((f for f in needs if f.stat().st_dev == device), existing)
        needs[key] = needs.get(key, 0.0) + size
    for folder, need in needs.items():
        free = free_bytes(folder)
        if free < FULL_DISK:
            continue  # a full disk: the daemon's own handling names it and holds the queue
        problem = est.disk_problem(need, free, str(folder))
        if problem is not None:
            raise DiskFullError(*problem)


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def _existing(folder: Path) -> Path | None:
    """The folder, or its nearest existing parent (outputs go to folders made when the job runs)."""
    for candidate in (folder, *folder.parents):
        try:
            if candidate.is_dir():
                return candidate
        except OSError:
            return None
    return None
