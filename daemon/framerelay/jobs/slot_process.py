"""One worker process of the daemon's pool (docs/scale.md): a runtime with a warm engine (one GPU,
or a share of the CPU) that runs the jobs and window analyses the daemon sends it, one at a time,
and reports back over a pipe. The runtime is built in the process from an import path, so this
module, and the daemon with it, never imports torch.

Messages are tuples whose first item says what they are: the daemon sends JOB, ANALYSE, CANCEL,
REPLY, UNLOAD and STOP; the worker answers with PROGRESS, PREVIEW, PLAN, CLAIM, ANALYSED, DONE,
ERROR, STATUS and LOG.
"""

from __future__ import annotations

import contextlib
import importlib
import itertools
import logging
import os
import queue
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from framerelay import errors
from framerelay.engine.window_tasks import WindowTask
from framerelay.errors import CancelledError, FramerelayError, InternalError
from framerelay.jobs.executor import Execution, ExecutionResult, ExecutorStatus, Reporter
from framerelay.progress import CancelToken, Progress, ProgressSink

log = logging.getLogger(__name__)

JOB, ANALYSE, CANCEL, REPLY, UNLOAD, STOP = "job", "analyse", "cancel", "reply", "unload", "stop"
PROGRESS, PREVIEW, PLAN, CLAIM, ANALYSED = "progress", "preview", "plan", "claim", "analysed"
DONE, ERROR, STATUS, LOG = "done", "error", "status", "log"
BoxedError = tuple[str, str, str]  # catalogue class name, message, hint


@dataclass(frozen=True)
class RuntimeSpec:
    """How a worker process builds its runtime: `factory` ("module:callable") called with
    `kwargs`. A `concurrent` runtime (the Ray driver) runs its analyses side by side."""

    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    concurrent: bool = False


@dataclass(frozen=True)
class SlotSpec:
    name: str  # for logs and the status: cuda:0, cpu 1/2, ray
    runtime: RuntimeSpec
    env: dict[str, str] = field(default_factory=dict)  # set before anything imports torch
    runs_jobs: bool = True  # runs jobs' editing chains
    helps: bool = True  # analyses windows of the chains running elsewhere


class Helpers(Protocol):
    """What a runtime's `execute` gets when other workers may analyse the job's windows."""

    def plan(self, tasks: Sequence[WindowTask]) -> None: ...

    def ready(self, index: int, key: str) -> None: ...

    def analysed(self, index: int, key: str) -> None: ...


class Runtime(Protocol):
    def execute(
        self, run: Execution, report: Reporter, cancel: CancelToken, helpers: Helpers | None = None
    ) -> ExecutionResult: ...

    def analyse(self, task: WindowTask, progress: ProgressSink, cancel: CancelToken) -> None: ...

    def status(self) -> ExecutorStatus: ...

    def unload(self) -> None: ...


def box(error: BaseException) -> BoxedError:
    """The catalogue error a user sees, as plain values that cross the pipe whole."""
    from framerelay.jobs.worker import public_error

    public = public_error(error)
    if public is not error and not isinstance(error, CancelledError):
        log.error("the worker process failed", exc_info=error)
    return type(public).__name__, public.message, public.hint


def unbox(boxed: BoxedError) -> FramerelayError:
    name, message, hint = boxed
    kind = getattr(errors, name, InternalError)
    if not (isinstance(kind, type) and issubclass(kind, FramerelayError)):
        kind = InternalError
    return kind(message, hint)


def main(conn: Any, spec: SlotSpec, log_level: int = logging.INFO) -> None:
    """The worker process's entry point."""
    # The daemon stops its workers itself: a Ctrl+C in its terminal reaches the whole process
    # group, and must not kill a worker before the daemon has interrupted its job. A handler,
    # not SIG_IGN, which the programs a worker starts (Ray's) would inherit.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _ignore)
    os.environ.update(spec.env)
    child = _Child(conn)
    root = logging.getLogger()
    root.handlers[:] = [_PipeHandler(child)]
    root.setLevel(log_level)
    try:
        module, _, name = spec.runtime.factory.partition(":")
        runtime = getattr(importlib.import_module(module), name)(**spec.runtime.kwargs)
    except BaseException as error:  # reported as the answer to whatever comes first
        child.serve(_Broken(box(error)), False)
        return
    child.serve(runtime, spec.runtime.concurrent)


def _ignore(signum: int, frame: Any) -> None:
    pass  # nothing else is safe in a signal handler (the pipe's lock may be held)


class _PipeHandler(logging.Handler):
    """Sends the worker's log records to the daemon, which logs them under its own handlers."""

    def __init__(self, child: _Child):
        super().__init__()
        self.child = child

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self.child.send(LOG, record.levelno, record.name, text)
        except Exception:  # pragma: no cover - logging never raises
            self.handleError(record)


class _Reply:
    def __init__(self) -> None:
        self._event = threading.Event()
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value
        self._event.set()

    def wait(self, cancel: CancelToken) -> Any:
        while not self._event.wait(0.1):
            cancel.raise_if_cancelled()
        return self.value


class _Child:
    def __init__(self, conn: Any):
        self.conn = conn
        self._send_lock = threading.Lock()
        self._work: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._tokens: dict[str, CancelToken] = {}
        self._replies: dict[int, _Reply] = {}
        self._requests = itertools.count(1)

    def send(self, *message: Any) -> None:
        # OSError: the daemon is gone, and the reader ends this process.
        with self._send_lock, contextlib.suppress(OSError, EOFError):
            self.conn.send(message)

    def serve(self, runtime: Runtime, concurrent: bool) -> None:
        threading.Thread(target=self._read, name="pipe-reader", daemon=True).start()
        while (message := self._work.get()) is not None:
            if concurrent and message[0] == ANALYSE:
                if self._prepare(runtime, message[1].id):
                    threading.Thread(target=self._do, args=(runtime, message), daemon=True).start()
            else:
                self._do(runtime, message)
        close = getattr(runtime, "close", None)
        if close is not None:
            close()

    def _prepare(self, runtime: Runtime, work_id: str) -> bool:
        """A concurrent runtime's `prepare` (Ray's connection), in the main thread: Ray must be
        started and stopped there."""
        prepare = getattr(runtime, "prepare", None)
        try:
            if prepare is not None:
                prepare()
            return True
        except BaseException as error:
            self._tokens.pop(work_id, None)
            self.send(ERROR, work_id, box(error))
            self.send(STATUS, runtime.status())
            return False

    def _read(self) -> None:
        try:
            while True:
                message = self.conn.recv()
                kind = message[0]
                if kind == JOB:
                    self._tokens[message[1]] = CancelToken()
                    self._work.put(message)
                elif kind == ANALYSE:
                    self._tokens[message[1].id] = CancelToken()
                    self._work.put(message)
                elif kind == CANCEL:
                    token = self._tokens.get(message[1])
                    if token is not None:
                        token.cancel()
                elif kind == REPLY:
                    reply = self._replies.pop(message[1], None)
                    if reply is not None:
                        reply.set(message[2])
                elif kind == UNLOAD:
                    self._work.put(message)
                elif kind == STOP:
                    break
        except (EOFError, OSError):  # the daemon died: stop at the next step boundary
            pass
        for token in list(self._tokens.values()):
            token.cancel()
        self._work.put(None)

    def _do(self, runtime: Runtime, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == UNLOAD:
            try:
                runtime.unload()
            except Exception:
                log.exception("unloading the model failed")
            self.send(STATUS, runtime.status())
            return
        if kind == JOB:
            _, work_id, execution, fanout = message
        else:
            work_id, execution, fanout = message[1].id, None, False
        token = self._tokens[work_id]
        try:
            if execution is not None:
                helpers = _Helpers(self, runtime, work_id, token) if fanout else None
                result = runtime.execute(execution, _Reporter(self, work_id), token, helpers)
            else:
                runtime.analyse(message[1], lambda p: self.send(PROGRESS, work_id, p), token)
                result = None
        except BaseException as error:
            self.send(ERROR, work_id, box(error))
        else:
            self.send(DONE, work_id, result)
        finally:
            self._tokens.pop(work_id, None)
        self.send(STATUS, runtime.status())

    def request(self, job_id: str, index: int, key: str, cancel: CancelToken) -> Any:
        number = next(self._requests)
        reply = self._replies[number] = _Reply()
        self.send(CLAIM, job_id, number, index, key)
        try:
            return reply.wait(cancel)
        finally:
            self._replies.pop(number, None)


class _Reporter:
    def __init__(self, child: _Child, job_id: str):
        self._child, self._job_id = child, job_id

    def progress(self, progress: Progress) -> None:
        self._child.send(PROGRESS, self._job_id, progress)

    def preview(self, png: bytes, width: int, height: int, phase: str) -> None:
        self._child.send(PREVIEW, self._job_id, png, width, height, phase)


class _Helpers:
    """The job's side of the daemon's `Coordinator`, over the pipe."""

    def __init__(self, child: _Child, runtime: Runtime, job_id: str, cancel: CancelToken):
        self._child, self._runtime, self._job_id, self._cancel = child, runtime, job_id, cancel

    def plan(self, tasks: Sequence[WindowTask]) -> None:
        self._child.send(PLAN, self._job_id, list(tasks))

    def ready(self, index: int, key: str) -> None:
        while True:
            outcome = self._child.request(self._job_id, index, key, self._cancel)
            if isinstance(outcome, WindowTask):  # a later window, while a helper does this one
                self._analyse(outcome)
                continue
            if isinstance(outcome, tuple):
                raise unbox(outcome)
            return

    def _analyse(self, task: WindowTask) -> None:
        child = self._child
        try:
            self._runtime.analyse(task, lambda p: child.send(PROGRESS, task.id, p), self._cancel)
        except BaseException as error:
            child.send(ERROR, task.id, box(error))
            if self._cancel.cancelled:
                raise
        else:
            child.send(DONE, task.id, None)

    def analysed(self, index: int, key: str) -> None:
        self._child.send(ANALYSED, self._job_id, index, key)


class _Broken:
    """A runtime that could not be built: every job and analysis fails with why."""

    def __init__(self, boxed: BoxedError):
        self._boxed = boxed

    def execute(self, *args: Any, **kwargs: Any) -> ExecutionResult:
        raise unbox(self._boxed)

    def analyse(self, *args: Any, **kwargs: Any) -> None:
        raise unbox(self._boxed)

    def status(self) -> ExecutorStatus:
        return ExecutorStatus("unavailable", False)

    def unload(self) -> None:
        pass
