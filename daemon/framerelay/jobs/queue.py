"""The job queue: submit, order, cancel, move, and watch jobs over the store and the event hub.

All methods run in the daemon's event loop; the worker takes jobs from here and records what the
executor reports through `record`. Every event is stored before any watcher sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from pathlib import Path

from framerelay.errors import ErrorCode, InvalidSpecError, NotFoundError, UnavailableError
from framerelay.jobs.events import (
    Cancelled,
    EditUpdate,
    ErrorInfo,
    Failed,
    JobEvent,
    Payload,
    Queued,
    Started,
)
from framerelay.jobs.hub import EventHub
from framerelay.jobs.job import EditStatus, Job, JobState
from framerelay.jobs.output_policy import OutputPolicy, check_writable
from framerelay.jobs.spec import ClipInfo, JobSpec, plan_outputs, probe_clip
from framerelay.jobs.store import JobStore
from framerelay.progress import CancelToken

log = logging.getLogger(__name__)

PAGE = 500  # events read from the store at a time when a watcher catches up
JOB_ID = re.compile(r"[0-9a-f]{1,32}")
PAUSED_KEY = "queue_paused"  # in the store: a pause outlives a restart
MAX_CRASHES = 2  # a job running at this many daemon deaths is failed instead of run again


def new_job_id() -> str:
    return uuid.uuid4().hex


Listener = Callable[[Job, JobEvent], None]


class CancelOutcome(enum.Enum):
    dequeued = "dequeued"
    interrupt_requested = "interrupt_requested"
    already_ended = "already_ended"


class JobQueue:
    def __init__(
        self,
        store: JobStore,
        output_root: Path,
        clock: Callable[[], float] = time.time,
        policy: OutputPolicy | None = None,
    ):
        self.store = store
        self.output_root = output_root
        self.policy = policy or OutputPolicy(output_root)
        self._clock = clock
        self._hub = EventHub()
        self._wakeup = asyncio.Event()
        self._tokens: dict[str, CancelToken] = {}
        self._paused = store.setting(PAUSED_KEY) is not None
        self._requeue: dict[str, float] = {}  # running jobs a pause interrupted -> their rank
        self._closed = False
        self.listeners: list[Listener] = []  # called in the event loop after each stored event

    # --- clients ---

    def admit(self, spec: JobSpec) -> ClipInfo | None:
        """Every check that needs no job id: the spec, the output folder, the clip's length.
        Returns what the clip's header says (None without the media extra).

        Touches only the file system, so it may run outside the event loop.
        """
        spec.validate()
        self.policy.check_spec(spec)
        if spec.output_folder is not None:
            check_writable(spec.output_folder / "output")
        return probe_clip(spec)

    def submit(
        self, spec: JobSpec, *, reason: str = "submitted", edit: EditStatus | None = None
    ) -> Job:
        if spec.awaits_edit:
            raise InvalidSpecError(
                "a round-trip job has no edited frame to queue yet.",
                "Submit it through the daemon's SubmitJob, which exports the frame to edit.",
            )
        self.admit(spec)
        return self.enqueue_admitted(spec, reason=reason, edit=edit)

    def enqueue_admitted(
        self, spec: JobSpec, *, reason: str = "submitted", edit: EditStatus | None = None
    ) -> Job:
        """Queues an admitted spec (round trips go through `add_awaiting`)."""
        if spec.request_id:
            existing = self.store.by_request_id(spec.request_id)
            if existing is not None:
                return existing
        job_id = new_job_id()
        outputs = plan_outputs(spec, job_id, self.output_root)
        self.policy.check_outputs(outputs, spec.source, spec.overwrite)
        bounds = self.store.rank_bounds()
        job = Job(
            id=job_id,
            spec=spec,
            outputs=tuple(str(p) for p in outputs),
            created_at=self._clock(),
            rank=bounds[1] + 1 if bounds else 1.0,
            edit=edit,
        )
        position = self.store.queue_length() + 1
        job, event = self.store.add(job, Queued(position, reason), self._clock())
        self._published(job, event)
        self._wakeup.set()
        log.info("job %s queued at %d: %s", job_id, position, spec.source.name)
        return job

    def add_awaiting(self, job_id: str, spec: JobSpec, exported: EditUpdate) -> Job:
        """Stores a round-trip job, not queued, with its `exported` event first."""
        outputs = plan_outputs(spec, job_id, self.output_root)
        self.policy.check_outputs(outputs, spec.source, spec.overwrite)
        job = Job(
            id=job_id,
            spec=spec,
            outputs=tuple(str(p) for p in outputs),
            created_at=self._clock(),
            state=JobState.awaiting_edit,
        )
        job, event = self.store.add(job, exported, self._clock())
        self._published(job, event)
        log.info("job %s awaits its edit: %s", job_id, exported.path)
        return job

    def enqueue(self, job_id: str, reason: str) -> Job:
        """Puts a job that awaited its edit at the end of the queue."""
        job = self.get(job_id)
        bounds = self.store.rank_bounds()
        self.store.save(replace(job, rank=bounds[1] + 1 if bounds else 1.0))
        job = self.record(job_id, Queued(self.store.queue_length() + 1, reason))
        self._wakeup.set()
        log.info("job %s queued: %s", job_id, reason)
        return job

    def get(self, job_id: str) -> Job:
        job = self.store.get(job_id)
        if job is None:
            if JOB_ID.fullmatch(job_id):
                raise NotFoundError(f"no job {job_id!r}.")
            raise NotFoundError(  # never echo what is not an id: it could be anything
                "no job with the id given; job ids are 32 hexadecimal digits."
            )
        return job

    def check_run(self, job: Job) -> None:
        """Checks the outputs again just before the job runs: a folder may have become a symlink
        meanwhile. Outputs may exist on a later attempt: an earlier one wrote them."""
        overwrite = job.spec.overwrite or job.attempt > 1
        self.policy.check_outputs((Path(p) for p in job.outputs), job.spec.source, overwrite)
        for output in job.outputs:
            check_writable(Path(output))

    def position(self, job: Job) -> int:
        """1-based place in the queue; 0 when the job is not queued."""
        if job.state is not JobState.queued:
            return 0
        return self.store.jobs_ahead(job) + 1

    def positions(self) -> dict[str, int]:
        return {job_id: n for n, job_id in enumerate(self.store.queued_ids(), start=1)}

    def list_jobs(self, states: Iterable[JobState] = (), limit: int = 0) -> tuple[list[Job], int]:
        """Jobs and the daemon-wide cursor of the same moment."""
        return self.store.list_jobs(states, limit), self.store.last_cursor()

    def cancel(self, job_id: str) -> tuple[Job, CancelOutcome]:
        job = self.get(job_id)
        if job.state in (JobState.queued, JobState.awaiting_edit):
            error = ErrorInfo.of(ErrorCode.cancelled, "The job was cancelled before it ran.")
            job = self.record(job_id, Cancelled("dequeued", error))
            log.info("job %s cancelled while queued", job_id)
            return job, CancelOutcome.dequeued
        if job.state is JobState.running:
            job = replace(job, cancel_requested=True)
            self.store.save(job)  # first: an acknowledged cancel holds across a crash (recover)
            token = self._tokens.get(job_id)
            if token is None:  # stored as running, but nothing runs it: end it now
                job = self.record(job_id, interrupted(job.progress.phase if job.progress else ""))
                log.warning("job %s was running without a worker; cancelled", job_id)
            else:
                token.cancel()
                log.info("job %s asked to stop", job_id)
            return job, CancelOutcome.interrupt_requested
        return job, CancelOutcome.already_ended

    def move(self, job_id: str, position: int) -> tuple[Job, list[str]]:
        if position < 1:
            raise InvalidSpecError(f"queue positions start at 1, got {position}.", "1 runs next.")
        job = self.get(job_id)
        if job.state is not JobState.queued:
            raise InvalidSpecError(
                f"job {job_id} is {job.state.value}; only queued jobs move.",
                "List the queue with `framerelay jobs`.",
            )
        order = [j for j in self.store.queued() if j.id != job_id]
        order.insert(min(position - 1, len(order)), job)
        self.store.save_all(replace(j, rank=float(n)) for n, j in enumerate(order, start=1))
        new_position = order.index(job) + 1
        job = self.record(job_id, Queued(new_position, "moved"))
        return job, [j.id for j in order]

    # --- pause and resume ---

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self, interrupt_running: bool = False) -> str | None:
        """Stops starting queued jobs; with `interrupt_running`, the running jobs stop at their
        next step and are queued first again, in the order they started. Returns the id of the
        first of them."""
        self.store.set_setting(PAUSED_KEY, "1")  # first: a pause it cannot keep is refused
        self._paused = True
        running = list(self._tokens)
        log.info("queue paused%s", f"; interrupting {running}" if interrupt_running else "")
        if not interrupt_running or not running:
            return None
        bounds = self.store.rank_bounds()
        front = bounds[0] if bounds else 1.0
        for place, job_id in enumerate(running):  # the first started goes first again
            self._requeue[job_id] = front - len(running) + place
            self._tokens[job_id].cancel()
        return running[0]

    def resume(self) -> bool:
        """Starts queued jobs again; returns whether the queue was paused."""
        self.store.set_setting(PAUSED_KEY, None)
        was_paused, self._paused = self._paused, False
        self._wakeup.set()
        log.info("queue resumed")
        return was_paused

    def take_requeue(self, job_id: str) -> float | None:
        """Where a job that a pause (and no cancel) interrupted goes back in the queue: its rank;
        None when no pause interrupted it."""
        rank = self._requeue.pop(job_id, None)
        if rank is None or self.get(job_id).cancel_requested:
            return None
        return rank

    def requeue_first(self, job_id: str, reason: str, rank: float | None = None) -> Job:
        """Puts a job that was running back at the front of the queue, or at `rank`."""
        job = self.get(job_id)
        if rank is None:
            bounds = self.store.rank_bounds()
            rank = bounds[0] - 1 if bounds else 1.0
        self.store.save(replace(job, rank=rank))
        self._tokens.pop(job_id, None)
        return self.record(job_id, Queued(1, reason))

    def crashed(self, job_id: str) -> Job:
        """A worker process died running the job: one crash, as at a start after a daemon crash;
        the job runs again first, or fails at the crash-loop guard's limit."""
        job = replace(self.get(job_id), crashes=self.get(job_id).crashes + 1)
        self.store.save(job)
        if job.crashes >= MAX_CRASHES:
            log.error("job %s was running at %d crashes; failed", job_id, job.crashes)
            return self.record(job_id, Failed(crash_loop_error(job.crashes)))
        log.warning("job %s lost its worker process; it runs again", job_id)
        return self.requeue_first(job_id, "recovered")

    # --- the worker ---

    def recover(self) -> list[Job]:
        """Puts jobs that were running when the daemon stopped back at the front of the queue.

        One whose cancel was acknowledged ends cancelled instead. A job that was running each time
        the daemon died (killed, out of memory...) MAX_CRASHES times is failed, so that it cannot
        kill the daemon at every start."""
        crashed = self.store.begin_session()
        recovered = []
        for job in reversed(self.store.with_state(JobState.running)):
            if job.cancel_requested:
                self.record(job.id, interrupted(job.progress.phase if job.progress else ""))
                log.warning("job %s was cancelled before a restart; it stays cancelled", job.id)
                continue
            if crashed:
                job = replace(job, crashes=job.crashes + 1)
                self.store.save(job)
            if job.crashes >= MAX_CRASHES:
                recovered.append(self.record(job.id, Failed(crash_loop_error(job.crashes))))
                log.error("job %s was running at %d daemon crashes; failed", job.id, job.crashes)
                continue
            recovered.append(self.requeue_first(job.id, "recovered"))
            log.warning("job %s was interrupted by a restart; it runs again", job.id)
        return recovered

    async def next_job(self, timeout: float | None = None) -> Job | None:
        """The job at the head of the queue, waiting for one up to `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            job = None if self._paused else self.store.first_queued()
            if job is not None:
                return job
            self._wakeup.clear()
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:
                await asyncio.wait_for(self._wakeup.wait(), left)
            except TimeoutError:
                return None
        return None

    def close(self) -> None:
        """Interrupts the running job and makes `next_job` return None from now on."""
        self._closed = True
        for token in self._tokens.values():
            token.cancel()
        self._wakeup.set()
        self._hub.close()

    def start(self, job: Job) -> tuple[Job, CancelToken]:
        """Marks the job running; DiskFullError leaves it queued."""
        job = self.record(job.id, Started(job.attempt + 1))
        token = CancelToken()
        self._tokens[job.id] = token
        return job, token

    def record(self, job_id: str, payload: Payload) -> Job:
        job, event = self.store.append(job_id, payload, self._clock())
        if event.terminal:
            self._tokens.pop(job_id, None)
            self._requeue.pop(job_id, None)
        self._published(job, event)
        return job

    def _published(self, job: Job, event: JobEvent) -> None:
        self._hub.publish(event)
        for listener in self.listeners:
            try:
                listener(job, event)
            except Exception:
                log.exception("a job event listener failed on %s of job %s", event.kind, job.id)

    def running_job_id(self) -> str | None:
        """The running job that started first (a worker pool runs several)."""
        return next(iter(self._tokens), None)

    # --- watchers ---

    async def watch(self, job_id: str, after_seq: int = 0) -> AsyncIterator[JobEvent]:
        """The job's events after `after_seq`, live; ends after the terminal event."""
        self.get(job_id)
        with self._hub.subscribe(job_id) as live:
            last = after_seq
            while True:  # catch up from the store; events stored meanwhile also reach `live`
                page = self.store.events(job_id, last, PAGE)
                for event in page:
                    yield event
                    last = event.seq
                    if event.terminal:
                        return
                if len(page) < PAGE:
                    break
            if self.get(job_id).last_seq <= last and self.get(job_id).state.ended:
                return
            while True:
                news = await live.get()
                if news is None:
                    raise stopping()
                if news.seq <= last:
                    continue
                yield news
                last = news.seq
                if news.terminal:
                    return

    async def poll(
        self, job_id: str, after_seq: int, wait_seconds: float, max_events: int = 0
    ) -> tuple[list[JobEvent], bool]:
        """Events after `after_seq`, waiting up to `wait_seconds` for the first; and whether the
        job has ended with nothing left to read after them."""
        job = self.get(job_id)
        events = self.store.events(job_id, after_seq, max_events)
        if not events and wait_seconds > 0 and not job.state.ended:
            with self._hub.subscribe(job_id) as live:
                events = self.store.events(job_id, after_seq, max_events)
                if not events:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(live.get(), wait_seconds)
                    events = self.store.events(job_id, after_seq, max_events)
            job = self.get(job_id)
        last = events[-1].seq if events else after_seq
        return events, job.state.ended and last >= job.last_seq

    async def watch_all(self, after_cursor: int | None = None) -> AsyncIterator[JobEvent]:
        """Every job's events after `after_cursor` (None: from now on); never ends by itself."""
        with self._hub.subscribe(None) as live:
            last = self.store.last_cursor() if after_cursor is None else after_cursor
            while True:
                page = self.store.events_since(last, PAGE)
                for event in page:
                    yield event
                    last = event.cursor
                if len(page) < PAGE:
                    break
            while True:
                news = await live.get()
                if news is None:
                    raise stopping()
                if news.cursor > last:
                    yield news
                    last = news.cursor

    @property
    def watcher_count(self) -> int:
        return self._hub.watcher_count


def interrupted(phase: str) -> Cancelled:
    error = ErrorInfo.of(ErrorCode.cancelled, "The job was cancelled while it ran.")
    return Cancelled("interrupted", error, phase)


def crash_loop_error(crashes: int) -> ErrorInfo:
    return ErrorInfo(
        ErrorCode.internal,
        f"the daemon stopped unexpectedly {crashes} times while running this job (it may have "
        "run out of memory), so it is not run again.",
        "Free GPU memory (close other GPU programs, `framerelay unload`) or make the job smaller "
        "(--width/--height, --window), then retry it; the daemon's log tells more.",
    )


def stopping() -> UnavailableError:
    return UnavailableError(
        "the daemon is stopping.",
        "Reconnect once it runs again and resume after the last seq (or cursor) you saw.",
    )
