"""The daemon's worker pool (docs/scale.md): one worker process per GPU (or `--workers N` on the
CPU), each with its own warm engine, and optionally a Ray driver process for a cluster.

`PoolExecutor` is an `Executor` with several slots: the `Worker` starts jobs in queue order while
it `has_room`, each job's editing chain runs in one worker process, and the windows of a long job
fan their analysis (motion LoRA + inversion) out to the other workers, or to Ray, through the
job's `Coordinator` (jobs/fanout.py): helpers store each window's cache entry, and the chain
loads it as a cache hit. A running job's windows come before the next job: a worker that could
help a running job does not start a new one.

A worker process that dies (killed, out of memory) costs its job one crash (`WorkerLostError`;
the worker's crash-loop guard decides) and is started again for the next work; a helper that
dies only loses its window, which the chain then computes. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from framerelay.engine.window_tasks import WindowTask
from framerelay.errors import CancelledError, FramerelayError, UnavailableError, WorkerLostError
from framerelay.jobs import slot_process
from framerelay.jobs.executor import Execution, ExecutionResult, ExecutorStatus, Reporter
from framerelay.jobs.fanout import Coordinator, Outcome
from framerelay.jobs.slot_process import SlotSpec
from framerelay.progress import CancelToken

log = logging.getLogger(__name__)

STOP_GRACE_S = 10.0  # a worker process gets this long to stop by itself


@dataclass
class _Work:
    """What a slot is doing: a job's chain or one window's analysis."""

    id: str  # the job id, or the task id (job:index)
    job_id: str
    task: WindowTask | None = None  # an analysis
    stolen: bool = False  # an analysis the job's own process does while it waits
    report: Reporter | None = None  # a job's
    done: threading.Event | None = None  # a job's: set with `result` or `error`
    result: ExecutionResult | None = None
    error: BaseException | None = None


class _Slot:
    """A worker process, as the daemon sees it: started on first use, started again after it
    died."""

    def __init__(self, index: int, spec: SlotSpec, pool: PoolExecutor):
        self.index, self.spec, self.pool = index, spec, pool
        self.process: Any = None
        self.conn: Any = None
        self.work: dict[str, _Work] = {}
        self.status = ExecutorStatus(spec.name, False)
        self._send_lock = threading.Lock()

    @property
    def idle(self) -> bool:
        return not self.work

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process with threads
        parent, child = context.Pipe()
        self.process = context.Process(
            target=slot_process.main,
            args=(child, self.spec, logging.getLogger().getEffectiveLevel()),
            name=f"framerelay-worker-{self.index}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.conn = parent
        threading.Thread(
            target=self.pool._read, args=(self, parent), name=f"worker-{self.index}", daemon=True
        ).start()
        log.info("worker process %d (%s) started: pid %d", self.index, self.spec.name, self.pid)

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else 0

    def send(self, *message: Any) -> bool:
        with self._send_lock:
            if self.conn is None:
                return False
            try:
                self.conn.send(message)
                return True
            except (OSError, EOFError, ValueError):
                return False


class PoolExecutor:
    """An `Executor` over worker processes; see the module's docstring."""

    def __init__(self, slots: list[SlotSpec], fanout: bool = True):
        if not any(spec.runs_jobs for spec in slots):
            raise ValueError("a pool needs at least one worker that runs jobs")
        self._lock = threading.RLock()
        self._slots = [_Slot(i, spec, self) for i, spec in enumerate(slots)]
        self._fanout = fanout and any(spec.helps for spec in slots)
        self._jobs: dict[str, Coordinator | None] = {}  # running jobs (None: not planned yet)
        self._work: dict[str, _Work] = {}
        self._on_room: Callable[[], None] | None = None
        self._closed = False

    @property
    def slots(self) -> int:
        return sum(spec.runs_jobs for spec in (slot.spec for slot in self._slots))

    # --- the Worker's side ---

    def set_room_listener(self, listener: Callable[[], None] | None) -> None:
        """`listener` is called (from any thread) whenever a new job may have room; None stops
        the calls."""
        self._on_room = listener

    def has_room(self) -> bool:
        """Whether a job may start now: a free job slot that no running job's windows want."""
        with self._lock:
            free = [s for s in self._slots if s.idle and s.spec.runs_jobs]
            shared = [s for s in self._slots if s.spec.helps and s.spec.runs_jobs]
            if not free or not self._fanout or not shared:
                return bool(free)
            demand = 0
            for coordinator in self._jobs.values():
                if coordinator is None:  # still planning: its windows may want the slots
                    return False
                demand += coordinator.demand()
            return len(free) > demand

    def reserve(self, job_id: str) -> None:
        """Holds a free slot for a job the worker starts now (it calls `execute` from a thread
        a moment later), so that the next `has_room` does not count that slot."""
        with self._lock:
            slot = self._free_slot()
            if slot is not None:
                slot.work[job_id] = _Work(job_id, job_id)

    def release(self, job_id: str) -> None:
        """Frees a slot reserved for a job that ended before it got there."""
        with self._lock:
            for slot in self._slots:
                work = slot.work.get(job_id)
                if work is not None and work.done is None:
                    del slot.work[job_id]
        self._room()

    def execute(self, run: Execution, report: Reporter, cancel: CancelToken) -> ExecutionResult:
        done = threading.Event()
        work = _Work(run.job_id, run.job_id, report=report, done=done)
        with self._lock:
            slot = self._reserved_slot(run.job_id) or self._free_slot()
            while slot is None:  # nothing reserved, and a helper took the free slot: wait
                self._lock.release()
                try:
                    if cancel.cancelled:
                        raise CancelledError("The job was cancelled.")
                    time.sleep(0.05)
                finally:
                    self._lock.acquire()
                slot = self._free_slot()
            self._jobs[run.job_id] = None if self._fanout else Coordinator(run.job_id, [])
            self._assign(slot, work)
            sent = slot.send(slot_process.JOB, run.job_id, run, self._fanout)
        if not sent:
            self._lost(slot)
        stopping = False
        while not done.wait(0.1):
            if cancel.cancelled and not stopping:
                stopping = True
                slot.send(slot_process.CANCEL, run.job_id)
                self._stop_job(run.job_id)
        self._stop_job(run.job_id, forget=True)
        if work.error is not None:
            raise work.error
        assert work.result is not None
        return work.result

    def processes(self) -> dict[str, int]:
        """The process id running each job (by job id) and analysis (by job:window)."""
        with self._lock:
            return {
                work.id: slot.pid
                for slot in self._slots
                if slot.alive
                for work in slot.work.values()
                if work.done is not None or work.task is not None  # not a mere reservation
            }

    def status(self) -> ExecutorStatus:
        with self._lock:
            statuses = [slot.status for slot in self._slots]
        loaded = [s for s in statuses if s.model_loaded]
        return ExecutorStatus(
            ", ".join(slot.spec.name for slot in self._slots),
            bool(loaded),
            loaded[0].model if loaded else "",
            sum(s.vram_used_bytes for s in loaded),
            sum(s.vram_total_bytes for s in statuses),
        )

    def unload(self) -> None:
        with self._lock:
            for slot in self._slots:
                if slot.alive and slot.idle and slot.status.model_loaded:
                    slot.send(slot_process.UNLOAD)

    def close(self) -> None:
        """Stops the worker processes (their running work is cancelled first)."""
        with self._lock:
            self._closed = True
            slots = list(self._slots)
            for slot in slots:
                for work_id in list(slot.work):
                    slot.send(slot_process.CANCEL, work_id)
                slot.send(slot_process.STOP)
        deadline = time.monotonic() + STOP_GRACE_S
        for slot in slots:
            if slot.process is None:
                continue
            slot.process.join(max(0.0, deadline - time.monotonic()))
            if slot.process.is_alive():
                log.warning("worker process %d did not stop; killing it", slot.index)
                slot.process.kill()
                slot.process.join(5)

    # --- slots and helpers ---

    def _reserved_slot(self, job_id: str) -> _Slot | None:
        for slot in self._slots:
            work = slot.work.get(job_id)
            if work is not None and work.done is None:
                return slot
        return None

    def _free_slot(self) -> _Slot | None:
        for slot in self._slots:
            if slot.idle and slot.spec.runs_jobs:
                return slot
        return None

    def _assign(self, slot: _Slot, work: _Work) -> None:
        if not slot.alive:
            slot.start()
        slot.work[work.id] = work
        self._work[work.id] = work

    def _dispatch(self) -> None:
        """Hands released windows to idle helpers, the earliest job's first."""
        if self._closed:
            return
        for slot in self._slots:
            if not slot.spec.helps:
                continue
            concurrent = slot.spec.runtime.concurrent
            while concurrent or slot.idle:
                task = self._next_task()
                if task is None:
                    return
                work = _Work(task.id, task.job_id, task=task)
                self._assign(slot, work)
                if not slot.send(slot_process.ANALYSE, task):
                    self._lost(slot)
                    break
                if not concurrent:
                    break

    def _next_task(self) -> WindowTask | None:
        for coordinator in self._jobs.values():
            task = coordinator.take() if coordinator is not None else None
            if task is not None:
                return task
        return None

    def _stop_job(self, job_id: str, forget: bool = False) -> None:
        with self._lock:
            coordinator = self._jobs.get(job_id)
            if coordinator is not None:
                for task in coordinator.stop():
                    for slot in self._slots:
                        if task.id in slot.work:
                            slot.send(slot_process.CANCEL, task.id)
            if forget:
                self._jobs.pop(job_id, None)
        self._room()

    def _room(self) -> None:
        listener = self._on_room
        if listener is not None and self.has_room():
            listener()

    # --- messages from the worker processes ---

    def _read(self, slot: _Slot, conn: Any) -> None:
        try:
            while True:
                message = conn.recv()
                try:
                    self._handle(slot, message)
                except Exception:
                    log.exception("the pool failed on a message from worker %d", slot.index)
        except (EOFError, OSError):
            pass
        if conn is slot.conn:
            self._lost(slot)

    def _handle(self, slot: _Slot, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == slot_process.LOG:
            _, level, name, text = message
            logging.getLogger(name).log(level, "[worker %d] %s", slot.index, text)
            return
        if kind == slot_process.STATUS:
            slot.status = message[1]
            self._room()
            return
        with self._lock:
            work = self._work.get(message[1])
        if kind == slot_process.PROGRESS:
            self._progress(work, message[2])
        elif kind == slot_process.PREVIEW:
            if work is not None and work.report is not None:
                work.report.preview(*message[2:])
        elif kind == slot_process.PLAN:
            self._plan(message[1], message[2])
        elif kind == slot_process.CLAIM:
            _, job_id, number, index, key = message
            self._claim(slot, job_id, number, index, key)
        elif kind == slot_process.ANALYSED:
            with self._lock:
                coordinator = self._jobs.get(message[1])
                if coordinator is not None:
                    coordinator.analysed(message[2])
                    self._dispatch()
        elif kind in (slot_process.DONE, slot_process.ERROR):
            error = slot_process.unbox(message[2]) if kind == slot_process.ERROR else None
            self._finish(slot, message[1], None if error else message[2], error)

    def _progress(self, work: _Work | None, progress: Any) -> None:
        if work is None:
            return
        if work.report is not None:
            work.report.progress(progress)
            return
        with self._lock:  # an analysis: shown while the chain does it or waits for it
            coordinator = self._jobs.get(work.job_id)
            job = self._work.get(work.job_id)
            shown = coordinator is not None and work.task is not None
            waited = shown and coordinator.waiting_on == work.task.index  # type: ignore[union-attr]
            shown = work.stolen or waited
        if shown and job is not None and job.report is not None:
            job.report.progress(progress)

    def _plan(self, job_id: str, tasks: list[WindowTask]) -> None:
        with self._lock:
            if job_id not in self._jobs:
                return
            self._jobs[job_id] = Coordinator(job_id, tasks)
            if tasks:
                log.info("job %s: %d windows; helpers analyse windows 2..", job_id, len(tasks))
            self._dispatch()
        self._room()

    def _claim(self, slot: _Slot, job_id: str, number: int, index: int, key: str) -> None:
        def reply(outcome: Outcome) -> None:
            value: Any = outcome
            if isinstance(outcome, BaseException):
                value = slot_process.box(outcome)
            elif isinstance(outcome, WindowTask):  # the chain's process analyses it meanwhile
                work = _Work(outcome.id, outcome.job_id, task=outcome, stolen=True)
                slot.work[work.id] = self._work[work.id] = work
            slot.send(slot_process.REPLY, number, value)

        with self._lock:
            coordinator = self._jobs.get(job_id)
            if coordinator is None:
                reply("local")
                return
            coordinator.claim(index, key, reply)

    def _finish(
        self, slot: _Slot, work_id: str, result: Any, error: FramerelayError | None
    ) -> None:
        with self._lock:
            work = self._work.pop(work_id, None)
            slot.work.pop(work_id, None)
            if work is None:
                return
            if work.task is not None:
                coordinator = self._jobs.get(work.job_id)
                if coordinator is not None:
                    cancelled = isinstance(error, CancelledError) and coordinator.stopped
                    if not cancelled:
                        coordinator.finished(work.task.index, error)
                    if coordinator.failure is not None:
                        self._cancel_helpers(coordinator)
            else:
                work.result, work.error = result, error
                assert work.done is not None
                work.done.set()
            self._dispatch()
        self._room()

    def _cancel_helpers(self, coordinator: Coordinator) -> None:
        for slot in self._slots:
            for work in slot.work.values():
                if work.task is not None and work.job_id == coordinator.job_id:
                    slot.send(slot_process.CANCEL, work.id)

    def _lost(self, slot: _Slot) -> None:
        """The slot's process died: its job counts a crash, its windows go to the chains."""
        with self._lock:
            if slot.conn is None:
                return
            with contextlib.suppress(OSError):
                slot.conn.close()
            slot.conn = None
            code = slot.process.exitcode if slot.process is not None else None
            lost = list(slot.work.values())
            slot.work.clear()
            slot.status = ExecutorStatus(slot.spec.name, False)
            if lost and not self._closed:
                log.error(
                    "worker process %d (%s) died (exit code %s)", slot.index, slot.spec.name, code
                )
            for work in lost:
                self._work.pop(work.id, None)
                if work.done is None and work.task is None:
                    continue  # a reservation: its job gets another slot
                if work.task is not None:
                    coordinator = self._jobs.get(work.job_id)
                    if coordinator is not None:
                        coordinator.finished(work.task.index, _lost_error(slot, code))
                    continue
                if self._closed:
                    work.error = CancelledError("The daemon is stopping.")
                else:
                    work.error = WorkerLostError(
                        f"the worker process running the job ({slot.spec.name}) died "
                        f"(exit code {code}); it may have run out of memory.",
                        "The job runs again; if it keeps failing, free memory or make it smaller "
                        "(--width/--height, --window).",
                    )
                assert work.done is not None
                work.done.set()
            self._dispatch()
        self._room()


def _lost_error(slot: _Slot, code: int | None) -> FramerelayError:
    if slot.spec.runtime.concurrent:  # the Ray driver: the cluster connection went with it
        return UnavailableError(
            f"the connection to the Ray cluster was lost (its driver process ended, exit code "
            f"{code}).",
            "Check the cluster (`ray status`), start it again if it stopped (`ray start --head` "
            "and the workers), then submit the job again; or run the daemon without --ray.",
        )
    return WorkerLostError(f"a helper worker process ({slot.spec.name}) died (exit code {code}).")
