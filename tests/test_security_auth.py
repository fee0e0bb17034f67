"""The token: constant-time checks, throttled failures, private discovery file, clean logs."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import sys
import time
from pathlib import Path

import grpc
import pytest

from framerelay.errors import UnauthenticatedError
from framerelay.proto.v1 import daemon_pb2, daemon_pb2_grpc, errors_pb2
from framerelay.service import auth
from framerelay.service.auth import FREE_FAILURES, FailureLog, check_token, peer_host
from framerelay.service.discovery import (
    Discovery,
    discovery_path,
    read_discovery,
    write_discovery,
)
from framerelay.service.errors import ERROR_METADATA_KEY
from framerelay.service.logsetup import SecretScrubber
from tests.daemon_harness import clip_spec, http_call, running_daemon, wait_for

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
TOKEN = "k" * 43


def test_tokens_are_compared_in_constant_time(monkeypatch):
    """Every check compares two digests of the same length with hmac.compare_digest, whatever
    the caller sent, so the time taken says nothing about how much of the token was right."""
    compared: list[tuple[int, int]] = []
    real = auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    attempts = ["Bearer " + TOKEN[:-1] + "x", "Bearer x", "Bearer " + TOKEN * 10, "x", "é\udcff"]
    for header in attempts:
        with pytest.raises(UnauthenticatedError):
            check_token(header, TOKEN)
    check_token("Bearer " + TOKEN, TOKEN)
    assert compared == [(32, 32)] * (len(attempts) + 1)


def test_a_nearly_right_token_takes_as_long_as_a_wholly_wrong_one():
    def fastest(header: str) -> float:
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(2000):
                with contextlib.suppress(UnauthenticatedError):
                    check_token(header, TOKEN)
            best = min(best, time.perf_counter() - start)
        return best

    near, far = fastest("Bearer " + TOKEN[:-1] + "x"), fastest("Bearer " + "x" * 43)
    assert abs(near - far) / max(near, far) < 0.5


def test_repeated_failures_are_logged_sparingly_and_slowed_down(caplog):
    now = [0.0]
    failures = FailureLog(clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="framerelay.service.auth"):
        delays = [failures.record("10.0.0.7", "the call's token is wrong.") for _ in range(12)]
        other = failures.record("10.0.0.8", "the call carries no token.")
        now[0] += 11
        later = failures.record("10.0.0.7", "the call's token is wrong.")
        now[0] += 120
        after_the_window = failures.record("10.0.0.7", "the call's token is wrong.")
    assert delays[:FREE_FAILURES] == [0.0] * FREE_FAILURES
    assert delays[FREE_FAILURES:] == sorted(delays[FREE_FAILURES:])
    assert delays[FREE_FAILURES] > 0 and delays[-1] == auth.MAX_DELAY_S
    assert other == 0.0 and later == auth.MAX_DELAY_S and after_the_window == 0.0
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4  # first of each peer, once more after 10 s, once after the window
    assert "10.0.0.7" in messages[0] and "1 failure(s)" in messages[0]
    assert "10.0.0.8" in messages[1]
    assert "13 failure(s)" in messages[2]


def test_peer_addresses_are_parsed():
    assert peer_host("ipv4:127.0.0.1:5050") == "127.0.0.1"
    assert peer_host("ipv6:[::1]:5050") == "::1"
    assert peer_host("unix:/tmp/s") == "unix:/tmp/s"


def test_http_failures_are_throttled_and_logged_with_the_peer(tmp_path, caplog):
    with caplog.at_level(logging.INFO), running_daemon(tmp_path) as (daemon, _):
        found = daemon.discovery
        timings = []
        for _ in range(FREE_FAILURES + 3):
            start = time.monotonic()
            status, _ = http_call(found, "GetStatus", {}, token="wrong")
            timings.append(time.monotonic() - start)
            assert status == 401
        start = time.monotonic()
        status, _ = http_call(found, "GetStatus", {})
        right = time.monotonic() - start
    assert status == 200
    free = sorted(timings[:FREE_FAILURES])[FREE_FAILURES // 2]
    assert timings[-1] - free >= 0.35  # 0.1, 0.2, then 0.4 s past the free failures
    assert right < timings[-1] - 0.2, "a right token is never slowed down"
    warnings = [r.getMessage() for r in caplog.records if r.name == "framerelay.service.auth"]
    assert len(warnings) == 1 and "from 127.0.0.1" in warnings[0]
    assert found.token not in caplog.text


def test_grpc_failures_are_throttled_and_logged_with_the_peer(tmp_path, caplog):
    with caplog.at_level(logging.INFO), running_daemon(tmp_path) as (daemon, client):
        with grpc.insecure_channel(daemon.discovery.grpc_target) as channel:
            stub = daemon_pb2_grpc.DaemonStub(channel)
            bad = (("authorization", "Bearer wrong"),)
            timings = []
            for _ in range(FREE_FAILURES + 3):
                start = time.monotonic()
                with pytest.raises(grpc.RpcError) as caught:
                    stub.GetStatus(daemon_pb2.GetStatusRequest(), metadata=bad, timeout=10)
                timings.append(time.monotonic() - start)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        start = time.monotonic()
        assert client.status().version
        right = time.monotonic() - start
    free = sorted(timings[:FREE_FAILURES])[FREE_FAILURES // 2]
    assert timings[-1] - free >= 0.35
    assert right < timings[-1] - 0.2
    warnings = [r.getMessage() for r in caplog.records if r.name == "framerelay.service.auth"]
    assert warnings and "from 127.0.0.1" in warnings[0]
    assert daemon.discovery.token not in caplog.text


def test_undecodable_grpc_requests_are_invalid_arguments(tmp_path):
    with running_daemon(tmp_path) as (daemon, client):
        metadata = client._metadata
        with grpc.insecure_channel(daemon.discovery.grpc_target) as channel:
            for method in ("SubmitJob", "WatchJob", "GetStatus"):
                call = channel.unary_unary(f"/framerelay.proto.v1.Daemon/{method}")
                with pytest.raises(grpc.RpcError) as caught:
                    call(b"\xff\xff\xff", metadata=metadata, timeout=10)
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
                trailers = dict(caught.value.trailing_metadata())
                info = errors_pb2.ErrorInfo.FromString(trailers[ERROR_METADATA_KEY])
                assert f"not a valid {method}Request" in info.message and info.hint
        assert client.status().version


def test_grpc_messages_over_the_limit_are_refused(tmp_path):
    from framerelay.limits import MAX_REQUEST_BYTES

    with running_daemon(tmp_path) as (daemon, client):
        with grpc.insecure_channel(daemon.discovery.grpc_target) as channel:
            stub = daemon_pb2_grpc.DaemonStub(channel)
            request = daemon_pb2.GetJobRequest(job_id="x" * (MAX_REQUEST_BYTES + 1))
            with pytest.raises(grpc.RpcError) as caught:
                stub.GetJob(request, metadata=client._metadata, timeout=10)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert client.status().version


@posix_only
def test_the_discovery_file_is_never_readable_by_others_even_while_written(tmp_path, monkeypatch):
    """The file is created 0600 under a permissive umask, exclusively (no planted file or
    symlink is reused), and renamed into place only once complete and private."""
    opened, renamed = [], []
    real_open, real_replace = os.open, os.replace

    def spy_open(path, flags, mode=0o777, **kwargs):
        opened.append((flags, mode))
        return real_open(path, flags, mode, **kwargs)

    def spy_replace(source, target):
        renamed.append(stat.S_IMODE(os.stat(source).st_mode))
        return real_replace(source, target)

    monkeypatch.setattr(os, "open", spy_open)
    monkeypatch.setattr(os, "replace", spy_replace)
    old_umask = os.umask(0)
    try:
        path = tmp_path / "config" / "daemon.json"
        write_discovery(path, Discovery("127.0.0.1", 1, 2, TOKEN, 3, "0"))
    finally:
        os.umask(old_umask)
    ((flags, mode),) = [(flags, mode) for flags, mode in opened if flags & os.O_CREAT]
    assert mode == 0o600 and flags & os.O_EXCL and flags & os.O_CREAT
    assert renamed == [0o600]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


@posix_only
def test_a_shared_config_folder_is_made_private(tmp_path):
    folder = tmp_path / "config"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    write_discovery(folder / "daemon.json", Discovery("127.0.0.1", 1, 2, TOKEN, 3, "0"))
    assert stat.S_IMODE(folder.stat().st_mode) & 0o022 == 0


@posix_only
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_a_discovery_file_others_can_read_gets_a_new_token(tmp_path, mode):
    with running_daemon(tmp_path, discovery_check_s=0.05) as (daemon, _):
        path = discovery_path(tmp_path / "config")
        old = read_discovery(path).token
        os.chmod(path, mode)
        fresh = wait_for(lambda: read_discovery(path).token != old and read_discovery(path))
        file_mode = stat.S_IMODE(path.stat().st_mode)
        assert http_call(daemon.discovery, "GetStatus", {}, token=old)[0] == 401
        assert http_call(daemon.discovery, "GetStatus", {}, token=fresh.token)[0] == 200
        assert daemon.discovery.token == fresh.token
    assert file_mode == 0o600
    assert fresh.pid == os.getpid() and fresh.http_port == daemon.discovery.http_port


@posix_only
def test_a_deleted_or_replaced_discovery_file_is_rewritten(tmp_path):
    with running_daemon(tmp_path, discovery_check_s=0.05) as (daemon, _):
        path = discovery_path(tmp_path / "config")
        token = daemon.discovery.token
        path.unlink()
        wait_for(path.exists)
        assert read_discovery(path).token == token  # nothing leaked: same token
        target = tmp_path / "elsewhere.json"
        target.write_text("{}")
        path.unlink()
        path.symlink_to(target)
        wait_for(lambda: not path.is_symlink())
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert read_discovery(path).token != token
        assert target.read_text() == "{}"


def test_a_newer_daemons_discovery_file_is_left_alone(tmp_path):
    with running_daemon(tmp_path, discovery_check_s=0.05):
        path = discovery_path(tmp_path / "config")
        other = {**read_discovery(path).__dict__, "pid": 1, "token": "theirs"}
        path.write_text(json.dumps(other))
        os.chmod(path, 0o600)
        time.sleep(0.3)
        assert read_discovery(path).token == "theirs"


def test_the_log_scrubber_masks_tokens_anywhere_in_a_record(caplog):
    scrubber = SecretScrubber(lambda: [TOKEN])
    logger = logging.getLogger("tests.scrubber")
    with caplog.at_level(logging.INFO, logger="tests.scrubber"):
        caplog.handler.addFilter(scrubber)
        try:
            logger.info("GET /v1/x?token=%s HTTP/1.1", TOKEN)
            try:
                raise ValueError(f"bad header Bearer {TOKEN}")
            except ValueError:
                logger.exception("failed")
        finally:
            caplog.handler.removeFilter(scrubber)
    assert TOKEN not in caplog.text
    assert "[token]" in caplog.records[0].getMessage()
    assert "[token]" in caplog.text


def test_tokens_never_reach_the_daemons_log_or_its_errors(tmp_path, caplog):
    """Hostile requests that carry the token in odd places: it shows up in no log line and in
    no error message (grpc and HTTP)."""
    import urllib.request

    with caplog.at_level(logging.DEBUG), running_daemon(tmp_path) as (daemon, client):
        found = daemon.discovery
        token = found.token
        replies = [
            http_call(found, f"GetStatus?token={token}", {}),
            http_call(found, "GetJob", {"jobId": token}),
            http_call(found, "GetJob", {"jobId": token, token: 1}),
            http_call(found, "GetStatus", {}, token=token[:-1]),
        ]
        request = urllib.request.Request(
            f"{found.http_url}/v1/{token}", data=b"{}", headers={"Authorization": "Bearer " + token}
        )
        try:
            urllib.request.urlopen(request, timeout=10)
        except urllib.error.HTTPError as error:
            replies.append((error.code, json.loads(error.read())))
        details = []
        with grpc.insecure_channel(found.grpc_target) as channel:
            stub = daemon_pb2_grpc.DaemonStub(channel)
            spec = clip_spec(Path(f"/{token}.mov"), Path("/e.png"), label=token)
            calls = [
                lambda: stub.GetStatus(
                    daemon_pb2.GetStatusRequest(), metadata=(("authorization", token),)
                ),
                lambda: stub.SubmitJob(
                    daemon_pb2.SubmitJobRequest(spec=spec), metadata=client._metadata
                ),
            ]
            for call in calls:
                with pytest.raises(grpc.RpcError) as caught:
                    call()
                info = dict(caught.value.trailing_metadata())[ERROR_METADATA_KEY]
                details += [caught.value.details(), str(errors_pb2.ErrorInfo.FromString(info))]
    assert [status for status, _ in replies] == [400, 404, 400, 401, 404]
    for _, body in replies:
        assert token not in json.dumps(body)
    assert "[token]" in details[2]  # the source path quoted, masked
    for text in details:
        assert token not in text
    assert token not in caplog.text
    assert "[token]" in caplog.text  # the job id was logged, masked
