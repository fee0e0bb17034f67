"""A daemon killed with SIGKILL mid-job restarts, re-queues the job and finishes it."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
from framerelay.proto.v1 import events_pb2, jobs_pb2
from framerelay.service.client import DaemonClient

from tests.daemon_harness import clip_spec, kinds, make_media, start_serve, stop_serve


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
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()
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
