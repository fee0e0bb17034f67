"""Memory: temporal-block checkpointing, the LoRA in the compute dtype, the source store sized to
the machine, and that none of it changes the default CPU path."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

from framerelay.engine import attention as A
from framerelay.engine import lora, memory
from framerelay.engine.conditioning import encode_condition, encode_video_latents
from framerelay.engine.editing import sample_edit
from framerelay.engine.inversion import invert
from framerelay.engine.lora import trainer as lora_trainer
from framerelay.engine.params import EngineParams
from framerelay.engine.source_store import TieredSourceStore, window_store
from framerelay.engine.tiny import tiny_unet
from framerelay.progress import Progress

FRAMES = 4
GIB = 2**30


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _batch() -> lora.TrainingBatch:
    g = torch.Generator().manual_seed(1)
    return lora.TrainingBatch(
        torch.randn(1, FRAMES, 4, 8, 8, generator=g),
        torch.randn(1, 4, 8, 8, generator=g),
        torch.randn(1, 1, 32, generator=g),
        lora.make_added_time_ids(6, 127, 0.02),
    )


def _train(tmp_path, landed: bool, monkeypatch) -> tuple[list[float], list[torch.Tensor]]:
    if landed:  # the training as it was before temporal checkpointing
        monkeypatch.setattr(
            lora_trainer,
            "checkpoint_temporal_blocks",
            lambda unet, active=True: contextlib.nullcontext(),
        )
    else:
        monkeypatch.undo()
    unet = tiny_unet(heads=2, num_frames=FRAMES)
    params = lora.LoraTrainingParams(steps=3, rank=4, checkpoint_every=100, dropout=0.1)
    result = lora.train_motion_lora(unet, _batch(), params, tmp_path / str(landed))
    weights = [p.detach().clone() for p in lora.motion_lora_parameters(unet)]
    return result.losses, weights


def test_temporal_checkpointing_trains_bit_for_bit_the_same_adapter(tmp_path, monkeypatch):
    """Default settings (gradient checkpointing on, dropout 0.1): the replayed temporal blocks draw
    the same dropout masks, so losses and weights are identical to the landed training."""
    landed = _train(tmp_path, True, monkeypatch)
    now = _train(tmp_path, False, monkeypatch)
    assert now[0] == landed[0]
    assert all(torch.equal(a, b) for a, b in zip(now[1], landed[1], strict=True))


def _saved_bytes(unet, batch, checkpoint_temporal: bool) -> int:
    saved = []

    def pack(tensor):
        saved.append(tensor.numel() * tensor.element_size())
        return tensor

    sigma = torch.tensor([1.0])
    noise = torch.randn(batch.video_latents.shape)
    condition_noise = torch.randn(batch.condition_latent.shape)
    with (
        torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t),
        memory.checkpoint_temporal_blocks(unet, checkpoint_temporal),
    ):
        loss = lora.denoising_loss(unet, batch, sigma, noise, condition_noise, 0.02)
    loss.backward()
    return sum(saved)


def test_checkpointing_the_temporal_blocks_keeps_fewer_activations():
    unet = tiny_unet(heads=2, num_frames=FRAMES)
    lora.inject_motion_lora(unet, rank=4, dropout=0.0)
    unet.enable_gradient_checkpointing()
    unet.train()
    batch = _batch()
    full = _saved_bytes(unet, batch, False)
    checkpointed = _saved_bytes(unet, batch, True)
    assert checkpointed < 0.8 * full, (checkpointed, full)
    assert "forward" not in memory.temporal_blocks(unet)[0].__dict__  # restored


def test_under_autocast_the_lora_branch_runs_in_the_compute_dtype():
    unet = tiny_unet(heads=2, num_frames=FRAMES)
    lora.inject_motion_lora(unet, rank=4, dropout=0.0)
    layer = next(m for m in unet.modules() if hasattr(m, "lora_A") and "motion" in m.lora_A)
    seen = []
    layer.lora_A["motion"].register_forward_pre_hook(lambda m, args: seen.append(args[0].dtype))
    x = torch.randn(2, 32, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x)
        with memory.lora_in_compute_dtype(unet, torch.is_autocast_enabled("cpu")):
            layer(x)
    assert seen == [torch.float32, torch.bfloat16]  # peft upcasts; the context keeps bf16
    assert layer.lora_A["motion"].weight.dtype == torch.float32  # fp32 master weights
    with memory.lora_in_compute_dtype(unet, torch.is_autocast_enabled("cpu")):
        layer(x.float())  # no autocast: the context is inactive
    assert seen[-1] == torch.float32
    assert layer.cast_input_dtype_enabled  # restored


def test_store_fills_the_device_tier_then_the_host_tier_then_stops():
    step = {"a": torch.zeros(256), "b": torch.zeros(256)}  # 2 KiB per step
    budget = memory.StoreBudget(device_bytes=2 * 2048, host_bytes=2048 + 100)
    store = TieredSourceStore(budget, device="cpu", host_device="meta")
    for sigma in (1.0, 2.0, 3.0, 4.0, 5.0):
        store.begin(sigma)
        for name, tensor in step.items():
            store.put(name, tensor)
        store.end()
    assert len(store) == 3 and store.full
    assert (store.device_nbytes, store.host_nbytes) == (4096, 2048)
    assert store.get(1.0, "a").device.type == "cpu"
    assert store.get(3.0, "a").device.type == "meta"  # the host tier
    assert not store.has(4.0)
    assert "3 of 25 steps" in store.summary(25)


def test_default_budget_comes_from_free_memory():
    host = memory.default_store_budget(
        torch.device("cpu"), 14, 72, 128, torch.bfloat16, 8, 64 * GIB
    )
    assert host == memory.StoreBudget(0, 48 * GIB)  # a quarter stays free
    small = memory.default_store_budget(torch.device("cpu"), 14, 72, 128, torch.float32, 8, 6 * GIB)
    assert small.host_bytes == 2 * GIB  # at least 4 GiB stay free
    cuda = memory.default_store_budget(
        torch.device("cuda"), 14, 72, 128, torch.bfloat16, 8, 64 * GIB, device_free=20 * GIB
    )
    reserve = memory.edit_call_bytes(14, 72, 128, torch.bfloat16)
    assert cuda.device_bytes == 20 * GIB - reserve - GIB
    assert cuda.host_bytes == 48 * GIB
    # at real size (0.89 GB per step) 64 GiB of RAM keeps all 25 steps
    assert cuda.total // int(0.887e9) >= 25


def test_an_explicit_budget_is_the_total(monkeypatch):
    monkeypatch.setattr(memory, "host_available_bytes", lambda: 64 * GIB)
    store = window_store(100, torch.device("cpu"), 4, (8, 8), torch.float32, 8)
    assert store.budget.total == 100 * 2**20
    auto = window_store(None, torch.device("cpu"), 4, (8, 8), torch.float32, 8)
    assert auto.budget.total == 48 * GIB


def test_default_path_outputs_are_unchanged(tiny_pipe):
    """The store sized to the machine and the mask dispatcher give bit-identical edits on the CPU
    to the landed store (4096 MiB, same device) and the reference mask."""
    params = EngineParams(height=64, width=64, steps=3)
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(4, 3, 64, 64, generator=g) * 2 - 1
    source = encode_condition(tiny_pipe, frames[:1], params, torch.Generator().manual_seed(1))
    edited = encode_condition(
        tiny_pipe, frames[:1].flip(-1), params, torch.Generator().manual_seed(2)
    )
    latents = encode_video_latents(tiny_pipe, frames, 8)
    outputs = []
    stores = [
        A.SourceAttentionStore(4096 * 2**20, device="cpu"),
        window_store(None, torch.device("cpu"), 4, (8, 8), torch.float32, 8),
    ]
    for store in stores:
        layers = A.self_attention_layers(tiny_pipe.unet)
        config = A.MatchingConfig(0.5, 0.8)
        controller = A.AttentionController(layers, config, store)
        previous = A.install_processors(tiny_pipe.unet, controller)
        try:
            inversion = invert(tiny_pipe, latents, source, 3, controller)
            outputs.append(sample_edit(tiny_pipe, inversion, edited, 1.0, 2.0, controller))
        finally:
            A.restore_processors(tiny_pipe.unet, previous)
        assert len(store) == 3
    assert torch.equal(outputs[0], outputs[1])


def test_decode_chunk_is_reduced_only_where_it_would_not_fit():
    assert memory.decode_chunk_that_fits(8, 576, 1024, torch.bfloat16, None) == 8
    per_frame = memory.decode_bytes(1, 576, 1024, torch.bfloat16)
    assert memory.decode_chunk_that_fits(8, 576, 1024, torch.bfloat16, 20 * per_frame) == 8
    assert memory.decode_chunk_that_fits(8, 576, 1024, torch.float32, 9 * per_frame) == 4
    assert memory.decode_chunk_that_fits(8, 576, 1024, torch.float32, 0) == 1


def test_the_run_says_how_many_steps_the_store_kept(tmp_path, tiny_model_dir):
    from framerelay.engine import run
    from framerelay.engine.params import MotionLoraParams
    from framerelay.engine.request import EditRequest
    from tests.media_factory import make_clip, pattern_frame, write_image

    source = make_clip(tmp_path / "clip.mp4", n=4, width=128, height=64)
    edit = write_image(tmp_path / "edit.png", pattern_frame(0, 128, 64))
    request = EditRequest(
        source=source,
        edited_frames=(edit,),
        outputs=(tmp_path / "out.mp4",),
        device="cpu",
        params=EngineParams(
            height=64, width=128, steps=3, window=4, lora=MotionLoraParams(steps=0)
        ),
        use_cache=False,
    )
    events: list[Progress] = []
    run.run_edit(request, progress=events.append, engine=run.Engine(str(tiny_model_dir), "cpu"))
    messages = [e.message for e in events if e.phase == "invert" and e.message]
    assert messages and messages[-1].startswith("source attention kept for all 3 steps")


def test_a_re_edit_by_a_warm_engine_reuses_the_source_store(tmp_path, tiny_model_dir):
    from framerelay.engine import run
    from framerelay.engine.params import MotionLoraParams
    from framerelay.engine.request import EditRequest
    from framerelay.media.video import read_clip
    from tests.media_factory import make_clip, pattern_frame, write_image

    source = make_clip(tmp_path / "clip.mp4", n=4, width=128, height=64)
    shifted = np.stack([pattern_frame(i + 7, 128, 64) for i in range(4)])
    other = make_clip(tmp_path / "other.mp4", n=4, width=128, height=64, frames=shifted)
    edit = write_image(tmp_path / "edit.png", pattern_frame(0, 128, 64)[:, ::-1].copy())
    engine = run.Engine(str(tiny_model_dir), "cpu")

    def edit_clip(clip, name):
        events: list[Progress] = []
        request = EditRequest(
            source=clip,
            edited_frames=(edit,),
            outputs=(tmp_path / name,),
            device="cpu",
            params=EngineParams(
                height=64, width=128, steps=3, window=4, lora=MotionLoraParams(steps=0)
            ),
            cache_dir=tmp_path / "cache",
        )
        result = run.run_edit(request, progress=events.append, engine=engine)
        messages = [e.message for e in events if e.phase == "invert" and e.message]
        return result, messages

    first, messages = edit_clip(source, "a.mp4")
    assert first.cache_hits == 0 and not messages[-1].startswith("source attention from")
    assert len(engine.stores) == 1
    again, messages = edit_clip(source, "b.mp4")
    assert again.cache_hits == 1
    assert messages[-1] == "cached"  # the inversion came whole from the artifact cache
    assert len(messages) == 2 and messages[0].startswith(
        "source attention from the previous job: source attention kept for all 3 steps"
    )
    assert np.array_equal(
        read_clip(tmp_path / "a.mp4").frames, read_clip(tmp_path / "b.mp4").frames
    )
    edit_clip(other, "c.mp4")  # another clip: the kept store is released, the new one kept
    assert len(engine.stores) == 1 and not engine.stores._previous


def test_leaner_reference_mask_and_source_projection_keep_every_bit(tiny_pipe):
    """The CPU default computes exactly what the landed code did: the mask with its temporaries
    reused in place, and the source branch projected without its unused V."""
    g = torch.Generator().manual_seed(4)
    q1, k1, q2, k2 = (torch.randn(3, 2, 40, 8, generator=g) for _ in range(4))

    def landed_mask(q_src, k_src, q_edit, k_edit, scale):
        def probs(q, k):
            return ((q.float() @ k.float().transpose(-1, -2)) * scale).softmax(dim=-1)

        difference = (probs(q_src, k_src) - probs(q_edit, k_edit)).abs()
        return (difference.mean(dim=1).sum(dim=-1) / 2).clamp_(0.0, 1.0)

    assert torch.equal(A.spatial_change_mask(q1, k1, q2, k2, 0.3), landed_mask(q1, k1, q2, k2, 0.3))
    attn = tiny_pipe.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1
    hidden = torch.randn(2, 16, attn.to_q.in_features, generator=g)
    q, k, _ = A._project(attn, hidden)
    q_only, k_only = A._project_qk(attn, hidden)
    assert torch.equal(q, q_only) and torch.equal(k, k_only)


class _RecordingTransfer:
    """Stands for CudaTransfer: records what is copied ahead and what is used."""

    def __init__(self):
        self.started, self.finished = [], []

    def start(self, host):
        self.started.append(float(host[0]))
        return host

    def finish(self, handle):
        self.finished.append(float(handle[0]))
        return handle


def test_host_tier_steps_stream_layer_by_layer_ahead_of_use():
    transfer = _RecordingTransfer()
    budget = memory.StoreBudget(device_bytes=0, host_bytes=GIB)
    store = TieredSourceStore(budget, "meta", host_device="cpu", prefetch=2, transfer=transfer)
    layers = ["a", "b", "c", "d"]
    store.begin(1.0)
    for i, name in enumerate(layers):
        store.put(name, torch.full((4,), float(i)))
    store.end()
    assert store.host_nbytes == 64 and store.device_nbytes == 0
    step = store.step(1.0)
    got = [float(step[name][0]) for name in ("a", "c", "d")]  # "b" skipped by this call
    assert got == [0.0, 2.0, 3.0]
    assert transfer.started == [0.0, 1.0, 2.0, 3.0]  # a, then b and c ahead; d when c is used
    assert transfer.finished == [0.0, 2.0, 3.0]
    assert store._inflight == {}  # the skipped layer's copy is dropped, nothing leaks
    assert store.step(2.0) is None


@pytest.mark.parametrize("shape", [(14, 2, 448, 32), (14, 4, 112, 32), (6, 2, 64, 16)])
def test_cache_sized_frame_groups_give_the_same_mask_bits(shape):
    """The reference mask works on groups of frames that fit the cache; every frame's rows are
    computed alike whatever the group, so the CPU default keeps its bits."""
    g = torch.Generator().manual_seed(1)
    q1, k1, q2, k2 = (torch.randn(*shape, generator=g) for _ in range(4))
    scale = shape[-1] ** -0.5
    one_group = A.spatial_change_mask(q1, k1, q2, k2, scale, group_elements=1 << 40)
    assert torch.equal(A.spatial_change_mask(q1, k1, q2, k2, scale), one_group)
    per_frame = shape[1] * shape[2] * shape[2]
    assert torch.equal(
        A.spatial_change_mask(q1, k1, q2, k2, scale, group_elements=per_frame), one_group
    )
