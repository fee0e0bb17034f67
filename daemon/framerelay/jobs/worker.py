"""The worker: takes jobs in queue order and runs each through the executor in a thread, as many
at once as the executor has slots (one, unless the daemon runs a worker pool: docs/scale.md).

A failing job never stops the worker: the error becomes the job's Failed event (with a hint) and
any traceback goes to the log. The model stays warm between jobs and is unloaded after
`idle_unload_s` seconds without work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from framerelay.errors import (
    BusyError,
    CancelledError,
    DiskFullError,
    ErrorCode,
    FramerelayError,
    InternalError,
    OutOfMemoryError,
    WorkerLostError,
    from_os_error,
    is_disk_full,
)
from framerelay.jobs.events import (
    ErrorInfo,
    Failed,
    Finished,
    Payload,
    Preview,
    ProgressUpdate,
)
from framerelay.jobs.executor import Execution, ExecutionResult, Executor
from framerelay.jobs.job import Job
from framerelay.jobs.preflight import MachineRecord, model_key, shape_of
from framerelay.jobs.queue import JobQueue, interrupted
from framerelay.jobs.reserve import DiskReserve
from framerelay.jobs.spec import ClipInfo
from framerelay.progress import CancelToken, Progress

log = logging.getLogger(__name__)
T = TypeVar("T")
FIRST_PAUSE_S = 0.25  # a held queue checks for room again after this, then twice as long...
MAX_PAUSE_S = 5.0  # ... up to this


def run_in_thread(fn: Callable[..., T], *args: Any, name: str = "executor") -> asyncio.Future[T]:
    """Runs fn in a daemon thread, so that a stuck job cannot keep the process from exiting."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(setter: Callable[[Any], None], value: Any) -> None:
        if not future.done():
            setter(value)

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as error:
            outcome: tuple[Callable[[Any], None], Any] = (future.set_exception, error)
        else:
            outcome = (future.set_result, result)
        with contextlib.suppress(RuntimeError):  # the loop closed while the job ran
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


def public_error(error: BaseException) -> FramerelayError:
    """The catalogue error a user sees for an exception raised by an executor."""
    if isinstance(error, FramerelayError):
        return error
    if isinstance(error, OSError) and (is_disk_full(error) or isinstance(error, PermissionError)):
        return from_os_error(error)
    if is_disk_full(error):
        return DiskFullError("the disk is full.")
    if isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError":
        return OutOfMemoryError("the job ran out of memory.")
    return InternalError(f"the job failed with an internal error ({type(error).__name__}).")


def missing_outputs(paths: tuple[Path, ...]) -> list[Path]:
    def complete(path: Path) -> bool:
        if path.is_dir():
            return any(path.iterdir())
        return path.is_file() and path.stat().st_size > 0

    return [p for p in paths if not complete(p)]


@dataclass
class PhaseClock:
    """Estimates the seconds left in the current phase from its pace so far."""

    phase: str = ""
    first_step: int = 0
    first_time: float = 0.0

    def eta(self, progress: Progress, now: float) -> float | None:
        if progress.phase != self.phase:
            self.phase, self.first_step, self.first_time = progress.phase, progress.step, now
            return None
        done = progress.step - self.first_step
        if done <= 0:
            return None
        return (now - self.first_time) / done * (progress.total - progress.step)


class ThreadReporter:
    """Hands the executor's reports, made in its thread, to the worker in the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, worker: Worker, job_id: str):
        self._loop, self._worker, self._job_id = loop, worker, job_id

    def progress(self, progress: Progress) -> None:
        self._loop.call_soon_threadsafe(
            self._worker.on_progress, self._job_id, progress, time.monotonic()
        )

    def preview(self, png: bytes, width: int, height: int, phase: str) -> None:
        self._loop.call_soon_threadsafe(
            self._worker.on_preview, self._job_id, Preview(png, width, height, phase)
        )


@dataclass
class _Run:
    """A running job, as the worker follows it."""

    job_id: str
    token: CancelToken
    disk_full: DiskFullError | None = None  # met while it ran
    phase: str = ""
    clock: PhaseClock = field(default_factory=PhaseClock)
    last_report: float = 0.0
    task: asyncio.Task[None] | None = None


class Worker:
    """Runs the queue. An executor with several slots (`PoolExecutor`, docs/scale.md) runs as many
    jobs at once; they start in queue order whenever it has room. A full data disk (the job
    database cannot be written) stops the running jobs with DISK_FULL and holds the queue: the
    worker retries with a growing pause, logs once when it starts waiting and once when it goes
    on, and needs no restart."""

    def __init__(
        self,
        queue: JobQueue,
        executor: Executor,
        work_root: Path,
        idle_unload_s: float = 600.0,
        progress_interval_s: float = 0.1,
        reserve: DiskReserve | None = None,
        machine: MachineRecord | None = None,
    ):
        self.queue = queue
        self.executor = executor
        self.work_root = work_root
        self.idle_unload_s = idle_unload_s
        self.progress_interval_s = progress_interval_s
        self.reserve = reserve
        self.machine = machine  # this machine's measured speeds (jobs/preflight.py)
        self.waiting_on: FramerelayError | None = None  # the queue is held until it clears
        self._runs: dict[str, _Run] = {}  # the running jobs, in the order they started
        self._unrecorded: list[tuple[str, Payload]] = []  # ends to store once there is room
        self._recovered = False
        self._pause = FIRST_PAUSE_S  # before the next check for room
        self._stopping = False
        self._stopped = asyncio.Event()
        self._changed = asyncio.Event()  # a job ended, or the executor may have room
        self._busy = asyncio.Lock()  # held while a job starts or the model is unloaded on request

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        listen = getattr(self.executor, "set_room_listener", None)

        def wake() -> None:  # from the executor's threads
            with contextlib.suppress(RuntimeError):  # the loop has closed: the worker stopped
                loop.call_soon_threadsafe(self._changed.set)

        if listen is not None:
            listen(wake)
        while not self._stopping:
            if self.waiting_on is not None or not self._recover():
                await self._wait_for_room()
                continue
            self._changed.clear()
            if not self._executor_has_room():
                await self._wait_changed()
                continue
            idle = not self._runs
            warm = idle and self.executor.status().model_loaded
            got, job = await self._next_job(self.idle_unload_s if warm else None)
            if self._stopping:
                break
            if not got:  # a job ended or room appeared: look again
                continue
            if job is None:
                if not self._runs:
                    await self._unload()
                continue
            async with self._busy:
                if self.queue.paused or not self._executor_has_room():
                    continue  # paused while an unload held the worker, or no slot after all
                self._start(job)
        await self._drain()
        if listen is not None:
            listen(None)

    def _executor_has_room(self) -> bool:
        has_room = getattr(self.executor, "has_room", None)
        if has_room is None:
            return not self._runs  # one job at a time
        return bool(has_room())

    async def _wait_changed(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), MAX_PAUSE_S)

    async def _next_job(self, timeout: float | None) -> tuple[bool, Job | None]:
        """(True, the next job or None after `timeout`), or (False, None) when something changed
        first."""
        getter = asyncio.ensure_future(self.queue.next_job(timeout))
        changed = asyncio.ensure_future(self._changed.wait())
        done, _ = await asyncio.wait({getter, changed}, return_when=asyncio.FIRST_COMPLETED)
        for future in (getter, changed):
            if future not in done:
                future.cancel()
        if getter in done:
            return True, getter.result()
        return False, None

    def _start(self, job: Job) -> None:
        try:
            job, token = self.queue.start(job)
        except DiskFullError as error:  # the job's start could not be stored: it stays queued
            self._hold(error)
            return
        except Exception:
            log.exception("the worker failed to start job %s", job.id)
            self._give_up(job.id)
            return
        run = _Run(job.id, token)
        self._runs[job.id] = run
        reserve = getattr(self.executor, "reserve", None)
        if reserve is not None:  # a pool: the job's slot, before the next look for room
            reserve(job.id)
        run.task = asyncio.create_task(self._guarded(job, run), name=f"job-{job.id}")

    async def _guarded(self, job: Job, run: _Run) -> None:
        try:
            await self._run(job, run)
        except DiskFullError as error:
            self._hold(error)
        except Exception:  # the worker outlives any job
            log.exception("the worker failed on job %s", job.id)
            self._give_up(job.id)
        finally:
            self._runs.pop(job.id, None)
            release = getattr(self.executor, "release", None)
            if release is not None:
                release(job.id)
            self._changed.set()

    async def _drain(self) -> None:
        """Waits for the running jobs, which a stop has interrupted."""
        tasks = [run.task for run in self._runs.values() if run.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _recover(self) -> bool:
        """Re-queues the jobs a stop interrupted, once; False while the disk is full."""
        if not self._recovered:
            try:
                recovered = self.queue.recover()
            except DiskFullError as error:
                self._hold(error)
                return False
            for job in recovered:
                if job.state.ended:  # failed by the crash-loop guard
                    shutil.rmtree(self.work_root / job.id, ignore_errors=True)
            self._recovered = True
        return True

    async def _unload(self) -> None:
        try:
            await run_in_thread(self.executor.unload, name="unload")
        except Exception:
            log.exception("unloading the model failed")

    async def unload_now(self) -> bool:
        """Frees the model now; returns whether one was loaded. Refused while a job runs."""
        async with self._busy:
            if self._runs:
                raise BusyError(
                    f"job {next(iter(self._runs))} is running on the model.",
                    "Pause the queue, interrupting the running job, then unload; or wait for it.",
                )
            loaded = self.executor.status().model_loaded
            await self._unload()
            return loaded

    def _give_up(self, job_id: str) -> None:
        """Ends a job the worker itself failed on, so that it does not stay running."""
        info = ErrorInfo.of(ErrorCode.internal, "the daemon failed while running the job.")
        try:
            self._end(job_id, Failed(info))
        except Exception:
            log.exception("could not record the failure of job %s", job_id)

    def stop(self) -> None:
        """Interrupts the running jobs, which a restart will run again, and ends `run`."""
        self._stopping = True
        self._stopped.set()
        self._changed.set()
        self.queue.close()

    # --- a full data disk ---

    def _hold(self, error: DiskFullError) -> None:
        """Holds the queue until the disk has room; logs only when the hold begins."""
        if self.waiting_on is None:
            log.error("%s The queue waits until there is room. (%s)", error.message, error.hint)
        self.waiting_on = error

    def _end(self, job_id: str, payload: Payload) -> None:
        """Records a job's end; on a full disk, frees the reserve for it, else keeps it for later."""
        try:
            self.queue.record(job_id, payload)
            return
        except DiskFullError as error:
            self._hold(error)
        if self.reserve is not None and self.reserve.release():
            try:
                self.queue.record(job_id, payload)
                return
            except DiskFullError:
                pass
        self._unrecorded.append((job_id, payload))
        log.error("job %s ended; its end is recorded once the disk has room", job_id)

    async def _wait_for_room(self) -> None:
        """Pauses, then checks; the pause grows until a job has started again, so that a disk
        that seems to have room but takes no write is not retried in a loop."""
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self._pause)
            self._pause = min(self._pause * 2, MAX_PAUSE_S)
            if self._has_room():
                log.warning("the data disk has room again; the queue goes on")
                return

    def _has_room(self) -> bool:
        """Stores what waits to be stored; True when jobs may run again."""
        while self._unrecorded:
            try:
                self.queue.record(*self._unrecorded[0])
            except DiskFullError:
                return False
            self._unrecorded.pop(0)
        if not self._recover():
            return False
        if self.reserve is not None and not (self.reserve.has_room() and self.reserve.ensure()):
            return False
        self.waiting_on = None
        return True

    # --- one job ---

    async def _run(self, job: Job, run: _Run) -> None:
        self._pause = FIRST_PAUSE_S
        log.info("job %s started (attempt %d)", job.id, job.attempt)
        execution = Execution(
            job_id=job.id,
            spec=job.spec,
            outputs=tuple(Path(p) for p in job.outputs),
            work_dir=self.work_root / job.id,
            attempt=job.attempt,
        )
        reporter = ThreadReporter(asyncio.get_running_loop(), self, job.id)
        try:
            result = await run_in_thread(self._execute, job, execution, reporter, run.token)
        except Exception as error:
            if self._paused_it(job.id, error):
                return
            if isinstance(error, WorkerLostError) and not self._stopping:
                self._lost(job.id, error)
                return
            payload = self._failure(run, error)
        else:
            payload = self._success(job.id, result)
        if payload is None:
            log.info("job %s interrupted by shutdown; it runs again at the next start", job.id)
            return
        shutil.rmtree(execution.work_dir, ignore_errors=True)
        self._end(job.id, payload)
        log.info("job %s %s", job.id, type(payload).__name__.lower())

    def _execute(
        self, job: Job, execution: Execution, reporter: ThreadReporter, token: CancelToken
    ) -> ExecutionResult:
        self.queue.check_run(job)
        return self.executor.execute(execution, reporter, token)

    def _paused_it(self, job_id: str, error: Exception) -> bool:
        """A pause interrupted the job: it goes back to the queue and keeps its work folder."""
        if not isinstance(error, CancelledError) or self._stopping:
            return False
        rank = self.queue.take_requeue(job_id)
        if rank is None:
            return False
        self.queue.requeue_first(job_id, "paused", rank)
        log.info("job %s interrupted by a pause; it runs first on resume", job_id)
        return True

    def _lost(self, job_id: str, error: WorkerLostError) -> None:
        """The worker process running the job died (out of memory, killed): as a daemon crash
        would, it counts one crash, and the job runs again unless it is at the guard's limit."""
        log.error("job %s: %s", job_id, error.message)
        job = self.queue.crashed(job_id)
        if job.state.ended:
            shutil.rmtree(self.work_root / job_id, ignore_errors=True)

    def _failure(self, run: _Run, error: Exception) -> Payload | None:
        job_id = run.job_id
        if run.disk_full is not None:  # the worker stopped the job: its events could not be
            error = run.disk_full  # stored; what the executor raised on its way out follows
        if isinstance(error, CancelledError | WorkerLostError):
            if self._stopping and not self.queue.get(job_id).cancel_requested:
                return None
            return interrupted(run.phase)
        public = public_error(error)
        if public is error:
            log.warning("job %s failed: %s", job_id, public)
        else:
            log.error("job %s failed", job_id, exc_info=error)
        return Failed(ErrorInfo.from_error(public))

    def _success(self, job_id: str, result: ExecutionResult) -> Payload:
        missing = missing_outputs(result.outputs)
        if missing:
            log.error("job %s reported outputs that are missing or empty: %s", job_id, missing)
            message = f"the output {missing[0]} was not written."
            return Failed(ErrorInfo.of(ErrorCode.internal, message))
        self._measured(self.queue.get(job_id).spec, result)
        return finished(result)

    def _measured(self, spec, result: ExecutionResult) -> None:
        """Keeps how fast this machine ran the job's phases, for the next estimates."""
        if self.machine is None or not result.compute_seconds:
            return
        status = self.executor.status()
        width, height = result.size
        count = spec.frame_range.count if spec.frame_range is not None else result.frame_count
        self.machine.record(
            shape_of(spec, ClipInfo(count, width, height, False)),
            model_key(spec),
            status.device,
            status.vram_total_bytes,
            result.compute_seconds,
            result.work,
        )

    def _report(self, job_id: str, payload: Payload) -> None:
        """Records a progress report or a preview; a full disk stops the running jobs."""
        run = self._runs.get(job_id)
        if run is None or run.disk_full is not None:
            return
        try:
            self.queue.record(job_id, payload)
        except DiskFullError as error:
            self._hold(error)
            for each in self._runs.values():
                if each.disk_full is None:
                    each.disk_full = job_stopped_by(error)
                    each.token.cancel()

    def on_progress(self, job_id: str, progress: Progress, now: float) -> None:
        run = self._runs.get(job_id)
        if run is None:
            return
        eta = run.clock.eta(progress, now)
        new_phase = progress.phase != run.phase
        last_step = progress.step >= progress.total
        if not (new_phase or last_step or now - run.last_report >= self.progress_interval_s):
            return
        run.phase, run.last_report = progress.phase, now
        update = ProgressUpdate(
            progress.phase,
            progress.step,
            progress.total,
            progress.clip,
            progress.clips,
            eta,
            progress.message,
        )
        self._report(job_id, update)

    def on_preview(self, job_id: str, preview: Preview) -> None:
        self._report(job_id, preview)


def finished(result: ExecutionResult) -> Finished:
    """The finished event: everything the run did (the fields the two share, by name)."""
    same = {f.name: getattr(result, f.name) for f in fields(Finished) if hasattr(result, f.name)}
    width, height = result.size
    return Finished(
        **{
            **same,
            "outputs": tuple(str(p) for p in result.outputs),
            "width": width,
            "height": height,
            "phase_seconds": dict(result.phase_seconds),
        }
    )


def job_stopped_by(error: DiskFullError) -> DiskFullError:
    return DiskFullError(
        f"the job stopped: {error.message}",
        "Free space on that disk, then submit the job again. Queued jobs run by themselves once "
        "there is room.",
    )
