"""The QC report's measures on synthetic clips with known answers, and drift anchoring."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from framerelay.engine import drift, qc


def _texture(height=120, width=160, shift=0.0) -> np.ndarray:
    """A smooth texture, (3, H, W) in [-1, 1], moved right by `shift` pixels."""
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    xs = xs - shift
    r = np.sin(xs / 7.0) * np.cos(ys / 9.0)
    g = np.sin((xs + ys) / 11.0)
    b = np.cos(xs / 5.0 - ys / 13.0)
    return (0.6 * np.stack([r, g, b])).astype(np.float32)


def _clip(frames=6, step=2.0) -> list[np.ndarray]:
    return [_texture(shift=i * step) for i in range(frames)]


def _accumulate(outputs, sources, regions=None, edited=None, embed=None) -> dict:
    acc = qc.QcAccumulator(first_number=100, edited=edited or {}, embed=embed)
    for i, (o, s) in enumerate(zip(outputs, sources, strict=True)):
        acc.add(i, o, s, None if regions is None else regions[i])
    return acc.report()


def test_a_clip_moved_by_a_known_flow_has_almost_no_warp_error():
    source = _clip()
    report = _accumulate(source, source)
    assert report["temporal"]["source_warp_error"] < 0.01
    assert report["temporal"]["warp_error"] == pytest.approx(
        report["temporal"]["source_warp_error"]
    )
    assert report["verdict"].startswith("OK")


def test_flicker_of_a_known_amplitude_shows_as_warp_error():
    source = _clip()
    amplitude = 0.05  # of [0, 1]: brightness alternates by +-amplitude
    outputs = [s + 2 * amplitude * (1 if i % 2 else -1) for i, s in enumerate(source)]
    report = _accumulate(outputs, source)
    excess = report["temporal"]["warp_error"] - report["temporal"]["source_warp_error"]
    assert excess == pytest.approx(2 * amplitude, rel=0.15)
    assert report["verdict"].startswith("Check: flickers")


def test_the_worst_frames_are_named_by_source_frame_number():
    source = _clip(8)
    outputs = [s.copy() for s in source]
    outputs[5] = outputs[5] + 0.3  # one frame jumps: the pairs 104-105 and 105-106 show it
    report = _accumulate(outputs, source)
    assert set(report["worst_frames"][:2]) == {105, 106}
    assert "105" in report["verdict"]


def test_psnr_and_ssim_of_a_known_noise_level():
    rng = np.random.default_rng(0)
    clean = np.full((64, 64, 3), 0.5, np.float32)
    sigma = 0.01
    noisy = clean + rng.normal(0, sigma, clean.shape).astype(np.float32)
    assert qc.psnr(noisy, clean) == pytest.approx(40.0, abs=0.2)  # 10 log10(1 / sigma^2)
    assert qc.psnr(clean, clean) == math.inf
    assert qc.ssim(clean, clean) == pytest.approx(1.0)
    assert qc.ssim(noisy, clean) < 1.0


def test_unedited_fidelity_counts_only_outside_the_mask():
    rng = np.random.default_rng(1)
    source = [np.zeros((3, 64, 64), np.float32) for _ in range(3)]
    region = np.zeros((64, 64), np.float32)
    region[:, :32] = 1.0  # the left half is edited
    outputs = []
    for s in source:
        o = s.copy()
        o[:, :, :32] = 0.9  # the edit
        o[:, :, 32:] += rng.normal(0, 0.02, (3, 64, 32)).astype(np.float32)  # [-1,1]: 0.01 of [0,1]
        outputs.append(o)
    report = _accumulate(outputs, source, regions=[region] * 3)
    assert report["unedited"]["psnr"] == pytest.approx(40.0, abs=0.5)
    assert report["unedited"]["identical"] is False


def test_first_frame_fidelity_compares_frame_k_with_the_edit():
    source = _clip(5)
    edited = source[2] + 0.02  # [-1, 1] -> 0.01 of [0, 1]: 40 dB
    report = _accumulate(source, source, edited={2: edited})
    (first,) = report["first_frame"]
    assert first["frame"] == 102
    assert first["psnr"] == pytest.approx(40.0, abs=0.3)


def test_embedding_consistency_uses_the_given_encoder():
    calls = []

    def embed(frames):
        calls.append(len(frames))
        return frames.reshape(len(frames), -1)[:, :16].astype(np.float64) + 1.0

    source = _clip(4)
    report = _accumulate(source, source, embed=embed)
    assert calls == [8]  # 4 outputs and 4 sources in one batch
    assert report["embedding"]["consistency"] == pytest.approx(
        report["embedding"]["source_consistency"]
    )


def test_the_sidecar_is_json_next_to_the_take(tmp_path):
    source = _clip(3)
    report = _accumulate(source, source)
    path = qc.write_sidecar(tmp_path / "take.mov", report)
    assert path == tmp_path / "take.mov.qc.json"
    assert json.loads(path.read_text())["verdict"] == report["verdict"]
    summary = qc.summary(report, path)
    assert summary["sidecar"] == str(path) and summary["verdict"] == report["verdict"]


# -- drift ---------------------------------------------------------------------------------------


def _window(mean, std, frames=5, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 1, (frames, 3, 16, 16))
    base = (base - base.mean(axis=(0, 2, 3), keepdims=True)) / base.std(
        axis=(0, 2, 3), keepdims=True
    )
    return (base * np.array(std)[None, :, None, None] + np.array(mean)[None, :, None, None]).astype(
        np.float32
    )


@pytest.mark.parametrize("strength", [0.0, 0.25, 0.5, 1.0])
def test_anchoring_moves_window_statistics_toward_the_target_by_the_strength(strength):
    current = drift.window_stats(_window([0.2, 0.0, -0.1], [0.2, 0.25, 0.3]))
    target = drift.Stats(np.array([0.1, 0.05, -0.1]), np.array([0.3, 0.25, 0.2]))
    frames = _window([0.2, 0.0, -0.1], [0.2, 0.25, 0.3])
    moved = drift.window_stats(drift.correction(current, target, strength).apply(frames))
    np.testing.assert_allclose(
        moved.mean, current.mean + strength * (target.mean - current.mean), atol=1e-5
    )
    np.testing.assert_allclose(
        moved.std, current.std + strength * (target.std - current.std), atol=1e-5
    )
    assert drift.distance(moved, target) == pytest.approx(
        (1 - strength) * drift.distance(current, target), abs=1e-3
    )


def test_the_target_keeps_what_the_edit_did_to_the_anchor_windows_source():
    source_anchor = drift.Stats(np.array([0.0] * 3), np.array([0.2] * 3))
    output_anchor = drift.Stats(np.array([0.1] * 3), np.array([0.3] * 3))  # +0.1, x1.5
    source_later = drift.Stats(np.array([-0.2] * 3), np.array([0.4] * 3))  # the scene darkened
    target = drift.target_stats(output_anchor, source_anchor, source_later)
    np.testing.assert_allclose(target.mean, [-0.1] * 3)
    np.testing.assert_allclose(target.std, [0.6] * 3)


def test_a_chain_anchors_later_windows_and_ramps_from_the_previous_correction():
    source = _window([0.0] * 3, [0.2] * 3, seed=1)
    anchoring = drift.Anchoring(strength=0.5, region="all")
    first, before, after = anchoring.process(source.copy(), source)
    assert np.array_equal(first, source) and before == 0.0
    drifted = (source * 1.3 + 0.15).astype(np.float32)  # the model brightened the later window
    out, before, after = anchoring.process(drifted, source)
    assert before > 10 and after < before
    # the first frame (shared with the previous window) keeps the previous (identity) correction,
    # the last one gets this window's full correction
    assert np.allclose(out[0], np.clip(drifted[0], -1, 1), atol=1e-6)
    correction = anchoring.previous
    assert np.allclose(out[-1], np.clip(correction.apply(drifted[-1:])[0], -1, 1), atol=1e-6)


def test_strength_zero_measures_but_changes_nothing():
    source = _window([0.0] * 3, [0.2] * 3, seed=2)
    anchoring = drift.Anchoring(strength=0.0, region="all")
    anchoring.process(source, source)
    drifted = (source + 0.2).astype(np.float32)
    out, before, after = anchoring.process(drifted, source)
    assert out is drifted and before == pytest.approx(0.2 * drift.LEVELS, rel=1e-3)
    assert after is None


def test_unedited_statistics_ignore_the_edited_region():
    frames = _window([0.0] * 3, [0.2] * 3, frames=2)
    regions = np.zeros((2, 16, 16), np.float32)
    regions[:, :8] = 1.0
    edited = frames.copy()
    edited[:, :, :8] += 0.8  # only the edited region changes
    anchoring = drift.Anchoring(strength=1.0, region="unedited")
    weights = anchoring.weights(regions, None)
    a, b = drift.window_stats(frames, weights), drift.window_stats(edited, weights)
    np.testing.assert_allclose(a.mean, b.mean)
    assert drift.resolve_region("auto", "local") == "unedited"
    assert drift.resolve_region("auto", "style") == "all"
