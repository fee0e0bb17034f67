"""The one GPU worker: takes jobs in queue order and runs each through the executor in a thread.

A failing job never stops the worker: the error becomes the job's Failed event (with a hint) and
any traceback goes to the log. The model stays warm between jobs and is unloaded after
`idle_unload_s` seconds without work.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from framerelay.errors import (
    BusyError,
    CancelledError,
    DiskFullError,
    ErrorCode,
    FramerelayError,
    InternalError,
    InvalidSpecError,
    OutOfMemoryError,
)
from framerelay.jobs.events import (
    Cancelled,
    ErrorInfo,
    Failed,
    Finished,
    Payload,
    Preview,
    ProgressUpdate,
)
from framerelay.jobs.executor import Execution, ExecutionResult, Executor
from framerelay.jobs.job import Job
from framerelay.jobs.queue import JobQueue
from framerelay.progress import CancelToken, Progress

log = logging.getLogger(__name__)
T = TypeVar("T")


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
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"the disk is full: {error.filename or error.strerror}.")
    if isinstance(error, PermissionError):
        return InvalidSpecError(
            f"permission denied: {error.filename or error.strerror}.",
            "Check that the daemon's user can read the inputs and write the output folder.",
        )
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


class Worker:
    def __init__(
        self,
        queue: JobQueue,
        executor: Executor,
        work_root: Path,
        idle_unload_s: float = 600.0,
        progress_interval_s: float = 0.1,
    ):
        self.queue = queue
        self.executor = executor
        self.work_root = work_root
        self.idle_unload_s = idle_unload_s
        self.progress_interval_s = progress_interval_s
        self._job_id: str | None = None
        self._phase = ""
        self._clock = PhaseClock()
        self._last_report = 0.0
        self._stopping = False
        self._busy = asyncio.Lock()  # held while a job runs or the model is unloaded on request

    async def run(self) -> None:
        for job in self.queue.recover():
            if job.state.ended:  # failed by the crash-loop guard
                shutil.rmtree(self.work_root / job.id, ignore_errors=True)
        while not self._stopping:
            warm = self.executor.status().model_loaded
            job = await self.queue.next_job(self.idle_unload_s if warm else None)
            if self._stopping:
                break
            if job is None:
                await self._unload()
                continue
            try:
                async with self._busy:
                    if not self.queue.paused:  # paused while an unload held the worker
                        await self._run(job)
            except Exception:  # the worker outlives any job
                log.exception("the worker failed on job %s", job.id)
                self._give_up(job.id)
            finally:
                self._job_id = None

    async def _unload(self) -> None:
        try:
            await run_in_thread(self.executor.unload, name="unload")
        except Exception:
            log.exception("unloading the model failed")

    async def unload_now(self) -> bool:
        """Frees the model now; returns whether one was loaded. Refused while a job runs."""
        if self._busy.locked() and self._job_id is not None:
            raise BusyError(
                f"job {self._job_id} is running on the model.",
                "Pause the queue, interrupting the running job, then unload; or wait for it.",
            )
        async with self._busy:
            loaded = self.executor.status().model_loaded
            await self._unload()
            return loaded

    def _give_up(self, job_id: str) -> None:
        """Ends a job the worker itself failed on, so that it does not stay running."""
        try:
            info = ErrorInfo.of(ErrorCode.internal, "the daemon failed while running the job.")
            self.queue.record(job_id, Failed(info))
        except Exception:
            log.exception("could not record the failure of job %s", job_id)

    def stop(self) -> None:
        """Interrupts the running job, which a restart will run again, and ends `run`."""
        self._stopping = True
        self.queue.close()

    async def _run(self, job: Job) -> None:
        job, token = self.queue.start(job)
        self._job_id, self._phase, self._clock = job.id, "", PhaseClock()
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
            result = await run_in_thread(self._execute, job, execution, reporter, token)
        except Exception as error:
            if self._paused_it(job.id, error):
                return
            payload = self._failure(job.id, error)
        else:
            payload = self._success(job.id, result)
        if payload is None:
            log.info("job %s interrupted by shutdown; it runs again at the next start", job.id)
            return
        self.queue.record(job.id, payload)
        shutil.rmtree(execution.work_dir, ignore_errors=True)
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
        if not self.queue.take_requeue(job_id):
            return False
        self.queue.requeue_first(job_id, "paused")
        log.info("job %s interrupted by a pause; it runs first on resume", job_id)
        return True

    def _failure(self, job_id: str, error: Exception) -> Payload | None:
        if isinstance(error, CancelledError):
            if self._stopping and not self.queue.get(job_id).cancel_requested:
                return None
            info = ErrorInfo.of(ErrorCode.cancelled, "The job was cancelled while it ran.")
            return Cancelled("interrupted", info, self._phase)
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
        width, height = result.size
        return Finished(
            tuple(str(p) for p in result.outputs),
            result.frame_count,
            result.fps,
            width,
            height,
            result.preset,
        )

    def on_progress(self, job_id: str, progress: Progress, now: float) -> None:
        if job_id != self._job_id:
            return
        eta = self._clock.eta(progress, now)
        new_phase = progress.phase != self._phase
        last_step = progress.step >= progress.total
        if not (new_phase or last_step or now - self._last_report >= self.progress_interval_s):
            return
        self._phase, self._last_report = progress.phase, now
        update = ProgressUpdate(
            progress.phase,
            progress.step,
            progress.total,
            progress.clip,
            progress.clips,
            eta,
            progress.message,
        )
        self.queue.record(job_id, update)

    def on_preview(self, job_id: str, preview: Preview) -> None:
        if job_id == self._job_id:
            self.queue.record(job_id, preview)
