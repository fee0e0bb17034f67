"""Talking to the daemon off Blender's main thread. Nothing here touches bpy.

Worker threads call the daemon and put what they learn into one inbox (a `queue.Queue`); a
`bpy.app.timers` callback on the main thread drains it (see `tracker`). One follower thread per
job long-polls the job's events, resumes from the last sequence number after a dropped
connection, and re-reads the discovery file when the daemon restarted on other ports.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from .vendor.framerelay_client import errors as client_errors
from .vendor.framerelay_client import http as client_http

POLL_WAIT_SECONDS = 2.0  # how long one long poll waits; also how fast a follower stops
MAX_BACKOFF_SECONDS = 5.0
UNFINISHED_STATES = ("JOB_STATE_QUEUED", "JOB_STATE_RUNNING", "JOB_STATE_AWAITING_EDIT")
ENDED_STATES = ("JOB_STATE_FINISHED", "JOB_STATE_FAILED", "JOB_STATE_CANCELLED")

# Raised when the daemon cannot be reached at all (not running, refused, timed out).
CONNECTION_ERRORS = (client_errors.DaemonNotRunning, client_errors.DaemonUnreachable)


class Message(NamedTuple):
    """One thing a worker learnt; `kind` says what `payload` is."""

    kind: str  # snapshot, event, ended, gone, trouble, reconnected, or a background call's name
    job_id: str
    payload: Any = None


@dataclass(frozen=True)
class ConnectionSettings:
    """From the add-on preferences, copied on the main thread."""

    url: str = ""  # empty: the discovery file's address
    discovery_path: str = ""  # empty: the daemon's default config folder


class Connection:
    """One shared client (it re-reads the discovery file itself after a daemon restart); rebuilt
    from scratch after the daemon could not be reached, or when the preferences change."""

    def __init__(self, settings: ConnectionSettings | None = None, timeout: float = 15.0):
        self._lock = threading.Lock()
        self._settings = settings or ConnectionSettings()
        self._client: client_http.Client | None = None
        self.timeout = timeout

    @property
    def settings(self) -> ConnectionSettings:
        return self._settings

    def configure(self, settings: ConnectionSettings) -> None:
        with self._lock:
            if settings != self._settings:
                self._settings, self._client = settings, None

    def reset(self) -> None:
        """Forget the client: the next call reads the discovery file again."""
        with self._lock:
            self._client = None

    def call(self, request: Callable[[client_http.Client], Any]) -> Any:
        """`request(client)`; raises the client's errors (ClientError subclasses)."""
        client = self._current()
        try:
            return request(client)
        except CONNECTION_ERRORS:
            self._forget(client)
            raise

    def _current(self) -> client_http.Client:
        with self._lock:
            if self._client is None:
                settings = self._settings
                self._client = client_http.Client.discover(
                    path=Path(settings.discovery_path) if settings.discovery_path else None,
                    url_override=settings.url or None,
                    timeout=self.timeout,
                )
            return self._client

    def _forget(self, client: client_http.Client) -> None:
        with self._lock:
            if self._client is client:
                self._client = None


class Follower(threading.Thread):
    """Follows one job until its terminal event, or until stopped."""

    def __init__(self, job_id: str, connection: Connection, inbox: queue.Queue):
        super().__init__(name=f"framerelay-follow-{job_id[:8]}", daemon=True)
        self.job_id = job_id
        self.connection = connection
        self.inbox = inbox
        self.stopping = threading.Event()
        self.after_seq: int | None = None  # None: take a snapshot (GetJob) first

    def post(self, kind: str, payload: Any = None) -> None:
        self.inbox.put(Message(kind, self.job_id, payload))

    def run(self) -> None:
        backoff, troubled = 0.5, False
        while not self.stopping.is_set():
            try:
                ended = self.step()
            except client_errors.NotFound as error:
                self.post("gone", error)
                return
            except client_errors.ClientError as error:
                if not troubled:
                    self.post("trouble", error)
                troubled = True
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
                continue
            if troubled:
                self.post("reconnected")
                troubled, backoff = False, 0.5
            if ended:
                self.post("ended")
                return

    def step(self) -> bool:
        """One snapshot or one long poll; True once the job has ended."""
        if self.after_seq is None:
            job = self.connection.call(lambda c: c.get_job(self.job_id))
            self.post("snapshot", job)
            self.after_seq = int(job.get("lastSeq", 0))
            return job.get("state") in ENDED_STATES
        reply = self.connection.call(
            lambda c: c.poll(self.job_id, after_seq=self.after_seq, wait_seconds=POLL_WAIT_SECONDS)
        )
        for event in reply.get("events", []):
            if self.stopping.is_set():
                return False
            self.post("event", event)
            self.after_seq = max(self.after_seq, int(event.get("seq", 0)))
        return bool(reply.get("ended"))


class Hub:
    """The inbox, the connection and the worker threads of one Blender session."""

    def __init__(self) -> None:
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.connection = Connection()
        self.followers: dict[str, Follower] = {}
        self._background: dict[str, threading.Thread] = {}

    def follow(self, job_id: str) -> None:
        current = self.followers.get(job_id)
        if current is not None and current.is_alive() and not current.stopping.is_set():
            return
        follower = Follower(job_id, self.connection, self.inbox)
        self.followers[job_id] = follower
        follower.start()

    def following(self) -> list[str]:
        return [job_id for job_id, f in self.followers.items() if f.is_alive()]

    def stop_all(self) -> None:
        for follower in self.followers.values():
            follower.stopping.set()
        self.followers.clear()

    def busy(self) -> bool:
        return bool(self.following()) or any(t.is_alive() for t in self._background.values())

    def background(self, kind: str, request: Callable[[], Any], job_id: str = "") -> bool:
        """Runs `request()` in a thread and posts `Message(kind, job_id, result or error)`.

        One call of each kind at a time: False when one is still running."""
        running = self._background.get(kind)
        if running is not None and running.is_alive():
            return False

        def work() -> None:
            try:
                result: Any = request()
            except Exception as error:  # reported to the user on the main thread
                result = error
            self.inbox.put(Message(kind, job_id, result))

        thread = threading.Thread(target=work, name=f"framerelay-{kind}", daemon=True)
        self._background[kind] = thread
        thread.start()
        return True

    def drain(self) -> Iterable[Message]:
        while True:
            try:
                yield self.inbox.get_nowait()
            except queue.Empty:
                return
