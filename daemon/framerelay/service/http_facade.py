"""A loopback HTTP/JSON facade over the same API and token, for clients with only the stdlib.

Every RPC is `POST /v1/<Method>` with the request message as proto3 JSON in the body (`{}` for an
empty one) and `Authorization: Bearer <token>`:

* unary methods answer 200 with the response message as JSON;
* streaming methods (WatchJob, WatchQueue) answer 200 with a chunked stream of newline-delimited
  JSON response messages; blank lines are keep-alives. WatchJob ends after the terminal event;
* errors answer the catalogue's HTTP status with `{"error": ErrorInfo}`; malformed JSON is 400.

Before the token, every request passes `HttpGuard` (Host, Origin, no query string); bodies are
limited to `MAX_BODY` bytes and `MAX_JSON_DEPTH` levels. Each connection runs in a thread of its
own, at most `MAX_HANDLERS` at once (long polls and streams hold theirs); further connections
wait in a deep listen backlog, and one that finds no thread within `BUSY_WAIT_S` is answered 503.
Requests are handed to the daemon's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import Future
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from framerelay.errors import (
    CATALOG,
    FramerelayError,
    InvalidSpecError,
    NotFoundError,
    UnauthenticatedError,
    UnavailableError,
)
from framerelay.limits import MAX_REQUEST_BYTES
from framerelay.service.api import DaemonApi, Method, methods
from framerelay.service.auth import Authenticator
from framerelay.service.errors import error_to_proto, public_error
from framerelay.service.http_guard import HttpGuard, without_query

log = logging.getLogger(__name__)

PREFIX = "/v1/"
MAX_BODY = MAX_REQUEST_BYTES
KEEPALIVE_SECONDS = 15.0
SOCKET_TIMEOUT_S = 30.0  # a client that stalls this long mid-request or mid-stream is dropped
BACKLOG = 1024  # connections the kernel holds until a thread takes them (capped by somaxconn)
MAX_HANDLERS = 128  # connections served at once: hosts, the tray app, their polls and streams
BUSY_WAIT_S = 10.0  # a connection waits this long for a thread, then is answered 503
CORS_HEADERS = "authorization, content-type"
_END = object()


def to_json(message: Message) -> str:
    return json_format.MessageToJson(message, indent=None, ensure_ascii=False)


def error_body(error: FramerelayError) -> bytes:
    return json.dumps({"error": json.loads(to_json(error_to_proto(error)))}).encode()


class FacadeServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], facade: HttpFacade, max_handlers: int):
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, FacadeHandler)
        self.facade = facade
        self.max_handlers = max_handlers
        self.busy_wait_s = BUSY_WAIT_S
        self.peak_handlers = 0
        self._slots = threading.BoundedSemaphore(max_handlers)
        self._active = 0
        self._count_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serves the connection in a thread of its own once one of the slots is free."""
        if not self._slots.acquire(timeout=self.busy_wait_s):
            log.warning("http: %d connections are being served; refused one", self.max_handlers)
            refuse_busy(request)
            self.shutdown_request(request)
            return
        with self._count_lock:
            self._active += 1
            self.peak_handlers = max(self.peak_handlers, self._active)
        threading.Thread(
            target=self._serve, args=(request, client_address), name="http", daemon=True
        ).start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.process_request_thread(request, client_address)
        finally:
            with self._count_lock:
                self._active -= 1
            self._slots.release()


def refuse_busy(request: socket.socket) -> None:
    body = error_body(
        UnavailableError("the daemon is serving too many connections.", "Try again in a moment.")
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
    )
    with contextlib.suppress(OSError):
        request.settimeout(1.0)
        request.sendall(head.encode() + body)


class HttpFacade:
    def __init__(
        self,
        api: DaemonApi,
        auth: Authenticator,
        loop: asyncio.AbstractEventLoop,
        host: str,
        port: int,
        allowed_origins: tuple[str, ...] = (),
        allowed_hosts: tuple[str, ...] = (),
        remote: bool = False,
        max_handlers: int | None = None,
    ):
        self.api = api
        self.auth = auth
        self.loop = loop
        self.methods = methods()
        self._server = FacadeServer((host, port), self, max_handlers or MAX_HANDLERS)
        self.guard = HttpGuard(
            self.port,
            frozenset(o.lower().rstrip("/") for o in allowed_origins),
            frozenset({h.lower() for h in allowed_hosts} | ({host.lower()} if remote else set())),
            remote,
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="http-facade", daemon=True
        )
        self._streams: set[queue.Queue[Any]] = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    @property
    def max_handlers(self) -> int:
        return self._server.max_handlers

    @property
    def peak_handlers(self) -> int:
        """The most connections served at once so far."""
        return self._server.peak_handlers

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._end_streams()  # first: their threads free the slots a waiting connection needs
        self._server.shutdown()
        self._server.server_close()
        self._end_streams()

    def _end_streams(self) -> None:
        with self._lock:
            for inbox in self._streams:
                inbox.put(_END)

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def open_stream(self, stream: AsyncIterator[Message]) -> tuple[queue.Queue[Any], Future[Any]]:
        """Pumps `stream` from the event loop into a queue this thread reads."""
        inbox: queue.Queue[Any] = queue.Queue()

        async def pump() -> None:
            try:
                async for message in stream:
                    inbox.put(message)
            except Exception as error:
                inbox.put(public_error(error, "stream"))
            finally:
                inbox.put(_END)

        with self._lock:
            self._streams.add(inbox)
        return inbox, asyncio.run_coroutine_threadsafe(pump(), self.loop)

    def close_stream(self, inbox: queue.Queue[Any], pump: Future[Any]) -> None:
        pump.cancel()
        with self._lock:
            self._streams.discard(inbox)


def malformed(method: Method, problem: str) -> InvalidSpecError:
    return InvalidSpecError(
        f"malformed {method.name}Request JSON: {problem}",
        "Send the request message in proto3 JSON, e.g. "
        '{"spec": {"sourcePath": "/clips/a.mov", "editedFramePaths": ["/edits/a.png"]}}.',
    )


_FIELD = re.compile(r"Failed to parse (\S+) field: ")


def parse_problem(error: json_format.ParseError) -> str:
    """protobuf's message, except that a value of the wrong JSON type is said in words rather
    than with the Python error protobuf wraps ("unhashable type: 'list'")."""
    text = str(error)
    cause: BaseException = error
    while cause.__context__ is not None:
        cause = cause.__context__
    if isinstance(cause, TypeError | AttributeError):
        path = ".".join(_FIELD.findall(text))
        return f"{path or 'a field'} has a value of the wrong JSON type."
    return text[:500]


class FacadeHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FacadeServer
    server_version = "framerelay"
    timeout = SOCKET_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        # Never headers (they hold the token) nor query strings (a token may be misplaced there).
        log.debug("http %s - %s", self.address_string(), without_query(format % args))

    def __getattr__(self, name: str) -> Any:
        # The server looks up do_<VERB>: every verb but POST and OPTIONS gets a JSON 405.
        if name.startswith("do_"):
            return self.refuse_verb
        raise AttributeError(name)

    def refuse_verb(self) -> None:
        self.close_connection = True
        if self.refuse_foreign():
            return
        self.send_error_json(
            InvalidSpecError(
                f"{self.command[:16]} is not supported.", "Send POST /v1/<Method> with a JSON body."
            ),
            405,
        )

    def refuse_foreign(self) -> bool:
        """Answers 403 to a request from a foreign Host or web page; True when it did."""
        guard = self.server.facade.guard
        hosts = self.headers.get_all("Host") or []
        try:
            guard.check_host(hosts[0] if len(hosts) == 1 else None)
            for origin in self.headers.get_all("Origin") or ():
                guard.check_origin(origin)
        except FramerelayError as error:
            self.close_connection = True
            self.send_error_json(error)
            return True
        return False

    def do_OPTIONS(self) -> None:
        """A browser's CORS preflight: answered only for an origin listed in allowed_origins."""
        self.close_connection = True
        if self.refuse_foreign():
            return
        if self.headers.get("Origin") is None:
            self.refuse_verb()
            return
        self.send_response(204)
        self.send_cors_headers()
        self.send_header("Access-Control-Allow-Methods", "POST")
        self.send_header("Access-Control-Allow-Headers", CORS_HEADERS)
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        facade = self.server.facade
        if self.refuse_foreign():
            return
        body: bytes | None = None
        try:
            facade.guard.check_target(self.path)
            body = self.read_body()
            self.authenticate()
            method = self.method()
            request = self.parse(method, body)
        except FramerelayError as error:
            if body is None:  # the body is still in the socket: this connection is done
                self.close_connection = True
            self.send_error_json(error)
            return
        if method.streaming:
            self.stream(method, request)
        else:
            self.unary(method, request)

    def authenticate(self) -> None:
        auth = self.server.facade.auth
        try:
            auth.check(self.headers.get("Authorization"))
        except UnauthenticatedError as error:
            time.sleep(auth.refused(self.client_address[0], error))
            raise

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            raise InvalidSpecError(
                "chunked request bodies are not accepted.", "Send the body with Content-Length."
            )
        text = (self.headers.get("Content-Length") or "0").strip()
        if not (text.isascii() and text.isdigit()):
            self.close_connection = True
            raise InvalidSpecError(f"the Content-Length header is not a size: {text[:32]!r}.")
        length = int(text)
        if length > MAX_BODY:
            self.close_connection = True
            raise InvalidSpecError(f"the request body is {length} bytes; the limit is {MAX_BODY}.")
        try:
            body = self.rfile.read(length)
        except OSError:  # the client stalled past the socket timeout, or left
            body = b""
        if len(body) != length:
            self.close_connection = True
            raise InvalidSpecError(
                f"the request body ended after {len(body)} of {length} bytes.",
                "Send as many bytes as Content-Length says.",
            )
        return body

    def method(self) -> Method:
        name = self.path.removeprefix(PREFIX)
        method = self.server.facade.methods.get(name) if self.path.startswith(PREFIX) else None
        if method is None:
            raise NotFoundError(
                f"no method at {self.path[:200]}.",
                f"POST to /v1/<Method>, one of {', '.join(self.server.facade.methods)}.",
            )
        return method

    def parse(self, method: Method, body: bytes) -> Message:
        request = method.request_type()
        try:
            text = body.decode("utf-8") if body.strip() else "{}"
            self.server.facade.guard.check_json(text)
            if not isinstance(json.loads(text), dict):
                raise ValueError("the body must be a JSON object, {...}")
            json_format.Parse(text, request)
        except FramerelayError:
            raise
        except json_format.ParseError as error:
            raise malformed(method, parse_problem(error)) from None
        except (UnicodeDecodeError, ValueError, TypeError, OverflowError, RecursionError) as error:
            raise malformed(method, str(error)[:500]) from None
        return request

    def unary(self, method: Method, request: Message) -> None:
        facade = self.server.facade
        try:
            response = facade.call(getattr(facade.api, method.handler)(request))
        except Exception as error:
            self.send_error_json(public_error(error, method.name))
            return
        self.send_json(200, to_json(response).encode())

    def stream(self, method: Method, request: Message) -> None:
        facade = self.server.facade
        try:
            stream = facade.call(getattr(facade.api, method.handler)(request))
        except Exception as error:
            self.send_error_json(public_error(error, method.name))
            return
        inbox, pump = facade.open_stream(stream)
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-ndjson")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-store")
            self.send_cors_headers()
            self.end_headers()
            self.relay(inbox)
            self.write_chunk(b"")
        except OSError:  # the client left the stream or stopped reading
            log.debug("http %s: the client left the stream", method.name)
        finally:
            facade.close_stream(inbox, pump)

    def relay(self, inbox: queue.Queue[Any]) -> None:
        while True:
            try:
                item = inbox.get(timeout=KEEPALIVE_SECONDS)
            except queue.Empty:
                self.write_chunk(b"\n")
                continue
            if item is _END:
                return
            if isinstance(item, FramerelayError):
                self.write_chunk(error_body(item) + b"\n")
                return
            self.write_chunk(to_json(item).encode() + b"\n")

    def write_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):X}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def send_cors_headers(self) -> None:
        """Only for an origin listed in allowed_origins, and only that origin: never `*`."""
        origin = self.headers.get("Origin")
        if origin is not None and self.server.facade.guard.allows_origin(origin):
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Vary", "Origin")

    def send_json(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        if self.close_connection:
            self.send_header("Connection", "close")
        self.send_cors_headers()
        self.end_headers()
        self.wfile.write(body)

    def send_error_json(self, error: FramerelayError, status: int | None = None) -> None:
        body = error_body(error)
        for secret in self.server.facade.auth.secrets():  # a client may have sent it anywhere
            body = body.replace(secret.encode(), b"[token]")
        self.send_json(status or CATALOG[error.code].http_status, body)
