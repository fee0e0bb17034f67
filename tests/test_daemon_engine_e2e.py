"""The tiny real engine (random SVD weights, CPU) through the daemon, end to end; and the
executor's side of the engine seam."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import SimpleNamespace

import av
import pytest

from framerelay.engine.request import EditRequest, EditResult
from framerelay.jobs.engine_executor import EngineExecutor
from framerelay.jobs.fake_executor import write_test_video
from framerelay.progress import Progress
from framerelay.proto.v1 import specs_pb2
from tests.daemon_harness import clip_spec, kinds, make_media, running_daemon, wait_for


@pytest.mark.slow
def test_the_tiny_real_engine_runs_a_job_through_the_daemon(tmp_path, tiny_model_dir):
    source, edited = make_media(tmp_path / "media", frames=8)
    spec = clip_spec(
        source,
        edited,
        frames=4,
        params=specs_pb2.EditParams(
            height=64, width=64, steps=2, window=4, lora_steps=2, lora_rank=4
        ),
        output=specs_pb2.OutputSpec(format=specs_pb2.OUTPUT_FORMAT_MP4),
    )
    executor = EngineExecutor(default_model=str(tiny_model_dir), device="cpu", dtype="fp32")
    with running_daemon(tmp_path, executor) as (_, client):
        before = client.status()
        job = client.submit(spec)
        events = list(client.watch(job.id))
        warm = client.status()

    assert kinds(events)[-1] == "finished", events[-1]
    phases = {e.progress.phase for e in events if e.WhichOneof("kind") == "progress"}
    assert {"decode", "load", "lora", "invert", "edit", "encode"} <= phases
    (preview,) = [e.preview for e in events if e.WhichOneof("kind") == "preview"]
    assert preview.png.startswith(b"\x89PNG") and (preview.width, preview.height) == (64, 64)
    result = events[-1].finished
    assert result.preset in ("local", "style", "shape")  # auto, resolved by the engine
    assert result.frame_count == 4 and (result.fps.num, result.fps.den) == (24, 1)
    assert (result.width, result.height) == (64, 64)
    assert Path(result.output_paths[0]) == Path(job.output_paths[0])
    with av.open(result.output_paths[0]) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.average_rate == Fraction(24)
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3)
    assert not before.model_loaded and before.device == "cpu"
    assert warm.model_loaded and warm.model == str(tiny_model_dir) and warm.device == "cpu"


@pytest.mark.slow
def test_a_job_longer_than_one_window_runs_as_chained_windows(tmp_path, tiny_model_dir):
    source, edited = make_media(tmp_path / "media", frames=8)
    params = specs_pb2.EditParams(height=64, width=64, window=4, steps=2, lora_steps=1, lora_rank=2)
    spec = clip_spec(source, edited, frames=8, params=params)
    executor = EngineExecutor(default_model=str(tiny_model_dir), device="cpu")
    with running_daemon(tmp_path, executor) as (_, client):
        job = client.submit(spec)
        events = list(client.watch(job.id))
    assert kinds(events)[-1] == "finished", events[-1]
    assert events[-1].finished.frame_count == 8
    clips = {e.progress.clips for e in events if e.WhichOneof("kind") == "progress"}
    assert 3 in clips  # windows [0, 4), [3, 7), [6, 8)


class CpuDevice:
    type = "cpu"

    def __str__(self) -> str:
        return "cpu"


class RecordingEngine:
    """Stands in for framerelay.engine.run.Engine to check the executor's side of the seam."""

    def __init__(self, model: str, device: str | None, dtype: str | None, calls: list):
        self.model, self.device, self.dtype, self.loaded = model, device, dtype, False
        self.placement = SimpleNamespace(device=CpuDevice())
        self.loads = 0
        self.calls = calls

    def matches(self, model: str, device: str | None, dtype: str | None) -> bool:
        return (self.model, self.device, self.dtype) == (model, device, dtype)

    def unload(self) -> None:
        self.loaded = False

    def edit(self, request, progress, cancel, preview) -> EditResult:
        self.calls.append((request, self))
        progress(Progress("load", 0, 1))
        if not self.loaded:
            self.loaded, self.loads = True, self.loads + 1
        progress(Progress("load", 1, 1))
        for step in (1, 2):
            cancel.raise_if_cancelled()
            progress(Progress("edit", step, 2))
        for output in request.outputs:
            write_test_video(output, request.output_format, 3, Fraction(25), (64, 64))
        return EditResult(request.outputs, 3, Fraction(25), (64, 64), "local")


def test_the_engine_executor_keeps_one_engine_warm_and_unloads_it_when_idle(tmp_path):
    calls: list[tuple[EditRequest, RecordingEngine]] = []

    def engine_factory(model: str, device: str | None, dtype: str | None) -> RecordingEngine:
        return RecordingEngine(model, device, dtype, calls)

    source, edited = make_media(tmp_path / "media")
    executor = EngineExecutor(default_model="hub/svd", device="cpu", engine_factory=engine_factory)
    with running_daemon(tmp_path, executor, idle_unload_s=0.5) as (_, client):
        idle = client.status()
        first = client.submit(clip_spec(source, edited, frames=3))
        events = list(client.watch(first.id))
        warm = client.status()
        second = client.submit(clip_spec(source, edited, frames=3, model="other/svd"))
        list(client.watch(second.id))
        wait_for(lambda: not client.status().model_loaded, timeout=5)

    assert (idle.model_loaded, idle.device) == (False, "cpu")
    assert (warm.model_loaded, warm.model, warm.device) == (True, "hub/svd", "cpu")
    assert kinds(events)[-1] == "finished" and events[-1].finished.frame_count == 3
    (request, engine), (other_request, other_engine) = calls
    assert request.model == "hub/svd" and request.device == "cpu"
    assert not request.overwrite  # a first attempt of a job that did not ask to overwrite
    assert request.frame_range == (0, 3) and request.frame_rate == Fraction(24)
    assert other_request.model == "other/svd" and other_engine is not engine
    assert not engine.loaded and not other_engine.loaded
    assert engine.loads == other_engine.loads == 1
