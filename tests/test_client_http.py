"""`Client`'s transport: streams that drop and resume after the last seq or cursor, keep-alives,
a daemon that restarts (new port, new token), refused connections and timeouts, proxies ignored.

A scripted stdlib server plays the daemon where a test needs a connection cut at an exact byte;
the rest runs against real daemons.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.service import http_facade
from framerelay_client import Client, DaemonUnreachable, InvalidSpec, NotFound, job_spec
from framerelay_client import http as client_http
from tests.daemon_harness import make_media, running_daemon, start_serve, stop_serve, wait_for

Reply = Callable[["ScriptedHandler", dict], None]


class ScriptedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ScriptedServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        method = self.path.removeprefix("/v1/")
        self.server.requests.append((method, body, dict(self.headers)))
        self.server.replies[method].pop(0)(self, body)

    def stream(self, lines: list[bytes], end: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for line in lines:
            self.wfile.write(f"{len(line):X}\r\n".encode() + line + b"\r\n")
        if end:
            self.wfile.write(b"0\r\n\r\n")
        else:  # cut off mid-stream
            self.wfile.write(b'40\r\n{"event": ')
        self.wfile.flush()
        self.close_connection = True

    def unary(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, replies: dict[str, list[Reply]]):
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.replies = replies
        self.requests: list[tuple[str, dict, dict]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def scripted(replies: dict[str, list[Reply]]) -> Iterator[ScriptedServer]:
    server = ScriptedServer(replies)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def event(seq: int, kind: str = "progress", cursor: int | None = None) -> dict:
    payload = {"finished": {"frameCount": 2}} if kind == "finished" else {kind: {"step": seq}}
    return {"jobId": "a" * 32, "seq": seq, "cursor": str(cursor or seq), **payload}


def lines(*events: dict) -> list[bytes]:
    return [json.dumps({"event": e}).encode() + b"\n" for e in events]


def test_a_dropped_job_stream_resumes_after_the_last_seq(monkeypatch):
    replies: dict[str, list[Reply]] = {
        "WatchJob": [
            lambda h, b: h.stream([*lines(event(1), event(2)), b"\n"], end=False),
            lambda h, b: h.stream(
                lines(event(2), event(3), event(4, "finished")), end=True
            ),  # a seq seen before is skipped
        ]
    }
    with scripted(replies) as server:
        events = list(Client(server.url, "token", reconnect_seconds=5).watch("a" * 32))
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    bodies = [body for method, body, _ in server.requests]
    assert bodies == [{"jobId": "a" * 32, "afterSeq": 0}, {"jobId": "a" * 32, "afterSeq": 2}]
    headers = server.requests[0][2]
    assert headers["Authorization"] == "Bearer token"
    assert headers["Host"] == server.url.removeprefix("http://")


def test_a_stream_that_ends_early_is_resumed_unless_the_job_had_ended():
    replies: dict[str, list[Reply]] = {
        "WatchJob": [
            lambda h, b: h.stream(lines(event(1)), end=True),  # the daemon stopped cleanly
            lambda h, b: h.stream([], end=True),  # the job had ended: nothing after seq 1
        ],
        "PollJob": [
            lambda h, b: h.unary(200, {"events": [event(2)]}),
            lambda h, b: h.unary(200, {"ended": True}),
        ],
    }
    with scripted(replies) as server:
        events = list(Client(server.url, "token", reconnect_seconds=5).watch("a" * 32))
    assert [e["seq"] for e in events] == [1]
    assert [m for m, _, _ in server.requests] == ["WatchJob", "PollJob", "WatchJob", "PollJob"]


def test_an_unavailable_line_in_the_stream_resumes_and_other_errors_raise():
    stopping = {"error": {"code": "ERROR_CODE_UNAVAILABLE", "message": "the daemon is stopping."}}
    missing = {"error": {"code": "ERROR_CODE_NOT_FOUND", "message": "gone", "hint": "look"}}
    replies: dict[str, list[Reply]] = {
        "WatchQueue": [
            lambda h, b: h.stream(
                [*lines(event(1, cursor=7)), json.dumps(stopping).encode()], True
            ),
            lambda h, b: h.stream(
                [b"\n", *lines(event(2, cursor=9)), json.dumps(missing).encode()], True
            ),
        ]
    }
    with scripted(replies) as server:
        stream = Client(server.url, "token", reconnect_seconds=5).watch_queue(after_cursor=5)
        seen = [next(stream), next(stream)]
        with pytest.raises(NotFound) as caught:
            next(stream)
    assert [e["cursor"] for e in seen] == ["7", "9"]
    assert [b for _, b, _ in server.requests] == [{"afterCursor": "5"}, {"afterCursor": "7"}]
    assert str(caught.value) == "gone (look)"


def test_a_daemon_that_never_comes_back_ends_the_watch():
    def refuse(handler: ScriptedHandler, body: dict) -> None:
        handler.stream(lines(event(1)), end=False)

    with scripted({"WatchJob": [refuse]}) as server:
        client = Client(server.url, "token", reconnect_seconds=0.3)
        stream = client.watch("a" * 32)
        assert next(stream)["seq"] == 1
        server.shutdown()
        server.server_close()
        with pytest.raises(DaemonUnreachable):
            next(stream)


def test_refused_and_silent_daemons_are_unreachable():
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(DaemonUnreachable, match="nothing answers"):
        Client(f"http://127.0.0.1:{port}", "token").status()
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        client = Client(f"http://127.0.0.1:{silent.getsockname()[1]}", "token", timeout=0.3)
        with pytest.raises(DaemonUnreachable, match="timed out"):
            client.status()


@pytest.mark.slow
def test_calls_that_may_take_long_wait_longer(monkeypatch):
    """Freeing the GPU or deleting cache files can take a while: those calls get SLOW_SECONDS."""
    monkeypatch.setattr(client_http, "SLOW_SECONDS", 1.2)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        client = Client(f"http://127.0.0.1:{silent.getsockname()[1]}", "token", timeout=0.2)
        waited = {}
        for name, call in (
            ("status", client.status),
            ("unload_model", client.unload_model),
            ("gc_cache", lambda: client.gc_cache(0)),
            ("clear_cache", client.clear_cache),
        ):
            start = time.monotonic()
            with pytest.raises(DaemonUnreachable, match="timed out"):
                call()
            waited[name] = time.monotonic() - start
    assert waited.pop("status") < 1.0
    assert all(seconds >= 1.1 for seconds in waited.values()), waited


@pytest.mark.slow
def test_keep_alives_keep_a_quiet_stream_open(tmp_path, monkeypatch):
    """A job held before its first step: the stream carries only keep-alives meanwhile."""
    monkeypatch.setattr(http_facade, "KEEPALIVE_SECONDS", 0.05)
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    with running_daemon(tmp_path, FakeExecutor(gate=gate)) as (daemon, _):
        found = daemon.discovery
        client = Client(found.http_url, found.token, stream_timeout=1.0, reconnect_seconds=0)
        spec = job_spec(str(source), [str(edited)], in_frame=0, out_frame=4, fps=24)
        job_id = client.submit(spec)["job"]["id"]
        threading.Timer(2.5, gate.set).start()  # well past the stream timeout
        events = list(client.watch(job_id))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert "finished" in events[-1]


def test_proxy_settings_are_ignored(tmp_path, monkeypatch):
    """The token must never go to a proxy, and loopback needs none."""
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with running_daemon(tmp_path) as (daemon, _):
        found = daemon.discovery
        assert Client(found.http_url, found.token).status()["version"]


def test_a_leaked_token_is_replaced_and_the_client_reads_the_new_one(tmp_path):
    with running_daemon(tmp_path, discovery_check_s=0.05) as (daemon, _):
        path = tmp_path / "config" / "daemon.json"
        client = Client.discover(path)
        first = daemon.discovery.token
        os.chmod(path, 0o644)  # readable by others: the daemon makes a new token
        wait_for(lambda: daemon.discovery.token != first and path.stat().st_mode & 0o077 == 0)
        assert client.status()["version"]  # refused once, re-read the file, retried


@pytest.mark.slow
def test_a_watch_goes_on_across_a_daemon_restart(tmp_path):
    """serve stops mid-job and starts again on new ports with a new token: the same watch
    resumes after the last seq it saw, through the job's recovery, to its end."""
    source, edited = make_media(tmp_path / "media")
    process, _ = start_serve(tmp_path, "--fake", "--fake-step-seconds", "0.2")
    path = tmp_path / "config" / "daemon.json"
    try:
        client = Client.discover(path)
        client.reconnect_seconds = 30
        spec = job_spec(str(source), [str(edited)], in_frame=0, out_frame=4, fps=24)
        job_id = client.submit(spec)["job"]["id"]
        events = []
        for item in client.watch(job_id):
            events.append(item)
            if len(events) == 4:
                stop_serve(process)
                assert not path.exists()
                process, _ = start_serve(tmp_path, "--fake", "--fake-step-seconds", "0.05")
    finally:
        stop_serve(process)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    recovered = [e["queued"] for e in events if "queued" in e][1:]
    assert recovered == [{"position": 1, "reason": "QUEUED_REASON_RECOVERED"}]
    assert {"attempt": 2} in [e.get("started") for e in events]
    assert "finished" in events[-1]


def test_a_url_that_is_not_the_daemons_is_refused():
    for url in ("127.0.0.1:80", "https://127.0.0.1:80", "http://127.0.0.1"):
        with pytest.raises(InvalidSpec, match="http://host:port"):
            Client(url, "token")
