"""The daemon over gRPC: a real server on 127.0.0.1:0, temp-dir SQLite and the fake executor."""

from __future__ import annotations

import threading
import time
from fractions import Fraction
from pathlib import Path

import av
import pytest

from framerelay.errors import BusyError
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.proto.v1 import daemon_pb2, events_pb2, jobs_pb2, specs_pb2
from framerelay.service.cache import DirectoryCache
from tests.daemon_harness import clip_spec, kinds, make_media, running_daemon, wait_for


def decoded_frames(path: Path) -> tuple[int, object]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for _ in container.decode(stream)), stream.average_rate


def test_a_job_runs_to_real_outputs_and_its_events_arrive_in_order(tmp_path):
    source, edited = make_media(tmp_path / "media")
    spec = clip_spec(source, edited, frames=6, host_context={"record_frame": "86400", "track": "3"})
    spec.source_fps.num, spec.source_fps.den = 24000, 1001
    spec.output.format = specs_pb2.OUTPUT_FORMAT_MP4
    with running_daemon(tmp_path) as (_, client):
        job = client.submit(spec)
        assert job.state == jobs_pb2.JOB_STATE_QUEUED and job.position == 1
        events = list(client.watch(job.id))
        finished = client.get(job.id)

    assert kinds(events)[:2] == ["queued", "started"]
    assert kinds(events)[-1] == "finished"
    assert set(kinds(events)[2:-1]) == {"progress"}
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[2].progress.phase == "load"
    result = events[-1].finished
    assert (result.frame_count, result.fps.num, result.fps.den) == (6, 24000, 1001)
    assert list(result.output_paths) == list(job.output_paths)
    assert decoded_frames(Path(result.output_paths[0])) == (6, Fraction(24000, 1001))
    assert finished.state == jobs_pb2.JOB_STATE_FINISHED
    assert dict(finished.spec.host_context) == {"record_frame": "86400", "track": "3"}
    assert finished.last_seq == events[-1].seq


def test_a_watch_resumes_after_a_sequence_number(tmp_path):
    source, edited = make_media(tmp_path / "media")
    with running_daemon(tmp_path) as (_, client):
        job = client.submit(clip_spec(source, edited))
        everything = list(client.watch(job.id))
        tail = list(client.watch(job.id, after_seq=5))
        after_the_end = list(client.watch(job.id, after_seq=everything[-1].seq))
    assert [e.SerializeToString() for e in tail] == [e.SerializeToString() for e in everything[5:]]
    assert after_the_end == []


def test_each_edited_frame_gets_its_own_output(tmp_path):
    source, edited = make_media(tmp_path / "media")
    spec = clip_spec(source, edited, frames=4)
    spec.edited_frame_paths.append(str(edited))
    spec.output.format = specs_pb2.OUTPUT_FORMAT_PNG
    spec.output.folder = str(tmp_path / "renders")
    with running_daemon(tmp_path) as (_, client):
        job = client.submit(spec)
        result = list(client.watch(job.id))[-1].finished
    assert len(result.output_paths) == 2
    for output in result.output_paths:
        assert Path(output).parent == tmp_path / "renders"
        assert len(list(Path(output).glob("*.png"))) == 4


def test_resubmitting_a_request_id_returns_the_first_job(tmp_path):
    source, edited = make_media(tmp_path / "media")
    spec = clip_spec(source, edited, request_id="resolve-42")
    with running_daemon(tmp_path) as (_, client):
        first, again = client.submit(spec), client.submit(spec)
        listed = client.list().jobs
    assert first.id == again.id
    assert [j.id for j in listed] == [first.id]


def test_cancelling_a_queued_job_removes_it_and_the_worker_goes_on(tmp_path):
    source, edited = make_media(tmp_path / "media")
    fake = FakeExecutor(step_seconds=0.02)
    with running_daemon(tmp_path, fake) as (_, client):
        running = client.submit(clip_spec(source, edited))
        queued = client.submit(clip_spec(source, edited))
        after = client.submit(clip_spec(source, edited))
        response = client.cancel(queued.id)
        events = list(client.watch(queued.id))
        list(client.watch(after.id))
        states = {j.id: j.state for j in client.list().jobs}

    assert response.outcome == daemon_pb2.CANCEL_OUTCOME_DEQUEUED
    assert kinds(events) == ["queued", "cancelled"]
    assert events[-1].cancelled.reason == events_pb2.CANCEL_REASON_DEQUEUED
    assert events[-1].cancelled.error.hint
    assert states[running.id] == states[after.id] == jobs_pb2.JOB_STATE_FINISHED
    assert states[queued.id] == jobs_pb2.JOB_STATE_CANCELLED
    assert queued.id not in {run.job_id for run in fake.runs}


def test_cancelling_a_running_job_stops_it_within_one_step(tmp_path):
    source, edited = make_media(tmp_path / "media")
    step = 0.1
    fake = FakeExecutor(step_seconds=step)
    with running_daemon(tmp_path, fake) as (_, client):
        job = client.submit(clip_spec(source, edited))
        seen = []
        for event in client.watch(job.id):
            seen.append(event)
            if event.progress.phase == "lora" and event.progress.step == 2:
                break
        asked = time.monotonic()
        response = client.cancel(job.id)
        rest = list(client.watch(job.id, after_seq=seen[-1].seq))
        took = time.monotonic() - asked
        final = client.get(job.id)

    assert response.outcome == daemon_pb2.CANCEL_OUTCOME_INTERRUPT_REQUESTED
    assert response.job.cancel_requested
    cancelled = rest[-1].cancelled
    assert cancelled.reason == events_pb2.CANCEL_REASON_INTERRUPTED
    assert cancelled.phase == "lora"
    assert took < 2 * step + 0.5
    run = fake.runs[-1]
    steps_after = [s for s in run.steps if s[0] == "lora" and s[1] > 2]
    assert len(steps_after) <= 1 and run.reports_after_cancel <= 1
    assert final.state == jobs_pb2.JOB_STATE_CANCELLED
    assert not Path(final.output_paths[0]).exists()


def test_moving_a_job_reorders_the_queue(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    fake = FakeExecutor(gate=gate)
    with running_daemon(tmp_path, fake) as (_, client):
        first = client.submit(clip_spec(source, edited, label="first"))
        b, c, d = (client.submit(clip_spec(source, edited, label=n)) for n in "bcd")
        wait_for(lambda: client.get(first.id).state == jobs_pb2.JOB_STATE_RUNNING)
        moved = client.move(d.id, 1)
        too_far = client.move(b.id, 99)
        positions = {j.spec.label: j.position for j in client.list().jobs}
        gate.set()
        list(client.watch(b.id))
    order = [run.job_id for run in fake.runs]

    assert list(moved.queue) == [d.id, b.id, c.id]
    assert list(too_far.queue) == [d.id, c.id, b.id]
    assert moved.job.position == 1
    assert positions == {"first": 0, "d": 1, "c": 2, "b": 3}
    assert order == [first.id, d.id, c.id, b.id]


def test_list_cursor_and_queue_watch_miss_nothing(tmp_path):
    source, edited = make_media(tmp_path / "media")
    with running_daemon(tmp_path) as (_, client):
        first = client.submit(clip_spec(source, edited))
        list(client.watch(first.id))
        cursor = client.list().cursor
        stream = client._stub.WatchQueue(
            daemon_pb2.WatchQueueRequest(after_cursor=cursor), metadata=client._metadata
        )
        second = client.submit(clip_spec(source, edited))
        expected = list(client.watch(second.id))
        seen = []
        for response in stream:
            seen.append(response.event)
            if response.event.WhichOneof("kind") == "finished":
                break
        stream.cancel()
    assert [e.SerializeToString() for e in seen] == [e.SerializeToString() for e in expected]
    assert seen[0].cursor == cursor + 1


def _quiet_last_seq(client, job_id: str) -> int:
    """The job's last event seq once no new event has come for 0.3 s."""
    last = client.get(job_id).last_seq
    while True:
        time.sleep(0.3)
        now = client.get(job_id).last_seq
        if now == last:
            return last
        last = now


def test_poll_waits_for_events_and_says_when_the_job_ended(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    fake = FakeExecutor(gate=gate)
    with running_daemon(tmp_path, fake) as (_, client):
        job = client.submit(clip_spec(source, edited))
        wait_for(lambda: client.get(job.id).state == jobs_pb2.JOB_STATE_RUNNING)
        last = _quiet_last_seq(client, job.id)  # the executor now waits at the gate
        threading.Timer(0.3, gate.set).start()
        started = time.monotonic()
        waited = client._call(
            client._stub.PollJob,
            daemon_pb2.PollJobRequest(job_id=job.id, after_seq=last, wait_seconds=5),
        )
        waited_for = time.monotonic() - started
        list(client.watch(job.id))
        everything = client._call(client._stub.PollJob, daemon_pb2.PollJobRequest(job_id=job.id))
        nothing_left = client._call(
            client._stub.PollJob,
            daemon_pb2.PollJobRequest(job_id=job.id, after_seq=everything.events[-1].seq),
        )
    assert 0.2 < waited_for < 4
    assert waited.events and waited.events[0].seq == last + 1 and not waited.ended
    assert everything.ended and everything.events[-1].WhichOneof("kind") == "finished"
    assert nothing_left.ended and not nothing_left.events


def test_a_failing_job_does_not_stop_the_worker(tmp_path):
    source, edited = make_media(tmp_path / "media")
    bad = clip_spec(source, edited, label="bad")
    fake = FakeExecutor(fail=lambda run: RuntimeError("boom") if run.spec.label == "bad" else None)
    with running_daemon(tmp_path, fake) as (_, client):
        failing = client.submit(bad)
        fine = client.submit(clip_spec(source, edited))
        failed = list(client.watch(failing.id))[-1]
        finished = list(client.watch(fine.id))[-1]
    assert failed.failed.error.message and failed.failed.error.hint
    assert finished.WhichOneof("kind") == "finished"


def test_status_reports_the_queue_and_the_model_unloads_when_idle(tmp_path):
    source, edited = make_media(tmp_path / "media")
    fake = FakeExecutor()
    with running_daemon(tmp_path, fake, idle_unload_s=0.3) as (_, client):
        before = client.status()
        job = client.submit(clip_spec(source, edited))
        list(client.watch(job.id))
        wait_for(lambda: fake.unloads == 1, timeout=5)
        after_idle = client.status()
        again = client.submit(clip_spec(source, edited))
        list(client.watch(again.id))
    assert before.version and before.pid and not before.model_loaded and before.queue_length == 0
    assert not after_idle.model_loaded
    assert fake.loads == 2


def test_status_counts_queued_jobs_and_names_the_running_one(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    fake = FakeExecutor(gate=gate)
    with running_daemon(tmp_path, fake) as (_, client):
        running = client.submit(clip_spec(source, edited))
        client.submit(clip_spec(source, edited))
        client.submit(clip_spec(source, edited))
        wait_for(lambda: client.status().running_job_id == running.id)
        status = client.status()
        gate.set()
    assert status.queue_length == 2 and status.model_loaded and status.device == "cpu"


def test_cache_info_and_clear_use_the_plugged_cache(tmp_path):
    root = tmp_path / "artifacts"
    for name, size in (("lora-a", 1000), ("inversion-b", 2500)):
        (root / name).mkdir(parents=True)
        (root / name / "data.bin").write_bytes(b"x" * size)
    (root / "manifest.json").write_text("{}")
    with running_daemon(tmp_path, cache=DirectoryCache(root)) as (_, client):
        before = client.cache_info()
        freed = client.clear_cache().freed_bytes
        after = client.cache_info()
    assert (before.entries, before.bytes, before.root) == (3, 3502, str(root))
    assert freed == 3502
    assert (after.entries, after.bytes) == (0, 0)


def test_the_cache_is_not_cleared_under_a_running_job(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    fake = FakeExecutor(gate=gate)
    with running_daemon(tmp_path, fake) as (_, client):
        job = client.submit(clip_spec(source, edited))
        wait_for(lambda: client.get(job.id).state == jobs_pb2.JOB_STATE_RUNNING)
        with pytest.raises(BusyError) as raised:
            client.clear_cache()
        gate.set()
    assert job.id in raised.value.message and raised.value.hint


def test_previews_arrive_as_small_pngs(tmp_path):
    from io import BytesIO

    from PIL import Image

    source, edited = make_media(tmp_path / "media")
    with running_daemon(tmp_path, FakeExecutor(preview_phase="edit")) as (_, client):
        job = client.submit(clip_spec(source, edited))
        events = list(client.watch(job.id))
    (preview,) = [e.preview for e in events if e.WhichOneof("kind") == "preview"]
    assert (preview.width, preview.height, preview.phase) == (64, 64, "edit")
    assert Image.open(BytesIO(preview.png)).size == (64, 64)


def test_a_permission_problem_is_the_users_to_fix(tmp_path):
    source, edited = make_media(tmp_path / "media")

    def deny(run):
        return PermissionError(13, "Permission denied", "/renders/locked")

    with running_daemon(tmp_path, FakeExecutor(fail=deny)) as (_, client):
        job = client.submit(clip_spec(source, edited))
        error = list(client.watch(job.id))[-1].failed.error
    assert "/renders/locked" in error.message and "output folder" in error.hint


def test_a_job_whose_outputs_are_missing_is_not_reported_finished(tmp_path):
    from framerelay.jobs.executor import ExecutionResult

    class Liar(FakeExecutor):
        def _write_outputs(self, run):
            return ExecutionResult(run.outputs, 6, Fraction(24), (64, 64))

    source, edited = make_media(tmp_path / "media")
    with running_daemon(tmp_path, Liar()) as (_, client):
        job = client.submit(clip_spec(source, edited))
        last = list(client.watch(job.id))[-1]
        after = client.submit(clip_spec(source, edited))
        assert list(client.watch(after.id))[-1].WhichOneof("kind") == "failed"
    assert last.WhichOneof("kind") == "failed"
    assert "was not written" in last.failed.error.message


def test_the_daemon_serves_the_engines_artifact_cache_by_default(tmp_path):
    from framerelay.cache import ArtifactCache

    artifacts = ArtifactCache(tmp_path / "cache")
    artifacts.put("a" * 64, lambda folder: (folder / "lora.bin").write_bytes(b"x" * 4000), {})
    artifacts.put("b" * 64, lambda folder: (folder / "inv.bin").write_bytes(b"y" * 1000), {})
    expected = artifacts.total_bytes()
    with running_daemon(tmp_path) as (_, client):  # cache_dir = tmp_path / "cache"
        before = client.cache_info()
        freed = client.clear_cache().freed_bytes
        after = client.cache_info()
    assert (before.entries, before.bytes, before.root) == (2, expected, str(tmp_path / "cache"))
    assert expected >= 5000 and freed == expected
    assert (after.entries, after.bytes) == (0, 0) and artifacts.ls() == []
