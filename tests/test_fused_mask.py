"""The fused spatial mask: the two-pass tiled algorithm against the reference mask."""

from __future__ import annotations

import os

import pytest
import torch

from framerelay.engine import attention as A
from framerelay.engine import fused_mask as M


def _inputs(n, heads, length, keys, dim, dtype=torch.float32, seed=0, spread=1.0):
    g = torch.Generator().manual_seed(seed)
    q_src = torch.randn(n, heads, length, dim, generator=g) * spread
    k_src = torch.randn(n, heads, keys, dim, generator=g)
    # the edit branch: the source plus a change of varying size, so masks span [0, 1]
    change = torch.linspace(0, 2.0, length).view(1, 1, length, 1)
    q_edit = q_src + change * torch.randn(n, heads, length, dim, generator=g)
    k_edit = k_src + 0.3 * torch.randn(n, heads, keys, dim, generator=g)
    return [t.to(dtype) for t in (q_src, k_src, q_edit, k_edit)]


@pytest.mark.parametrize(
    ("shape", "blocks"),
    [((2, 2, 40, 40, 8), (16, 16)), ((3, 1, 33, 50, 16), (7, 64)), ((1, 4, 64, 64, 4), (64, 5))],
)
def test_tiled_mask_equals_the_reference(shape, blocks):
    q_src, k_src, q_edit, k_edit = _inputs(*shape, spread=2.0)
    scale = shape[-1] ** -0.5
    reference = A.spatial_change_mask(q_src, k_src, q_edit, k_edit, scale)
    tiled = M.tiled_change_mask(q_src, k_src, q_edit, k_edit, scale, *blocks)
    assert reference.shape == tiled.shape
    assert float(reference.max() - reference.min()) > 0.3  # a real range of masks
    torch.testing.assert_close(tiled, reference, atol=2e-5, rtol=1e-4)


def test_half_precision_inputs_are_accumulated_in_float32():
    q_src, k_src, q_edit, k_edit = _inputs(2, 2, 48, 48, 16, dtype=torch.bfloat16)
    reference = A.spatial_change_mask(q_src, k_src, q_edit, k_edit, 0.25)
    tiled = M.tiled_change_mask(q_src, k_src, q_edit, k_edit, 0.25, 16, 16)
    assert tiled.dtype == torch.float32
    torch.testing.assert_close(tiled, reference, atol=2e-5, rtol=1e-4)


def test_saturation_decisions_are_identical_away_from_the_threshold():
    q_src, k_src, q_edit, k_edit = _inputs(4, 2, 128, 128, 16, seed=5, spread=1.5)
    reference = A.spatial_change_mask(q_src, k_src, q_edit, k_edit, 0.25)
    fused = M.change_mask(q_src, k_src, q_edit, k_edit, 0.25, backend="fused")
    thresholds = torch.tensor([0.2, 0.3, 0.35, 0.5])
    for threshold in thresholds:
        near = (reference - threshold).abs() < 1e-3
        assert not near.all()
        decided = (reference > threshold) == (fused > threshold)
        assert bool(decided[~near].all())
        assert bool(((reference > threshold) & ~near).any())  # both decisions occur
        assert bool(((reference <= threshold) & ~near).any())


def test_the_operator_runs_the_tiled_algorithm_off_cuda():
    q_src, k_src, q_edit, k_edit = _inputs(2, 2, 24, 24, 8)
    op = torch.ops.framerelay.change_mask(q_src, k_src, q_edit, k_edit, 0.35)
    torch.testing.assert_close(op, M.tiled_change_mask(q_src, k_src, q_edit, k_edit, 0.35))


def test_auto_backend_is_the_reference_on_the_cpu():
    assert M.resolve_backend("auto", torch.device("cpu")) == "reference"
    assert M.resolve_backend("fused", torch.device("cpu")) == "fused"
    with pytest.raises(ValueError, match="unknown mask backend"):
        M.resolve_backend("magic", torch.device("cpu"))
    q_src, k_src, q_edit, k_edit = _inputs(2, 2, 24, 24, 8)
    auto = M.change_mask(q_src, k_src, q_edit, k_edit, 0.35)
    reference = A.spatial_change_mask(q_src, k_src, q_edit, k_edit, 0.35)
    assert torch.equal(auto, reference)  # bit for bit: the CPU default is unchanged


def test_a_matched_edit_with_the_fused_mask_matches_the_reference(tiny_pipe):
    from framerelay.engine.conditioning import encode_condition, encode_video_latents
    from framerelay.engine.editing import sample_edit
    from framerelay.engine.inversion import invert
    from framerelay.engine.params import EngineParams

    params = EngineParams(height=64, width=64, steps=3)
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(4, 3, 64, 64, generator=g) * 2 - 1
    source = encode_condition(tiny_pipe, frames[:1], params, torch.Generator().manual_seed(1))
    edited = encode_condition(
        tiny_pipe, frames[:1].flip(-1), params, torch.Generator().manual_seed(2)
    )
    latents = encode_video_latents(tiny_pipe, frames, 8)
    outputs = {}
    for backend in ("reference", "fused"):
        layers = A.self_attention_layers(tiny_pipe.unet)
        config = A.MatchingConfig(0.5, 0.8, mask_backend=backend)
        controller = A.AttentionController(layers, config, A.SourceAttentionStore(2**30))
        previous = A.install_processors(tiny_pipe.unet, controller)
        try:
            inversion = invert(tiny_pipe, latents, source, 3, controller)
            outputs[backend] = sample_edit(tiny_pipe, inversion, edited, 1.0, 2.0, controller)
        finally:
            A.restore_processors(tiny_pipe.unet, previous)
    torch.testing.assert_close(outputs["fused"], outputs["reference"], atol=1e-3, rtol=1e-3)


def test_triton_kernel_in_the_interpreter_matches_the_reference():
    """Runs only where Triton is installed, in its CPU interpreter (TRITON_INTERPRET=1 set before
    triton is imported); on a CUDA machine gpu_check.py runs the compiled kernel."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("set TRITON_INTERPRET=1 (and install triton) to run the kernel on the CPU")
    pytest.importorskip("triton")
    q_src, k_src, q_edit, k_edit = _inputs(2, 2, 80, 72, 16, spread=2.0)
    reference = A.spatial_change_mask(q_src, k_src, q_edit, k_edit, 0.25)
    M._kernel.cache_clear()
    got = M._triton_change_mask(q_src, k_src, q_edit, k_edit, 0.25)
    torch.testing.assert_close(got, reference, atol=2e-5, rtol=1e-4)
    # the layout the processors pass: heads split from (n, L, heads*d) as a strided view
    views = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in (q_src, k_src, q_edit, k_edit)]
    assert views[0].stride(1) != views[0].shape[2] * views[0].shape[3]
    got = M._triton_change_mask(*views, 0.25)
    torch.testing.assert_close(got, reference, atol=2e-5, rtol=1e-4)
