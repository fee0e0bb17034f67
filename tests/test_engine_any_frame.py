"""Issue 19 on the tiny model, mechanisms not looks: edit any frame and propagate both ways,
several edited frames in one take, the QC report, drift anchoring and segment re-renders."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from framerelay.engine import run
from framerelay.engine.bidirectional import BACKWARD, FORWARD
from framerelay.engine.params import EngineParams, MotionLoraParams
from framerelay.engine.request import EditRequest, Segment
from framerelay.errors import InvalidSpecError
from framerelay.media import footage
from framerelay.media.video import probe
from tests.media_factory import make_clip, pattern_frame, write_image

WIDTH, HEIGHT = 96, 64


def _params(**changes) -> EngineParams:
    lora = changes.pop("lora", MotionLoraParams(steps=2, rank=4, checkpoint_every=1))
    fields = {"height": 64, "width": 128, "steps": 3, "window": 4, **changes}
    return EngineParams(lora=lora, **fields)


def _request(tmp_path, source, edits, outputs, params=None, **overrides) -> EditRequest:
    return EditRequest(
        source=source,
        edited_frames=tuple(edits),
        outputs=tuple(outputs),
        device="cpu",
        params=params or _params(),
        cache_dir=tmp_path / "cache",
        output_format="png",
        **overrides,
    )


def _edit_image(path: Path, index=0, color=(255, 0, 0)) -> Path:
    frame = pattern_frame(index, WIDTH, HEIGHT).copy()
    frame[10:30, 20:50] = color
    return write_image(path, frame)


@pytest.fixture
def engine(tiny_model_dir):
    return run.Engine(str(tiny_model_dir), "cpu")


@pytest.fixture
def source(tmp_path):
    return make_clip(tmp_path / "src.mp4", n=7, width=WIDTH, height=HEIGHT)


class _Spy:
    """Records what each inversion ran on and what the stitcher received and wrote."""

    def __init__(self, monkeypatch):
        self.inverted: list[np.ndarray] = []
        self.added: dict[tuple[int, int], np.ndarray] = {}
        self.emitted: list[tuple[int, np.ndarray]] = []
        real_invert, spy = run._invert_window, self

        def invert(pipe, window, *args, **kwargs):
            spy.inverted.append(window.frames.cpu().numpy().copy())
            return real_invert(pipe, window, *args, **kwargs)

        class Stitcher(run.Stitcher):
            def __init__(self, plan, emit, scratch):
                def recording(index, piece):
                    spy.emitted.append((index, piece.frame.copy()))
                    emit(index, piece)

                super().__init__(plan, recording, scratch)
                spy.plan = plan

            def add(self, half, position, piece):
                spy.added[(half, position)] = piece.frame.copy()
                super().add(half, position, piece)

        monkeypatch.setattr(run, "_invert_window", invert)
        monkeypatch.setattr(run, "Stitcher", Stitcher)


def _model_frames(path: Path, params: EngineParams) -> np.ndarray:
    found = footage.probe(path)
    span = footage.select(found)
    bridge = footage.bridge_for(found, params.width, params.height)
    return np.stack([bridge.to_model(n) for n in footage.iter_native(span)])


def test_an_edit_of_frame_k_runs_backward_on_reversed_frames_and_stitches_at_k(
    tmp_path, engine, source, monkeypatch
):
    spy = _Spy(monkeypatch)
    output = tmp_path / "take"
    request = _request(
        tmp_path, source, [_edit_image(tmp_path / "e.png", 3)], [output], edit_frames=(3,)
    )
    result = run.run_edit(request, engine=engine)

    # the backward half ran first, on frames 3, 2, 1, 0; the forward one on 3, 4, 5, 6
    model = _model_frames(source, request.params)
    assert [h.direction for h in spy.plan.halves] == [BACKWARD, FORWARD]
    assert len(spy.inverted) == 2
    np.testing.assert_array_equal(spy.inverted[0], model[[3, 2, 1, 0]])
    np.testing.assert_array_equal(spy.inverted[1], model[[3, 4, 5, 6]])
    # one take of exactly the range's frames, in source order; frame k is the forward half's 0
    assert result.frame_count == 7 and len(sorted(output.glob("frame_*.png"))) == 7
    assert [i for i, _ in spy.emitted] == list(range(7))
    emitted = dict(spy.emitted)
    np.testing.assert_array_equal(emitted[3], spy.added[(1, 0)])
    for frame in (0, 1, 2):  # the backward half's positions 3, 2, 1, reversed back
        np.testing.assert_array_equal(emitted[frame], spy.added[(0, 3 - frame)])
    assert result.work["inversions"] == 2 and result.first_frame == 0


def test_edited_frames_at_different_frames_share_one_take(tmp_path, engine, monkeypatch):
    spy = _Spy(monkeypatch)
    source = make_clip(tmp_path / "src.mp4", n=10, width=WIDTH, height=HEIGHT)
    edits = [_edit_image(tmp_path / "a.png", 0), _edit_image(tmp_path / "b.png", 6, (0, 0, 255))]
    output = tmp_path / "take"
    params = _params(crossfade_frames=0)
    request = _request(tmp_path, source, edits, [output], params, edit_frames=(0, 6))
    result = run.run_edit(request, engine=engine)
    assert result.outputs == (output,) and result.frame_count == 10
    halves = spy.plan.halves
    assert [(h.keyframe, h.direction) for h in halves] == [
        (0, FORWARD),
        (1, BACKWARD),
        (1, FORWARD),
    ]
    emitted = dict(spy.emitted)
    for frame in range(10):  # 0..3 nearest frame 0, 4..9 nearest frame 6; a hard cut
        (c,) = spy.plan.contributions(frame)
        assert halves[c.half].keyframe == (0 if frame <= 3 else 1)
        np.testing.assert_array_equal(emitted[frame], spy.added[(c.half, c.position)])


@pytest.mark.slow
def test_the_cross_fade_blends_both_edits_frames(tmp_path, engine, monkeypatch):
    spy = _Spy(monkeypatch)
    source = make_clip(tmp_path / "src.mp4", n=10, width=WIDTH, height=HEIGHT)
    edits = [_edit_image(tmp_path / "a.png", 0), _edit_image(tmp_path / "b.png", 8, (0, 0, 255))]
    request = _request(
        tmp_path,
        source,
        edits,
        [tmp_path / "take"],
        _params(crossfade_frames=2),
        edit_frames=(0, 8),
    )
    run.run_edit(request, engine=engine)
    emitted = dict(spy.emitted)
    faded = [f for f in range(10) if len(spy.plan.contributions(f)) == 2]
    assert faded == [4, 5]
    for frame in faded:
        early, late = spy.plan.contributions(frame)
        expected = (
            np.float32(early.weight) * spy.added[(early.half, early.position)]
            + np.float32(late.weight) * spy.added[(late.half, late.position)]
        )
        np.testing.assert_allclose(emitted[frame], expected, atol=1e-6)


def test_mixed_frame_indices_are_refused(tmp_path, engine, source):
    edits = [_edit_image(tmp_path / f"{n}.png") for n in "abc"]
    request = _request(
        tmp_path, source, edits, [tmp_path / "a", tmp_path / "b"], edit_frames=(0, 0, 4)
    )
    with pytest.raises(InvalidSpecError, match="share a frame index"):
        run.run_edit(request, engine=engine)


def test_every_take_gets_a_qc_report_and_sidecar(tmp_path, engine, source):
    output = tmp_path / "take"
    request = _request(
        tmp_path, source, [_edit_image(tmp_path / "e.png", 3)], [output], edit_frames=(3,)
    )
    result = run.run_edit(request, engine=engine)
    (summary,) = result.qc
    sidecar = Path(summary["sidecar"])
    assert sidecar == tmp_path / "take.qc.json"
    report = json.loads(sidecar.read_text())
    assert [r["frame"] for r in report["per_frame"]] == list(range(7))
    assert report["first_frame"][0]["frame"] == 3
    assert report["embedding"]["consistency"] is not None  # the pipeline's own image encoder
    assert report["verdict"] == summary["verdict"] and summary["verdict"]
    halves = {w["half"] for w in report["drift"]["windows"]}
    assert halves == {"backward from frame 3", "forward from frame 3"}


@pytest.mark.slow
def test_qc_off_writes_no_sidecar(tmp_path, engine, source):
    output = tmp_path / "take"
    request = _request(
        tmp_path, source, [_edit_image(tmp_path / "e.png")], [output], _params(qc=False)
    )
    assert run.run_edit(request, engine=engine).qc == ()
    assert not (tmp_path / "take.qc.json").exists()


@pytest.mark.slow
def test_drift_anchoring_reports_each_window_with_and_without(tmp_path, engine, source):
    results = {}
    for strength in (0.0, 1.0):
        output = tmp_path / f"take{int(strength)}"
        request = _request(
            tmp_path,
            source,
            [_edit_image(tmp_path / "e.png")],
            [output],
            _params(drift_strength=strength, drift_region="all"),
        )
        result = run.run_edit(request, engine=engine)
        results[strength] = json.loads(Path(result.qc[0]["sidecar"]).read_text())["drift"]
    off, on = results[0.0]["windows"], results[1.0]["windows"]
    assert [w["window"] for w in off] == [1, 2] and off[1]["after"] is None
    assert on[1]["before"] == pytest.approx(off[1]["before"])  # the same take before anchoring
    assert on[1]["after"] < on[1]["before"]


# -- segments -------------------------------------------------------------------------------------


def _png_bytes(folder: Path) -> list[bytes]:
    return [p.read_bytes() for p in sorted(folder.glob("frame_*.png"))]


@pytest.fixture
def long_source(tmp_path):
    return make_clip(
        tmp_path / "long.mp4", n=10, width=WIDTH, height=HEIGHT
    )  # windows 0-3, 3-6, 6-9


def test_a_segment_rerender_reuses_earlier_windows_and_keeps_their_frames(
    tmp_path, engine, long_source
):
    edit = _edit_image(tmp_path / "e.png")
    first = run.run_edit(_request(tmp_path, long_source, [edit], [tmp_path / "a"]), engine=engine)
    assert first.windows == 3 and first.work["edit_passes"] == 3
    changed = _params(max_guidance=3.0)
    segment = Segment(start_window=2, base=_params(), whole=True)
    second = run.run_edit(
        _request(tmp_path, long_source, [edit], [tmp_path / "b"], changed, segment=segment),
        engine=engine,
    )
    assert second.lora_steps_run == 0 and second.work["inversions"] == 0  # analysis reused
    assert second.work["take_hits"] == 2 and second.work["edit_passes"] == 1
    a, b = _png_bytes(tmp_path / "a"), _png_bytes(tmp_path / "b")
    assert len(a) == len(b) == 10
    assert a[:7] == b[:7]  # windows 0 and 1 wrote frames 0..6: byte-identical
    assert a[7:] != b[7:]

    only = run.run_edit(
        _request(
            tmp_path,
            long_source,
            [edit],
            [tmp_path / "c"],
            changed,
            segment=replace(segment, whole=False),
        ),
        engine=engine,
    )
    assert only.first_frame == 7 and only.frame_count == 3
    assert _png_bytes(tmp_path / "c") == b[7:]  # the segment alone is the whole take's end
    assert only.work["edit_passes"] == 0  # even window 2 came from the cache this time


@pytest.mark.slow
def test_a_segment_with_a_changed_lora_trains_only_from_its_window(tmp_path, engine, long_source):
    edit = _edit_image(tmp_path / "e.png")
    run.run_edit(_request(tmp_path, long_source, [edit], [tmp_path / "a"]), engine=engine)
    changed = _params(lora=MotionLoraParams(steps=3, rank=4, checkpoint_every=1))
    segment = Segment(start_window=1, base=_params())
    result = run.run_edit(
        _request(tmp_path, long_source, [edit], [tmp_path / "b"], changed, segment=segment),
        engine=engine,
    )
    assert result.lora_steps_run == 3 * 2  # windows 1 and 2 only; none before the segment
    assert result.first_frame == 4 and result.frame_count == 6


@pytest.mark.slow
def test_a_segment_with_a_new_edited_frame_starts_at_its_window(tmp_path, engine, long_source):
    edit = _edit_image(tmp_path / "e.png")
    first = run.run_edit(_request(tmp_path, long_source, [edit], [tmp_path / "a"]), engine=engine)
    assert first.frame_count == 10
    new = _edit_image(tmp_path / "new.png", 6, (0, 255, 0))
    segment = Segment(start_window=2, base=_params(), base_edited_frame=edit, new_frame=True)
    result = run.run_edit(
        _request(tmp_path, long_source, [new], [tmp_path / "b"], segment=segment),
        engine=engine,
    )
    assert result.first_frame == 6 and result.frame_count == 4  # from the new frame's own frame
    assert result.work["take_hits"] == 2 and result.work["edit_passes"] == 1
    report = json.loads(Path(result.qc[0]["sidecar"]).read_text())
    assert [f["frame"] for f in report["first_frame"]] == [6]  # against the new edited frame


@pytest.mark.slow
def test_a_segment_cannot_change_the_windows(tmp_path, engine, long_source):
    edit = _edit_image(tmp_path / "e.png")
    segment = Segment(start_window=1, base=_params())
    request = _request(
        tmp_path, long_source, [edit], [tmp_path / "b"], _params(window=5), segment=segment
    )
    with pytest.raises(InvalidSpecError, match="window cannot change"):
        run.run_edit(request, engine=engine)


@pytest.mark.slow
def test_the_output_is_a_video_with_the_range_frame_count(tmp_path, engine, source):
    output = tmp_path / "take.mp4"
    request = replace(
        _request(
            tmp_path, source, [_edit_image(tmp_path / "e.png", 5)], [output], edit_frames=(5,)
        ),
        output_format=None,
    )
    run.run_edit(request, engine=engine)
    assert probe(output).frame_count == 7
