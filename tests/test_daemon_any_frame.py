"""Issue 19 through the daemon's API: estimates and refusals at submit, the machine's kept speeds,
segments of an earlier take, edited frame indices, QC in the finished event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from framerelay.errors import DiskFullError, InvalidSpecError, OutOfMemoryError
from framerelay.jobs import preflight
from framerelay.jobs.executor import ExecutorStatus
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.proto.v1 import jobs_pb2, specs_pb2
from tests.daemon_harness import clip_spec, kinds, make_media, running_daemon

TIMINGS = ("lora", "invert", "edit", "decode")


@pytest.fixture
def media(tmp_path):
    return make_media(tmp_path / "media", frames=40)


def _finish(client, spec):
    answer = client.submit_answer(spec)
    events = list(client.watch(answer.job.id))
    assert kinds(events)[-1] == "finished", events[-1]
    return answer, events[-1].finished


def test_submit_answers_with_an_estimate_that_learns_this_machines_speed(tmp_path, media):
    source, edited = media
    spec = clip_spec(source, edited, frames=30)
    executor = FakeExecutor(step_seconds=0.01)
    with running_daemon(tmp_path, executor) as (_, client):
        first, _ = _finish(client, spec)
        estimate = first.estimate
        assert estimate.peak_vram_bytes > 10e9 and estimate.peak_phase == "edit_anchored"
        assert [p.phase for p in estimate.phases] == list(TIMINGS)
        assert not estimate.calibrated and estimate.windows == 3
        assert estimate.output_bytes > 0 and estimate.cache_bytes > 0
        second = client.submit_answer(spec).estimate
        assert second.calibrated
        assert second.total_seconds != pytest.approx(estimate.total_seconds)
    kept = json.loads((tmp_path / "data" / preflight.MACHINE_FILE).read_text())
    assert kept["device"] == "cpu" and set(kept["speeds"]["cpu|default"]) == set(TIMINGS)
    with running_daemon(tmp_path, FakeExecutor()) as (_, client):  # read back after a restart
        again = client.submit_answer(spec).estimate
        assert again.calibrated


class _GpuFake(FakeExecutor):
    """A fake whose engine has been on a GPU of `total` bytes."""

    def __init__(self, total: int, **kwargs):
        super().__init__(**kwargs)
        self.total = total

    def status(self) -> ExecutorStatus:
        return ExecutorStatus("cuda:0", True, "fake", 0, self.total)


def test_a_job_that_cannot_fit_the_gpu_is_refused_with_a_hint(tmp_path, media):
    source, edited = media
    with running_daemon(tmp_path, _GpuFake(8 * 2**30)) as (_, client):
        with pytest.raises(OutOfMemoryError) as refused:
            client.submit(clip_spec(source, edited, frames=30))
        assert "this GPU has 8" in refused.value.message
        assert refused.value.message.startswith("needs ")
        assert "fewer frames per window" in refused.value.hint
        assert list(client.list().jobs) == []
        small = specs_pb2.EditParams(height=256, width=448, lora_steps=0, skip_interval=False)
        answer = client.submit_answer(clip_spec(source, edited, frames=30, params=small))
        assert answer.estimate.gpu_total_bytes == 8 * 2**30
        assert answer.estimate.peak_vram_bytes < 8 * 2**30


def test_a_job_without_room_on_disk_is_refused(tmp_path, media, monkeypatch):
    source, edited = media

    monkeypatch.setattr(preflight, "free_bytes", lambda _folder: 50_000_000)
    refusal = pytest.raises(DiskFullError, match=r"needs .* GB of disk on .*, 50 MB are free")
    with running_daemon(tmp_path) as (_, client), refusal:
        client.submit(clip_spec(source, edited, frames=30))


def test_a_segment_reuses_the_earlier_jobs_parameters_and_starts_at_its_window(tmp_path, media):
    source, edited = media
    params = specs_pb2.EditParams(window=14, max_guidance=2.0)
    with running_daemon(tmp_path) as (_, client):
        earlier, finished = _finish(client, clip_spec(source, edited, frames=30, params=params))
        assert finished.first_frame == 0 and finished.frame_count == 30
        changed = specs_pb2.EditParams(window=14, max_guidance=3.0)
        spec = clip_spec(source, edited, frames=30, params=changed)
        del spec.edited_frame_paths[:]  # the earlier job's edited frame is used
        spec.segment.CopyFrom(specs_pb2.SegmentSpec(of_job=earlier.job.id, from_frame=20))
        answer, finished = _finish(client, spec)
        # windows [0, 14), [13, 27), [26, 30): frame 20 is first written by window 1, from 14
        assert finished.first_frame == 14 and finished.frame_count == 16
        job = client.get(answer.job.id)
        assert list(job.spec.edited_frame_paths) == [str(edited)]
        stored = spec_of(tmp_path, answer.job.id)
        assert stored["segment"]["base_params"]["max_guidance"] == 2.0
        assert stored["segment"]["base_edited_frame"] == str(edited)


def spec_of(root: Path, job_id: str) -> dict:
    from framerelay.jobs.store import JobStore

    store = JobStore(root / "data" / "jobs.sqlite3")
    try:
        return store.get(job_id).spec.to_dict()
    finally:
        store.close()


def test_segments_that_do_not_continue_a_take_are_refused(tmp_path, media):
    source, edited = media
    with running_daemon(tmp_path) as (_, client):
        earlier, _ = _finish(client, clip_spec(source, edited, frames=30))
        other = clip_spec(source, edited, frames=20)
        other.segment.CopyFrom(specs_pb2.SegmentSpec(of_job=earlier.job.id, from_frame=20))
        with pytest.raises(InvalidSpecError, match="same source and frame range"):
            client.submit(other)
        new_frame = clip_spec(source, edited, frames=30)
        new_frame.segment.CopyFrom(
            specs_pb2.SegmentSpec(of_job=earlier.job.id, from_frame=20, new_edited_frame=True)
        )
        with pytest.raises(InvalidSpecError, match="does not start a window") as refused:
            client.submit(new_frame)
        assert "frame 13 or 26" in refused.value.hint
        new_frame.segment.from_frame = 13
        assert client.submit(new_frame).state == jobs_pb2.JOB_STATE_QUEUED


def test_edited_frame_indices_and_qc_through_the_daemon(tmp_path, media):
    source, edited = media
    spec = clip_spec(source, edited, frames=12, edited_frame_indices=[5])
    with running_daemon(tmp_path) as (_, client):
        answer, finished = _finish(client, spec)
        assert list(client.get(answer.job.id).spec.edited_frame_indices) == [5]
        (report,) = finished.qc
        assert report.verdict and Path(report.sidecar_path).is_file()
        assert Path(report.sidecar_path).name == Path(finished.output_paths[0]).name + ".qc.json"
        off = clip_spec(source, edited, frames=12, params=specs_pb2.EditParams(qc=False))
        _, finished = _finish(client, off)
        assert list(finished.qc) == []
        apart = clip_spec(source, edited, frames=12, edited_frame_indices=[2, 8])
        apart.edited_frame_paths.append(str(edited))
        _, finished = _finish(client, apart)  # one take split between the two edits
        assert len(finished.output_paths) == 1 and len(finished.qc) == 1
        mixed = clip_spec(source, edited, frames=12, edited_frame_indices=[2, 2])
        mixed.edited_frame_paths.append(str(edited))
        answer = client.submit_answer(mixed)  # two takes of frame 2
        assert answer.job.state == jobs_pb2.JOB_STATE_QUEUED and len(answer.job.output_paths) == 2
        near = clip_spec(source, edited, frames=12, edited_frame_indices=[2, 3])
        near.edited_frame_paths.append(str(edited))
        with pytest.raises(InvalidSpecError, match="at least 2 apart"):
            client.submit(near)


@pytest.mark.slow
def test_the_tiny_engine_propagates_an_edit_of_frame_k_through_the_daemon(tmp_path, tiny_model_dir):
    from framerelay.jobs.engine_executor import EngineExecutor

    source, edited = make_media(tmp_path / "media", frames=10)
    params = specs_pb2.EditParams(
        height=64, width=64, steps=2, window=4, lora_steps=1, lora_rank=2, drift_strength=0.5
    )
    spec = clip_spec(source, edited, frames=9, params=params, edited_frame_indices=[4])
    spec.frame_range.in_frame = 1
    spec.frame_range.out_frame = 10
    executor = EngineExecutor(default_model=str(tiny_model_dir), device="cpu")
    with running_daemon(tmp_path, executor) as (_, client):
        earlier, finished = _finish(client, spec)
        assert finished.frame_count == 9 and finished.first_frame == 1
        (report,) = finished.qc
        sidecar = json.loads(Path(report.sidecar_path).read_text())
        assert [f["frame"] for f in sidecar["per_frame"]] == list(range(1, 10))
        assert sidecar["first_frame"][0]["frame"] == 5  # range index 4, source frame 5
        assert report.HasField("drift_after")

        segment = clip_spec(source, edited, frames=9, params=params, edited_frame_indices=[4])
        segment.frame_range.in_frame = 1
        segment.frame_range.out_frame = 10
        segment.params.max_guidance = 2.5
        segment.segment.CopyFrom(specs_pb2.SegmentSpec(of_job=earlier.job.id, from_frame=8))
        _, finished = _finish(client, segment)
        # the forward half from 4: windows [4, 8), [7, 9); window 1 writes from range index 8
        assert finished.first_frame == 1 + 8 and finished.frame_count == 1
