"""One input, one output: the same source, edited frame, parameters and seed give bit-identical
frames on the CPU, whatever ran before in the process, cache hit or miss, whatever the source
memory budget, CLI or daemon, interrupted and resumed or not; and a window does not depend on
the windows after it.

Every run writes PNG frames (lossless) and every comparison is exact. Each test makes its source
clip once: libx264 through PyAV does not encode the same frames to the same bits every time
(measured: several distinct files out of 12 writes at 96 px width), so a re-encoded source is
another input.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from framerelay.engine import run
from framerelay.engine.params import EngineParams, MotionLoraParams
from framerelay.engine.request import EditRequest
from framerelay.errors import CancelledError
from framerelay.media.image import load_image
from framerelay.progress import CancelToken, Progress
from tests.media_factory import make_clip, pattern_frame, write_image

pytestmark = pytest.mark.slow

PARAMS = EngineParams(
    height=64,
    width=128,
    steps=3,
    window=4,
    lora=MotionLoraParams(steps=2, rank=4, checkpoint_every=1),
)


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> tuple[Path, Path]:
    """A 6-frame clip (two windows of 4 sharing a frame) and its edited first frame."""
    root = tmp_path_factory.mktemp("media")
    source = make_clip(root / "src.mp4", n=6, width=96, height=64)
    frame = pattern_frame(0, 96, 64).copy()
    frame[10:30, 20:50] = (255, 0, 0)
    return source, write_image(root / "edit.png", frame)


def edit_request(media, folder: Path, params: EngineParams = PARAMS, **fields) -> EditRequest:
    source, edited = media
    fields = {"cache_dir": folder / "cache", **fields}
    return EditRequest(
        source=source,
        edited_frames=(edited,),
        outputs=(folder / "frames",),
        output_format="png",
        device="cpu",
        params=params,
        **fields,
    )


def frames_of(folder: Path) -> np.ndarray:
    files = sorted(folder.glob("frame_*.png"))
    assert files, f"no frames in {folder}"
    return np.stack([load_image(f) for f in files])


def edited_frames(model_dir, request: EditRequest, engine: run.Engine | None = None, **kw):
    result = run.run_edit(request, engine=engine or run.Engine(str(model_dir), "cpu"), **kw)
    return frames_of(request.outputs[0]), result


def assert_identical(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    differing = int((a != b).reshape(len(a), -1).any(axis=1).sum())
    assert differing == 0, f"{differing} of {len(a)} frames differ, by up to {np.abs(a - b).max()}"


@pytest.fixture(scope="module")
def reference(tiny_model_dir, media, tmp_path_factory) -> np.ndarray:
    """The frames of a fresh engine in a fresh process state, with an empty cache."""
    frames, result = edited_frames(
        tiny_model_dir, edit_request(media, tmp_path_factory.mktemp("reference"))
    )
    assert result.windows == 2 and result.cache_hits == 0 and result.lora_steps_run == 4
    return frames


def scramble_global_rngs(seed: int) -> None:
    torch.manual_seed(seed)
    torch.rand(seed % 7 + 1)
    np.random.seed(seed)
    random.seed(seed)


def test_a_warm_engine_gives_the_frames_of_a_fresh_one(tiny_model_dir, media, reference, tmp_path):
    engine = run.Engine(str(tiny_model_dir), "cpu")
    # Other jobs first: another seed, no skip-interval, matching off, then a cache hit.
    others = [
        replace(PARAMS, seed=5, skip_interval=False),
        replace(PARAMS, matching=replace(PARAMS.matching, enabled=False)),
        replace(PARAMS, seed=5, skip_interval=False),
    ]
    for index, params in enumerate(others):
        scramble_global_rngs(index)
        edited_frames(tiny_model_dir, edit_request(media, tmp_path / f"other{index}", params,
                      cache_dir=tmp_path / "shared"), engine)  # fmt: skip
    scramble_global_rngs(99)
    frames, result = edited_frames(tiny_model_dir, edit_request(media, tmp_path / "job"), engine)
    assert result.cache_hits == 0
    assert_identical(frames, reference)


def test_a_cache_hit_gives_the_frames_of_the_miss(tiny_model_dir, media, reference, tmp_path):
    cache = tmp_path / "cache"
    miss, first = edited_frames(
        tiny_model_dir, edit_request(media, tmp_path / "a", cache_dir=cache)
    )
    hit, second = edited_frames(
        tiny_model_dir, edit_request(media, tmp_path / "b", cache_dir=cache)
    )
    assert (first.cache_hits, second.cache_hits, second.lora_steps_run) == (0, 2, 0)
    assert_identical(miss, reference)
    assert_identical(hit, reference)


@pytest.mark.parametrize("budget_mb", [0, 1])
def test_the_source_memory_budget_does_not_change_the_frames(
    tiny_model_dir, media, reference, tmp_path, budget_mb
):
    # 0: every step's source attention is recomputed; 1 MB: some steps are kept, some are not.
    params = replace(PARAMS, source_memory_budget_mb=budget_mb)
    frames, _ = edited_frames(tiny_model_dir, edit_request(media, tmp_path, params))
    assert_identical(frames, reference)


def interrupt_at(phase: str, clip: int, step: int, token: CancelToken):
    def progress(report: Progress) -> None:
        if (report.phase, report.clip, report.step) == (phase, clip, step):
            token.cancel()

    return progress


@pytest.mark.parametrize(
    "where",
    [("lora", 2, 1), ("invert", 2, 2), ("edit", 1, 2)],
    ids=["in-lora-training", "in-inversion", "in-editing"],
)
def test_an_interrupted_and_resumed_job_gives_the_frames_of_an_uninterrupted_one(
    tiny_model_dir, media, reference, tmp_path, where
):
    request = edit_request(media, tmp_path)
    token = CancelToken()
    with pytest.raises(CancelledError):
        run.run_edit(
            request,
            interrupt_at(*where, token),
            token,
            engine=run.Engine(str(tiny_model_dir), "cpu"),
        )
    assert not request.outputs[0].exists()  # nothing half-written is published
    frames, result = edited_frames(tiny_model_dir, request)  # the same request again
    if where[0] == "lora":  # window 2 resumed from its step-1 checkpoint
        assert result.cache_hits == 1 and result.lora_steps_run == 1
    assert_identical(frames, reference)


def test_the_first_window_does_not_depend_on_skip_interval(
    tiny_model_dir, media, reference, tmp_path
):
    params = replace(PARAMS, skip_interval=False)
    frames, _ = edited_frames(tiny_model_dir, edit_request(media, tmp_path, params))
    assert_identical(frames[:4], reference[:4])
    assert np.abs(frames[4:].astype(int) - reference[4:]).max() > 0  # later windows do


def test_a_window_does_not_depend_on_the_windows_after_it(tiny_model_dir, tmp_path):
    # A lossless source, so that the 4- and 6-frame clips share their first frames exactly.
    edit = write_image(tmp_path / "edit.png", pattern_frame(0, 96, 64)[:, ::-1].copy())
    runs = {}
    for count in (4, 6):
        source = make_clip(tmp_path / f"src{count}.mkv", n=count, width=96, height=64, codec="ffv1")
        request = edit_request((source, edit), tmp_path / f"run{count}")
        runs[count], result = edited_frames(tiny_model_dir, request)
        assert result.windows == (1 if count == 4 else 2)
    assert_identical(runs[6][:4], runs[4])


def test_framerelay_edit_and_the_daemon_give_the_same_frames(tiny_model_dir, tmp_path):
    from framerelay.jobs.engine_executor import EngineExecutor
    from framerelay.proto.v1 import specs_pb2
    from tests.daemon_harness import clip_spec, kinds, make_media, running_daemon

    source, edited = make_media(tmp_path / "media", frames=6)
    settings = {"height": 64, "width": 64, "steps": 3, "window": 4, "seed": 7}
    lora = {"lora_steps": 2, "lora_rank": 4}
    command = [
        sys.executable, "-m", "framerelay", "edit", str(source), str(edited),
        "-o", str(tmp_path / "cli"), "--format", "png", "--model", str(tiny_model_dir),
        "--device", "cpu", "--quiet", "--cache-dir", str(tmp_path / "cli-cache"),
        *[f"--{k}={v}" for k, v in settings.items()],
        *[f"--{k.replace('_', '-')}={v}" for k, v in lora.items()],
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=os.environ, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

    spec = clip_spec(
        source,
        edited,
        frames=6,
        params=specs_pb2.EditParams(**settings, **lora),
        output=specs_pb2.OutputSpec(
            format=specs_pb2.OUTPUT_FORMAT_PNG, folder=str(tmp_path / "daemon")
        ),
    )
    executor = EngineExecutor(default_model=str(tiny_model_dir), device="cpu")
    with running_daemon(tmp_path / "state", executor, output_roots=(tmp_path,)) as (_, client):
        job = client.submit(spec)
        events = list(client.watch(job.id))
    assert kinds(events)[-1] == "finished", events[-1]
    daemon_frames = frames_of(Path(events[-1].finished.output_paths[0]))
    assert len(daemon_frames) == 6
    assert_identical(frames_of(tmp_path / "cli"), daemon_frames)
