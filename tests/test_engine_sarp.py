from __future__ import annotations

import torch

from framerelay.engine.sarp import perturb_smooth_areas, smooth_area_mask, sobel_gradient


def _half_flat_frame() -> torch.Tensor:
    """Left half perfectly flat grey, right half random texture; [-1, 1]."""
    generator = torch.Generator().manual_seed(0)
    frame = torch.zeros(1, 3, 32, 64)
    frame[..., 32:] = torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1
    return frame


def test_gradient_is_zero_on_flat_and_large_on_texture():
    gradient = sobel_gradient(_half_flat_frame())
    assert gradient.shape == (1, 1, 32, 64)
    assert gradient[..., :31].abs().max() == 0
    assert gradient[..., 33:].mean() > 0.5


def test_mask_covers_the_flat_region_only():
    mask = smooth_area_mask(_half_flat_frame(), threshold=0.001)
    assert mask[..., :31].all()
    assert mask[..., 33:].float().mean() < 0.01


def test_noise_is_added_only_inside_the_mask_with_scale_alpha():
    frame = _half_flat_frame()
    perturbed = perturb_smooth_areas(frame, 0.001, 0.005, torch.Generator().manual_seed(1))
    flat_noise = (perturbed - frame)[..., :31]
    assert abs(float(flat_noise.std()) - 0.005) < 0.0005
    textured = (perturbed - frame)[..., 33:]
    assert float((textured != 0).float().mean()) < 0.01


def test_perturbation_clamps_and_zero_alpha_is_identity():
    frame = torch.ones(1, 3, 8, 8)  # flat white: noise pushes above 1
    perturbed = perturb_smooth_areas(frame, 0.001, 0.5, torch.Generator().manual_seed(2))
    assert perturbed.max() <= 1.0 and perturbed.min() < 1.0
    assert perturb_smooth_areas(frame, 0.001, 0.0, torch.Generator()) is frame


def test_the_border_is_padded_with_zeros_as_in_the_official_code():
    flat = torch.full((1, 3, 8, 8), 0.5)  # flat, but not the padding's value
    mask = smooth_area_mask(flat, threshold=0.001)
    assert mask[..., 1:-1, 1:-1].all()
    assert not mask[..., 0, :].any() and not mask[..., :, -1].any()
    assert smooth_area_mask(torch.zeros(1, 3, 8, 8), threshold=0.001).all()  # mid-grey: all


def test_the_inversion_condition_is_encoded_from_the_perturbed_first_frame(tiny_pipe):
    from framerelay.engine.conditioning import encode_condition, encode_source_condition
    from framerelay.engine.params import EngineParams

    first = torch.zeros(1, 3, 64, 64)  # flat: every pixel is perturbed
    params = EngineParams(height=64, width=64)
    source = encode_source_condition(tiny_pipe, first, params, torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    perturbed = perturb_smooth_areas(first, 0.001, 0.005, generator)
    expected = encode_condition(tiny_pipe, perturbed, params, generator)
    assert torch.equal(source.image_latent, expected.image_latent)
    assert torch.equal(source.image_embeddings, expected.image_embeddings)
    plain = encode_condition(tiny_pipe, first, params, torch.Generator().manual_seed(3))
    assert not torch.equal(source.image_latent, plain.image_latent)
