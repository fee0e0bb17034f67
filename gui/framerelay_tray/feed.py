"""The daemon as the UI thread sees it: worker threads talk gRPC and hand everything over as Qt
signals (queued to the UI thread), so the UI thread never waits on the network.

* `QueueFeed` keeps the queue view current: ListJobs, then WatchQueue from its cursor, so nothing
  is missed; after a daemon restart (new port, new token) it reads the discovery file again and
  starts over with a fresh snapshot. A second thread polls GetStatus for the status line.
* `Commands` runs one-off calls (cancel, move, pause...) and slow local work (decoding frames,
  reading the log) in a small thread pool, and delivers results or errors to the UI thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from framerelay.errors import FramerelayError
from framerelay.proto.v1 import jobs_pb2
from framerelay.service.client import DaemonClient, QueueStream

log = logging.getLogger(__name__)

LIST_LIMIT = 500  # the running job, the queue, then the latest ended jobs
RECENT_EVENTS = 60  # where a running job's latest preview is looked for after a (re)connect
CALL_TIMEOUT_S = 10.0


class QueueFeed(QObject):
    snapshot = Signal(object)  # list[jobs_pb2.Job]: replaces every row
    job_seen = Signal(object)  # jobs_pb2.Job: a job first met through one of its events
    event = Signal(object)  # events_pb2.JobEvent
    connection = Signal(bool, str)  # connected, and a line saying why not
    status = Signal(object)  # daemon_pb2.GetStatusResponse, or None while unreachable

    def __init__(
        self,
        config_dir: Path | None = None,
        status_interval_s: float = 1.0,
        retry_interval_s: float = 0.5,
    ):
        super().__init__()
        self.config_dir = config_dir
        self.status_interval_s = status_interval_s
        self.retry_interval_s = retry_interval_s
        self.connected = False
        self._said: tuple[bool, str] | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._stream: QueueStream | None = None
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        self._stop.clear()
        self._threads = [
            threading.Thread(target=self._watch_loop, name="tray-queue-feed", daemon=True),
            threading.Thread(target=self._status_loop, name="tray-status", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            if self._stream is not None:
                self._stream.cancel()
        for thread in self._threads:
            thread.join(5)
        self._threads = []

    def reconnect(self) -> None:
        """Drops the stream now (e.g. after starting the daemon): the feed starts over."""
        with self._lock:
            if self._stream is not None:
                self._stream.cancel()

    def _connect(self) -> DaemonClient:
        return DaemonClient.connect(self.config_dir, timeout=CALL_TIMEOUT_S)

    def _say(self, connected: bool, why: str) -> None:
        if self._said != (connected, why):
            self._said = (connected, why)
            self.connected = connected
            self.connection.emit(connected, why)

    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._watch_once()
            except FramerelayError as error:
                self._say(False, error.message)
            except Exception as error:  # never let the feed thread die
                log.exception("the queue feed failed")
                self._say(False, f"{type(error).__name__}: {error}")
            self._stop.wait(self.retry_interval_s)

    def _watch_once(self) -> None:
        with self._connect() as client:
            listing = client.list(limit=LIST_LIMIT)
            known = {job.id for job in listing.jobs}
            stream = client.watch_queue(listing.cursor)
            with self._lock:
                self._stream = stream
            try:
                if self._stop.is_set():
                    return
                self.snapshot.emit(list(listing.jobs))
                self._say(True, "")
                for job in listing.jobs:
                    if job.state == jobs_pb2.JOB_STATE_RUNNING:
                        self._latest_preview(client, job)
                for event in stream:
                    if event.job_id not in known:
                        self.job_seen.emit(client.get(event.job_id))
                        known.add(event.job_id)
                    self.event.emit(event)
            finally:
                with self._lock:
                    self._stream = None
        if not self._stop.is_set():
            self._say(False, "the queue stream ended; reconnecting")

    def _latest_preview(self, client: DaemonClient, job: jobs_pb2.Job) -> None:
        """Previews come as events: after a connect, the running job's last one is looked up."""
        after = max(0, job.last_seq - RECENT_EVENTS)
        events = client.poll(job.id, after_seq=after).events
        previews = [e for e in events if e.WhichOneof("kind") == "preview"]
        if previews:
            self.event.emit(previews[-1])

    def _status_loop(self) -> None:
        client: DaemonClient | None = None
        while True:
            try:
                client = client or self._connect()
                self.status.emit(client.status())
            except FramerelayError:
                if client is not None:
                    client.close()
                client = None  # the daemon may be back on another port, with another token
                self.status.emit(None)
            except Exception:
                log.exception("polling the daemon's status failed")
            if self._stop.wait(self.status_interval_s):
                break
        if client is not None:
            client.close()


class Commands(QObject):
    """Runs calls off the UI thread; `done` callbacks and errors arrive in the UI thread."""

    failed = Signal(str, str, str)  # what was being done, message, hint
    _settled = Signal(object, object, object)  # callback, result, (what, message, hint) or None

    def __init__(self, config_dir: Path | None = None, workers: int = 2):
        super().__init__()
        self.config_dir = config_dir
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tray-call")
        self._pending = 0
        self._lock = threading.Lock()
        self._settled.connect(self._deliver)

    @property
    def pending(self) -> int:
        """Calls not yet delivered to the UI thread."""
        with self._lock:
            return self._pending

    def call(
        self,
        what: str,
        request: Callable[[DaemonClient], Any],
        done: Callable[[Any], None] | None = None,
    ) -> None:
        """`request(client)` in a worker thread, with a client of the running daemon."""

        def work() -> Any:
            with DaemonClient.connect(self.config_dir, timeout=CALL_TIMEOUT_S) as client:
                return request(client)

        self.background(what, work, done)

    def background(
        self, what: str, work: Callable[[], Any], done: Callable[[Any], None] | None = None
    ) -> None:
        """`work()` in a worker thread; its result goes to `done` in the UI thread."""
        with self._lock:
            self._pending += 1

        def task() -> None:
            try:
                result = work()
            except FramerelayError as error:
                self._settled.emit(None, None, (what, error.message, error.hint))
            except Exception as error:
                log.exception("%s failed", what)
                self._settled.emit(None, None, (what, f"{type(error).__name__}: {error}", ""))
            else:
                self._settled.emit(done, result, None)

        self._pool.submit(task)

    def _deliver(self, done: Callable[[Any], None] | None, result: Any, error: Any) -> None:
        try:
            if error is not None:
                self.failed.emit(*error)
            elif done is not None:
                done(result)
        finally:
            with self._lock:
                self._pending -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
