"""A full data disk (the folder of the job database and, here, of the log) against a real
`framerelay serve --fake`: the running job stops with DISK_FULL, reads keep being answered, the
worker waits without looping or flooding the log, and goes on by itself once there is room."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import pytest

from framerelay.errors import DiskFullError, ErrorCode
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.jobs.job import JobState
from framerelay.jobs.output_policy import OutputPolicy
from framerelay.jobs.queue import JobQueue
from framerelay.jobs.spec import FrameRange, JobSpec
from framerelay.jobs.store import JobStore
from framerelay.jobs.worker import Worker
from framerelay.proto.v1 import errors_pb2, jobs_pb2, specs_pb2
from framerelay.service.client import DaemonClient
from framerelay.service.discovery import Discovery, discovery_path, read_discovery
from tests.daemon_harness import clip_spec, daemon_env, http_call, make_media, wait_for
from tests.small_disk import fill, small_disk

ENDED = (jobs_pb2.JOB_STATE_FINISHED, jobs_pb2.JOB_STATE_FAILED, jobs_pb2.JOB_STATE_CANCELLED)


def serve(state: Path, disk: Path, stderr: Path) -> tuple[subprocess.Popen, Discovery]:
    """`framerelay serve --fake` with its data and log folders on `disk`, stderr to a file."""
    env = {
        **daemon_env(state),
        "FRAMERELAY_DATA_DIR": str(disk / "data"),
        "FRAMERELAY_LOG_DIR": str(disk / "log"),
    }
    path = discovery_path(state / "config")
    with open(stderr, "ab") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "framerelay", "serve", "--fake", "--fake-step-seconds", "0.2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=errors,
        )

    def ready() -> Discovery | None:
        assert process.poll() is None, stderr.read_text()
        found = read_discovery(path) if path.exists() else None
        return found if found and found.pid == process.pid else None

    return process, wait_for(ready, 30)


def written(disk: Path, stderr: Path) -> int:
    """Bytes the daemon has logged so far: its log files and its stderr."""
    logs = sum(p.stat().st_size for p in (disk / "log").glob("daemon.log*"))
    return logs + stderr.stat().st_size


@pytest.mark.slow
def test_a_full_data_disk_stops_the_job_keeps_serving_and_recovers_by_itself(tmp_path):
    source, edited = make_media(tmp_path / "media")
    spec = clip_spec(source, edited, output=specs_pb2.OutputSpec(folder=str(source.parent)))
    stderr = tmp_path / "serve.err"
    with small_disk(tmp_path / "disk", 24) as disk:
        process, found = serve(tmp_path / "state", disk, stderr)
        try:
            with DaemonClient.from_discovery(found, timeout=10) as client:
                running = client.submit(spec)
                waiting = client.submit(spec)
                wait_for(lambda: client.get(running.id).progress.phase == "lora", 30)

                filler = fill(disk)
                before = written(disk, stderr)
                failed = wait_for(lambda: ended(client, running.id), 30)
                assert failed.state == jobs_pb2.JOB_STATE_FAILED
                assert failed.error.code == errors_pb2.ERROR_CODE_DISK_FULL
                assert str(disk / "data") in failed.error.message
                assert "Free space" in failed.error.hint

                for _ in range(8):  # reads keep being answered, at once
                    asked = time.monotonic()
                    status = client.status()
                    assert time.monotonic() - asked < 2.0
                    assert client.get(waiting.id).state == jobs_pb2.JOB_STATE_QUEUED
                    time.sleep(0.25)
                assert status.waiting_on.code == errors_pb2.ERROR_CODE_DISK_FULL
                assert status.queue_length == 1 and not status.running_job_id
                # Stopping the job freed some room (its work folder, the daemon's reserve):
                refill = fill(disk, "filler-2")  # the disk is full again for the next submit
                code, refused = http_call(found, "SubmitJob", {"spec": http_spec(spec)})
                assert code == 507 and refused["error"]["code"] == "ERROR_CODE_DISK_FULL"
                with pytest.raises(DiskFullError):
                    client.submit(spec)
                with pytest.raises(DiskFullError) as unkept:  # a pause it could not keep
                    client.pause()
                assert str(disk / "data") in unkept.value.message
                assert not client.status().queue_paused
                grown = written(disk, stderr) - before
                assert grown < 16 * 1024, f"{grown} bytes of log while the disk was full"

                filler.unlink()
                refill.unlink()
                done = wait_for(lambda: ended(client, waiting.id), 30)  # no restart
                assert done.state == jobs_pb2.JOB_STATE_FINISHED
                assert not client.status().HasField("waiting_on")

                cancelled = client.submit(spec)
                wait_for(lambda: client.get(cancelled.id).progress.phase == "lora", 30)
                client.cancel(cancelled.id)
                final = wait_for(lambda: ended(client, cancelled.id), 30)
                assert final.state == jobs_pb2.JOB_STATE_CANCELLED
                listed = {job.id for job in client.list().jobs}
                events = {job_id: list(client.watch(job_id)) for job_id in listed}
        finally:
            process.terminate()
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:  # a daemon wedged by the full disk
                process.kill()
                process.wait(10)

    assert listed == {running.id, waiting.id, cancelled.id}  # every job acknowledged, no other
    for job_id, log in events.items():
        assert [e.seq for e in log] == list(range(1, len(log) + 1))
        terminal = [e for e in log if e.WhichOneof("kind") in ("finished", "failed", "cancelled")]
        assert len(terminal) == 1 and terminal[0] is log[-1], job_id
    errors = stderr.read_text()
    assert "Traceback" not in errors and errors.count("The queue waits until there is room") == 1


def ended(client: DaemonClient, job_id: str) -> jobs_pb2.Job | None:
    job = client.get(job_id)
    return job if job.state in ENDED else None


def http_spec(spec: specs_pb2.JobSpec) -> dict:
    from google.protobuf import json_format

    return json_format.MessageToDict(spec)


class FillingStore(JobStore):
    """A job store whose writes fail as on a full disk while `full` is set; counts the tries."""

    full = False
    tries = 0

    def append(self, job_id, payload, now):
        if self.full:
            self.tries += 1
            raise self.disk_full()
        return super().append(job_id, payload, now)


@pytest.mark.slow
def test_without_room_for_its_end_the_job_waits_in_memory_and_the_worker_backs_off(tmp_path):
    """No reserve to free: the job's end is kept and stored once the disk has room; meanwhile
    the worker retries with a growing pause, not in a loop, and the event loop stays free."""
    source, edited = make_media(tmp_path / "media")
    spec = JobSpec(source, (edited,), FrameRange(0, 6), Fraction(24))

    async def scenario():
        store = FillingStore(tmp_path / "jobs.sqlite3")
        queue = JobQueue(store, tmp_path / "outputs", policy=OutputPolicy(tmp_path / "outputs"))
        worker = Worker(queue, FakeExecutor(step_seconds=0.02), tmp_path / "work")
        task = asyncio.create_task(worker.run())
        first, second = queue.submit(spec), queue.submit(spec)
        while queue.get(first.id).progress is None:
            await asyncio.sleep(0.01)
        store.full = True
        ticks = 0
        deadline = asyncio.get_running_loop().time() + 2.0
        while asyncio.get_running_loop().time() < deadline:  # the loop keeps turning
            await asyncio.sleep(0.01)
            ticks += 1
        held = (queue.get(first.id).state, queue.get(second.id).state, store.tries, ticks)
        waiting_on = worker.waiting_on
        store.full = False
        while not queue.get(second.id).state.ended:
            await asyncio.sleep(0.02)
        worker.stop()
        await task
        return held, waiting_on, queue.get(first.id), queue.get(second.id)

    held, waiting_on, first, second = asyncio.run(scenario())
    state_first, state_second, tries, ticks = held
    assert state_first is JobState.running and state_second is JobState.queued
    assert isinstance(waiting_on, DiskFullError)
    assert tries <= 8, f"{tries} writes in 2 s: the worker must back off"
    assert ticks > 100  # about 200 sleeps of 10 ms: nothing blocked the loop
    assert first.state is JobState.failed and first.error.code is ErrorCode.disk_full
    assert second.state is JobState.finished


@pytest.mark.slow
def test_a_disk_that_takes_no_write_is_not_retried_in_a_loop(tmp_path):
    """Room by every measure, yet no job can start (a quota, no inodes): the pause still grows."""
    source, edited = make_media(tmp_path / "media")
    spec = JobSpec(source, (edited,), FrameRange(0, 6), Fraction(24))

    async def scenario():
        store = FillingStore(tmp_path / "jobs.sqlite3")
        queue = JobQueue(store, tmp_path / "outputs", policy=OutputPolicy(tmp_path / "outputs"))
        worker = Worker(queue, FakeExecutor(), tmp_path / "work")
        job = queue.submit(spec)
        store.full = True  # the job's start cannot be stored
        task = asyncio.create_task(worker.run())
        await asyncio.sleep(2.0)
        tries, state = store.tries, queue.get(job.id).state
        store.full = False
        while not queue.get(job.id).state.ended:
            await asyncio.sleep(0.02)
        worker.stop()
        await task
        return tries, state, queue.get(job.id).state

    tries, held, final = asyncio.run(scenario())
    assert 1 <= tries <= 6, f"{tries} tries in 2 s"
    assert held is JobState.queued and final is JobState.finished


class UnwritableSettings(JobStore):
    """A job store whose settings cannot be written, as on a full disk."""

    full = False

    def set_setting(self, key, value):
        if self.full:
            raise self.disk_full()
        super().set_setting(key, value)


def test_a_pause_or_resume_that_cannot_be_stored_is_refused_and_changes_nothing(tmp_path):
    async def scenario():
        store = UnwritableSettings(tmp_path / "jobs.sqlite3")
        queue = JobQueue(store, tmp_path / "outputs", policy=OutputPolicy(tmp_path / "outputs"))
        store.full = True
        with pytest.raises(DiskFullError):
            queue.pause()
        unpaused = queue.paused
        store.full = False
        queue.pause()
        store.full = True
        with pytest.raises(DiskFullError):
            queue.resume()
        return unpaused, queue.paused, store.setting("queue_paused")

    unpaused, still_paused, stored = asyncio.run(scenario())
    assert not unpaused and still_paused and stored == "1"
