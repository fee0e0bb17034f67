"""Which worker processes the daemon runs (docs/scale.md): one per visible GPU, `--workers N` on
the CPU, and a Ray driver with `--ray`. Torch-free: GPUs are counted through NVML, the driver's
own library, so `framerelay serve` starts without importing torch."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from framerelay.errors import InvalidSpecError
from framerelay.jobs.slot_process import RuntimeSpec, SlotSpec

ENGINE_RUNTIME = "framerelay.jobs.engine_executor:EngineExecutor"
FAKE_RUNTIME = "framerelay.jobs.fake_executor:FakeExecutor"
RAY_RUNTIME = "framerelay.jobs.ray_backend:RayRuntime"


def visible_gpus() -> list[str]:
    """The NVIDIA GPUs this process may use, named as CUDA_VISIBLE_DEVICES names them."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        names = []
        for name in (part.strip() for part in listed.split(",")):
            if not name or name.startswith("-"):  # CUDA stops at the first invalid entry
                break
            names.append(name)
        return names
    return [str(i) for i in range(_nvml_device_count())]


def _nvml_device_count() -> int:
    candidates = ["libnvidia-ml.so.1", ctypes.util.find_library("nvidia-ml")]
    if sys.platform == "win32":
        system = Path(os.environ.get("SYSTEMROOT", "C:/Windows")) / "System32" / "nvml.dll"
        candidates = [str(system), "nvml.dll"]
    for name in filter(None, candidates):
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            if library.nvmlInit_v2() != 0:
                return 0
            count = ctypes.c_uint(0)
            status = library.nvmlDeviceGetCount_v2(ctypes.byref(count))
            library.nvmlShutdown()
            return count.value if status == 0 else 0
        except AttributeError:  # pragma: no cover - a library without those symbols
            return 0
    return 0


@dataclass(frozen=True)
class WorkerPlan:
    """What `framerelay serve` asked for, before it is turned into slots."""

    device: str | None = None  # --device
    dtype: str | None = None
    model: str = ""
    cache_dir: Path | None = None
    gpus: str | None = None  # --gpus: all, none, or a list like 0,2
    workers: int | None = None  # --workers: processes on the CPU
    ray: str | None = None  # --ray: an address, auto, or local (a one-machine cluster)
    ray_gpus: float = 1.0  # --ray-gpus: GPUs each Ray task requests (0: CPU workers)
    fake: dict[str, object] | None = None  # --fake: the fake executor's settings


def worker_slots(plan: WorkerPlan, gpus: list[str] | None = None) -> list[SlotSpec] | None:
    """The pool's worker processes; None when one in-process worker does (one device, no Ray).
    `gpus` defaults to the visible ones."""
    if plan.workers is not None and plan.workers < 1:
        raise InvalidSpecError(f"--workers must be at least 1, got {plan.workers}.")
    if plan.ray_gpus < 0:
        raise InvalidSpecError(f"--ray-gpus must be 0 or more, got {plan.ray_gpus}.")
    cuda = plan.device is None or plan.device.startswith("cuda")
    gpus = visible_gpus() if gpus is None else gpus
    selected = _selected_gpus(plan, gpus) if cuda else []
    if plan.device is not None and ":" in plan.device and plan.gpus is None:
        selected = []  # one named device: --device cuda:1
    if selected and plan.workers is not None:
        raise InvalidSpecError(
            "--workers runs worker processes on the CPU, but this machine uses its GPUs.",
            "Choose the GPUs with --gpus (one worker each), or add --device cpu.",
        )
    if not selected and plan.workers is None and plan.ray is None:
        return None
    if len(selected) == 1 and plan.ray is None and selected[0] == next(iter(gpus or []), None):
        return None  # the one GPU the daemon's own worker uses anyway
    cpu_workers = plan.workers or 1
    threads = str(max(1, (os.cpu_count() or 1) // cpu_workers))
    slots = []
    if selected:
        for gpu in selected:
            env = {"CUDA_VISIBLE_DEVICES": gpu, "CUDA_DEVICE_ORDER": _device_order()}
            slots.append(_slot(f"cuda:{gpu}", plan, "cuda", env))
    else:
        device = plan.device or "cpu"
        env = {} if "OMP_NUM_THREADS" in os.environ else {"OMP_NUM_THREADS": threads}
        for index in range(cpu_workers):
            slots.append(_slot(f"{device} {index + 1}/{cpu_workers}", plan, device, env))
    if plan.ray is not None:
        slots = [_no_help(slot) for slot in slots] + [_ray_slot(plan)]
    return slots


def _selected_gpus(plan: WorkerPlan, visible: list[str]) -> list[str]:
    if plan.gpus in (None, "all"):
        return visible
    if plan.gpus == "none":
        return []
    wanted = [part.strip() for part in plan.gpus.split(",") if part.strip()]
    unknown = [gpu for gpu in wanted if gpu not in visible]
    if unknown or not wanted or len(set(wanted)) != len(wanted):
        raise InvalidSpecError(
            f"--gpus {plan.gpus!r} does not name visible GPUs (visible: "
            f"{', '.join(visible) or 'none'}).",
            "Give a comma-separated list of visible GPU numbers (as nvidia-smi shows them), "
            "all, or none.",
        )
    return wanted


def _device_order() -> str:
    """GPUs numbered as nvidia-smi numbers them, unless the user chose otherwise."""
    return os.environ.get("CUDA_DEVICE_ORDER", "PCI_BUS_ID")


def _slot(name: str, plan: WorkerPlan, device: str, env: dict[str, str]) -> SlotSpec:
    if plan.fake is not None:
        return SlotSpec(name, RuntimeSpec(FAKE_RUNTIME, dict(plan.fake)), env)
    kwargs = {
        "default_model": plan.model,
        "device": device,
        "dtype": plan.dtype,
        "cache_dir": plan.cache_dir,
    }
    return SlotSpec(name, RuntimeSpec(ENGINE_RUNTIME, kwargs), env)


def _no_help(slot: SlotSpec) -> SlotSpec:
    return SlotSpec(slot.name, slot.runtime, slot.env, runs_jobs=True, helps=False)


def _ray_slot(plan: WorkerPlan) -> SlotSpec:
    kwargs = {
        "address": plan.ray,
        "gpus_per_task": plan.ray_gpus,
        "cache_dir": plan.cache_dir,
    }
    runtime = RuntimeSpec(RAY_RUNTIME, kwargs, concurrent=True)
    return SlotSpec("ray", runtime, {}, runs_jobs=False, helps=True)
