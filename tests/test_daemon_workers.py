"""The daemon with a pool of worker processes (docs/scale.md), on the fake executor: jobs side by
side, a long job's windows analysed by the free workers, and the queue's verbs (cancel queued,
interrupt running, pause, restart, the crash-loop guard) with several workers.

The fake runs in real worker processes (spawned, as the daemon spawns them), so these tests
exercise the pipe protocol, the dispatch and the process deaths themselves."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from framerelay.errors import InvalidSpecError
from framerelay.jobs.pool import PoolExecutor
from framerelay.jobs.slot_process import RuntimeSpec, SlotSpec
from framerelay.jobs.workers import FAKE_RUNTIME, RAY_RUNTIME, WorkerPlan, worker_slots
from framerelay.proto.v1 import events_pb2, jobs_pb2
from tests.daemon_harness import (
    clip_spec,
    kinds,
    make_media,
    running_daemon,
    start_serve,
    stop_serve,
    wait_for,
)

TIMEOUT = 60.0


def fake_pool(
    tmp_path: Path, workers: int = 2, helper: RuntimeSpec | None = None, **fake
) -> PoolExecutor:
    settings = {"step_seconds": 0.02, "window_log": tmp_path / "windows.log", **fake}
    runtime = RuntimeSpec(FAKE_RUNTIME, settings)
    slots = [SlotSpec(f"cpu {i + 1}", runtime) for i in range(workers)]
    if helper is not None:
        slots = [SlotSpec(s.name, s.runtime, helps=False) for s in slots]
        slots.append(SlotSpec("helper", helper, runs_jobs=False))
    return PoolExecutor(slots)


def analyses(tmp_path: Path) -> dict[tuple[str, int], tuple[int, str]]:
    """(job, window) -> (pid, chain|helper) of every window analysis so far."""
    log = tmp_path / "windows.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return {(job, int(i)): (int(pid), role) for job, i, pid, role in (x.split() for x in lines)}


def state_of(client, job_id: str) -> int:
    return client.get(job_id).state


def progress(events) -> list[events_pb2.ProgressEvent]:
    return [e.progress for e in events if e.WhichOneof("kind") == "progress"]


def test_two_jobs_run_side_by_side_on_two_workers(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = tmp_path / "gate"
    with running_daemon(tmp_path, fake_pool(tmp_path, gate_path=gate)) as (daemon, client):
        first = client.submit(clip_spec(source, edited))
        second = client.submit(clip_spec(source, edited))
        both = wait_for(  # running, and each handed to its process (the pool's map lags a little)
            lambda: (
                {state_of(client, j.id) for j in (first, second)} == {jobs_pb2.JOB_STATE_RUNNING}
                and {first.id, second.id} <= set(daemon.daemon.executor.processes())
            ),
            TIMEOUT,
        )
        pids = daemon.daemon.executor.processes()
        status = client.status()
        gate.touch()
        ends = [list(client.watch(j.id))[-1] for j in (first, second)]
    assert both and pids[first.id] != pids[second.id]  # two processes, one job each
    assert [e.WhichOneof("kind") for e in ends] == ["finished", "finished"]
    assert status.device == "cpu 1, cpu 2" and status.running_job_id == first.id


def test_each_worker_keeps_its_engine_warm_between_jobs(tmp_path):
    """Each worker process loads the model once: a later job on it starts without a load."""
    source, edited = make_media(tmp_path / "media")
    gate = tmp_path / "gate"
    pool = fake_pool(tmp_path, gate_path=gate, load_seconds=0.2)
    with running_daemon(tmp_path, pool) as (_, client):
        first = [client.submit(clip_spec(source, edited)) for _ in range(2)]
        wait_for(lambda: all(j.id in pool.processes() for j in first), TIMEOUT)
        pids = {pool.processes()[j.id] for j in first}
        gate.touch()
        events = [list(client.watch(j.id)) for j in first]
        later = [client.submit(clip_spec(source, edited)) for _ in range(2)]
        events += [list(client.watch(j.id)) for j in later]
        loaded = client.status().model_loaded
    loads = [sum(p.phase == "load" for p in progress(e)) for e in events]
    assert len(pids) == 2
    assert loads == [1, 1, 0, 0] and loaded  # a new or restarted process would load again
    assert all(kinds(e)[-1] == "finished" for e in events)


def test_a_long_job_fans_its_windows_out_to_the_free_workers(tmp_path):
    source, edited = make_media(tmp_path / "media")
    with running_daemon(tmp_path, fake_pool(tmp_path, workers=3, windows=5)) as (_, client):
        job = client.submit(clip_spec(source, edited))
        events = list(client.watch(job.id))
    assert kinds(events)[-1] == "finished"
    done = analyses(tmp_path)
    chain_pid, role = done[(job.id, 0)]
    assert role == "chain"  # the anchor first, by the job's own worker
    later = [done[(job.id, i)] for i in range(1, 5)]
    # Windows 2..5 by the helpers, and by the job's own worker while it waited for one of
    # them (analysed as a helper does, ahead of its edit).
    assert all(role == "helper" for _, role in later)
    assert len({pid for pid, _ in later} - {chain_pid}) == 2  # both free workers took windows
    assert len((tmp_path / "windows.log").read_text().splitlines()) == 5  # each one once
    # The chain found windows 2..5 in the cache: their analysis phases report "cached".
    cached = {(p.clip, p.phase) for p in progress(events) if p.message == "cached"}
    assert cached == {(clip, phase) for clip in range(2, 6) for phase in ("lora", "invert")}
    edits = [p.clip for p in progress(events) if p.phase == "edit" and p.step == p.total]
    assert edits == [1, 2, 3, 4, 5]  # and edited them in order


def test_a_running_jobs_windows_come_before_the_next_job(tmp_path):
    """Queue order: the free worker helps the first job before it takes the second."""
    source, edited = make_media(tmp_path / "media")
    with running_daemon(tmp_path, fake_pool(tmp_path, windows=4)) as (_, client):
        first = client.submit(clip_spec(source, edited))
        second = client.submit(clip_spec(source, edited))
        first_events, second_events = list(client.watch(first.id)), list(client.watch(second.id))
    done = analyses(tmp_path)
    # Had the second job taken the free worker, the first job's own worker would have analysed
    # its windows itself.
    assert [done[(first.id, i)][1] for i in range(4)] == ["chain", "helper", "helper", "helper"]
    assert kinds(first_events)[-1] == kinds(second_events)[-1] == "finished"


def test_cancel_queued_and_interrupt_running_keep_their_meaning(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = tmp_path / "gate"
    with running_daemon(tmp_path, fake_pool(tmp_path, gate_path=gate)) as (_, client):
        a, b, c = (client.submit(clip_spec(source, edited)) for _ in range(3))
        wait_for(lambda: state_of(client, b.id) == jobs_pb2.JOB_STATE_RUNNING, TIMEOUT)
        dequeued = client.cancel(c.id).outcome
        interrupted = client.cancel(a.id).outcome
        a_end = list(client.watch(a.id))[-1]
        gate.touch()
        b_end, c_end = list(client.watch(b.id))[-1], list(client.watch(c.id))[-1]
    assert dequeued == 1 and interrupted == 2  # DEQUEUED, INTERRUPT_REQUESTED
    assert a_end.cancelled.reason == events_pb2.CANCEL_REASON_INTERRUPTED
    assert c_end.cancelled.reason == events_pb2.CANCEL_REASON_DEQUEUED
    assert b_end.WhichOneof("kind") == "finished"


def test_a_pause_that_interrupts_requeues_every_running_job_in_the_order_they_started(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = tmp_path / "gate"
    with running_daemon(tmp_path, fake_pool(tmp_path, gate_path=gate)) as (_, client):
        a, b, c = (client.submit(clip_spec(source, edited)) for _ in range(3))
        wait_for(lambda: state_of(client, b.id) == jobs_pb2.JOB_STATE_RUNNING, TIMEOUT)
        paused = client.pause(interrupt_running=True)
        wait_for(lambda: state_of(client, b.id) == jobs_pb2.JOB_STATE_QUEUED, TIMEOUT)
        wait_for(lambda: state_of(client, a.id) == jobs_pb2.JOB_STATE_QUEUED, TIMEOUT)
        order = [j.id for j in client.list((jobs_pb2.JOB_STATE_QUEUED,)).jobs]
        gate.touch()
        client.resume()
        ends = [list(client.watch(j.id))[-1].WhichOneof("kind") for j in (a, b, c)]
        attempts = [client.get(j.id).attempt for j in (a, b)]
    assert paused.interrupted_job_id == a.id
    assert order == [a.id, b.id, c.id]
    assert ends == ["finished"] * 3 and attempts == [2, 2]


def test_a_worker_process_that_dies_costs_its_job_one_crash(tmp_path):
    """Killed twice (out of memory, say), the job is not run a third time; the daemon and the
    other jobs go on."""
    source, edited = make_media(tmp_path / "media")
    gate = tmp_path / "gate"
    pool = fake_pool(tmp_path, gate_path=gate)
    with running_daemon(tmp_path, pool) as (_, client):
        job = client.submit(clip_spec(source, edited))
        for attempt in (1, 2):
            wait_for(lambda n=attempt: client.get(job.id).attempt == n, TIMEOUT)
            pid = wait_for(lambda: pool.processes().get(job.id), TIMEOUT)
            os.kill(pid, signal.SIGKILL)
        events = list(client.watch(job.id))
        gate.touch()
        after = client.submit(clip_spec(source, edited))
        after_end = list(client.watch(after.id))[-1]
    queued = [e.queued.reason for e in events if e.WhichOneof("kind") == "queued"]
    assert queued[-1] == events_pb2.QUEUED_REASON_RECOVERED
    assert events[-1].failed.error.code == 8  # ERROR_CODE_INTERNAL
    assert "2 times" in events[-1].failed.error.message
    assert after_end.WhichOneof("kind") == "finished"


def test_a_helper_that_dies_leaves_its_window_to_the_jobs_own_worker(tmp_path):
    source, edited = make_media(tmp_path / "media")
    pool = fake_pool(tmp_path, windows=3, step_seconds=0.1)
    with running_daemon(tmp_path, pool) as (_, client):
        job = client.submit(clip_spec(source, edited))
        helper = wait_for(lambda: pool.processes().get(f"{job.id}:1"), TIMEOUT)
        os.kill(helper, signal.SIGKILL)
        events = list(client.watch(job.id))
    done = analyses(tmp_path)
    assert kinds(events)[-1] == "finished"
    assert done[(job.id, 1)][1] == "chain"  # redone by the job's worker


def test_a_helper_that_loses_the_cluster_fails_the_job_with_a_hint(tmp_path):
    """The Ray driver is a concurrent helper process; when it ends, the cluster is gone."""
    source, edited = make_media(tmp_path / "media")
    helper = RuntimeSpec(FAKE_RUNTIME, {"step_seconds": 0.5}, concurrent=True)
    pool = fake_pool(tmp_path, workers=1, helper=helper, windows=3, step_seconds=0.1)
    with running_daemon(tmp_path, pool) as (_, client):
        job = client.submit(clip_spec(source, edited))
        driver = wait_for(lambda: pool.processes().get(f"{job.id}:1"), TIMEOUT)
        os.kill(driver, signal.SIGKILL)
        events = list(client.watch(job.id))
        status = client.status()
    error = events[-1].failed.error
    assert kinds(events)[-1] == "failed" and error.code == 11  # ERROR_CODE_UNAVAILABLE
    assert "Ray cluster" in error.message and "ray start --head" in error.hint
    assert status.version  # the daemon serves on


def test_a_restart_resumes_a_fanned_out_job(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = tmp_path / "gate"
    with running_daemon(tmp_path, fake_pool(tmp_path, windows=3, step_seconds=0.05)) as (_, c):
        job = c.submit(clip_spec(source, edited))
        wait_for(lambda: (job.id, 1) in analyses(tmp_path), TIMEOUT)
    before = analyses(tmp_path)
    with running_daemon(tmp_path, fake_pool(tmp_path, windows=3, gate_path=gate)) as (_, c):
        gate.touch()
        events = list(c.watch(job.id))
    assert kinds(events)[-1] == "finished" and c is not None
    started = [e.started.attempt for e in events if e.WhichOneof("kind") == "started"]
    assert started == [1, 2]
    after = analyses(tmp_path)
    assert after[(job.id, 1)] == before[(job.id, 1)]  # not analysed again: it was kept


def test_worker_slots_follow_the_flags():
    assert worker_slots(WorkerPlan(), gpus=[]) is None  # no GPU: the daemon's own worker
    assert worker_slots(WorkerPlan(), gpus=["0"]) is None  # one GPU: the same
    two = worker_slots(WorkerPlan(model="m"), gpus=["0", "1"])
    assert [s.name for s in two] == ["cuda:0", "cuda:1"]
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in two] == ["0", "1"]
    assert all(s.runtime.kwargs["device"] == "cuda" and s.helps for s in two)
    assert [s.name for s in worker_slots(WorkerPlan(gpus="1,3"), gpus=list("0123"))] == [
        "cuda:1",
        "cuda:3",
    ]
    (second,) = worker_slots(WorkerPlan(gpus="1"), gpus=["0", "1"])
    assert second.env["CUDA_VISIBLE_DEVICES"] == "1"  # not the default GPU: its own process
    cpu = worker_slots(WorkerPlan(device="cpu", workers=3), gpus=["0"])
    assert [s.name for s in cpu] == ["cpu 1/3", "cpu 2/3", "cpu 3/3"]
    assert worker_slots(WorkerPlan(device="cuda:1"), gpus=["0", "1"]) is None
    ray = worker_slots(WorkerPlan(ray="auto", ray_gpus=0), gpus=[])
    assert [(s.name, s.runs_jobs, s.helps) for s in ray] == [
        ("cpu 1/1", True, False),
        ("ray", False, True),
    ]
    assert ray[1].runtime.concurrent and ray[1].runtime.kwargs["gpus_per_task"] == 0
    for plan, gpus in (
        (WorkerPlan(gpus="7"), ["0"]),
        (WorkerPlan(workers=2), ["0", "1"]),
        (WorkerPlan(workers=0), []),
    ):
        with pytest.raises(InvalidSpecError):
            worker_slots(plan, gpus=gpus)


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    from framerelay.jobs.workers import visible_gpus

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,0,-1,3")
    assert visible_gpus() == ["2", "0"]  # CUDA ignores what follows an invalid entry
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus() == []


@pytest.mark.slow
def test_serve_workers_runs_jobs_side_by_side(tmp_path):
    from framerelay.service.client import DaemonClient

    source, edited = make_media(tmp_path / "media")
    process, found = start_serve(tmp_path, "--fake", "--workers", "2", "--device", "cpu")
    try:
        with DaemonClient.from_discovery(found) as client:
            jobs = [client.submit(clip_spec(source, edited)) for _ in range(2)]
            ends = [list(client.watch(j.id))[-1].WhichOneof("kind") for j in jobs]
            device = client.status().device
    finally:
        _, err = stop_serve(process)
    assert ends == ["finished", "finished"] and device == "cpu 1/2, cpu 2/2"
    assert "2 workers" in err and process.returncode == 0


def test_serve_refuses_workers_it_cannot_run(tmp_path):
    import subprocess
    import sys

    from tests.daemon_harness import daemon_env

    result = subprocess.run(
        [sys.executable, "-m", "framerelay", "serve", "--fake", "--workers", "0"],
        env=daemon_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "--workers must be at least 1" in result.stderr


@pytest.mark.slow
def test_cancelling_a_fanned_out_job_stops_its_helpers(tmp_path):
    source, edited = make_media(tmp_path / "media")
    pool = fake_pool(tmp_path, workers=3, windows=4, step_seconds=0.2)
    with running_daemon(tmp_path, pool) as (_, client):
        job = client.submit(clip_spec(source, edited))
        wait_for(lambda: f"{job.id}:2" in pool.processes(), TIMEOUT)
        client.cancel(job.id)
        end = list(client.watch(job.id))[-1]
        wait_for(lambda: not pool.processes(), TIMEOUT)  # the helpers stopped too
        after = client.submit(clip_spec(source, edited))
        after_end = list(client.watch(after.id))[-1]
    assert end.cancelled.reason == events_pb2.CANCEL_REASON_INTERRUPTED
    assert (job.id, 2) not in analyses(tmp_path)  # stopped at a step, not finished
    assert after_end.WhichOneof("kind") == "finished"


def test_a_ray_cluster_that_cannot_be_reached_fails_the_job_with_a_hint(tmp_path, ray_installed):
    source, edited = make_media(tmp_path / "media")
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    ray = RuntimeSpec(RAY_RUNTIME, {"address": address, "cache_dir": tmp_path / "cache"}, True)
    pool = fake_pool(tmp_path, workers=1, helper=ray, windows=3)
    with running_daemon(tmp_path, pool) as (_, client):
        job = client.submit(clip_spec(source, edited))
        events = list(client.watch(job.id))
        status = client.status()
    error = events[-1].failed.error
    assert error.code == 11 and address in error.message  # ERROR_CODE_UNAVAILABLE
    assert "ray start --head" in error.hint
    assert status.version


def test_a_full_data_disk_stops_every_running_job_and_holds_the_queue(tmp_path):
    import asyncio
    from fractions import Fraction

    from framerelay.errors import DiskFullError, ErrorCode
    from framerelay.jobs.job import JobState
    from framerelay.jobs.output_policy import OutputPolicy
    from framerelay.jobs.queue import JobQueue
    from framerelay.jobs.spec import FrameRange, JobSpec
    from framerelay.jobs.store import JobStore
    from framerelay.jobs.worker import Worker

    class FillingStore(JobStore):
        full = False

        def append(self, job_id, payload, now):
            if self.full:
                raise self.disk_full()
            return super().append(job_id, payload, now)

    source, edited = make_media(tmp_path / "media")
    spec = JobSpec(source, (edited,), FrameRange(0, 6), Fraction(24))
    pool = fake_pool(tmp_path, step_seconds=0.05)

    async def scenario():
        store = FillingStore(tmp_path / "jobs.sqlite3")
        queue = JobQueue(store, tmp_path / "outputs", policy=OutputPolicy(tmp_path / "outputs"))
        worker = Worker(queue, pool, tmp_path / "work")
        task = asyncio.create_task(worker.run())
        jobs = [queue.submit(spec) for _ in range(3)]
        while any(queue.get(j.id).progress is None for j in jobs[:2]):
            await asyncio.sleep(0.02)
        store.full = True
        await asyncio.sleep(1.5)
        held = [queue.get(j.id).state for j in jobs]
        waiting_on = worker.waiting_on
        store.full = False
        while not queue.get(jobs[2].id).state.ended:
            await asyncio.sleep(0.05)
        worker.stop()
        await task
        return held, waiting_on, [queue.get(j.id) for j in jobs]

    try:
        held, waiting_on, (first, second, third) = asyncio.run(scenario())
    finally:
        pool.close()
    assert held == [JobState.running, JobState.running, JobState.queued]
    assert isinstance(waiting_on, DiskFullError)
    assert first.error.code is ErrorCode.disk_full and second.error.code is ErrorCode.disk_full
    assert third.state is JobState.finished
