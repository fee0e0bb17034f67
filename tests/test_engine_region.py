"""The optional edit mask: fitted, carried along the source's motion, and limiting the spatial
matching to the edited region."""

from __future__ import annotations

import numpy as np
import torch
from diffusers.models.attention_processor import AttnProcessor2_0

from framerelay.engine import attention as A
from framerelay.engine.region import latent_region, load_region, propagate_region
from framerelay.media.geometry import fit_to
from tests.media_factory import write_image


def test_mask_is_fitted_like_the_frames_and_padding_is_unedited(tmp_path):
    mask = np.zeros((60, 80), np.uint8)  # 4:3 source, pillarboxed into 64x128
    mask[:, 40:] = 255
    path = write_image(tmp_path / "mask.png", mask)
    region = load_region(path, fit_to(80, 60, 128, 64))
    assert region.shape == (64, 128)
    assert region[:, :10].max() == 0  # left padding
    assert region[:, -10:].max() == 0  # right padding
    assert region[:, 70:100].min() > 0.99  # the white half of the content


def _frames_with_square(positions: list[int]) -> np.ndarray:
    frames = np.full((len(positions), 3, 64, 128), -0.6, np.float32)
    for i, x in enumerate(positions):
        frames[i, :, 20:40, x : x + 20] = 0.9
        frames[i, 1, ::4, ::4] = -0.2  # background texture, for the flow
    return frames


def test_region_follows_the_motion_of_the_source():
    frames = _frames_with_square([20, 26, 32, 38])
    first = np.zeros((64, 128), np.float32)
    first[20:40, 20:40] = 1.0
    regions = propagate_region(first, frames)
    assert regions.shape == (4, 64, 128)
    last = regions[-1]
    assert last[25:35, 43:53].mean() > 0.8  # moved 18 px to the right with the square
    assert last[25:35, 20:30].mean() < 0.2


def test_latent_region_is_area_averaged():
    regions = np.zeros((2, 64, 128), np.float32)
    regions[:, :, :64] = 1.0
    latent = latent_region(regions, (8, 16))
    assert latent.shape == (2, 8, 16)
    assert torch.equal(latent[:, :, :8], torch.ones(2, 8, 8))
    assert latent[:, :, 8:].max() == 0


def test_outside_the_region_the_source_attention_is_kept():
    torch.manual_seed(0)
    from diffusers.models.attention_processor import Attention

    module = Attention(query_dim=16, heads=2, dim_head=8)
    layer = A.SelfAttentionLayer("x.transformer_blocks.0.attn1", A.SPATIAL, 0)
    controller = A.AttentionController(
        [layer], A.MatchingConfig(0.5, 0.8, mask_threshold=(0.0, 0.0)), A.SourceAttentionStore(0)
    )
    module.set_processor(A.MatchingProcessor(layer, controller))
    generator = torch.Generator().manual_seed(2)
    source, uncond, edit = (torch.randn(2, 16, 16, generator=generator) for _ in range(3))
    batch = torch.cat([source, uncond, edit])
    region = torch.zeros(2, 4, 4)
    region[:, :, :2] = 1.0  # left half of a 4x4 token grid is edited
    controller.set_region(region)
    with torch.no_grad():
        controller.edit(0, 10, 1.0, 2, 3, True)
        out = module(batch)[4:]
        module.set_processor(AttnProcessor2_0())
        q = module.to_q(source).view(2, 16, 2, 8).transpose(1, 2)
        k = module.to_k(source).view(2, 16, 2, 8).transpose(1, 2)
        v = module.to_v(edit).view(2, 16, 2, 8).transpose(1, 2)
        source_out = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        source_out = module.to_out[0](source_out.transpose(1, 2).reshape(2, 16, 16))
        edit_out = module(edit)
    tokens = torch.arange(16).view(4, 4)
    outside, inside = tokens[:, 2:].flatten(), tokens[:, :2].flatten()
    assert torch.allclose(out[:, outside], source_out[:, outside], atol=1e-5)
    assert torch.allclose(out[:, inside], edit_out[:, inside], atol=1e-5)  # threshold 0: edit
