"""The tiny real engine (random SVD weights, CPU) through the daemon, end to end."""

from __future__ import annotations

import importlib.util
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType

import av
import pytest
from framerelay.engine.request import EditRequest, EditResult
from framerelay.jobs.engine_executor import EngineExecutor
from framerelay.jobs.fake_executor import write_test_video
from framerelay.progress import Progress
from framerelay.proto.v1 import specs_pb2

from tests.daemon_harness import clip_spec, kinds, make_media, running_daemon, wait_for

ENGINE_READY = importlib.util.find_spec("framerelay.engine.run") is not None


@pytest.mark.slow
@pytest.mark.skipif(
    not ENGINE_READY,
    reason="framerelay.engine.run is not in this branch yet; the lead enables this after the merge",
)
def test_the_tiny_real_engine_runs_a_job_through_the_daemon(tmp_path):
    from framerelay.engine.tiny import save_tiny_pipeline

    model = save_tiny_pipeline(tmp_path / "tiny-svd")
    source, edited = make_media(tmp_path / "media", frames=8)
    spec = clip_spec(
        source,
        edited,
        frames=4,
        params=specs_pb2.EditParams(height=64, width=64, steps=2, window=4),
        output=specs_pb2.OutputSpec(format=specs_pb2.OUTPUT_FORMAT_MP4),
    )
    executor = EngineExecutor(default_model=str(model), device="cpu", dtype="fp32")
    with running_daemon(tmp_path, executor) as (_, client):
        before = client.status()
        job = client.submit(spec)
        events = list(client.watch(job.id))
        after = client.status()

    assert kinds(events)[-1] == "finished", events[-1]
    phases = [e.progress.phase for e in events if e.WhichOneof("kind") == "progress"]
    assert phases[0] == "load" and "edit" in phases and "encode" in phases
    result = events[-1].finished
    assert result.frame_count == 4 and (result.fps.num, result.fps.den) == (24, 1)
    with av.open(result.output_paths[0]) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.average_rate == Fraction(24)
    assert len(frames) == 4 and frames[0].shape == (64, 64, 3)
    assert Path(result.output_paths[0]) == Path(job.output_paths[0])
    assert not before.model_loaded and after.model_loaded and after.device == "cpu"


class RecordingEngine(ModuleType):
    """Stands in for framerelay.engine.run to check the executor's side of the seam."""

    def __init__(self) -> None:
        super().__init__("framerelay.engine.run")
        self.requests: list[EditRequest] = []

    def run_edit(self, request: EditRequest, progress, cancel) -> EditResult:
        self.requests.append(request)
        for step in (1, 2):
            cancel.raise_if_cancelled()
            progress(Progress("edit", step, 2))
        for output in request.outputs:
            write_test_video(output, request.output_format, 3, Fraction(25), (64, 64))
        return EditResult(request.outputs, 3, Fraction(25), (64, 64), "local")


def test_the_engine_executor_imports_the_engine_on_the_first_job_only(tmp_path, monkeypatch):
    engine = RecordingEngine()
    monkeypatch.delitem(sys.modules, "framerelay.engine.run", raising=False)
    source, edited = make_media(tmp_path / "media")
    executor = EngineExecutor(default_model="hub/svd", device="cpu")
    with running_daemon(tmp_path, executor, idle_unload_s=0.3) as (_, client):
        idle = client.status()
        monkeypatch.setitem(sys.modules, "framerelay.engine.run", engine)
        job = client.submit(clip_spec(source, edited, frames=3))
        events = list(client.watch(job.id))
        wait_for(lambda: not client.status().model_loaded, timeout=5)

    assert (idle.model_loaded, idle.device) == (False, "cpu")
    phases = [(e.progress.phase, e.progress.step) for e in events if e.HasField("progress")]
    assert phases == [("load", 0), ("load", 1), ("edit", 1), ("edit", 2)]
    assert events[-1].finished.frame_count == 3
    (request,) = engine.requests
    assert request.model == "hub/svd" and request.device == "cpu"
    assert request.start == 0 and request.end == pytest.approx(3 / 24)
