"""Long videos: windows with an overlap frame, chaining, skip-interval cross-attention, several
edits per clip and the artifact cache."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from framerelay.engine import attention, run
from framerelay.engine.params import EngineParams, MotionLoraParams
from framerelay.engine.request import EditRequest
from framerelay.engine.windows import group_frames, plan_windows
from framerelay.media.video import probe, read_clip
from tests.media_factory import make_clip, pattern_frame, write_image


def test_plan_windows_share_one_frame():
    assert plan_windows(4, 4, 1) == [range(0, 4)]
    assert plan_windows(6, 4, 1) == [range(0, 4), range(3, 6)]
    assert plan_windows(14, 4, 1) == [range(s, min(s + 4, 14)) for s in (0, 3, 6, 9, 12)]
    assert plan_windows(3, 14, 1) == [range(0, 3)]
    with pytest.raises(ValueError, match="cannot plan"):
        plan_windows(10, 4, 4)


def test_group_frames_yields_each_window_with_its_overlap():
    frames = [np.full((2, 2, 3), i, np.uint8) for i in range(9)]
    windows = plan_windows(9, 4, 1)
    grouped = list(group_frames(iter(frames), windows))
    assert [w for w, _ in grouped] == windows
    for window, stack in grouped:
        assert [int(f[0, 0, 0]) for f in stack] == list(window)


def _request(tmp_path, source, edits, outputs, **overrides) -> EditRequest:
    lora = overrides.pop("lora", MotionLoraParams(steps=2, rank=4, checkpoint_every=1))
    fields = {"height": 64, "width": 128, "steps": 3, "window": 4, **overrides.pop("params", {})}
    params = EngineParams(lora=lora, **fields)
    return EditRequest(
        source=source,
        edited_frames=tuple(edits),
        outputs=tuple(outputs),
        device="cpu",
        params=params,
        cache_dir=tmp_path / "cache",
        **overrides,
    )


@pytest.fixture
def engine(tiny_model_dir):
    return run.Engine(str(tiny_model_dir), "cpu")


def _edit_image(path: Path, width=96, height=64, color=(255, 0, 0)) -> Path:
    frame = pattern_frame(0, width, height).copy()
    frame[10:30, 20:50] = color
    return write_image(path, frame)


@pytest.mark.parametrize(("frames", "windows"), [(4, 1), (6, 2), (14, 5)])
@pytest.mark.slow
def test_long_video_keeps_count_fps_and_size(tmp_path, engine, frames, windows):
    source = make_clip(tmp_path / "src.mp4", n=frames, width=96, height=64, fps=Fraction(24))
    request = _request(tmp_path, source, [_edit_image(tmp_path / "e.png")], [tmp_path / "o.mp4"])
    result = run.run_edit(request, engine=engine)
    assert result.windows == windows
    info = probe(result.outputs[0])
    assert (info.frame_count, info.fps, info.width, info.height) == (frames, Fraction(24), 96, 64)


@pytest.mark.slow
def test_ten_seconds_at_24_fps_end_to_end(tmp_path, engine):
    source = make_clip(tmp_path / "src.mp4", n=240, width=64, height=48, fps=Fraction(24))
    request = _request(
        tmp_path,
        source,
        [_edit_image(tmp_path / "e.png", 64, 48)],
        [tmp_path / "o.mp4"],
        lora=MotionLoraParams(steps=0),  # LoRA across windows is covered by the tests below
        params={"window": 14, "steps": 2, "width": 64},
    )
    request = EditRequest(**{**request.__dict__, "use_cache": False})
    result = run.run_edit(request, engine=engine)
    assert result.windows == 19  # 14 + 18 windows of 13 new frames + 4 (240 = 14 + 17*13 + 5)
    info = probe(result.outputs[0])
    assert (info.frame_count, info.fps) == (240, Fraction(24))


class _Watching(attention.AttentionController):
    events: ClassVar[list[tuple[str, str, float, torch.Tensor]]] = []

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.observer = lambda event, layer, sigma, t: _Watching.events.append(
            (event, layer, sigma, t.detach().clone())
        )


@pytest.mark.slow
def test_anchor_keys_and_values_equal_what_the_anchor_produced(tmp_path, engine, monkeypatch):
    _Watching.events = []
    monkeypatch.setattr(run.attention, "AttentionController", _Watching)
    source = make_clip(tmp_path / "src.mp4", n=6, width=96, height=64)
    request = _request(tmp_path, source, [_edit_image(tmp_path / "e.png")], [tmp_path / "o.mp4"])
    run.run_edit(request, engine=engine)
    events = _Watching.events
    first_capture = next(i for i, e in enumerate(events) if e[0] == "anchor_produced")
    produced: dict[tuple[str, str, str], torch.Tensor] = {}
    for event, layer, sigma, tensor in events[:first_capture]:
        if event.startswith("kv:"):
            phase = "edit" if event == "kv:edit" else "source"
            produced.setdefault((phase, layer, f"{sigma:.6e}"), tensor)
    used = [e for e in events[first_capture:] if e[0].startswith("anchor_used:")]
    phases = {e[0] for e in used}
    assert phases == {"anchor_used:off", "anchor_used:record", "anchor_used:edit"}
    checked = 0
    produced = {k: v for k, v in produced.items() if k[2] != f"{0.0:.6e}"}  # training calls
    for event, layer, sigma, tensor in used:
        phase = "edit" if event == "anchor_used:edit" else "source"
        key = (phase, layer, f"{sigma:.6e}")
        reference = produced[key]
        rows = min(len(reference), len(tensor))
        assert torch.allclose(tensor[-rows:], reference[-rows:], atol=1e-4), key
        checked += 1
    assert checked >= 3 * 6  # inversion and editing steps of every temporal layer


def _frames_after_first_window(tmp_path, engine, skip_interval: bool) -> np.ndarray:
    # One source for both runs: libx264 does not encode the same frames to the same bits every
    # time, so a clip written twice is two inputs.
    source = tmp_path / "src.mp4"
    if not source.exists():
        make_clip(source, n=6, width=96, height=64)
    output = tmp_path / f"out-{skip_interval}"
    request = _request(
        tmp_path,
        source,
        [_edit_image(tmp_path / "e.png")],
        [output],
        output_format="png",
        params={"skip_interval": skip_interval},
    )
    run.run_edit(request, engine=engine)
    frames = sorted(output.glob("frame_*.png"))
    assert len(frames) == 6
    from framerelay.media.image import load_image

    return np.stack([load_image(f) for f in frames])


@pytest.mark.slow
def test_disabling_the_anchor_changes_later_windows(tmp_path, engine):
    with_anchor = _frames_after_first_window(tmp_path, engine, True)
    without = _frames_after_first_window(tmp_path, engine, False)
    assert np.array_equal(with_anchor[:4], without[:4])  # the anchor window itself
    assert np.abs(with_anchor[4:] - without[4:]).max() > 1e-3


@pytest.mark.slow
def test_several_edits_train_and_invert_once(tmp_path, engine):
    source = make_clip(tmp_path / "src.mp4", n=6, width=96, height=64)
    edits = [_edit_image(tmp_path / "a.png"), _edit_image(tmp_path / "b.png", color=(0, 0, 255))]
    outputs = [tmp_path / "out" / "a.mp4", tmp_path / "out" / "b.mp4"]
    result = run.run_edit(_request(tmp_path, source, edits, outputs), engine=engine)
    assert result.outputs == tuple(outputs)
    assert result.lora_steps_run == 2 * 2  # two windows, two steps each: not per edit
    for output in outputs:
        assert probe(output).frame_count == 6
    a, b = (read_clip(o).frames.astype(int) for o in outputs)
    assert np.abs(a - b).max() > 0


@pytest.mark.slow
def test_second_edit_of_the_same_clip_reuses_lora_and_inversion(tmp_path, engine):
    source = make_clip(tmp_path / "src.mp4", n=6, width=96, height=64)
    first = run.run_edit(
        _request(tmp_path, source, [_edit_image(tmp_path / "a.png")], [tmp_path / "a.mp4"]),
        engine=engine,
    )
    assert first.lora_steps_run == 4 and first.cache_hits == 0
    second = run.run_edit(
        _request(
            tmp_path,
            source,
            [_edit_image(tmp_path / "b.png", color=(0, 255, 0))],
            [tmp_path / "b.mp4"],
        ),
        engine=engine,
    )
    assert second.lora_steps_run == 0 and second.cache_hits == 2


@pytest.mark.parametrize(
    "change",
    ["steps", "lora_rank", "size", "source"],
)
@pytest.mark.slow
def test_changing_a_keyed_parameter_misses_the_cache(tmp_path, engine, change):
    source = make_clip(tmp_path / "src.mp4", n=4, width=96, height=64)
    edit = _edit_image(tmp_path / "a.png")
    run.run_edit(_request(tmp_path, source, [edit], [tmp_path / "a.mp4"]), engine=engine)
    kwargs: dict = {}
    if change == "steps":
        kwargs["params"] = {"steps": 4}
    elif change == "lora_rank":
        kwargs["lora"] = MotionLoraParams(steps=2, rank=2, checkpoint_every=1)
    elif change == "size":
        kwargs["params"] = {"height": 128, "width": 192}
    else:
        source = make_clip(tmp_path / "other.mp4", n=4, width=96, height=64, fps=Fraction(25))
        frames = read_clip(source).frames.copy()
        frames[:, :8] = 0
        source = make_clip(tmp_path / "other.mp4", frames=frames, fps=Fraction(25))
    again = run.run_edit(
        _request(tmp_path, source, [edit], [tmp_path / "b.mp4"], **kwargs), engine=engine
    )
    assert again.cache_hits == 0 and again.lora_steps_run == 2
