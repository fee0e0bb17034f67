"""The token, the discovery file and loopback-only listening."""

from __future__ import annotations

import json
import os
import stat
import sys

import grpc
import pytest

from framerelay.errors import ErrorCode, InvalidSpecError, UnauthenticatedError
from framerelay.proto.v1 import daemon_pb2, daemon_pb2_grpc
from framerelay.service.config import is_loopback
from framerelay.service.discovery import discovery_path, read_discovery
from tests.daemon_harness import (
    http_call,
    http_stream,
    make_config,
    running_daemon,
    start_serve,
    stop_serve,
)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [((), "no token"), ((("authorization", "Bearer wrong"),), "wrong"), (None, "wrong")],
    ids=["missing", "wrong", "bare-token"],
)
def test_grpc_calls_without_the_right_token_are_unauthenticated(tmp_path, metadata, problem):
    with running_daemon(tmp_path) as (daemon, _):
        token = daemon.discovery.token
        metadata = (("authorization", token),) if metadata is None else metadata
        with grpc.insecure_channel(daemon.discovery.grpc_target) as channel:
            stub = daemon_pb2_grpc.DaemonStub(channel)
            calls = [
                lambda: stub.GetStatus(daemon_pb2.GetStatusRequest(), metadata=metadata),
                lambda: list(
                    stub.WatchQueue(daemon_pb2.WatchQueueRequest(), metadata=metadata, timeout=5)
                ),
            ]
            for call in calls:
                with pytest.raises(grpc.RpcError) as caught:
                    call()
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert problem in caught.value.details()
                assert token not in caught.value.details()


def test_the_client_reports_a_wrong_token_with_a_hint(tmp_path):
    from framerelay.service.client import DaemonClient

    with running_daemon(tmp_path) as (daemon, client):
        assert client.status().pid == os.getpid()
        stranger = DaemonClient(daemon.discovery.grpc_target, "not-the-token")
        with stranger, pytest.raises(UnauthenticatedError) as caught:
            stranger.list()
    assert caught.value.code is ErrorCode.unauthenticated
    assert "discovery file" in caught.value.hint


def test_http_calls_without_the_right_token_are_401(tmp_path):
    with running_daemon(tmp_path) as (daemon, _):
        for token in ("", "wrong"):
            status, body = http_call(daemon.discovery, "GetStatus", {}, token=token)
            assert status == 401
            assert body["error"]["code"] == "ERROR_CODE_UNAUTHENTICATED"
            assert body["error"]["hint"]
        status, _ = http_call(daemon.discovery, "GetStatus", {})
    assert status == 200


def test_http_streams_need_the_token_too(tmp_path):
    import urllib.error

    with running_daemon(tmp_path) as (daemon, _), pytest.raises(urllib.error.HTTPError) as caught:
        next(http_stream(daemon.discovery, "WatchQueue", {}, token="wrong"))
    assert caught.value.code == 401


@posix_only
def test_the_discovery_file_is_private_and_names_the_ports_and_token(tmp_path):
    with running_daemon(tmp_path) as (daemon, _):
        path = discovery_path(tmp_path / "config")
        mode = stat.S_IMODE(path.stat().st_mode)
        folder_mode = stat.S_IMODE(path.parent.stat().st_mode)
        found = read_discovery(path)
        raw = json.loads(path.read_text())
        leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert mode == 0o600
    assert folder_mode & 0o077 == 0
    assert found == daemon.discovery
    assert raw["grpc_target"] == f"127.0.0.1:{found.grpc_port}"
    assert raw["http_url"] == f"http://127.0.0.1:{found.http_port}"
    assert leftovers == []
    assert not path.exists()


def test_the_token_changes_at_every_start(tmp_path):
    tokens = []
    for _ in range(2):
        with running_daemon(tmp_path) as (daemon, _):
            tokens.append(daemon.discovery.token)
    assert tokens[0] != tokens[1] and len(tokens[0]) >= 32


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com"])
def test_non_loopback_addresses_are_refused_without_the_flag(tmp_path, host):
    assert not is_loopback(host)
    with pytest.raises(InvalidSpecError) as caught:
        make_config(tmp_path, host=host).validate()
    assert "--allow-remote" in caught.value.hint
    assert make_config(tmp_path, host=host, allow_remote=True).validate().host == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_are_accepted(host):
    assert is_loopback(host)


def test_serve_refuses_a_public_address_and_warns_when_allowed(tmp_path):
    import subprocess

    from tests.daemon_harness import daemon_env

    refused = subprocess.run(
        [sys.executable, "-m", "framerelay", "serve", "--host", "0.0.0.0", "--fake"],
        env=daemon_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "not a loopback address" in refused.stderr and "--allow-remote" in refused.stderr
    assert not discovery_path(tmp_path / "config").exists()

    process, found = start_serve(tmp_path, "--host", "0.0.0.0", "--allow-remote", "--fake")
    _, err = stop_serve(process)
    assert found.host == "0.0.0.0"
    assert "WARNING: listening on 0.0.0.0" in err
    assert found.token not in err
    log_text = (tmp_path / "log" / "daemon.log").read_text()
    assert found.token not in log_text and "0.0.0.0" in log_text


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_fixed_ports_are_used_and_a_taken_port_is_a_clear_error(tmp_path):
    import socket

    from framerelay.jobs.fake_executor import FakeExecutor
    from framerelay.service.app import DaemonThread

    grpc_port, http_port = free_port(), free_port()
    with running_daemon(tmp_path, port=grpc_port, http_port=http_port) as (daemon, client):
        assert (daemon.discovery.grpc_port, daemon.discovery.http_port) == (grpc_port, http_port)
        assert client.status().version
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(InvalidSpecError) as http_taken:
            DaemonThread(make_config(tmp_path, http_port=port), FakeExecutor()).__enter__()
        with (
            running_daemon(tmp_path / "first") as (first, _),
            pytest.raises(InvalidSpecError) as grpc_taken,
        ):
            config = make_config(tmp_path / "second", port=first.discovery.grpc_port)
            DaemonThread(config, FakeExecutor()).__enter__()
    assert str(port) in http_taken.value.message and "--http-port" in http_taken.value.hint
    assert "--port" in grpc_taken.value.hint
