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
from collections.abc import Callable, Generator, Mapping
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .api import MAX_POLL_SECONDS, DaemonApi, JsonDict
from .discovery import Discovery, read_discovery
from .errors import (
    ClientError,
    DaemonNotRunning,
    DaemonUnreachable,
    Internal,
    InvalidSpec,
    Unauthenticated,
    error_from_info,
    error_from_reply,
)

T = TypeVar("T")
KEEPALIVE_SECONDS = 15.0  # the daemon writes a blank line this often on a quiet stream
# Calls that may take long: the daemon reads and checks an image, deletes cache files or frees
# the GPU's memory. They get at least SLOW_SECONDS.
SLOW_METHODS = ("AttachEdit", "ClearCache", "GcCache", "UnloadModel")
SLOW_SECONDS = 60.0


class Client(DaemonApi):
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
        self._follow_discovery = False  # set by discover(): re-read the file after a refusal
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

    @property
    def url(self) -> str:
        return self._url

    def close(self) -> None:
        """Nothing to release (every call has its own connection); for `with` blocks."""

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- the primitives ---

    def call(self, method: str, body: Mapping[str, Any] | None = None) -> JsonDict:
        """One unary RPC by its proto name ("GetStatus"): the response message as a dict."""
        request = dict(body or {})
        timeout = self.timeout
        if method == "PollJob":  # the daemon holds the answer up to waitSeconds
            wait = float(request.get("waitSeconds", 0.0) or 0.0)
            timeout += min(max(wait, 0.0), MAX_POLL_SECONDS)
        elif method in SLOW_METHODS:
            timeout = max(timeout, SLOW_SECONDS)
        return self._unary(method, request, timeout)

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

    def _stream(self, method: str, body: JsonDict) -> Generator[JsonDict, None, None]:
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
                    reason = _reason(error)
                    raise DaemonUnreachable(f"the {method} stream broke off: {reason}.") from None
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
            raise DaemonUnreachable(
                f"the daemon at {url} did not answer: {_reason(error)}."
            ) from None
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

    def _resume_wait(self, error: ClientError, deadline: float | None) -> float:
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
