"""A job's current state, folded from its events by `apply`."""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from framerelay.jobs.events import (
    Cancelled,
    EditUpdate,
    ErrorInfo,
    Failed,
    Finished,
    JobEvent,
    Preview,
    ProgressUpdate,
    Queued,
    Started,
    error_from_json,
    error_to_json,
    payload_from_json,
    payload_to_json,
)
from framerelay.jobs.spec import JobSpec


class JobState(enum.Enum):
    queued = "queued"
    running = "running"
    finished = "finished"
    failed = "failed"
    cancelled = "cancelled"
    awaiting_edit = "awaiting_edit"  # a round trip waiting for the user's edited frame

    @property
    def ended(self) -> bool:
        return self in (JobState.finished, JobState.failed, JobState.cancelled)


@dataclass(frozen=True)
class EditStatus:
    """Where a job's round trip with the image editor stands."""

    exported_path: str  # the file to edit; saves go in its folder
    width: int
    height: int
    source_frame: int  # index of the exported frame in the source file
    version: int = 0  # the accepted edit this job uses; 0: none yet
    edited_path: str = ""
    follow_job_id: str = ""  # the round trip went on with this job (a save after the start)

    @property
    def folder(self) -> Path:
        return Path(self.exported_path).parent


@dataclass(frozen=True)
class Job:
    id: str
    spec: JobSpec
    outputs: tuple[str, ...]  # planned output paths, one per edited frame
    created_at: float
    state: JobState = JobState.queued
    rank: float = 0.0  # queue order among queued jobs; lower runs first
    started_at: float | None = None
    ended_at: float | None = None
    attempt: int = 0
    last_seq: int = 0
    cancel_requested: bool = False
    progress: ProgressUpdate | None = None
    result: Finished | None = None
    error: ErrorInfo | None = None
    edit: EditStatus | None = None
    crashes: int = 0  # times the daemon died (killed, out of memory...) while this job ran

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "spec": self.spec.to_dict(),
            "outputs": list(self.outputs),
            "created_at": self.created_at,
            "state": self.state.value,
            "rank": self.rank,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "attempt": self.attempt,
            "last_seq": self.last_seq,
            "cancel_requested": self.cancel_requested,
            "progress": payload_to_json(self.progress) if self.progress else None,
            "result": payload_to_json(self.result) if self.result else None,
            "error": error_to_json(self.error) if self.error else None,
            "edit": asdict(self.edit) if self.edit else None,
            "crashes": self.crashes,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        progress, result, error = data.get("progress"), data.get("result"), data.get("error")
        edit = data.get("edit")
        return cls(
            id=data["id"],
            spec=JobSpec.from_dict(data["spec"]),
            outputs=tuple(data["outputs"]),
            created_at=data["created_at"],
            state=JobState(data["state"]),
            rank=data["rank"],
            started_at=data.get("started_at"),
            ended_at=data.get("ended_at"),
            attempt=data.get("attempt", 0),
            last_seq=data.get("last_seq", 0),
            cancel_requested=data.get("cancel_requested", False),
            progress=ProgressUpdate(**progress) if progress else None,
            result=finished_from_json(result) if result else None,
            error=error_from_json(error) if error else None,
            edit=EditStatus(**edit) if edit else None,
            crashes=data.get("crashes", 0),
        )


def apply(job: Job, event: JobEvent) -> Job:
    """The job after `event`; the one state machine of the daemon."""
    job = replace(job, last_seq=event.seq)
    match event.payload:
        case Queued():
            return replace(job, state=JobState.queued, progress=None, cancel_requested=False)
        case Started(attempt=attempt):
            return replace(job, state=JobState.running, attempt=attempt, started_at=event.time)
        case ProgressUpdate() as progress:
            return replace(job, progress=progress)
        case Preview():
            return job
        case Finished() as result:
            return replace(job, state=JobState.finished, result=result, ended_at=event.time)
        case Failed(error=error):
            return replace(job, state=JobState.failed, error=error, ended_at=event.time)
        case Cancelled(error=error):
            return replace(job, state=JobState.cancelled, error=error, ended_at=event.time)
        case EditUpdate() as update:
            return apply_edit(job, update)
    raise ValueError(f"unknown event payload {event.payload!r}")


def finished_from_json(data: dict[str, Any]) -> Finished:
    result = payload_from_json("finished", data)
    assert isinstance(result, Finished)
    return result


def apply_edit(job: Job, update: EditUpdate) -> Job:
    """An exported frame starts the job's round trip; an accepted edit becomes its edited frame
    until the job starts (one that went to a follow-up job leaves it unchanged)."""
    if update.kind == "exported":
        edit = EditStatus(update.path, update.width, update.height, update.source_frame)
        return replace(job, edit=edit)
    if update.kind == "edit_received" and update.follow_job_id and job.edit is not None:
        return replace(job, edit=replace(job.edit, follow_job_id=update.follow_job_id))
    if update.kind != "edit_received" or update.follow_job_id or not takes_edit(job):
        return job
    spec = replace(job.spec, edited_frames=(Path(update.path),))
    edit = job.edit or EditStatus("", 0, 0, 0)
    return replace(
        job, spec=spec, edit=replace(edit, version=update.version, edited_path=update.path)
    )


def takes_edit(job: Job) -> bool:
    """A new edited frame replaces this job's: it has not started (not even before a restart)."""
    return job.state in (JobState.awaiting_edit, JobState.queued) and job.started_at is None
