"""The SQLite job store and the queue over it, without a server."""

from __future__ import annotations

import asyncio
import sqlite3
from fractions import Fraction
from pathlib import Path

import pytest

from framerelay.engine.presets import PresetChoice
from framerelay.errors import ErrorCode, InvalidSpecError, NotFoundError
from framerelay.jobs.events import (
    Cancelled,
    ErrorInfo,
    Failed,
    Finished,
    Preview,
    ProgressUpdate,
    Queued,
    Started,
    payload_from_json,
    payload_to_json,
)
from framerelay.jobs.job import JobState
from framerelay.jobs.queue import CancelOutcome, JobQueue
from framerelay.jobs.spec import FrameRange, JobSpec, ParamOverrides
from framerelay.jobs.store import JobStore
from tests.daemon_harness import make_media


@pytest.fixture
def media(tmp_path) -> tuple[Path, Path]:
    return make_media(tmp_path / "media")


def a_spec(media: tuple[Path, Path], **fields) -> JobSpec:
    source, edited = media
    return JobSpec(
        source=source,
        edited_frames=(edited,),
        frame_range=FrameRange(2, 10),  # of the 12 frames of make_media
        source_fps=Fraction(24000, 1001),
        params=ParamOverrides(steps=4, beta1=0.3),
        host_context={"record_frame": "86400"},
        **fields,
    )


def test_the_store_uses_wal_and_keeps_jobs_and_events_across_reopening(tmp_path, media):
    path = tmp_path / "jobs.sqlite3"

    async def first_life():
        queue = JobQueue(JobStore(path), tmp_path / "out")
        job = queue.submit(a_spec(media, label="one"))
        queue.record(job.id, Started(1))
        queue.record(job.id, ProgressUpdate("lora", 3, 10, eta_seconds=4.5))
        queue.record(job.id, Preview(b"\x89PNG...", 8, 8, "edit"))
        assert queue.store.journal_mode == "wal"
        queue.store.close()
        return job

    job = asyncio.run(first_life())
    store = JobStore(path)
    reopened = store.get(job.id)
    events = store.events(job.id)
    assert reopened is not None and reopened.spec == job.spec
    assert reopened.state is JobState.running and reopened.last_seq == 4
    assert reopened.progress == ProgressUpdate("lora", 3, 10, eta_seconds=4.5)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert [e.cursor for e in events] == sorted(e.cursor for e in events)
    assert events[3].payload == Preview(b"\x89PNG...", 8, 8, "edit")
    finished = Finished(("/out/a.mov",), 48, Fraction(24000, 1001), 64, 64)
    done, event = store.append(job.id, finished, 1.0)
    assert event.seq == 5 and done.state is JobState.finished and done.result == finished
    store.close()


def test_a_sequence_number_is_never_stored_twice(tmp_path, media):
    store = JobStore(tmp_path / "jobs.sqlite3")

    async def submit():
        return JobQueue(store, tmp_path).submit(a_spec(media))

    job = asyncio.run(submit())
    with pytest.raises(sqlite3.IntegrityError):
        store._db.execute(
            "INSERT INTO events (job_id, seq, time, kind, data) VALUES (?, 1, 0, 'queued', '{}')",
            (job.id,),
        )


def test_every_payload_kind_survives_the_store(tmp_path, media):
    store = JobStore(tmp_path / "jobs.sqlite3")
    payloads = [
        Started(2),
        ProgressUpdate("edit", 1, 25, clip=2, clips=3, message="window 2"),
        Preview(bytes(range(256)), 16, 9, "edit"),
        Failed(ErrorInfo.of(ErrorCode.out_of_memory, "ran out")),
        Cancelled("interrupted", ErrorInfo.of(ErrorCode.cancelled, "stopped"), "lora"),
        Finished(
            ("/o/a.mov",),
            8,
            Fraction(24000, 1001),
            64,
            64,
            "style",
            (PresetChoice("style", chosen_by_auto=True, changed_fraction=0.5),),
            seed=7,
            phase_seconds={"load": 1.5, "edit": 2.25},
            windows=2,
            cache_hits=1,
            lora_steps_run=250,
            warnings=("interlaced",),
        ),
    ]

    async def submit():
        return JobQueue(store, tmp_path).submit(a_spec(media))

    job = asyncio.run(submit())
    for payload in payloads:
        store.append(job.id, payload, 2.0)
    assert [e.payload for e in store.events(job.id, after_seq=1)] == payloads


def test_a_finished_event_stored_before_it_said_what_the_job_did_still_loads():
    old = {"outputs": ["/o/a.mov"], "frame_count": 8, "fps": [24, 1], "width": 64, "height": 64}
    loaded = payload_from_json("finished", old)
    assert loaded == Finished(("/o/a.mov",), 8, Fraction(24), 64, 64)
    assert payload_from_json("finished", payload_to_json(loaded)) == loaded


def test_queue_order_moves_and_cancels(tmp_path, media):
    async def work():
        queue = JobQueue(JobStore(tmp_path / "jobs.sqlite3"), tmp_path)
        a, b, c, d = (queue.submit(a_spec(media, label=n)) for n in "abcd")
        positions = [queue.position(j) for j in (a, b, c, d)]
        _, order = queue.move(d.id, 2)
        _, cancel_outcome = queue.cancel(b.id)
        after_cancel = [j.id for j in queue.store.queued()]
        head = await queue.next_job(timeout=0)
        moved_event = queue.store.events(d.id)[-1].payload
        with pytest.raises(InvalidSpecError):
            queue.move(b.id, 1)
        with pytest.raises(InvalidSpecError):
            queue.move(c.id, 0)
        with pytest.raises(NotFoundError):
            queue.cancel("nope")
        return (a, b, c, d), positions, order, cancel_outcome, after_cancel, head, moved_event

    (a, b, c, d), positions, order, outcome, after_cancel, head, moved = asyncio.run(work())
    assert positions == [1, 2, 3, 4]
    assert order == [a.id, d.id, b.id, c.id]
    assert outcome is CancelOutcome.dequeued
    assert after_cancel == [a.id, d.id, c.id]
    assert head is not None and head.id == a.id
    assert moved == Queued(2, "moved")


def test_next_job_waits_for_a_submission(tmp_path, media):
    async def work():
        queue = JobQueue(JobStore(tmp_path / "jobs.sqlite3"), tmp_path)
        empty = await queue.next_job(timeout=0.05)
        asyncio.get_running_loop().call_later(0.05, queue.submit, a_spec(media))
        job = await queue.next_job(timeout=5)
        return empty, job

    empty, job = asyncio.run(work())
    assert empty is None and job is not None


def test_recovery_puts_an_interrupted_job_back_at_the_front(tmp_path, media):
    path = tmp_path / "jobs.sqlite3"

    async def crash():
        queue = JobQueue(JobStore(path), tmp_path)
        first, second = queue.submit(a_spec(media)), queue.submit(a_spec(media))
        queue.start(first)
        queue.record(first.id, ProgressUpdate("lora", 2, 10))
        return first, second  # the process dies here: no close, no terminal event

    first, second = asyncio.run(crash())

    async def restart():
        queue = JobQueue(JobStore(path), tmp_path)
        recovered = queue.recover()
        return queue, recovered, await queue.next_job(timeout=0)

    queue, recovered, head = asyncio.run(restart())
    events = queue.store.events(first.id)
    assert [j.id for j in recovered] == [first.id]
    assert head is not None and head.id == first.id
    assert [j.id for j in queue.store.queued()] == [first.id, second.id]
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[-1].payload == Queued(1, "recovered")
    assert queue.get(first.id).attempt == 1 and queue.get(first.id).progress is None


def test_a_newer_schema_is_refused(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    JobStore(path).close()
    db = sqlite3.connect(path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.commit()
    db.close()
    with pytest.raises(ValueError, match="schema 99"):
        JobStore(path)
