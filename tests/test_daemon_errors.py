"""Every catalogue error is produced through the daemon and reaches the client with a hint."""

from __future__ import annotations

import errno
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from framerelay.errors import (
    CATALOG,
    ErrorCode,
    FramerelayError,
    ModelMissingError,
    error_for_code,
)
from framerelay.jobs.executor import Execution
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.proto.v1 import daemon_pb2, jobs_pb2, specs_pb2
from framerelay.service.app import DaemonThread
from framerelay.service.client import DaemonClient
from framerelay.service.errors import code_from_proto
from tests.daemon_harness import (
    clip_spec,
    http_call,
    make_config,
    make_media,
    wait_for,
)


class OutOfMemoryError(RuntimeError):
    """Named like torch.cuda.OutOfMemoryError, which the worker recognises without torch."""


FAILURES: dict[str, Callable[[], BaseException]] = {
    "model_missing": lambda: ModelMissingError("cannot load the model 'nowhere/svd'."),
    "out_of_memory": MemoryError,
    "cuda_out_of_memory": lambda: OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB"),
    "disk_full": lambda: OSError(errno.ENOSPC, "No space left on device", "/renders/a.mov"),
    "internal": lambda: RuntimeError("secret internal detail"),
}


def planned_failure(run: Execution) -> BaseException | None:
    make = FAILURES.get(run.spec.label)
    return make() if make else None


@dataclass
class Context:
    daemon: DaemonThread
    client: DaemonClient
    source: Path
    edited: Path
    gate: threading.Event
    tmp: Path

    def spec(self, **fields) -> specs_pb2.JobSpec:
        return clip_spec(self.source, self.edited, **fields)

    def job_error(self, label: str) -> FramerelayError:
        job = self.client.submit(self.spec(label=label))
        event = list(self.client.watch(job.id))[-1]
        assert event.WhichOneof("kind") == "failed", event
        info = event.failed.error
        return error_for_code(code_from_proto(info.code), info.message, info.hint)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> Iterator[Context]:
    tmp = tmp_path_factory.mktemp("errors")
    source, edited = make_media(tmp / "media")
    gate = threading.Event()
    gate.set()
    fake = FakeExecutor(fail=planned_failure, gate=gate)
    with DaemonThread(make_config(tmp), fake) as daemon:
        client = DaemonClient.from_discovery(daemon.discovery)
        with client:
            yield Context(daemon, client, source, edited, gate, tmp)


def raised(call: Callable[[], object]) -> FramerelayError:
    with pytest.raises(FramerelayError) as caught:
        call()
    return caught.value


def invalid_spec(ctx: Context) -> FramerelayError:
    spec = ctx.spec()
    spec.params.height = 100
    return raised(lambda: ctx.client.submit(spec))


def source_unreadable(ctx: Context) -> FramerelayError:
    spec = ctx.spec()
    spec.source_path = str(ctx.tmp / "missing.mov")
    return raised(lambda: ctx.client.submit(spec))


def edit_unreadable(ctx: Context) -> FramerelayError:
    spec = ctx.spec()
    spec.edited_frame_paths[0] = str(ctx.tmp / "missing.png")
    return raised(lambda: ctx.client.submit(spec))


def cancelled(ctx: Context) -> FramerelayError:
    ctx.gate.clear()
    try:
        blocker = ctx.client.submit(ctx.spec())
        job = ctx.client.submit(ctx.spec())
        ctx.client.cancel(job.id)
        event = list(ctx.client.watch(job.id))[-1]
    finally:
        ctx.gate.set()
    list(ctx.client.watch(blocker.id))
    info = event.cancelled.error
    return error_for_code(code_from_proto(info.code), info.message, info.hint)


def busy(ctx: Context) -> FramerelayError:
    ctx.gate.clear()
    try:
        job = ctx.client.submit(ctx.spec())
        wait_for(lambda: ctx.client.get(job.id).state == jobs_pb2.JOB_STATE_RUNNING)
        return raised(ctx.client.clear_cache)
    finally:
        ctx.gate.set()
        list(ctx.client.watch(job.id))


def forbidden(ctx: Context) -> FramerelayError:
    import urllib.error
    import urllib.request

    from framerelay.errors import ErrorCode as Code

    found = ctx.daemon.discovery
    request = urllib.request.Request(
        f"{found.http_url}/v1/GetStatus",
        data=b"{}",
        headers={"Authorization": f"Bearer {found.token}", "Origin": "https://evil.example"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == CATALOG[Code.forbidden].http_status
    info = json.loads(caught.value.read())["error"]
    return error_for_code(Code[info["code"].removeprefix("ERROR_CODE_").lower()], **_text(info))


def _text(info: dict) -> dict:
    return {"message": info["message"], "hint": info["hint"]}


def unavailable(ctx: Context) -> FramerelayError:
    return raised(lambda: DaemonClient.connect(ctx.tmp / "no-daemon-here"))


def unreachable(ctx: Context) -> FramerelayError:
    with DaemonClient("127.0.0.1:9", "token", timeout=2) as client:
        return raised(client.status)


SCENARIOS: dict[ErrorCode, Callable[[Context], FramerelayError]] = {
    ErrorCode.invalid_spec: invalid_spec,
    ErrorCode.source_unreadable: source_unreadable,
    ErrorCode.edit_unreadable: edit_unreadable,
    ErrorCode.model_missing: lambda ctx: ctx.job_error("model_missing"),
    ErrorCode.out_of_memory: lambda ctx: ctx.job_error("out_of_memory"),
    ErrorCode.disk_full: lambda ctx: ctx.job_error("disk_full"),
    ErrorCode.cancelled: cancelled,
    ErrorCode.internal: lambda ctx: ctx.job_error("internal"),
    ErrorCode.not_found: lambda ctx: raised(lambda: ctx.client.get("f" * 32)),
    ErrorCode.unauthenticated: lambda ctx: raised(
        DaemonClient(ctx.daemon.discovery.grpc_target, "wrong").status
    ),
    ErrorCode.unavailable: unavailable,
    ErrorCode.busy: busy,
    ErrorCode.forbidden: forbidden,
}


def test_every_catalogue_code_has_a_scenario():
    assert set(SCENARIOS) == set(ErrorCode)


@pytest.mark.parametrize("code", list(ErrorCode), ids=lambda code: code.value)
def test_each_catalogue_error_reaches_the_client_with_a_hint(ctx, code):
    error = SCENARIOS[code](ctx)
    assert error.code is code
    assert error.message and error.hint
    assert "Traceback" not in error.message


def test_out_of_memory_hints_at_fewer_frames_or_a_lower_resolution(ctx):
    for label in ("out_of_memory", "cuda_out_of_memory"):
        error = ctx.job_error(label)
        assert error.code is ErrorCode.out_of_memory
        assert "fewer frames" in error.hint and "lower resolution" in error.hint


def test_disk_full_names_the_path(ctx):
    assert "/renders/a.mov" in ctx.job_error("disk_full").message


def test_an_unreachable_daemon_is_unavailable(ctx):
    error = unreachable(ctx)
    assert error.code is ErrorCode.unavailable and "framerelay serve" in error.hint


def test_an_internal_error_keeps_its_traceback_in_the_log(ctx, caplog):
    with caplog.at_level(logging.ERROR):
        error = ctx.job_error("internal")
    assert "secret internal detail" not in error.message
    assert error.hint == CATALOG[ErrorCode.internal].hint
    logged = [r for r in caplog.records if r.exc_info]
    assert logged and "secret internal detail" in str(logged[-1].exc_info[1])


def test_grpc_statuses_follow_the_catalogue(ctx):
    spec = ctx.spec()
    spec.source_path = "relative/path.mov"
    request = daemon_pb2.SubmitJobRequest(spec=spec)
    with pytest.raises(grpc.RpcError) as caught:
        ctx.client._stub.SubmitJob(request, metadata=ctx.client._metadata)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "absolute" in caught.value.details()


def test_http_errors_carry_the_catalogue_status_and_hint(ctx):
    status, body = http_call(ctx.daemon.discovery, "GetJob", {"jobId": "f" * 32})
    assert status == 404
    assert body["error"]["code"] == "ERROR_CODE_NOT_FOUND" and body["error"]["hint"]
    spec = {"sourcePath": str(ctx.tmp / "missing.mov"), "editedFramePaths": [str(ctx.edited)]}
    status, body = http_call(ctx.daemon.discovery, "SubmitJob", {"spec": spec})
    assert status == 422 and body["error"]["code"] == "ERROR_CODE_SOURCE_UNREADABLE"


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"spec": {"sourcePath": 3}}', b'{"nope": 1}', b"\xff\xfe"],
    ids=["syntax", "wrong-type", "unknown-field", "not-utf8"],
)
def test_malformed_json_on_the_facade_is_a_400_with_a_message(ctx, body):
    status, reply = http_call(ctx.daemon.discovery, "SubmitJob", body)
    assert status == 400
    assert reply["error"]["code"] == "ERROR_CODE_INVALID_SPEC"
    assert "malformed SubmitJobRequest JSON" in reply["error"]["message"]
    assert reply["error"]["hint"]
