"""The smaller faults found by probing the daemon (issue 11, item 9), each as it was seen."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from framerelay.cache import ArtifactCache
from framerelay.errors import InvalidSpecError, ModelMissingError, SourceUnreadableError
from framerelay.proto.v1 import specs_pb2
from tests.daemon_harness import (
    clip_spec,
    daemon_env,
    http_call,
    kinds,
    make_media,
    raw_http,
    running_daemon,
    start_serve,
    stop_serve,
)

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes and /proc")


def test_a_cache_hit_says_so_in_a_progress_event(tmp_path, tiny_model_dir):
    from framerelay.jobs.engine_executor import EngineExecutor

    source, edited = make_media(tmp_path / "media", frames=6)
    params = specs_pb2.EditParams(height=64, width=64, steps=2, window=4, lora_steps=1, lora_rank=2)
    spec = clip_spec(source, edited, frames=4, params=params)
    executor = EngineExecutor(str(tiny_model_dir), "cpu", "fp32", tmp_path / "cache")
    with running_daemon(tmp_path, executor) as (_, client):
        first = list(client.watch(client.submit(spec).id))
        second = list(client.watch(client.submit(spec).id))

    def cached(events) -> list[str]:
        return [e.progress.phase for e in events if e.progress.message == "cached"]

    assert kinds(first)[-1] == "finished" and kinds(second)[-1] == "finished"
    # the second comes whole from the cache: its analysis and its take
    assert cached(first) == [] and cached(second) == ["lora", "invert", "edit"]
    invert = next(e.progress for e in second if e.progress.phase == "invert")
    assert invert.step == invert.total == 2  # the phase is complete
    assert ArtifactCache(tmp_path / "cache").ls()  # the engine used the daemon's cache folder


def test_lora_checkpoints_in_the_cache_folder_are_reported_and_cleared(tmp_path):
    cache = ArtifactCache(tmp_path / "cache")
    checkpoint = cache.root / "checkpoints" / ("c" * 64) / "step-50"
    checkpoint.mkdir(parents=True)
    (checkpoint / "adapter.safetensors").write_bytes(b"w" * 3000)
    (checkpoint / "training.pt").write_bytes(b"t" * 500)

    with running_daemon(tmp_path) as (_, client):  # its cache folder: tmp_path / "cache"
        before = client.cache_info()
        freed = client.clear_cache().freed_bytes
        after = client.cache_info()
    assert (before.entries, before.bytes, before.unfinished_bytes) == (0, 3500, 3500)
    assert freed == 3500 and (after.bytes, after.unfinished_bytes) == (0, 0)

    (checkpoint).mkdir(parents=True)
    (checkpoint / "adapter.safetensors").write_bytes(b"w" * 3000)
    listed = subprocess.run(
        [sys.executable, "-m", "framerelay", "cache", "ls", "--cache-dir", str(cache.root)],
        capture_output=True,
        text=True,
        env=daemon_env(tmp_path),
        timeout=120,
    )
    assert "cache is empty" not in listed.stdout
    assert "no finished entries; 3 KB of LoRA checkpoints" in listed.stdout


def test_a_mask_of_the_wrong_aspect_is_called_a_mask(tmp_path):
    import cv2

    from framerelay.engine.region import load_region
    from framerelay.media.geometry import fit_to

    mask = tmp_path / "mask.png"
    cv2.imwrite(str(mask), np.full((32, 64), 255, np.uint8))
    with pytest.raises(InvalidSpecError) as wrong:
        load_region(mask, fit_to(64, 64, 64, 64))
    assert wrong.value.message.startswith("the mask is 64x32")
    assert "Export the mask at 64x64" in wrong.value.hint


@pytest.mark.parametrize("model", ["/nonexistent", "./models/svd", "~/nothing/here"])
def test_a_missing_model_folder_is_not_sent_to_the_hub(model):
    from framerelay.engine.loading import choose_placement, load_pipeline

    with pytest.raises(ModelMissingError) as missing:
        load_pipeline(model, choose_placement("cpu"))
    assert "no such folder" in missing.value.message
    assert "huggingface.co" not in missing.value.hint and "diffusers folder" in missing.value.hint


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    with running_daemon(root) as (daemon, client):
        yield daemon.discovery, client


@pytest.mark.parametrize("body", [b"[]", b"[1, 2]", b'"spec"', b"3", b"null"])
def test_a_json_body_that_is_not_an_object_is_refused(served, body):
    found, _ = served
    status, reply = http_call(found, "GetStatus", body)
    assert status == 400 and reply["error"]["code"] == "ERROR_CODE_INVALID_SPEC"
    assert "must be a JSON object" in reply["error"]["message"]


@pytest.mark.parametrize(
    "body",
    [
        "[" * 32 + "]" * 32,
        '{"spec": {"editedFramePaths": ' + "[" * 30 + "]" * 30 + "}}",
        '{"spec": {"params": {"steps": ' + "[" * 29 + "]" * 29 + "}}}",
        '{"spec": {"hostContext": {"a": ' + "[" * 29 + "]" * 29 + "}}}",
    ],
)
def test_a_deep_body_answers_in_words_not_with_a_python_error(served, body):
    found, _ = served
    status, _, raw = raw_http(
        found, "/v1/SubmitJob", body.encode(), {"Authorization": f"Bearer {found.token}"}
    )
    message = json.loads(raw)["error"]["message"]
    assert status == 400
    for python in ("unhashable", "bytes-like", "int() argument", "object has no attribute"):
        assert python not in message


@posix_only
def test_daemon_log_is_private_under_umask_000(tmp_path):
    state = tmp_path / "state"
    old = os.umask(0)
    try:
        process, _ = start_serve(state, "--fake")
    finally:
        os.umask(old)
    stop_serve(process)
    log_file = state / "log" / "daemon.log"
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "log").stat().st_mode) == 0o700


@posix_only
@pytest.mark.parametrize(
    "path", ["/proc/self/environ", "/proc/self/status", "/sys/kernel/address_bits"]
)
def test_system_files_are_refused_as_sources_at_submit(served, path, tmp_path):
    _, client = served
    _, edited = make_media(tmp_path / "media")
    if not Path(path).exists():
        pytest.skip(f"{path} is not on this machine")
    with pytest.raises(SourceUnreadableError, match="a file of the operating system"):
        client.submit(specs_pb2.JobSpec(source_path=path, edited_frame_paths=[str(edited)]))


def test_an_empty_source_is_refused_at_submit(served, tmp_path):
    _, client = served
    _, edited = make_media(tmp_path / "media")
    empty = tmp_path / "empty.mov"
    empty.touch()
    with pytest.raises(SourceUnreadableError, match="is empty"):
        client.submit(specs_pb2.JobSpec(source_path=str(empty), edited_frame_paths=[str(edited)]))
