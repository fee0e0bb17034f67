"""Parameters accepted are parameters that work: the engine runs at both edges of every range the
parameter check accepts (on the tiny model), and the check refuses the value just beyond."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from framerelay.engine import run
from framerelay.engine.params import EngineParams, MatchingParams, MotionLoraParams
from framerelay.engine.request import EditRequest
from framerelay.engine.windows import plan_windows
from framerelay.errors import InvalidSpecError
from framerelay.limits import MAX_GUIDANCE, MAX_MEMORY_BUDGET_MB, MAX_SEED, MAX_SIZE
from framerelay.media.video import probe
from tests.media_factory import make_clip, pattern_frame, write_image

# Three frames in windows of two sharing one: two windows, so chaining and skip-interval run.
BASE = EngineParams(height=64, width=64, steps=2, window=2, lora=MotionLoraParams(steps=0, rank=2))
# For the costly edges: one window, one branch, no matching.
CHEAP = {"matching": MatchingParams(enabled=False), "max_guidance": 1.0}


def lora(**changes) -> dict:
    return {"lora": replace(BASE.lora, **changes)}


def matching(**changes) -> dict:
    return {"matching": replace(BASE.matching, **changes)}


# name: (changes at the edge, changes just beyond it, frames in the clip)
EDGES: dict[str, tuple[dict, dict, int]] = {
    "steps-min": ({"steps": 1}, {"steps": 0}, 3),
    "steps-max": ({"steps": 200, **CHEAP}, {"steps": 201}, 2),
    "height-min": ({"height": 64}, {"height": 0}, 3),
    "height-max": ({"height": MAX_SIZE, **CHEAP}, {"height": MAX_SIZE + 64}, 2),
    "width-min": ({"width": 64}, {"width": 0}, 3),
    "width-max": ({"width": MAX_SIZE, **CHEAP}, {"width": MAX_SIZE + 64}, 2),
    "window-min-overlap-max": ({"window": 2, "overlap": 1}, {"window": 1, "overlap": 0}, 3),
    "window-max-overlap-max": ({"window": 64, "overlap": 63}, {"window": 65, "overlap": 63}, 65),
    "overlap-min": ({"overlap": 0, "skip_interval": False}, {"overlap": -1}, 3),
    "seed-min": ({"seed": 0}, {"seed": -1}, 3),
    "seed-max": ({"seed": MAX_SEED}, {"seed": MAX_SEED + 1}, 3),
    "guidance-min": ({"min_guidance": 1.0, "max_guidance": 1.0}, {"min_guidance": 0.9}, 3),
    "guidance-max": (
        {"min_guidance": MAX_GUIDANCE, "max_guidance": MAX_GUIDANCE},
        {"max_guidance": MAX_GUIDANCE + 1},
        3,
    ),
    "fps-id-min": ({"fps_id": 0}, {"fps_id": -1}, 3),
    "fps-id-max": ({"fps_id": 1000}, {"fps_id": 1001}, 3),
    "motion-bucket-min": ({"motion_bucket_id": 0}, {"motion_bucket_id": -1}, 3),
    "motion-bucket-max": ({"motion_bucket_id": 1023}, {"motion_bucket_id": 1024}, 3),
    "noise-aug-min": ({"noise_aug_strength": 0.0}, {"noise_aug_strength": -0.1}, 3),
    "noise-aug-max": ({"noise_aug_strength": 1.0}, {"noise_aug_strength": 1.1}, 3),
    "sarp-min": ({"sarp_threshold": 0.0, "sarp_alpha": 0.0}, {"sarp_alpha": -0.1}, 3),
    "sarp-max": ({"sarp_threshold": 1.0, "sarp_alpha": 1.0}, {"sarp_threshold": 1.1}, 3),
    "decode-chunk-min": ({"decode_chunk_size": 1}, {"decode_chunk_size": 0}, 3),
    "decode-chunk-max": ({"decode_chunk_size": 64}, {"decode_chunk_size": 65}, 3),
    "memory-budget-min": ({"source_memory_budget_mb": 0}, {"source_memory_budget_mb": -1}, 3),
    "memory-budget-max": (
        {"source_memory_budget_mb": MAX_MEMORY_BUDGET_MB},
        {"source_memory_budget_mb": MAX_MEMORY_BUDGET_MB + 1},
        3,
    ),
    "lora-steps-min": (lora(steps=0), lora(steps=-1), 3),
    # one window, no activation replay: the longest edge, ~3 minutes here
    "lora-steps-max": (lora(steps=1000, gradient_checkpointing=False), lora(steps=1001), 2),
    "lora-rank-min": (lora(steps=1, rank=1), lora(steps=1, rank=0), 3),
    "lora-rank-max": (lora(steps=1, rank=256), lora(steps=1, rank=257), 3),
    "lora-lr-max": (lora(steps=2, lr=1.0), lora(steps=2, lr=1.5), 3),
    "lora-lr-tiny": (lora(steps=2, lr=1e-12), lora(steps=2, lr=0.0), 3),
    "lora-dropout-min": (lora(steps=2, dropout=0.0), lora(steps=2, dropout=-0.1), 3),
    "lora-dropout-max": (lora(steps=2, dropout=0.99), lora(steps=2, dropout=1.0), 3),
    "lora-checkpoint-min": (lora(steps=2, checkpoint_every=1), lora(checkpoint_every=0), 3),
    "lora-checkpoint-max": (
        lora(steps=2, checkpoint_every=1000),
        lora(steps=2, checkpoint_every=1001),
        3,
    ),
    "lora-size-min": (lora(steps=1, height=64, width=64), lora(steps=1, height=0, width=64), 3),
    "lora-size-max": (
        lora(steps=1, height=64, width=MAX_SIZE),
        lora(steps=1, height=64, width=MAX_SIZE + 64),
        2,
    ),
    "betas-min": (matching(beta1=0.0, beta2=0.0), matching(beta1=-0.1), 3),
    "betas-max": (matching(beta1=1.0, beta2=1.0), matching(beta2=1.1), 3),
    "mask-threshold-min": (
        matching(mask_threshold=0.0, mask_threshold_last=0.0), matching(mask_threshold=-0.1), 3
    ),
    "mask-threshold-max": (
        matching(mask_threshold=1.0, mask_threshold_last=1.0), matching(mask_threshold_last=1.1), 3
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(EDGES))
def test_the_check_accepts_the_edge_and_refuses_one_step_beyond(name):
    at_edge, beyond, _ = EDGES[name]
    replace(BASE, **at_edge).validate()
    with pytest.raises(InvalidSpecError):
        replace(BASE, **beyond).validate()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("clips")
    counts = {count for *_, count in EDGES.values()}
    return {n: make_clip(root / f"clip{n}.mp4", n=n, width=96, height=64) for n in counts}


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    return run.Engine(str(tiny_model_dir), "cpu")


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EDGES))
def test_the_engine_runs_at_the_edge(name, clips, engine, tmp_path):
    at_edge, _, frames = EDGES[name]
    edit = write_image(tmp_path / "edit.png", pattern_frame(0, 96, 64)[::-1].copy())
    request = EditRequest(
        source=clips[frames],
        edited_frames=(edit,),
        outputs=(tmp_path / "out.mp4",),
        device="cpu",
        params=replace(BASE, **at_edge),
        cache_dir=tmp_path / "cache",
    )
    result = run.run_edit(request, engine=engine)
    info = probe(result.outputs[0])
    assert (info.frame_count, info.width, info.height) == (frames, 96, 64)
    params = replace(BASE, **at_edge)
    windows = len(plan_windows(frames, params.window, params.overlap))
    assert result.lora_steps_run == windows * params.lora.steps


@pytest.mark.slow
def test_framerelay_edit_runs_one_step(clips, tiny_model_dir, tmp_path, capsys):
    from framerelay.cli import main

    edit = write_image(tmp_path / "edit.png", pattern_frame(0, 96, 64)[::-1].copy())
    output = tmp_path / "one-step.mp4"
    status = main(
        ["edit", str(clips[3]), str(edit), "-o", str(output), "--model", str(tiny_model_dir),
         "--device", "cpu", "--quiet", "--steps", "1", "--height", "64", "--width", "64",
         "--window", "2", "--lora-steps", "1", "--lora-rank", "2",
         "--cache-dir", str(tmp_path / "cache")]
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert probe(output).frame_count == 3
