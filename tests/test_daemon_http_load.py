"""Several hosts and the tray app polling at once: the HTTP facade answers 100 simultaneous
requests within a few seconds, with a bounded number of threads."""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from framerelay.jobs.fake_executor import FakeExecutor
from tests.daemon_harness import clip_spec, make_media, running_daemon, wait_for

CLIENTS = 100


def timed_call(port: int, token: str, method: str, body: dict, start: threading.Barrier) -> tuple:
    """One POST on a new connection, opened when every client is ready; (status, seconds)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    data = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    start.wait()
    began = time.monotonic()
    try:
        connection.request("POST", f"/v1/{method}", data, headers)
        reply = connection.getresponse()
        reply.read()
        return reply.status, time.monotonic() - began
    except OSError as error:
        return repr(error), time.monotonic() - began
    finally:
        connection.close()


def test_a_hundred_simultaneous_requests_are_all_answered_within_seconds(tmp_path):
    with running_daemon(tmp_path) as (daemon, _):
        found = daemon.discovery
        calls = [
            ("GetStatus", {}),
            ("ListJobs", {}),
            ("GetCacheInfo", {}),
            ("GetEditorConfig", {}),
        ]
        start = threading.Barrier(CLIENTS)
        results: list[tuple] = [()] * CLIENTS

        def client(n: int) -> None:
            method, body = calls[n % len(calls)]
            results[n] = timed_call(found.http_port, found.token, method, body, start)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        server = daemon.daemon._http
        assert server is not None
        peak = server.peak_handlers

    statuses = [status for status, _ in results]
    slowest = max(seconds for _, seconds in results)
    assert statuses == [200] * CLIENTS, [s for s in statuses if s != 200][:5]
    assert slowest < 5.0, f"the slowest request took {slowest:.1f} s"
    assert peak <= server.max_handlers


@pytest.mark.slow
def test_connections_beyond_the_bound_wait_for_a_thread_or_get_a_quick_503(tmp_path, monkeypatch):
    import framerelay.service.http_facade as facade_module

    monkeypatch.setattr(facade_module, "MAX_HANDLERS", 4)
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    with running_daemon(tmp_path, FakeExecutor(gate=gate)) as (daemon, client):
        found = daemon.discovery
        job = client.submit(clip_spec(source, edited))
        wait_for(lambda: client.get(job.id).progress.phase == "load")
        last = client.get(job.id).last_seq
        poll = {"jobId": job.id, "afterSeq": str(last), "waitSeconds": 2}
        start = threading.Barrier(4 + 8)
        results: list[tuple] = [()] * 12

        def call(n: int, method: str, body: dict) -> None:
            results[n] = timed_call(found.http_port, found.token, method, body, start)

        threads = [threading.Thread(target=call, args=(n, "PollJob", poll)) for n in range(4)]
        threads += [threading.Thread(target=call, args=(n, "GetStatus", {})) for n in range(4, 12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        server = daemon.daemon._http
        assert server is not None and server.peak_handlers == 4

        first = [status for status, _ in results]
        server._server.busy_wait_s = 0.5
        start = threading.Barrier(4)
        threads = [threading.Thread(target=call, args=(n, "PollJob", poll)) for n in range(4)]
        for thread in threads:
            thread.start()
        wait_for(lambda: server._server._active == 4)
        busy = timed_call(found.http_port, found.token, "GetStatus", {}, threading.Barrier(1))
        for thread in threads:
            thread.join(60)
        gate.set()

    assert first == [200] * 12  # those beyond the bound waited for a thread, then were served
    assert busy[0] == 503 and busy[1] < 1.8  # answered at once, not after the polls' 2 s
