"""The same result wherever it ran (docs/scale.md): a job's frames are bit-identical on the CPU
whether its windows were analysed in one process, by the helpers of a pool of local worker
processes, or on a Ray cluster; and the windows analysed elsewhere come back through the cache.

Tiny random model, a 10-frame clip in three windows of 4 (overlap 1, skip-interval on), PNG
outputs compared exactly; the source clip is made once (an x264 re-encode is another input)."""

from __future__ import annotations

import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from framerelay.jobs.engine_executor import EngineExecutor, edit_request_for
from framerelay.jobs.executor import Execution
from framerelay.jobs.pool import PoolExecutor
from framerelay.jobs.ray_backend import CRASH_ONCE_ENV
from framerelay.jobs.slot_process import RuntimeSpec, SlotSpec
from framerelay.jobs.spec import JobSpec, ParamOverrides
from framerelay.jobs.workers import ENGINE_RUNTIME, RAY_RUNTIME
from framerelay.media.image import load_image
from framerelay.progress import CancelToken, Progress
from tests.media_factory import make_clip, pattern_frame, write_image

pytestmark = pytest.mark.slow

WINDOWS = 3
PARAMS = ParamOverrides(height=64, width=128, steps=3, window=4, lora_steps=2, lora_rank=4)


class Reports:
    """A reporter that keeps the progress reports."""

    def __init__(self) -> None:
        self.reports: list[Progress] = []

    def progress(self, progress: Progress) -> None:
        self.reports.append(progress)

    def preview(self, *args) -> None:
        pass

    def cached(self) -> set[tuple[int, str]]:
        return {(p.clip, p.phase) for p in self.reports if p.message == "cached"}


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> JobSpec:
    root = tmp_path_factory.mktemp("media")
    source = make_clip(root / "src.mp4", n=10, width=96, height=64, fps=Fraction(24))
    frame = pattern_frame(0, 96, 64).copy()
    frame[10:30, 20:50] = (255, 0, 0)
    edited = write_image(root / "edit.png", frame)
    return JobSpec(source, (edited,), preset="local", params=PARAMS, output_format="png")


def execution(spec: JobSpec, folder: Path) -> Execution:
    return Execution(folder.name, spec, (folder / "frames",), folder / "work", 1)


def frames_of(folder: Path) -> np.ndarray:
    files = sorted(folder.glob("frame_*.png"))
    assert len(files) == 10, f"{len(files)} frames in {folder}"
    return np.stack([load_image(f) for f in files])


def engine_runtime(model_dir: Path, cache: Path) -> RuntimeSpec:
    kwargs = {"default_model": str(model_dir), "device": "cpu", "dtype": "fp32", "cache_dir": cache}
    return RuntimeSpec(ENGINE_RUNTIME, kwargs)


def run_job(executor, spec: JobSpec, folder: Path) -> tuple[np.ndarray, Reports]:
    reports = Reports()
    executor.execute(execution(spec, folder), reports, CancelToken())
    return frames_of(folder / "frames"), reports


@pytest.fixture(scope="module")
def reference(tiny_model_dir, spec, tmp_path_factory) -> np.ndarray:
    """One process analysed and edited every window."""
    root = tmp_path_factory.mktemp("one")
    executor = EngineExecutor(str(tiny_model_dir), "cpu", "fp32", root / "cache")
    frames, reports = run_job(executor, spec, root / "job")
    assert reports.cached() == set()
    return frames


def assert_identical(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    differing = int((a != b).reshape(len(a), -1).any(axis=1).sum())
    assert differing == 0, f"{differing} of {len(a)} frames differ, by up to {np.abs(a - b).max()}"


def analysed_elsewhere(reports: Reports) -> None:
    """The chain computed the anchor itself and found windows 2.. in the cache."""
    later = {(clip, phase) for clip in range(2, WINDOWS + 1) for phase in ("lora", "invert")}
    assert reports.cached() == later


def test_windows_analysed_by_local_workers_give_the_same_frames(
    tiny_model_dir, spec, reference, tmp_path
):
    runtime = engine_runtime(tiny_model_dir, tmp_path / "cache")
    pool = PoolExecutor([SlotSpec(f"cpu {i}", runtime) for i in range(2)])
    try:
        frames, reports = run_job(pool, spec, tmp_path / "job")
    finally:
        pool.close()
    analysed_elsewhere(reports)
    assert_identical(frames, reference)


def test_windows_analysed_on_a_ray_cluster_give_the_same_frames(
    tiny_model_dir, spec, reference, tmp_path, monkeypatch, ray_installed
):
    """A local two-CPU Ray cluster; the first task's worker dies and Ray runs it again; the
    entries come back into the daemon's cache, where a re-edit finds them all."""
    ray_tmp = Path(tempfile.mkdtemp(prefix="fr-ray-", dir="/tmp"))  # short: Ray's sockets
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    crashed = tmp_path / "crashed-once"
    monkeypatch.setenv(CRASH_ONCE_ENV, str(crashed))
    cache = tmp_path / "cache"
    ray = RuntimeSpec(
        RAY_RUNTIME, {"address": "local:2", "gpus_per_task": 0, "cache_dir": cache}, True
    )
    pool = PoolExecutor(
        [
            SlotSpec("cpu", engine_runtime(tiny_model_dir, cache), helps=False),
            SlotSpec("ray", ray, runs_jobs=False),
        ]
    )
    try:
        frames, reports = run_job(pool, spec, tmp_path / "job")
    finally:
        pool.close()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    analysed_elsewhere(reports)
    assert crashed.exists()  # a Ray worker died during the job, and Ray ran its task again
    assert_identical(frames, reference)

    from framerelay.cache import ArtifactCache
    from framerelay.engine import run

    store = ArtifactCache(cache)
    for entry in store.ls():  # the takes: the re-edit edits again from the analyses alone
        if entry.kind == "take":
            store.remove(entry.key)
    request = edit_request_for(execution(spec, tmp_path / "again"), str(tiny_model_dir), "cpu",
                               "fp32", cache)  # fmt: skip
    result = run.run_edit(request, engine=run.Engine(str(tiny_model_dir), "cpu", "fp32"))
    assert (result.cache_hits, result.lora_steps_run, result.work["inversions"]) == (WINDOWS, 0, 0)
    assert_identical(frames_of(tmp_path / "again" / "frames"), reference)
