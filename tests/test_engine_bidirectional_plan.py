"""Edit any frame: the halves each edited frame runs, who owns which frame, and the stitching."""

from __future__ import annotations

import numpy as np
import pytest

from framerelay.engine.bidirectional import BACKWARD, FORWARD, plan
from framerelay.engine.stitch import Piece, Stitcher
from framerelay.errors import InvalidSpecError


def _single_sources(p, frame):
    (c,) = p.contributions(frame)
    assert c.weight == 1.0
    half = p.halves[c.half]
    return half, half.frames[c.position]


def test_one_edited_frame_in_the_middle_runs_backward_and_forward():
    p = plan(10, (4,))
    assert [(h.direction, list(h.frames)) for h in p.halves] == [
        (BACKWARD, [4, 3, 2, 1, 0]),
        (FORWARD, [4, 5, 6, 7, 8, 9]),
    ]
    for frame in range(10):
        half, source = _single_sources(p, frame)
        assert source == frame  # every frame comes from the same source frame
        assert half.direction == (FORWARD if frame >= 4 else BACKWARD)
    forward = p.halves[p.contributions(4)[0].half]
    assert p.contributions(4)[0].position == 0 and forward.direction == FORWARD


@pytest.mark.parametrize(("k", "directions"), [(0, [FORWARD]), (9, [BACKWARD])])
def test_an_edge_frame_runs_one_half(k, directions):
    p = plan(10, (k,))
    assert [h.direction for h in p.halves] == directions
    assert all(len(p.contributions(f)) == 1 for f in range(10))


def test_several_edited_frames_own_the_frames_nearest_to_them_with_a_hard_cut():
    p = plan(20, (2, 9, 15))
    owners = [p.owner(f) for f in range(20)]
    # 2 and 9: midpoint 5.5 -> 0..5 to the first; 9 and 15: midpoint 12 (a tie goes earlier)
    assert owners == [0] * 6 + [1] * 7 + [2] * 7
    for frame in range(20):
        half, source = _single_sources(p, frame)
        assert source == frame and half.keyframe == owners[frame]


def test_a_cross_fade_blends_the_neighbours_over_the_boundary():
    p = plan(20, (2, 12), crossfade=4)
    # owned: 0..7 and 8..19; fade over 6, 7, 8, 9, the later share rising 1/5 .. 4/5
    for frame, share in zip(range(6, 10), (0.2, 0.4, 0.6, 0.8), strict=True):
        early, late = p.contributions(frame)
        assert p.halves[early.half].keyframe == 0 and p.halves[late.half].keyframe == 1
        assert late.weight == pytest.approx(share) and early.weight == pytest.approx(1 - share)
        assert p.halves[early.half].frames[early.position] == frame
        assert p.halves[late.half].frames[late.position] == frame
    assert len(p.contributions(5)) == len(p.contributions(10)) == 1
    forward_of_first = next(h for h in p.halves if h.keyframe == 0 and h.direction == FORWARD)
    backward_of_second = next(h for h in p.halves if h.keyframe == 1 and h.direction == BACKWARD)
    assert forward_of_first.frames[-1] == 9 and backward_of_second.frames[-1] == 6


def test_a_cross_fade_never_touches_an_edited_frame():
    p = plan(12, (3, 6), crossfade=10)  # only 4 and 5 lie between
    assert all(len(p.contributions(f)) == 1 for f in (3, 6))
    assert [len(p.contributions(f)) for f in (4, 5)] == [2, 2]


def test_neighbours_two_frames_apart_still_run_two_frame_halves():
    p = plan(6, (3, 5))
    assert all(len(h.frames) >= 2 for h in p.halves)
    _, source = _single_sources(p, 5)
    assert source == 5


@pytest.mark.parametrize(
    ("keys", "message"),
    [((10,), "outside"), ((3, 4), "apart"), ((), "at least one")],
)
def test_bad_keyframes_are_refused(keys, message):
    with pytest.raises(InvalidSpecError, match=message):
        plan(10, keys)


def _piece(value: float) -> Piece:
    return Piece(np.full((3, 2, 2), value, np.float32), None, np.zeros((3, 2, 2), np.float32))


def _run(p, order, tmp_path):
    written: list[tuple[int, float]] = []
    stitcher = Stitcher(
        p, lambda f, piece: written.append((f, float(piece.frame[0, 0, 0]))), tmp_path
    )
    for h in order:
        for position, frame in enumerate(p.halves[h].frames):
            # each half paints its frames with keyframe * 100 + frame
            stitcher.add(h, position, _piece(p.halves[h].keyframe * 100 + frame))
    stitcher.close()
    return written, stitcher


def test_the_stitcher_writes_every_frame_once_in_source_order(tmp_path):
    p = plan(10, (4,))
    written, stitcher = _run(p, range(len(p.halves)), tmp_path)
    assert [f for f, _ in written] == list(range(10))
    assert [v for _, v in written] == [float(f) for f in range(10)]
    assert stitcher.spilled == 3  # backward frames 3, 2, 1 waited (0 goes out at once)
    assert not list(tmp_path.glob("*.npz"))


def test_the_stitcher_blends_cross_faded_frames_by_their_weights(tmp_path):
    p = plan(20, (2, 12), crossfade=4)
    written, _ = _run(p, range(len(p.halves)), tmp_path)
    values = dict(written)
    assert values[5] == 5.0 and values[10] == 110.0
    for frame, share in zip(range(6, 10), (0.2, 0.4, 0.6, 0.8), strict=True):
        assert values[frame] == pytest.approx((1 - share) * frame + share * (100 + frame), 1e-5)


def test_a_forward_only_take_streams_without_waiting(tmp_path):
    p = plan(8, (0,))
    written, stitcher = _run(p, range(len(p.halves)), tmp_path)
    assert stitcher.spilled == 0 and len(written) == 8


def test_a_segment_writes_only_from_its_first_frame(tmp_path):
    p = plan(10, (0,), first=6)
    written, _ = _run(p, range(len(p.halves)), tmp_path)
    assert [f for f, _ in written] == [6, 7, 8, 9]


def test_a_missing_half_is_an_error_not_a_short_take(tmp_path):
    p = plan(10, (4,))
    stitcher = Stitcher(p, lambda f, piece: None, tmp_path)
    for position, _ in enumerate(p.halves[1].frames):
        stitcher.add(1, position, _piece(0))
    with pytest.raises(RuntimeError, match="stopped at frame 0"):
        stitcher.close()
