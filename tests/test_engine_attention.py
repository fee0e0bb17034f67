"""Fine-grained attention matching: processors, the spatial mask, the temporal selector and the
source-branch store."""

from __future__ import annotations

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from framerelay.engine import attention as A
from framerelay.engine.conditioning import Condition, encode_condition, encode_video_latents
from framerelay.engine.editing import sample_edit
from framerelay.engine.inversion import invert
from framerelay.engine.params import PRESETS, EngineParams


def _unet_inputs(unet, batch=2, frames=4):
    generator = torch.Generator().manual_seed(3)
    sample = torch.randn(batch, frames, 8, 8, 16, generator=generator)
    emb = torch.randn(batch, 1, 32, generator=generator)
    ids = torch.tensor([[6.0, 127.0, 0.02]] * batch)
    return sample, torch.tensor([0.5] * batch), emb, ids


def test_processors_pass_through_match_diffusers_default(tiny_pipe):
    unet = tiny_pipe.unet
    sample, t, emb, ids = _unet_inputs(unet)
    unet.set_attn_processor(AttnProcessor2_0())
    with torch.no_grad():
        expected = unet(sample, t, encoder_hidden_states=emb, added_time_ids=ids).sample
    layers = A.self_attention_layers(unet)
    controller = A.AttentionController(
        layers, A.MatchingConfig(0.5, 0.8), A.SourceAttentionStore(0)
    )
    previous = A.install_processors(unet, controller)
    try:
        with torch.no_grad():
            got = unet(sample, t, encoder_hidden_states=emb, added_time_ids=ids).sample
    finally:
        A.restore_processors(unet, previous)
    assert (got - expected).abs().max() <= 1e-5
    replaced = [p for p in unet.attn_processors.values() if isinstance(p, A.MatchingProcessor)]
    assert replaced == []  # restored


def test_spatial_mask_is_zero_for_identical_attention():
    generator = torch.Generator().manual_seed(0)
    q, k = (
        torch.randn(3, 2, 16, 8, generator=generator),
        torch.randn(3, 2, 16, 8, generator=generator),
    )
    mask = A.spatial_change_mask(q, k, q, k, scale=8**-0.5)
    assert mask.shape == (3, 16)
    assert mask.abs().max() <= 1e-6


def test_spatial_mask_is_half_the_l1_distance_averaged_over_heads():
    keys = torch.tensor([[1.0, 0.0], [0.0, 1.0]]).view(1, 1, 2, 2).repeat(1, 2, 1, 1)
    q_src = torch.tensor([100.0, 0.0]).view(1, 1, 1, 2).repeat(1, 2, 1, 1)  # P = [1, 0]
    q_edit = torch.zeros(1, 2, 1, 2)  # P = [0.5, 0.5] in both heads
    q_edit[:, 1] = torch.tensor([0.0, 100.0])  # head 1: P = [0, 1]
    mask = A.spatial_change_mask(q_src, keys, q_edit, keys, scale=1.0)
    # head 0: (0.5 + 0.5) / 2 = 0.5; head 1: (1 + 1) / 2 = 1.0; mean over heads 0.75
    assert float(mask[0, 0]) == pytest.approx(0.75, abs=1e-4)


def test_spatial_mask_chunking_gives_the_same_mask():
    generator = torch.Generator().manual_seed(0)
    q1, k1, q2, k2 = (torch.randn(2, 2, 40, 8, generator=generator) for _ in range(4))
    whole = A.spatial_change_mask(q1, k1, q2, k2, 0.3)
    chunked = A.spatial_change_mask(q1, k1, q2, k2, 0.3, max_chunk_elements=2 * 40 * 7)
    assert torch.allclose(whole, chunked, atol=1e-6)


def test_threshold_mask_uses_edit_above_and_soft_weight_below():
    mask = torch.tensor([[0.1, 0.3, 0.4, 0.9]])
    out = A.threshold_mask(mask, torch.tensor([0.35]))
    assert out.tolist() == [[pytest.approx(0.1), pytest.approx(0.3), 1.0, 1.0]]


def test_threshold_mask_saturates_at_the_threshold_itself_as_the_official_code():
    mask = torch.tensor([[0.25, 0.5, 0.0]])
    assert A.threshold_mask(mask, torch.tensor([0.5])).tolist() == [[0.25, 1.0, 0.0]]
    assert A.threshold_mask(mask, torch.tensor([0.0])).tolist() == [[1.0, 1.0, 1.0]]


def _spatial_attention_module():
    torch.manual_seed(0)
    return Attention(query_dim=16, heads=2, dim_head=8)


def _edit_call(module, hidden, controller, branches, inline):
    controller.edit(
        0, 10, 1.0, num_frames=hidden.shape[0] // branches, branches=branches, inline=inline
    )
    out = module(hidden)
    controller.finish_call()
    return out


def test_identical_edit_and_source_give_the_source_attention_output():
    module = _spatial_attention_module()
    layer = A.SelfAttentionLayer("x.transformer_blocks.0.attn1", A.SPATIAL, 0)
    controller = A.AttentionController(
        [layer], A.MatchingConfig(0.5, 0.8), A.SourceAttentionStore(0)
    )
    module.set_processor(A.MatchingProcessor(layer, controller))
    frames = torch.randn(2, 12, 16)
    uncond = torch.randn(2, 12, 16)
    with torch.no_grad():
        out = _edit_call(module, torch.cat([frames, uncond, frames]), controller, 3, True)
        module.set_processor(AttnProcessor2_0())
        plain = module(frames)
    assert torch.allclose(out[4:], plain, atol=1e-5)  # edit branch == source attention output
    assert torch.allclose(out[:2], plain, atol=1e-5)


def test_temporal_layer_takes_source_probabilities_in_its_stage():
    module = _spatial_attention_module()
    layer = A.SelfAttentionLayer("x.temporal_transformer_blocks.0.attn1", A.TEMPORAL, 0)
    controller = A.AttentionController(
        [layer], A.MatchingConfig(0.5, 0.8), A.SourceAttentionStore(0)
    )
    module.set_processor(A.MatchingProcessor(layer, controller))
    generator = torch.Generator().manual_seed(1)
    source, uncond, edit = (torch.randn(6, 5, 16, generator=generator) for _ in range(3))
    batch = torch.cat([source, uncond, edit])
    with torch.no_grad():
        controller.edit(0, 10, 1.0, 5, 3, True)  # stage 1: replaced
        replaced = module(batch)
        controller.edit(9, 10, 1.0, 5, 3, True)  # stage 3: untouched
        untouched = module(batch)
        q = module.to_q(source).view(6, 5, 2, 8).transpose(1, 2)
        k = module.to_k(source).view(6, 5, 2, 8).transpose(1, 2)
        v = module.to_v(edit).view(6, 5, 2, 8).transpose(1, 2)
        probs = A.attention_probs(q, k, module.scale)
        expected = module.to_out[0]((probs @ v).transpose(1, 2).reshape(6, 5, 16))
    assert torch.allclose(replaced[12:], expected, atol=1e-5)
    module.set_processor(AttnProcessor2_0())
    with torch.no_grad():
        assert torch.allclose(untouched[12:], module(edit), atol=1e-5)


@pytest.fixture(scope="module")
def svd_layers():
    from diffusers import UNetSpatioTemporalConditionModel

    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel()  # the real SVD layout, no weights
    return A.self_attention_layers(unet)


def test_real_svd_layer_list(svd_layers):
    spatial = [layer for layer in svd_layers if layer.kind == A.SPATIAL]
    temporal = [layer for layer in svd_layers if layer.kind == A.TEMPORAL]
    assert len(spatial) == len(temporal) == 16
    levels = {layer.name.split(".temporal")[0]: layer.level for layer in temporal}
    assert levels["down_blocks.0.attentions.0"] == 0
    assert levels["down_blocks.2.attentions.1"] == 2
    assert levels["mid_block.attentions.0"] == 3
    assert levels["up_blocks.1.attentions.2"] == 2
    assert levels["up_blocks.3.attentions.0"] == 0


LOW_RES = {
    "down_blocks.2.attentions.0",
    "down_blocks.2.attentions.1",
    "mid_block.attentions.0",
    "up_blocks.1.attentions.0",
    "up_blocks.1.attentions.1",
    "up_blocks.1.attentions.2",
}


@pytest.mark.parametrize(
    ("preset", "stage_steps"),
    [("local", (12, 8, 5)), ("style", (20, 2, 3)), ("shape", (10, 2, 13))],
)
def test_temporal_selector_table(svd_layers, preset, stage_steps):
    beta1, beta2 = PRESETS[preset]
    stages = [A.temporal_stage(step, 25, beta1, beta2) for step in range(25)]
    assert tuple(stages.count(s) for s in (1, 2, 3)) == stage_steps
    assert stages == sorted(stages)
    blocks = {
        s: {n.split(".temporal")[0] for n in A.temporal_source_layers(svd_layers, s)}
        for s in (1, 2, 3)
    }
    assert len(blocks[1]) == 16
    assert blocks[2] == LOW_RES
    assert blocks[3] == set()


@pytest.fixture(scope="module")
def clip_inputs(tiny_pipe):
    params = EngineParams(height=64, width=128)
    generator = torch.Generator().manual_seed(0)
    frames = torch.rand(5, 3, 64, 128, generator=generator) * 2 - 1
    source = encode_condition(tiny_pipe, frames[:1], params, generator)
    edited = encode_condition(tiny_pipe, frames[:1].flip(-1), params, generator)
    latents = encode_video_latents(tiny_pipe, frames, 8)
    return latents, source, edited


def _run(pipe, clip_inputs, budget, observer=None, steps=6):
    latents, source, edited = clip_inputs
    layers = A.self_attention_layers(pipe.unet)
    store = A.SourceAttentionStore(budget)
    controller = A.AttentionController(layers, A.MatchingConfig(0.5, 0.8), store)
    controller.observer = observer
    previous = A.install_processors(pipe.unet, controller)
    try:
        inversion = invert(pipe, latents, source, steps, controller)
        result = sample_edit(pipe, inversion, edited, 1.0, 2.0, controller)
    finally:
        A.restore_processors(pipe.unet, previous)
    return result, store, inversion


def _record_sigma_max(pipe, inversion, observer):
    from framerelay.engine.denoiser import predict_v

    layers = A.self_attention_layers(pipe.unet)
    controller = A.AttentionController(
        layers, A.MatchingConfig(0.5, 0.8), A.SourceAttentionStore(0)
    )
    controller.observer = observer
    previous = A.install_processors(pipe.unet, controller)
    try:
        sigma = float(inversion.sigmas[0])
        controller.record(sigma, inversion.trajectory[0].shape[1])
        with torch.no_grad():
            predict_v(pipe.unet, inversion.trajectory[0], sigma, inversion.condition)
        controller.finish_call()
    finally:
        A.restore_processors(pipe.unet, previous)


@pytest.mark.parametrize("budget", [1 << 30, 0, "one step"])
def test_source_attention_used_equals_what_inversion_saw(tiny_pipe, clip_inputs, budget):
    seen: dict[tuple[str, str, str], torch.Tensor] = {}

    def observer(event, layer, sigma, probs):
        seen[(event, layer, f"{sigma:.6e}")] = probs.detach().clone()

    if budget == "one step":
        _, store, _ = _run(tiny_pipe, clip_inputs, 1 << 30, steps=6)
        budget = store.nbytes // len(store)  # room for exactly one step: the rest is inline
    _, store, inversion = _run(tiny_pipe, clip_inputs, budget, observer, steps=6)
    if store.full:  # no room for the closing record at sigma_max: watch one now, on x_T
        _record_sigma_max(tiny_pipe, inversion, observer)
    used = {(layer, sigma): p for (event, layer, sigma), p in seen.items() if event == "use"}
    recorded = {(layer, sigma): p for (event, layer, sigma), p in seen.items() if event == "record"}
    sigmas = {f"{float(s):.6e}" for s in inversion.sigmas[:-1]}
    assert {sigma for _, sigma in used} <= sigmas
    assert len({sigma for _, sigma in used}) == 6  # every step matched spatial attention
    for key, probs in used.items():
        assert torch.allclose(probs, recorded[key].to(probs), atol=1e-5), key


def test_stored_and_recomputed_source_give_the_same_edit_bit_for_bit(tiny_pipe, clip_inputs):
    stored, store, _ = _run(tiny_pipe, clip_inputs, 1 << 30)
    recomputed, empty, _ = _run(tiny_pipe, clip_inputs, 0)
    one_step = store.nbytes // len(store)
    partly, some, _ = _run(tiny_pipe, clip_inputs, one_step)
    assert len(store) == 6 and len(empty) == 0 and len(some) == 1
    assert torch.equal(stored, recomputed)
    assert torch.equal(stored, partly)


def test_matching_changes_the_edit(tiny_pipe, clip_inputs):
    edited = clip_inputs[2]
    matched, _, inversion = _run(tiny_pipe, clip_inputs, 1 << 30)
    plain = sample_edit(tiny_pipe, inversion, edited, 1.0, 2.0, None)
    assert (matched - plain).abs().max() > 1e-3


def test_store_budget_keeps_whole_steps_only():
    store = A.SourceAttentionStore(budget_bytes=3 * 4 * 10)
    for sigma in (1.0, 2.0, 3.0):
        store.begin(sigma)
        store.put("a", torch.zeros(10))
        store.put("b", torch.zeros(10))
        store.end()
    assert len(store) == 1 and store.has(1.0) and not store.has(2.0)
    assert store.full and store.nbytes == 80


def test_unconditional_condition_is_zero():
    condition = Condition(torch.ones(1, 1, 4), torch.ones(1, 4, 2, 2), torch.ones(1, 3))
    uncond = condition.unconditional()
    assert uncond.image_embeddings.abs().sum() == 0 and uncond.image_latent.abs().sum() == 0
    assert torch.equal(uncond.added_time_ids, condition.added_time_ids)


def test_skip_interval_prepends_the_anchor_keys_and_values():
    module = _spatial_attention_module()
    layer = A.SelfAttentionLayer("x.temporal_transformer_blocks.0.attn1", A.TEMPORAL, 0)
    controller = A.AttentionController(
        [layer], A.MatchingConfig(0.5, 0.8), A.SourceAttentionStore(0)
    )
    module.set_processor(A.MatchingProcessor(layer, controller))
    seen = {}
    controller.observer = lambda event, name, sigma, t: seen.setdefault(event, t)
    generator = torch.Generator().manual_seed(4)
    anchor = torch.randn(6, 5, 16, generator=generator)  # 6 rows (batch x tokens), 5 frames
    current = torch.randn(6, 3, 16, generator=generator)  # the same rows, 3 frames
    with torch.no_grad():
        controller.kv_mode = "capture"
        module(anchor)
        k_anchor, v_anchor = controller.anchor_kv[layer.name]
        assert k_anchor.shape == (6, 2, 5, 8)  # (rows, heads, frames, head dim)
        controller.kv_mode = "prepend"
        out = module(current)
        q = module.to_q(current).view(6, 3, 2, 8).transpose(1, 2)
        k = torch.cat([k_anchor, module.to_k(current).view(6, 3, 2, 8).transpose(1, 2)], dim=2)
        v = torch.cat([v_anchor, module.to_v(current).view(6, 3, 2, 8).transpose(1, 2)], dim=2)
        assert k.shape == (6, 2, 8, 8)  # queries from 3 frames attend to 5 + 3 keys
        expected = torch.nn.functional.scaled_dot_product_attention(q, k, v)
        expected = module.to_out[0](expected.transpose(1, 2).reshape(6, 3, 16))
    assert out.shape == current.shape
    assert torch.allclose(out, expected, atol=1e-5)
    assert seen["anchor_used:off"].shape == (6, 2, 5, 16)  # K and V side by side
    with pytest.raises(ValueError, match="anchor K/V batch"):
        module(current[:3])
