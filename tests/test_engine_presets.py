"""The auto preset rule on synthetic edits of a structured frame."""

from __future__ import annotations

import numpy as np
import pytest

from framerelay.engine.presets import choose_preset


@pytest.fixture
def source() -> np.ndarray:
    rng = np.random.default_rng(0)
    frame = np.zeros((144, 256, 3))
    frame[:] = np.linspace(0.2, 0.6, 256)[None, :, None]
    for _ in range(12):  # rectangles: strong edges to keep or lose
        y, x = rng.integers(0, 120), rng.integers(0, 230)
        frame[y : y + 24, x : x + 26] = rng.uniform(0, 1, 3)
    return frame


def test_identical_frames_are_a_local_edit(source):
    choice = choose_preset(source, source)
    assert choice.preset == "local" and choice.changed_fraction == 0


def test_small_recoloured_region_is_local(source):
    edited = source.copy()
    edited[40:90, 60:140] = [1.0, 0.1, 0.1]
    choice = choose_preset(source, edited)
    assert choice.preset == "local"
    assert 0.05 < choice.changed_fraction < 0.35


def test_global_recolouring_that_keeps_edges_is_style(source):
    edited = 1.0 - source[..., ::-1]  # inverted, channels swapped: every pixel changes
    choice = choose_preset(source, edited)
    assert choice.preset == "style"
    assert choice.changed_fraction > 0.35 and choice.structure_correlation > 0.5


def test_new_large_shapes_are_shape(source):
    rng = np.random.default_rng(5)
    edited = np.full_like(source, 0.5)
    yy, xx = np.mgrid[0:144, 0:256]
    for _ in range(6):
        cy, cx, r = rng.integers(0, 144), rng.integers(0, 256), rng.integers(20, 50)
        edited[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 1, 3)
    choice = choose_preset(source, edited)
    assert choice.preset == "shape"
    assert choice.structure_correlation < 0.5


def test_shape_mismatch_is_an_error(source):
    with pytest.raises(ValueError, match="differ in shape"):
        choose_preset(source, source[:100])
