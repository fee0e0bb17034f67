"""A daemon killed with SIGKILL mid-job restarts, re-queues the job and finishes it."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from framerelay.errors import BusyError, UnavailableError
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.proto.v1 import daemon_pb2, events_pb2, jobs_pb2
from framerelay.service.app import DaemonThread
from framerelay.service.client import DaemonClient
from tests.daemon_harness import (
    clip_spec,
    kinds,
    make_config,
    make_media,
    running_daemon,
    start_serve,
    stop_serve,
    wait_for,
)


def crash(process) -> None:
    """SIGKILL, as a crash would end it; waits for the process."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=10)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_killed_daemon_resumes_its_job_without_losing_or_reusing_a_sequence_number(tmp_path):
    source, edited = make_media(tmp_path / "media")
    state = tmp_path / "state"
    process, found = start_serve(state, "--fake", "--fake-step-seconds", "0.1")
    try:
        with DaemonClient.from_discovery(found) as client:
            job = client.submit(clip_spec(source, edited))
            waiting = client.submit(clip_spec(source, edited))
            before = []
            for event in client.watch(job.id):
                before.append(event)
                if event.progress.phase == "invert":
                    break
    finally:
        crash(process)
    assert process.returncode == -signal.SIGKILL

    process, found_again = start_serve(state, "--fake", "--fake-step-seconds", "0.01")
    try:
        with DaemonClient.from_discovery(found_again) as client:
            rest = list(client.watch(job.id, after_seq=before[-1].seq))
            everything = list(client.watch(job.id))
            waited = list(client.watch(waiting.id))
            final = client.get(job.id)
    finally:
        stop_serve(process)

    assert found_again.token != found.token
    assert [e.seq for e in everything] == list(range(1, len(everything) + 1))
    serialized = [e.SerializeToString() for e in everything]
    assert serialized[: len(before)] == [e.SerializeToString() for e in before]
    assert serialized[len(before) :] == [e.SerializeToString() for e in rest]

    recovered = next(e for e in rest if e.WhichOneof("kind") == "queued")
    assert recovered.queued.reason == events_pb2.QUEUED_REASON_RECOVERED
    after_recovery = rest[rest.index(recovered) :]
    assert after_recovery[1].started.attempt == 2
    cached = [e.progress.phase for e in after_recovery if e.progress.message == "cached"]
    assert cached == ["decode", "lora"]
    rerun = [e.progress.phase for e in after_recovery if e.WhichOneof("kind") == "progress"]
    assert "invert" in rerun and "edit" in rerun
    assert kinds(everything)[-1] == "finished"
    assert final.state == jobs_pb2.JOB_STATE_FINISHED and final.attempt == 2

    assert kinds(waited)[0] == "queued" and kinds(waited)[-1] == "finished"
    assert waited[1].started.attempt == 1
    assert waited[1].cursor > everything[-1].cursor  # it waited for the recovered job
    output = Path(everything[-1].finished.output_paths[0])
    assert output.stat().st_size > 0 and not list(output.parent.glob(".*partial*"))


def test_a_stop_interrupts_the_running_job_which_the_next_start_runs_again(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    first = DaemonThread(make_config(tmp_path), FakeExecutor(gate=gate))
    with first, DaemonClient.from_discovery(first.discovery) as client:
        job = client.submit(clip_spec(source, edited))
        queued = client.submit(clip_spec(source, edited))
        wait_for(lambda: client.get(job.id).state == jobs_pb2.JOB_STATE_RUNNING)
        watch = client.watch(job.id)
        seen = [next(watch) for _ in range(3)]  # queued, started, load
        asked = time.monotonic()
        first.stop()
        with pytest.raises(UnavailableError) as stopped:
            list(watch)
        took = time.monotonic() - asked

    assert took < 1.5, "watchers must not hold the stop for the grace period"
    assert stopped.value.message == "the daemon is stopping."
    gate.set()
    with running_daemon(tmp_path) as (_, client):
        events = list(client.watch(job.id, after_seq=seen[-1].seq))
        after = list(client.watch(queued.id))
        final = client.get(job.id)
    assert events[0].queued.reason == events_pb2.QUEUED_REASON_RECOVERED
    assert final.state == jobs_pb2.JOB_STATE_FINISHED and final.attempt == 2
    assert kinds(after)[-1] == "finished"


def test_a_second_daemon_on_the_same_data_refuses_to_start(tmp_path):
    with running_daemon(tmp_path), pytest.raises(BusyError) as busy:
        DaemonThread(make_config(tmp_path), FakeExecutor()).__enter__()
    assert "another framerelay daemon" in busy.value.message
    assert "FRAMERELAY_DATA_DIR" in busy.value.hint
    with running_daemon(tmp_path) as (_, client):  # the lock went with the first daemon
        assert client.status().queue_length == 0


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_an_acknowledged_cancel_survives_a_sigkill_and_a_restart(tmp_path):
    source, edited = make_media(tmp_path / "media")
    state = tmp_path / "state"
    # Steps of 5 s: the kill lands long before the worker reaches the next step boundary.
    process, found = start_serve(state, "--fake", "--fake-step-seconds", "5")
    try:
        with DaemonClient.from_discovery(found) as client:
            job = client.submit(clip_spec(source, edited))
            waiting = client.submit(clip_spec(source, edited))
            wait_for(lambda: client.get(job.id).state == jobs_pb2.JOB_STATE_RUNNING, 30)
            answer = client.cancel(job.id)
            assert answer.outcome == daemon_pb2.CANCEL_OUTCOME_INTERRUPT_REQUESTED
    finally:
        crash(process)

    process, found = start_serve(state, "--fake", "--fake-step-seconds", "0")
    try:
        with DaemonClient.from_discovery(found) as client:
            events = list(client.watch(job.id))
            after = list(client.watch(waiting.id))
            final = client.get(job.id)
    finally:
        stop_serve(process)
    assert final.state == jobs_pb2.JOB_STATE_CANCELLED
    assert kinds(events).count("started") == 1 and "finished" not in kinds(events)
    assert kinds(events)[-1] == "cancelled"
    assert events[-1].cancelled.reason == events_pb2.CANCEL_REASON_INTERRUPTED
    assert events[-1].cancelled.error.hint
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert kinds(after)[-1] == "finished"  # the next job runs as usual
