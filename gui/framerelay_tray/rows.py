"""What the queue window shows of each job, folded from the daemon's jobs and events, and what
a retry submits; no Qt.

`QueueState` mirrors the daemon's queue: a snapshot (ListJobs) replaces everything, and each
WatchQueue event updates one job. Queue positions move without events for the other jobs, so the
order of queued jobs is kept here the way the daemon keeps it: a `queued` event puts its job at
the position it names, and a job that starts or ends leaves the queue.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import PurePath

from framerelay.proto.v1 import events_pb2, jobs_pb2, specs_pb2

STATE_NAMES = {
    jobs_pb2.JOB_STATE_QUEUED: "queued",
    jobs_pb2.JOB_STATE_RUNNING: "running",
    jobs_pb2.JOB_STATE_FINISHED: "finished",
    jobs_pb2.JOB_STATE_FAILED: "failed",
    jobs_pb2.JOB_STATE_CANCELLED: "cancelled",
    jobs_pb2.JOB_STATE_AWAITING_EDIT: "awaiting edit",
}
ENDED = ("finished", "failed", "cancelled")
# The order of the list: as ListJobs gives it.
STATE_ORDER = {"running": 0, "queued": 1, "awaiting edit": 2}


def preset_name(value: int) -> str:
    name = specs_pb2.Preset.Name(value).removeprefix("PRESET_").lower()
    return "auto" if name == "unspecified" else name


@dataclass(frozen=True)
class JobRow:
    job_id: str
    clip: str  # the label, else the source file's name
    host: str  # host_context["host"] as the plugin sent it; "" from the command line
    state: str  # queued | running | finished | failed | cancelled | awaiting edit
    created_at: float
    preset: str  # the preset asked for; once finished, the one used (auto resolved)
    spec: specs_pb2.JobSpec = field(repr=False, compare=False)
    phase: str = ""
    step: int = 0
    total: int = 0
    window: int = 0
    windows: int = 0
    eta_seconds: float | None = None
    message: str = ""
    last_seq: int = 0
    ended_at: float = 0.0
    cancel_requested: bool = False
    output_paths: tuple[str, ...] = ()
    planned_outputs: tuple[str, ...] = ()
    error_message: str = ""
    error_hint: str = ""
    exported_path: str = ""  # round trips awaiting their edit: the file to edit

    @classmethod
    def from_job(cls, job: jobs_pb2.Job) -> JobRow:
        spec = job.spec
        progress = job.progress
        row = cls(
            job_id=job.id,
            clip=spec.label or PurePath(spec.source_path).name,
            host=spec.host_context.get("host", ""),
            state=STATE_NAMES.get(job.state, "unknown"),
            created_at=job.created_at.ToNanoseconds() / 1e9,
            preset=job.result.preset or preset_name(spec.params.preset),
            spec=spec,
            last_seq=job.last_seq,
            ended_at=job.ended_at.ToNanoseconds() / 1e9 if job.HasField("ended_at") else 0.0,
            cancel_requested=job.cancel_requested,
            output_paths=tuple(job.result.output_paths),
            planned_outputs=tuple(job.output_paths),
            error_message=job.error.message,
            error_hint=job.error.hint,
            exported_path=job.edit.exported_path,
        )
        if job.HasField("progress"):
            row = with_progress(row, progress)
        return row

    @property
    def ended(self) -> bool:
        return self.state in ENDED

    @property
    def fraction(self) -> float:
        """How far the current phase is, over all windows of the clip: 0..1."""
        if self.state == "finished":
            return 1.0
        if not self.total:
            return 0.0
        windows = max(self.windows, 1)
        done = (max(self.window, 1) - 1 + self.step / self.total) / windows
        return min(max(done, 0.0), 1.0)

    @property
    def error_text(self) -> str:
        """The error as a user pastes it into a message: what happened, and what to do."""
        if not self.error_message:
            return ""
        return f"{self.clip}: {self.error_message}\nHint: {self.error_hint}".rstrip()


def with_progress(row: JobRow, progress: events_pb2.Progress) -> JobRow:
    return replace(
        row,
        phase=progress.phase,
        step=progress.step,
        total=progress.total,
        window=progress.clip,
        windows=progress.clips,
        eta_seconds=progress.eta_seconds if progress.HasField("eta_seconds") else None,
        message=progress.message,
    )


def apply_event(row: JobRow, event: events_pb2.JobEvent) -> JobRow:
    """The row after `event`; an event the row has already seen leaves it as it is."""
    if event.seq <= row.last_seq:
        return row
    row = replace(row, last_seq=event.seq)
    kind = event.WhichOneof("kind")
    when = event.time.ToNanoseconds() / 1e9
    if kind == "queued":
        return replace(row, state="queued", phase="", step=0, total=0, cancel_requested=False)
    if kind == "started":
        return replace(row, state="running", phase="", step=0, total=0)
    if kind == "progress":
        return with_progress(row, event.progress)
    if kind == "finished":
        preset = event.finished.preset or row.preset
        outputs = tuple(event.finished.output_paths)
        return replace(row, state="finished", output_paths=outputs, preset=preset, ended_at=when)
    if kind in ("failed", "cancelled"):
        error = getattr(event, kind).error
        return replace(
            row,
            state=kind,
            error_message=error.message,
            error_hint=error.hint,
            ended_at=when,
        )
    if kind == "edit" and event.edit.kind == events_pb2.EDIT_EVENT_KIND_EXPORTED:
        return replace(row, state="awaiting edit", exported_path=event.edit.path)
    return row  # previews and other round-trip steps change nothing shown in the row


@dataclass
class QueueState:
    """Every job the window shows, and the queue's order."""

    rows: dict[str, JobRow] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)  # queued job ids, next to run first

    def load(self, jobs: list[jobs_pb2.Job]) -> None:
        self.rows = {job.id: JobRow.from_job(job) for job in jobs}
        queued = [job for job in jobs if job.state == jobs_pb2.JOB_STATE_QUEUED]
        self.order = [job.id for job in sorted(queued, key=lambda job: job.position)]

    def add(self, job: jobs_pb2.Job) -> None:
        """A job first seen through an event: fetched with GetJob, possibly newer than the event."""
        self.rows[job.id] = JobRow.from_job(job)
        if job.state == jobs_pb2.JOB_STATE_QUEUED and job.id not in self.order:
            self.order.insert(min(max(job.position, 1), len(self.order) + 1) - 1, job.id)

    def apply(self, event: events_pb2.JobEvent) -> bool:
        """Applies one event; False when the job is unknown (fetch it, `add` it, apply again)."""
        row = self.rows.get(event.job_id)
        if row is None:
            return False
        new = apply_event(row, event)
        self.rows[event.job_id] = new
        if new is row:
            return True
        if event.WhichOneof("kind") == "queued":
            if event.job_id in self.order:
                self.order.remove(event.job_id)
            place = min(max(event.queued.position, 1), len(self.order) + 1)
            self.order.insert(place - 1, event.job_id)
        elif new.state != "queued" and event.job_id in self.order:
            self.order.remove(event.job_id)
        return True

    def position(self, job_id: str) -> int:
        return self.order.index(job_id) + 1 if job_id in self.order else 0

    def ordered(self) -> list[JobRow]:
        """Running first, then the queue in order, then awaiting edits, then ended jobs, latest
        first: the order of ListJobs."""
        queue_rank = {job_id: n for n, job_id in enumerate(self.order)}

        def key(row: JobRow) -> tuple[int, float, float]:
            group = STATE_ORDER.get(row.state, 3)
            if group == 1:
                return group, queue_rank.get(row.job_id, len(queue_rank)), 0.0
            return group, -row.ended_at, -row.created_at

        return sorted(self.rows.values(), key=key)

    def running(self) -> JobRow | None:
        return next((row for row in self.rows.values() if row.state == "running"), None)

    @property
    def queue_length(self) -> int:
        return len(self.order)


def retry_spec(spec: specs_pb2.JobSpec) -> specs_pb2.JobSpec:
    """The spec of a new job doing what `spec` asked: a new request id, and a round trip whose edit
    arrived becomes a plain job with that edit."""
    again = specs_pb2.JobSpec()
    again.CopyFrom(spec)
    again.request_id = ""
    if again.edited_frame_paths:
        again.ClearField("edit_session")
    return again


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return "< 1 s"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_created(when: float, now: float | None = None) -> str:
    now = time.time() if now is None else now
    local = time.localtime(when)
    if time.localtime(now)[:3] == local[:3]:
        return time.strftime("%H:%M:%S", local)
    return time.strftime("%Y-%m-%d %H:%M", local)


def progress_text(row: JobRow) -> str:
    """`lora 3/10` (the phase), `stopping` once an interrupt was asked, `cached` for a skip."""
    if row.state != "running":
        return ""
    if row.cancel_requested:
        return "stopping"
    if not row.phase:
        return "starting"
    text = f"{row.phase} {row.step}/{row.total}"
    return f"{text} ({row.message})" if row.message else text
