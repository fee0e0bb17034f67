"""The queue view folded from jobs and events (no Qt): the order the daemon keeps, old events
ignored, what each row says."""

from __future__ import annotations

from framerelay.proto.v1 import events_pb2, jobs_pb2, specs_pb2
from framerelay_tray.rows import JobRow, QueueState, format_eta, progress_text, retry_spec


def job(job_id: str, state: int = jobs_pb2.JOB_STATE_QUEUED, position: int = 0, seq: int = 1):
    spec = specs_pb2.JobSpec(source_path=f"/clips/{job_id}.mov", host_context={"host": "resolve"})
    return jobs_pb2.Job(id=job_id, spec=spec, state=state, position=position, last_seq=seq)


def event(job_id: str, seq: int, **payload) -> events_pb2.JobEvent:
    return events_pb2.JobEvent(job_id=job_id, seq=seq, **payload)


def queued(job_id: str, seq: int, position: int) -> events_pb2.JobEvent:
    return event(job_id, seq, queued=events_pb2.Queued(position=position))


def test_queued_events_keep_the_daemons_order():
    state = QueueState()
    state.load([job("a", position=1), job("b", position=2), job("c", position=3)])
    state.apply(queued("c", 2, 1))  # moved to the front
    assert state.order == ["c", "a", "b"]
    state.apply(event("c", 3, started=events_pb2.Started(attempt=1)))
    assert state.order == ["a", "b"] and state.running().job_id == "c"
    state.apply(queued("c", 4, 1))  # a pause interrupted it: first again
    assert state.order == ["c", "a", "b"] and state.position("b") == 3
    state.apply(event("a", 2, cancelled=events_pb2.Cancelled()))
    assert state.order == ["c", "b"] and state.rows["a"].state == "cancelled"


def test_an_event_already_seen_changes_nothing():
    state = QueueState()
    state.load([job("a", state=jobs_pb2.JOB_STATE_RUNNING, seq=5)])
    before = state.rows["a"]
    state.apply(event("a", 4, progress=events_pb2.Progress(phase="lora", step=3, total=10)))
    assert state.rows["a"] is before
    assert not state.apply(event("unknown", 1, queued=events_pb2.Queued(position=1)))


def test_progress_fraction_text_and_the_resolved_preset():
    row = JobRow.from_job(job("a", state=jobs_pb2.JOB_STATE_RUNNING))
    progress = events_pb2.Progress(phase="invert", clip=2, clips=4, step=5, total=10)
    state = QueueState({"a": row}, [])
    state.apply(event("a", 2, progress=progress))
    row = state.rows["a"]
    assert row.fraction == (1 + 0.5) / 4
    assert progress_text(row) == "invert 5/10"
    assert row.clip == "a.mov" and row.host == "resolve" and row.preset == "auto"
    state.apply(
        event("a", 3, finished=events_pb2.Finished(output_paths=["/o.mov"], preset="style"))
    )
    assert state.rows["a"].preset == "style" and state.rows["a"].fraction == 1.0


def test_the_error_text_carries_the_hint():
    failed = job("a", state=jobs_pb2.JOB_STATE_FAILED)
    failed.error.message, failed.error.hint = "the job ran out of memory.", "Lower the size."
    row = JobRow.from_job(failed)
    assert row.error_text == "a.mov: the job ran out of memory.\nHint: Lower the size."


def test_the_list_order_is_running_queue_awaiting_then_ended_latest_first():
    old = job("old", state=jobs_pb2.JOB_STATE_FINISHED)
    old.ended_at.FromSeconds(100)
    new = job("new", state=jobs_pb2.JOB_STATE_FAILED)
    new.ended_at.FromSeconds(200)
    state = QueueState()
    state.load(
        [
            old,
            job("q2", position=2),
            new,
            job("edit", state=jobs_pb2.JOB_STATE_AWAITING_EDIT),
            job("q1", position=1),
            job("run", state=jobs_pb2.JOB_STATE_RUNNING),
        ]
    )
    assert [row.job_id for row in state.ordered()] == ["run", "q1", "q2", "edit", "new", "old"]


def test_eta_reads_naturally():
    assert [format_eta(s) for s in (None, 0.2, 42, 125, 7300)] == [
        "",
        "< 1 s",
        "42 s",
        "2 min 05 s",
        "2 h 01 min",
    ]


def test_a_retried_round_trip_runs_with_the_edit_it_received():
    spec = specs_pb2.JobSpec(
        request_id="blender-9", source_path="/c.mov", edited_frame_paths=["/edits/v2.png"]
    )
    spec.edit_session.frame_index = 3
    again = retry_spec(spec)
    assert again.request_id == "" and not again.HasField("edit_session")
    assert list(again.edited_frame_paths) == ["/edits/v2.png"] and spec.request_id == "blender-9"
    awaiting = specs_pb2.JobSpec(source_path="/c.mov")
    awaiting.edit_session.frame_index = 3
    assert retry_spec(awaiting).HasField("edit_session")  # no edit yet: a new round trip
