"""Request limits: each violation is a clear invalid-spec error with a hint, on a real daemon,
over gRPC and HTTP; the CLI shares the engine's parameter limits."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from framerelay import limits
from framerelay.engine.params import EngineParams, MotionLoraParams
from framerelay.errors import (
    EditUnreadableError,
    FramerelayError,
    InvalidSpecError,
    SourceUnreadableError,
)
from framerelay.proto.v1 import specs_pb2
from framerelay.service.client import DaemonClient
from framerelay.service.discovery import Discovery
from tests.daemon_harness import clip_spec, http_call, make_media, running_daemon

Change = Callable[[specs_pb2.JobSpec, Path], None]


@dataclass
class Served:
    client: DaemonClient
    discovery: Discovery
    source: Path
    edited: Path
    tmp: Path

    def refusal(self, change: Change) -> FramerelayError:
        """The error submitting a changed spec gets; checks that it queued nothing."""
        spec = clip_spec(self.source, self.edited)
        change(spec, self.tmp)
        before = len(self.client.list().jobs)
        with pytest.raises(FramerelayError) as caught:
            self.client.submit(spec)
        assert len(self.client.list().jobs) == before
        return caught.value


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("limits")
    source, edited = make_media(tmp / "media")
    with running_daemon(tmp) as (daemon, client):
        yield Served(client, daemon.discovery, source, edited, tmp)


def setter(field: str, value) -> Change:
    def change(spec: specs_pb2.JobSpec, _: Path) -> None:
        setattr(spec.params, field, value)

    return change


PARAMETERS: dict[str, tuple[Change, str]] = {
    "steps-0": (setter("steps", 0), "steps must be 1..200"),
    "steps-huge": (setter("steps", 10_000), "steps must be 1..200"),
    "height-odd": (setter("height", 100), "multiple of 64"),
    "width-huge": (setter("width", 65_536), "multiple of 64 from 64 to 4096"),
    "window-1": (setter("window", 1), "window must be 2..64"),
    "window-huge": (setter("window", 1000), "window must be 2..64"),
    "guidance-low": (setter("min_guidance", 0.5), "guidance"),
    "guidance-huge": (setter("max_guidance", 1e9), "guidance"),
    "guidance-nan": (setter("max_guidance", float("nan")), "guidance"),
    "guidance-inf": (setter("min_guidance", float("inf")), "guidance"),
    "guidance-order": (
        lambda s, t: (setattr(s.params, "min_guidance", 3.0), setattr(s.params, "max_guidance", 2)),
        "guidance",
    ),
    "beta-high": (setter("beta1", 1.5), "beta1 must be within [0, 1]"),
    "beta-nan": (setter("beta2", float("nan")), "beta2 must be within [0, 1]"),
}


@pytest.mark.parametrize("name", list(PARAMETERS))
def test_out_of_range_parameters_are_invalid_specs(served, name):
    change, words = PARAMETERS[name]
    error = served.refusal(change)
    assert isinstance(error, InvalidSpecError), error
    assert words in error.message and error.hint


def long_path(tmp: Path) -> str:
    return str(tmp / ("a" * 200)) + "/b" * 2000


REQUESTS: dict[str, tuple[Change, type[FramerelayError], str]] = {
    "17-edited-frames": (
        lambda s, t: s.edited_frame_paths.extend([s.edited_frame_paths[0]] * 16),
        InvalidSpecError,
        "17 edited frames; the limit is 16",
    ),
    "long-source-path": (
        lambda s, t: setattr(s, "source_path", long_path(t)),
        InvalidSpecError,
        "limit is 4096",
    ),
    "long-edit-path": (
        lambda s, t: s.edited_frame_paths.append(long_path(t)),
        InvalidSpecError,
        "limit is 4096",
    ),
    "long-output-folder": (
        lambda s, t: setattr(s.output, "folder", long_path(t)),
        InvalidSpecError,
        "limit is 4096",
    ),
    "long-name": (
        lambda s, t: setattr(s, "source_path", str(t / ("n" * 300))),
        SourceUnreadableError,
        "not a regular file",
    ),
    "nul-in-path": (
        lambda s, t: setattr(s, "mask_path", str(t / "a\x00b.png")),
        InvalidSpecError,
        "NUL",
    ),
    "range-after-clip": (
        lambda s, t: (
            setattr(s.frame_range, "in_frame", 8),
            setattr(s.frame_range, "out_frame", 20),
        ),
        InvalidSpecError,
        "ends after the clip, which has 12 frames",
    ),
    "range-too-long": (
        lambda s, t: setattr(s.frame_range, "out_frame", 4_000_000_000),
        InvalidSpecError,
        "limit is 100000",
    ),
    "range-reversed": (
        lambda s, t: (
            setattr(s.frame_range, "in_frame", 5),
            setattr(s.frame_range, "out_frame", 2),
        ),
        InvalidSpecError,
        "at least two frames",
    ),
    "fps-zero": (lambda s, t: setattr(s.source_fps, "num", 0), InvalidSpecError, "positive"),
    "long-label": (lambda s, t: setattr(s, "label", "x" * 5000), InvalidSpecError, "label"),
    "long-request-id": (
        lambda s, t: setattr(s, "request_id", "r" * 1000),
        InvalidSpecError,
        "request id",
    ),
    "long-model": (lambda s, t: setattr(s, "model", "m" * 5000), InvalidSpecError, "model"),
    "many-context-entries": (
        lambda s, t: s.host_context.update({str(n): "" for n in range(100)}),
        InvalidSpecError,
        "100 entries",
    ),
    "long-context-value": (
        lambda s, t: s.host_context.update({"k": "v" * 5000}),
        InvalidSpecError,
        "host context value",
    ),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_oversized_or_impossible_requests_are_refused(served, name):
    change, kind, words = REQUESTS[name]
    error = served.refusal(change)
    assert type(error) is kind, error
    assert words in error.message and error.hint


def test_the_same_limits_hold_over_http(served):
    spec = {
        "sourcePath": str(served.source),
        "editedFramePaths": [str(served.edited)] * 17,
        "frameRange": {"inFrame": 0, "outFrame": 6},
        "sourceFps": {"num": 24, "den": 1},
    }
    status, body = http_call(served.discovery, "SubmitJob", {"spec": spec})
    assert status == 400 and "limit is 16" in body["error"]["message"]
    spec["editedFramePaths"] = [str(served.edited)]
    spec["params"] = {"maxGuidance": "NaN"}
    status, body = http_call(served.discovery, "SubmitJob", {"spec": spec})
    assert status == 400 and "guidance" in body["error"]["message"]
    spec["params"] = {"steps": 4294967295}
    status, body = http_call(served.discovery, "SubmitJob", {"spec": spec})
    assert status == 400 and "steps" in body["error"]["message"]


posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /dev")


@posix_only
def test_a_pipe_as_source_is_refused_at_once_not_read(served, tmp_path):
    fifo = tmp_path / "clip.mov"
    os.mkfifo(fifo)
    done = threading.Event()

    def submit() -> None:
        served.refusal(lambda s, t: setattr(s, "source_path", str(fifo)))
        done.set()

    threading.Thread(target=submit, daemon=True).start()
    assert done.wait(10), "submitting a FIFO hung"
    error = served.refusal(lambda s, t: setattr(s, "source_path", str(fifo)))
    assert isinstance(error, SourceUnreadableError) and "regular file" in error.message


@posix_only
@pytest.mark.parametrize("path", ["/dev/zero", "/dev/null", "/"])
def test_devices_and_folders_are_not_edited_frames(served, path):
    error = served.refusal(lambda s, t: s.edited_frame_paths.__setitem__(0, path))
    assert isinstance(error, EditUnreadableError) and "regular file" in error.message


@posix_only
def test_source_symlinks_are_followed_to_a_regular_file(served, tmp_path):
    link = tmp_path / "link.mp4"
    link.symlink_to(served.source)
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    spec = clip_spec(link, served.edited)
    job = served.client.submit(spec)
    served.client.cancel(job.id)
    error = served.refusal(lambda s, t: setattr(s, "source_path", str(loop)))
    assert isinstance(error, SourceUnreadableError)
    dotted = served.refusal(
        lambda s, t: setattr(s, "source_path", str(served.source.parent / ".." / "nothing.mp4"))
    )
    assert isinstance(dotted, SourceUnreadableError)


@pytest.mark.parametrize(
    ("params", "words"),
    [
        (EngineParams(lora=MotionLoraParams(rank=0)), "lora_rank must be 1..256"),
        (EngineParams(lora=MotionLoraParams(steps=10_000)), "lora_steps must be 0..1000"),
        (EngineParams(lora=MotionLoraParams(lr=float("nan"))), "lora_lr must be within (0, 1]"),
        (EngineParams(lora=MotionLoraParams(dropout=1.0)), "dropout"),
        (EngineParams(lora=MotionLoraParams(checkpoint_every=0)), "checkpoint"),
        (
            EngineParams(lora=MotionLoraParams(height=8192, width=64)),
            "lora_height must be a multiple of 64",
        ),
        (EngineParams(source_memory_budget_mb=-1), "source_memory_budget_mb"),
        (EngineParams(source_memory_budget_mb=10**9), "source_memory_budget_mb"),
        (EngineParams(seed=-1), "seed"),
        (EngineParams(seed=2**40), "seed"),
        (EngineParams(decode_chunk_size=0), "decode_chunk_size"),
        (EngineParams(noise_aug_strength=float("inf")), "noise_aug_strength"),
        (EngineParams(sarp_threshold=-0.1), "sarp_threshold"),
        (EngineParams(motion_bucket_id=5000), "motion_bucket_id"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_engine_parameters_have_ranges(params, words):
    with pytest.raises(InvalidSpecError) as caught:
        params.validate()
    assert words in caught.value.message


def test_the_defaults_are_within_the_limits():
    assert EngineParams().validate() == EngineParams()


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--lora-rank", "0"], "rank"),
        (["--memory-budget", "-5"], "source_memory_budget_mb"),
        (["--max-guidance", "nan"], "guidance"),
        (["--height", "100000"], "height"),
    ],
)
def test_the_cli_shares_the_limits(tmp_path, flags, words):
    import argparse

    from framerelay.cli import edit

    parser = argparse.ArgumentParser()
    edit.register(parser.add_subparsers())
    args = parser.parse_args(["edit", "a.mp4", "e.png", "-o", str(tmp_path / "o.mp4"), *flags])
    with pytest.raises(InvalidSpecError) as caught:
        edit.engine_params(args)
    assert words in caught.value.message


def test_limit_helpers_name_the_value():
    with pytest.raises(InvalidSpecError, match="4097 characters"):
        limits.check_path_text("x" * 4097, "source")
    limits.check_path_text("x" * 4096, "source")
    with pytest.raises(InvalidSpecError, match="17 edited frames"):
        limits.check_edited_count(17)
    limits.check_edited_count(16)


def test_a_cursor_beyond_the_last_event_is_refused_before_the_stream(served):
    import grpc

    from framerelay.proto.v1 import daemon_pb2

    huge = 2**64 - 1
    status, body = http_call(served.discovery, "WatchQueue", {"afterCursor": str(huge)})
    assert status == 400 and "beyond the last event" in body["error"]["message"]
    request = daemon_pb2.WatchQueueRequest(after_cursor=huge)
    with pytest.raises(grpc.RpcError) as caught:
        list(served.client._stub.WatchQueue(request, metadata=served.client._metadata, timeout=5))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
