"""`Client`: the daemon's HTTP/JSON API with nothing but the standard library.

Every RPC is `POST /v1/<Method>` with the request message in proto3 JSON and the token in the
`Authorization` header; answers are plain dicts exactly as the API returns them (lowerCamelCase
keys, enum names as strings, 64-bit integers as strings, default values left out).

The client talks to the daemon directly (never through an HTTP proxy: the token must not leave the
machine) on a fresh connection per call, so one `Client` may be shared by threads.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from os import PathLike, fspath
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .discovery import Discovery, read_discovery
from .errors import (
    ClientError,
    DaemonNotRunning,
    DaemonUnreachable,
    Internal,
    InvalidSpec,
    Unauthenticated,
    Unavailable,
    error_from_info,
    error_from_reply,
)

JsonDict = dict[str, Any]
T = TypeVar("T")
TERMINAL_KINDS = ("finished", "failed", "cancelled")
JOB_STATES = (
    "JOB_STATE_QUEUED",
    "JOB_STATE_RUNNING",
    "JOB_STATE_FINISHED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_AWAITING_EDIT",
)
MAX_POLL_SECONDS = 60.0  # the daemon waits at most this long in PollJob
KEEPALIVE_SECONDS = 15.0  # the daemon writes a blank line this often on a quiet stream


def is_terminal(event: Mapping[str, Any]) -> bool:
    return any(kind in event for kind in TERMINAL_KINDS)


def state_name(state: str) -> str:
    """"queued" or "JOB_STATE_QUEUED" -> "JOB_STATE_QUEUED"."""
    name = state if state.startswith("JOB_STATE_") else f"JOB_STATE_{state.upper()}"
    if name not in JOB_STATES:
        raise InvalidSpec(f"unknown job state {state!r}.", f"Use one of {', '.join(JOB_STATES)}.")
    return name


class Client:
    """A blocking client for one daemon.

    `timeout` bounds each unary call (seconds); a stream is given up as dropped after
    `stream_timeout` seconds without a byte (the daemon sends a keep-alive every 15 s), then
    resumed; resuming goes on for up to `reconnect_seconds`.
    """

    def __init__(
        self,
        url: str,
        token: str,
        timeout: float = 10.0,
        *,
        stream_timeout: float = 3 * KEEPALIVE_SECONDS,
        reconnect_seconds: float = 60.0,
    ) -> None:
        self.timeout = timeout
        self.stream_timeout = stream_timeout
        self.reconnect_seconds = reconnect_seconds
        self._lock = threading.Lock()
        self._discovery_path: Path | None = None
        self._endpoint = _endpoint(url)
        self._url = url
        self._token = token

    @classmethod
    def discover(
        cls,
        path: Path | None = None,
        url_override: str | None = None,
        token_override: str | None = None,
        timeout: float = 10.0,
    ) -> Client:
        """A client for the daemon named by the discovery file (default: `config_dir()`).

        Without overrides it reads the file again when the daemon refuses the token or the
        connection (it restarted: new token, new port) and retries once.
        """
        found: Discovery | None = None
        if url_override is None or token_override is None:
            found = read_discovery(path)
        url = url_override or (found.http_url if found else "")
        token = token_override or (found.token if found else "")
        client = cls(url, token, timeout)
        if url_override is None and token_override is None:
            client._discovery_path = path
            client._follow_discovery = True
        return client

    _follow_discovery = False

    @property
    def url(self) -> str:
        return self._url

    def close(self) -> None:
        """Nothing to release (every call has its own connection); for `with` blocks."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the RPCs ---

    def call(self, method: str, body: Mapping[str, Any] | None = None) -> JsonDict:
        """One unary RPC: the response message as a dict."""
        return self._unary(method, dict(body or {}), self.timeout)

    def status(self) -> JsonDict:
        return self.call("GetStatus")

    def submit(self, spec: Mapping[str, Any]) -> JsonDict:
        """SubmitJob: `{"job": …, "exportedPath": …}` (exportedPath for round trips only)."""
        return self.call("SubmitJob", {"spec": dict(spec)})

    def get_job(self, job_id: str) -> JsonDict:
        """The Job (GetJob's `job`)."""
        job: JsonDict = self.call("GetJob", {"jobId": job_id})["job"]
        return job

    def list_jobs(self, states: Iterable[str] = (), limit: int = 0) -> JsonDict:
        """`{"jobs": [...], "cursor": "…"}`: running, queued in order, awaiting edit, ended."""
        body: JsonDict = {}
        names = [state_name(s) for s in states]
        if names:
            body["states"] = names
        if limit:
            body["limit"] = limit
        return self.call("ListJobs", body)

    def cancel(self, job_id: str) -> JsonDict:
        """`{"job": …, "outcome": "CANCEL_OUTCOME_…"}`: DEQUEUED (it was queued or awaiting its
        edit), INTERRUPT_REQUESTED (running: it stops at its next step) or ALREADY_ENDED."""
        return self.call("CancelJob", {"jobId": job_id})

    def move(self, job_id: str, position: int) -> JsonDict:
        """`{"job": …, "queue": [ids in order]}`; position 1 runs next."""
        return self.call("MoveJob", {"jobId": job_id, "position": position})

    def poll(
        self, job_id: str, after_seq: int = 0, wait_seconds: float = 0.0, max_events: int = 0
    ) -> JsonDict:
        """`{"events": [...], "ended": true}` (keys absent when empty/false): the events after
        `after_seq`, waiting up to `wait_seconds` (at most 60) for the first."""
        body: JsonDict = {"jobId": job_id}
        if after_seq:
            body["afterSeq"] = after_seq
        if wait_seconds:
            body["waitSeconds"] = wait_seconds
        if max_events:
            body["maxEvents"] = max_events
        timeout = self.timeout + min(max(wait_seconds, 0.0), MAX_POLL_SECONDS)
        return self._unary("PollJob", body, timeout)

    def watch(self, job_id: str, after_seq: int = 0) -> Iterator[JsonDict]:
        """The job's events after `after_seq`, live, until its terminal event.

        A dropped connection (or a daemon that restarts) is resumed after the last seq seen, so
        no event is missed or repeated.
        """
        last = after_seq
        deadline: float | None = None
        while True:
            stream = self._stream("WatchJob", {"jobId": job_id, "afterSeq": last})
            try:
                for event in stream:
                    deadline = None
                    if int(event.get("seq", 0)) <= last:
                        continue
                    last = int(event["seq"])
                    yield event
                    if is_terminal(event):
                        return
                if self._ended(job_id, last):  # it had ended before `last`
                    return
                raise DaemonUnreachable("the WatchJob stream ended before the job did.")
            except (DaemonUnreachable, Unavailable) as error:
                deadline = self._wait_to_resume(error, deadline)
            finally:
                stream.close()

    def _ended(self, job_id: str, after_seq: int) -> bool:
        """Whether the job has ended with no event after `after_seq`."""
        return bool(self.poll(job_id, after_seq, max_events=1).get("ended", False))

    def watch_queue(self, after_cursor: int | None = None) -> Iterator[JsonDict]:
        """Every job's events after `after_cursor` (None: from now on); never ends by itself.

        Resumes after a dropped connection from the last cursor seen. Take the cursor from
        `list_jobs()` to miss nothing between a listing and the stream.
        """
        last = after_cursor
        if last is None:
            last = int(self.list_jobs(limit=1).get("cursor", 0))
        deadline: float | None = None
        while True:
            stream = self._stream("WatchQueue", {"afterCursor": str(last)})
            try:
                for event in stream:
                    deadline = None
                    cursor = int(event.get("cursor", 0))
                    if cursor <= last:
                        continue
                    last = cursor
                    yield event
                raise DaemonUnreachable("the WatchQueue stream ended (the daemon stopped).")
            except (DaemonUnreachable, Unavailable) as error:
                deadline = self._wait_to_resume(error, deadline)
            finally:
                stream.close()

    def attach_edit(self, job_id: str, path: str | PathLike[str]) -> JsonDict:
        """`{"job": …, "version": n, "warnings": [...]}`: `path` becomes the round trip's edit."""
        body = {"jobId": job_id, "path": fspath(path)}
        return self._unary("AttachEdit", body, max(self.timeout, 60.0))

    def get_editor_config(self) -> JsonDict:
        """`{"config": {...}, "configPath": "…", "noOpen": bool}`."""
        return self.call("GetEditorConfig")

    def set_editor_config(self, config: Mapping[str, Any]) -> JsonDict:
        """Replaces the [editor] settings: `application`, `arguments`, `openEditor`,
        `pollSaves`."""
        return self.call("SetEditorConfig", {"config": dict(config)})

    def cache_info(self) -> JsonDict:
        """`{"entries": "n", "bytes": "n", "root": "…"}` (64-bit counts as strings)."""
        return self.call("GetCacheInfo")

    def clear_cache(self) -> JsonDict:
        """`{"freedBytes": "n"}`; Busy while a job runs."""
        return self.call("ClearCache")

    # --- transport ---

    def _unary(self, method: str, body: JsonDict, timeout: float) -> JsonDict:
        def once() -> JsonDict:
            connection, reply = self._post(method, body, timeout)
            try:
                data = _read(reply)
            finally:
                connection.close()
            return _json_object(data, method)

        return self._with_rediscovery(once)

    def _stream(self, method: str, body: JsonDict) -> Iterator[JsonDict]:
        """The stream's messages' `event`s; raises DaemonUnreachable when the connection drops
        and the error of an error line (Unavailable when the daemon stops)."""
        connection, reply = self._with_rediscovery(
            lambda: self._post(method, body, self.stream_timeout)
        )
        try:
            while True:
                try:
                    line = reply.readline()
                except (OSError, http.client.HTTPException) as error:
                    raise DaemonUnreachable(f"the {method} stream broke off: {_reason(error)}.")
                if not line:
                    return
                if not line.strip():
                    continue  # a keep-alive
                message = _json_object(line, method)
                if "error" in message and isinstance(message["error"], Mapping):
                    raise error_from_info(message["error"])
                event = message.get("event")
                if isinstance(event, dict):
                    yield event
        finally:
            connection.close()

    def _post(
        self, method: str, body: JsonDict, timeout: float
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Sends the request; returns the open reply once its status is 200."""
        with self._lock:
            host, port, url, token = (*self._endpoint, self._url, self._token)
        data = json.dumps(body).encode("utf-8")
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            connection.request(
                "POST",
                f"/v1/{method}",
                body=data,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/json",
                    "Accept": "application/json, application/x-ndjson",
                    "Connection": "close",
                },
            )
            reply = connection.getresponse()
        except ConnectionRefusedError as error:
            connection.close()
            raise _Refused(f"nothing answers at {url}: {_reason(error)}.") from None
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            raise DaemonUnreachable(f"the daemon at {url} did not answer: {_reason(error)}.") from None
        if reply.status != 200:
            try:
                raw = _read(reply)
            finally:
                connection.close()
            raise error_from_reply(reply.status, raw)
        return connection, reply

    def _with_rediscovery(self, attempt: Callable[[], T]) -> T:
        """Runs `attempt()`; after a refused token or connection, reads the discovery file again
        and retries once if it names another daemon (a restart). Neither refusal ran anything."""
        try:
            return attempt()
        except (Unauthenticated, _Refused) as error:
            if not self._rediscover():
                raise _public(error) from None
        try:
            return attempt()
        except _Refused as error:
            raise _public(error) from None

    def _rediscover(self) -> bool:
        """Reads the discovery file again; True when it names another url or token."""
        if not self._follow_discovery:
            return False
        try:
            found = read_discovery(self._discovery_path)
        except DaemonNotRunning:
            return False
        with self._lock:
            if (found.http_url, found.token) == (self._url, self._token):
                return False
            self._url, self._token = found.http_url, found.token
            self._endpoint = _endpoint(found.http_url)
        return True

    def _wait_to_resume(self, error: ClientError, deadline: float | None) -> float:
        """Sleeps before a stream resumes; raises `error` once `reconnect_seconds` have passed
        since the stream broke."""
        now = time.monotonic()
        deadline = now + self.reconnect_seconds if deadline is None else deadline
        if now >= deadline:
            if self._follow_discovery and isinstance(error, DaemonUnreachable):
                read_discovery(self._discovery_path)  # DaemonNotRunning when it is gone
            raise _public(error)
        time.sleep(min(0.5, max(0.0, deadline - now)))
        self._rediscover()
        return deadline


class _Refused(DaemonUnreachable):
    """The connection was refused: the request never reached a daemon."""


def _public(error: ClientError) -> ClientError:
    if isinstance(error, _Refused):
        return DaemonUnreachable(error.message, error.hint)
    return error


def _endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise InvalidSpec(
            f"the daemon's URL must be http://host:port, got {url!r}.",
            "Take it from the discovery file (http_url), e.g. http://127.0.0.1:41233.",
        )
    return parts.hostname, parts.port


def _read(reply: http.client.HTTPResponse) -> bytes:
    try:
        return reply.read()
    except (OSError, http.client.HTTPException) as error:
        raise DaemonUnreachable(f"the daemon's answer broke off: {_reason(error)}.") from None


def _json_object(data: bytes, method: str) -> JsonDict:
    try:
        value = json.loads(data)
    except ValueError:
        raise Internal(f"the daemon's answer to {method} is not JSON: {data[:100]!r}.") from None
    if not isinstance(value, dict):
        raise Internal(f"the daemon's answer to {method} is not a JSON object.")
    return value


def _reason(error: BaseException) -> str:
    if isinstance(error, socket.timeout | TimeoutError):
        return "timed out"
    return str(error) or type(error).__name__
