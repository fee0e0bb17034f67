"""Motion LoRA: targets, training on the tiny real SVD UNet, save/load, checkpoints and resume."""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from diffusers import UNetSpatioTemporalConditionModel
from peft.tuners.lora import LoraLayer
from safetensors import safe_open

from framerelay.engine.lora import (
    MOTION_LORA_TARGETS,
    LoraTrainingParams,
    SigmaSchedule,
    TrainingBatch,
    denoising_loss,
    inject_motion_lora,
    latest_checkpoint,
    load_motion_lora,
    make_added_time_ids,
    motion_lora_parameters,
    motion_lora_target_names,
    remove_motion_lora,
    save_motion_lora,
    set_motion_lora_enabled,
    train_motion_lora,
)
from framerelay.engine.tiny import tiny_unet
from framerelay.errors import CancelledError
from framerelay.progress import CancelToken, Progress

FRAMES = 6
TINY_TRANSFORMERS = 6  # 2 in down_blocks.0, 1 in the mid block, 3 in up_blocks.1
# Same weights, same input, different module objects: CPU GEMM kernels can differ in the last bit
# (e.g. with buffer alignment), so outputs of distinct UNets are compared to this tolerance.
SAME = {"rtol": 0, "atol": 1e-5}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The tiny UNet is fastest on one thread, and far slower with two on a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_unet() -> UNetSpatioTemporalConditionModel:
    return tiny_unet(heads=2, num_frames=FRAMES)


def make_batch(seed: int = 1) -> TrainingBatch:
    g = torch.Generator().manual_seed(seed)
    return TrainingBatch(
        video_latents=torch.randn(1, FRAMES, 4, 8, 8, generator=g),
        condition_latent=torch.randn(1, 4, 8, 8, generator=g),
        image_embeddings=torch.randn(1, 1, 32, generator=g),
        added_time_ids=make_added_time_ids(6, 127, 0.02),
    )


def fast_params(**changes) -> LoraTrainingParams:
    defaults = {"steps": 3, "rank": 8, "checkpoint_every": 100, "gradient_checkpointing": False}
    return LoraTrainingParams(**{**defaults, **changes})


def unet_output(unet: torch.nn.Module, batch: TrainingBatch) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    sample = torch.randn(1, FRAMES, 8, 8, 8, generator=g)
    unet.eval()
    with torch.no_grad():
        return unet(
            sample,
            torch.tensor([0.5]),
            encoder_hidden_states=batch.image_embeddings,
            added_time_ids=batch.added_time_ids,
            return_dict=False,
        )[0]


def adapter_state(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: p.detach().clone()
        for name, p in unet.named_parameters()
        if ".lora_A." in name or ".lora_B." in name
    }


def base_state(unet: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {
        name: p.detach().clone()
        for name, p in unet.named_parameters()
        if ".lora_A." not in name and ".lora_B." not in name
    }


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert different == []


# targets


def test_targets_are_the_192_temporal_linears_of_the_real_svd_unet():
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel()  # the hub config is the constructor default
    names = motion_lora_target_names(unet)

    assert len(names) == 192
    blocks = Counter(name.split(".temporal_transformer_blocks.")[0] for name in names)
    assert len(blocks) == 16
    assert set(blocks.values()) == {12}
    suffixes = {name.split(".temporal_transformer_blocks.0.")[1] for name in names}
    assert suffixes == {
        "ff_in.net.0.proj",
        "ff_in.net.2",
        "attn1.to_q",
        "attn1.to_k",
        "attn1.to_v",
        "attn1.to_out.0",
        "attn2.to_q",
        "attn2.to_k",
        "attn2.to_v",
        "attn2.to_out.0",
        "ff.net.0.proj",
        "ff.net.2",
    }
    spatial = [n for n, _ in unet.named_modules() if ".transformer_blocks." in n]
    assert not any(re.fullmatch(MOTION_LORA_TARGETS, name) for name in spatial)

    linears = dict(unet.named_modules())
    expected_params = sum(32 * (linears[n].in_features + linears[n].out_features) for n in names)
    parameters = inject_motion_lora(unet, rank=32)
    assert sum(1 for m in unet.modules() if isinstance(m, LoraLayer)) == 192
    assert sum(p.numel() for p in parameters) == expected_params  # 17.8 M at rank 32


def test_inject_wraps_every_temporal_linear_and_freezes_the_rest():
    unet = make_unet()
    batch = make_batch()
    base = unet_output(unet, batch)
    targets = motion_lora_target_names(unet)
    assert len(targets) == TINY_TRANSFORMERS * 12

    parameters = inject_motion_lora(unet, rank=8, dropout=0.1)

    layers = [m for m in unet.modules() if isinstance(m, LoraLayer)]
    assert len(layers) == len(targets)
    assert all(m.scaling["motion"] == 1.0 and m.r["motion"] == 8 for m in layers)
    assert all(m.lora_dropout["motion"].p == 0.1 for m in layers)
    trainable = [p for p in unet.parameters() if p.requires_grad]
    assert {id(p) for p in trainable} == {id(p) for p in parameters}
    assert len(parameters) == 2 * len(targets)
    # B starts at zero, so the adapted UNet computes what the base does
    torch.testing.assert_close(unet_output(unet, batch), base, **SAME)
    with pytest.raises(ValueError, match="already has"):
        inject_motion_lora(unet)


# training


def test_training_changes_only_the_adapter(tmp_path):
    unet = make_unet()
    inject_motion_lora(unet, rank=8)
    base_before = base_state(unet)
    adapter_before = adapter_state(unet)

    train_motion_lora(unet, make_batch(), fast_params(), tmp_path)

    assert_same_tensors(base_state(unet), base_before)
    for name, parameter in unet.named_parameters():
        if ".lora_" not in name:
            assert parameter.grad is None, name
    adapter_after = adapter_state(unet)
    changed = [n for n in adapter_after if not torch.equal(adapter_after[n], adapter_before[n])]
    assert len(changed) == len(adapter_after)
    assert all(p.grad is not None for p in motion_lora_parameters(unet))


@pytest.mark.slow
def test_loss_at_fixed_noise_levels_decreases_over_20_steps(tmp_path):
    # Random σ makes single-step losses noisy, so the test measures the loss at fixed σ and fixed
    # noise, without dropout, before and after training. lr is 1e-2 instead of 5e-4: a randomly
    # initialised tiny UNet gives the rank-8 LoRA little to learn from in 20 steps at 5e-4 (the
    # loss moves by < 1 %), and the test must show learning, not match the production schedule.
    unet, batch = make_unet(), make_batch()
    inject_motion_lora(unet, rank=8)
    sigmas = [0.05, 0.3, 1.0, 3.0, 10.0]
    g = torch.Generator().manual_seed(5)
    noises = [(torch.randn(1, FRAMES, 4, 8, 8, generator=g), torch.randn(1, 4, 8, 8, generator=g))]
    noises *= len(sigmas)

    def fixed_loss() -> float:
        unet.eval()
        with torch.no_grad():
            losses = [
                float(denoising_loss(unet, batch, torch.tensor([s]), noise, cond, 0.02))
                for s, (noise, cond) in zip(sigmas, noises, strict=True)
            ]
        return sum(losses) / len(losses)

    before = fixed_loss()
    result = train_motion_lora(unet, batch, fast_params(steps=20, lr=1e-2), tmp_path)
    after = fixed_loss()

    assert result.steps_run == 20 and len(result.losses) == 20
    assert all(math.isfinite(x) for x in result.losses)
    assert after < 0.95 * before, (before, after)


def test_gradient_checkpointing_trains_the_same_adapter(tmp_path):
    results = {}
    for checkpointing in (False, True):
        unet = make_unet().eval()
        result = train_motion_lora(
            unet,
            make_batch(),
            fast_params(gradient_checkpointing=checkpointing),
            tmp_path / str(checkpointing),
        )
        assert not unet.is_gradient_checkpointing  # the caller's setting is restored
        assert not unet.training
        results[checkpointing] = (result.losses, adapter_state(unet))

    torch.testing.assert_close(results[True][0], results[False][0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(results[True][1], results[False][1], rtol=1e-4, atol=1e-6)


def test_training_draws_nothing_from_the_global_rng(tmp_path):
    adapters = []
    for global_seed in (1, 2):
        unet = make_unet()
        torch.manual_seed(global_seed)
        train_motion_lora(unet, make_batch(), fast_params(dropout=0.5), tmp_path / str(global_seed))
        adapters.append(adapter_state(unet))
    assert_same_tensors(adapters[0], adapters[1])
    unet = make_unet()
    train_motion_lora(unet, make_batch(), fast_params(dropout=0.0), tmp_path / "no-dropout")
    assert any(
        not torch.equal(a, b)
        for a, b in zip(adapter_state(unet).values(), adapters[0].values(), strict=True)
    )


def test_a_dropout_mask_is_a_function_of_seed_step_and_layer():
    from framerelay.engine.lora import DropoutClock, SeededDropout

    clock, x = DropoutClock(23), torch.ones(64, 64)
    first, other_layer = SeededDropout(0.5, clock, 0), SeededDropout(0.5, clock, 1)
    clock.step = 1
    mask = first(x)
    assert torch.equal(first(x), mask)  # a replay (gradient checkpointing) gets the same mask
    assert set(mask.unique().tolist()) == {0.0, 2.0}
    assert not torch.equal(other_layer(x), mask)
    clock.step = 2
    assert not torch.equal(first(x), mask)
    assert torch.equal(first.eval()(x), x)


def test_progress_reports_every_step_and_the_global_rng_is_untouched(tmp_path):
    events: list[Progress] = []
    unet = make_unet()  # seeds the global RNG itself
    torch.manual_seed(1234)
    rng_before = torch.get_rng_state()

    train_motion_lora(unet, make_batch(), fast_params(), tmp_path, progress=events.append)

    assert torch.equal(torch.get_rng_state(), rng_before)
    assert [(e.phase, e.step, e.total) for e in events] == [("lora", s, 3) for s in range(4)]
    assert all(re.fullmatch(r"loss \d+\.\d{4}", e.message) for e in events[1:])


def test_batch_and_params_are_checked(tmp_path):
    unet, batch = make_unet(), make_batch()
    bad_condition = TrainingBatch(
        batch.video_latents,
        batch.condition_latent[:, :, :4],
        batch.image_embeddings,
        batch.added_time_ids,
    )
    with pytest.raises(ValueError, match="condition_latent"):
        train_motion_lora(unet, bad_condition, fast_params(), tmp_path)
    one_frame = TrainingBatch(
        batch.video_latents[:, :1],
        batch.condition_latent,
        batch.image_embeddings,
        batch.added_time_ids,
    )
    with pytest.raises(ValueError, match="video_latents"):
        train_motion_lora(unet, one_frame, fast_params(), tmp_path)
    with pytest.raises(ValueError, match="noise_aug"):
        train_motion_lora(unet, batch, fast_params(noise_aug_strength=0.1), tmp_path)
    with pytest.raises(ValueError, match="steps"):
        train_motion_lora(unet, batch, fast_params(steps=0), tmp_path)
    assert not any(isinstance(m, LoraLayer) for m in unet.modules())


def test_added_time_ids_use_the_diffusers_order():
    assert make_added_time_ids(6, 127, 0.02).tolist() == [[6.0, 127.0, pytest.approx(0.02)]]


# the objective


class RecordingUNet(torch.nn.Module):
    """Stands in for the UNet: records its inputs and returns the v that reconstructs x0 exactly."""

    def __init__(self, x0: torch.Tensor):
        super().__init__()
        self.x0 = x0
        self.calls: list[dict] = []

    def forward(self, sample, timestep, encoder_hidden_states, added_time_ids, return_dict):
        sigma = torch.exp(4 * timestep).reshape(-1, 1, 1, 1, 1)
        x_sigma = sample[:, :, :4] * torch.sqrt(sigma**2 + 1)
        # x0 = x_sigma / (σ²+1) - σ/√(σ²+1) · v  =>  v = (x_sigma / (σ²+1) - x0) · √(σ²+1) / σ
        v = (x_sigma / (sigma**2 + 1) - self.x0) * torch.sqrt(sigma**2 + 1) / sigma
        self.calls.append(
            {
                "sample": sample,
                "timestep": timestep,
                "emb": encoder_hidden_states,
                "ids": added_time_ids,
            }
        )
        return (v,)


@pytest.mark.parametrize("sigma", [0.002, 0.7, 30.0])
def test_denoising_loss_uses_the_edm_preconditioning(sigma):
    batch = make_batch()
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(batch.video_latents.shape, generator=g)
    condition_noise = torch.randn(batch.condition_latent.shape, generator=g)
    fake = RecordingUNet(batch.video_latents)

    loss = denoising_loss(fake, batch, torch.tensor([sigma]), noise, condition_noise, 0.02)

    assert float(loss) < 1e-6  # a perfect prediction costs nothing at any σ
    call = fake.calls[0]
    x_sigma = batch.video_latents + sigma * noise
    torch.testing.assert_close(call["sample"][:, :, :4], x_sigma / math.sqrt(sigma**2 + 1))
    condition = batch.condition_latent + 0.02 * condition_noise
    for frame in range(FRAMES):  # the same noisy first-frame latent beside every frame
        torch.testing.assert_close(call["sample"][:, frame, 4:], condition)
    torch.testing.assert_close(call["timestep"], torch.tensor([0.25 * math.log(sigma)]))
    assert call["emb"] is batch.image_embeddings and call["ids"] is batch.added_time_ids

    # an error of δ in x̂0 costs λ(σ)·δ² with λ = (1 + σ²)/σ²
    fake.x0 = batch.video_latents + 0.1
    weighted = float(
        denoising_loss(fake, batch, torch.tensor([sigma]), noise, condition_noise, 0.02)
    )
    assert weighted == pytest.approx((1 + sigma**2) / sigma**2 * 0.01, rel=1e-3)


def test_sigma_schedule_spans_its_range_and_interpolates_between_resolutions():
    schedule = SigmaSchedule()
    u = torch.linspace(0, 1, 101)
    sigmas = schedule.sigma(u)
    assert float(sigmas[0]) == pytest.approx(0.002, rel=1e-4)
    assert float(sigmas[-1]) == pytest.approx(700.0, rel=1e-4)
    assert bool((sigmas[1:] > sigmas[:-1]).all())
    low = SigmaSchedule(noise_d_low=32, noise_d_high=32).sigma(u)
    high = SigmaSchedule(noise_d_low=64, noise_d_high=64).sigma(u)
    inner = slice(1, -1)
    lower, upper = torch.minimum(low, high)[inner], torch.maximum(low, high)[inner]
    assert bool((sigmas[inner] >= lower * (1 - 1e-5)).all())
    assert bool((sigmas[inner] <= upper * (1 + 1e-5)).all())


# save, load, switch off, remove


def trained_unet(tmp_path: Path) -> UNetSpatioTemporalConditionModel:
    unet = make_unet()
    train_motion_lora(unet, make_batch(), fast_params(steps=2, lr=1e-2), tmp_path / "train")
    return unet


def test_save_and_load_round_trip_gives_identical_outputs(tmp_path):
    batch = make_batch()
    unet = trained_unet(tmp_path)
    path = save_motion_lora(unet, tmp_path / "lora" / "motion.safetensors")

    with safe_open(str(path), framework="pt") as handle:
        assert len(list(handle.keys())) == 2 * TINY_TRANSFORMERS * 12
        assert handle.metadata()["rank"] == "8"
    assert [p.name for p in path.parent.iterdir()] == ["motion.safetensors"]  # no temp left

    loaded = make_unet()
    load_motion_lora(loaded, path)
    assert_same_tensors(adapter_state(loaded), adapter_state(unet))
    torch.testing.assert_close(unet_output(loaded, batch), unet_output(unet, batch), **SAME)
    difference = (unet_output(make_unet(), batch) - unet_output(unet, batch)).abs().max()
    assert difference > 100 * SAME["atol"]  # the adapter does change the output

    assert not any(p.requires_grad for p in loaded.parameters())  # loaded for inference

    half = make_unet().to(torch.bfloat16)
    load_motion_lora(half, path)
    assert {p.dtype for p in motion_lora_parameters(half)} == {torch.float32}

    wrong_rank = make_unet()
    inject_motion_lora(wrong_rank, rank=4)
    with pytest.raises(ValueError, match="rank-8"):
        load_motion_lora(wrong_rank, path)


def test_loading_a_foreign_or_mismatched_file_fails_clearly(tmp_path):
    from safetensors.torch import save_file

    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ValueError, match="not a framerelay motion LoRA"):
        load_motion_lora(make_unet(), foreign)

    path = save_motion_lora(trained_unet(tmp_path), tmp_path / "motion.safetensors")
    wider = tiny_unet(channels=(64, 64))
    with pytest.raises(ValueError, match="does not fit"):
        load_motion_lora(wider, path)


def test_disable_enable_and_remove(tmp_path):
    batch = make_batch()
    base = unet_output(make_unet(), batch)
    unet = trained_unet(tmp_path)
    adapted = unet_output(unet, batch)
    assert (adapted - base).abs().max() > 100 * SAME["atol"]

    set_motion_lora_enabled(unet, False)
    torch.testing.assert_close(unet_output(unet, batch), base, **SAME)
    assert all(p.requires_grad for p in motion_lora_parameters(unet))  # flags left alone
    set_motion_lora_enabled(unet, True)
    assert torch.equal(unet_output(unet, batch), adapted)

    remove_motion_lora(unet)
    assert not any(isinstance(m, LoraLayer) for m in unet.modules())
    torch.testing.assert_close(unet_output(unet, batch), base, **SAME)
    assert len(motion_lora_target_names(unet)) == TINY_TRANSFORMERS * 12
    inject_motion_lora(unet, rank=4)  # a fresh adapter can go in again


# checkpoints and resume


class CancelAt:
    """A progress sink that cancels the job once step `step` is reported."""

    def __init__(self, step: int):
        self.step, self.token, self.events = step, CancelToken(), []

    def __call__(self, event: Progress) -> None:
        self.events.append(event)
        if event.step == self.step:
            self.token.cancel()


@pytest.mark.slow
def test_resume_after_cancel_ends_where_an_uninterrupted_run_ends(tmp_path):
    # dropout 0.1 is on, so equality needs the RNG state restored from the checkpoint
    params = fast_params(steps=10, checkpoint_every=5, dropout=0.1)
    batch = make_batch()
    straight = make_unet()
    uninterrupted = train_motion_lora(straight, batch, params, tmp_path / "straight")

    interrupted = CancelAt(7)
    with pytest.raises(CancelledError):
        train_motion_lora(
            make_unet(), batch, params, tmp_path / "run", interrupted, interrupted.token
        )
    assert [e.step for e in interrupted.events] == list(range(8))
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["step-5"]

    events: list[Progress] = []
    resumed_unet = make_unet()
    resumed = train_motion_lora(resumed_unet, batch, params, tmp_path / "run", events.append)

    assert resumed.resumed_from == 5 and resumed.steps_run == 5
    assert [e.step for e in events] == [5, 6, 7, 8, 9, 10]
    assert events[0].message == "resumed from step 5"
    assert resumed.losses == uninterrupted.losses
    assert resumed.final_loss == uninterrupted.final_loss
    assert_same_tensors(adapter_state(resumed_unet), adapter_state(straight))
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["step-10"]
    assert latest_checkpoint(tmp_path / "run") == tmp_path / "run" / "step-10"


def test_a_finished_checkpoint_is_reused_without_training(tmp_path):
    params = fast_params(steps=4, checkpoint_every=2)
    first = make_unet()
    done = train_motion_lora(first, make_batch(), params, tmp_path)

    again = make_unet()
    result = train_motion_lora(again, make_batch(), params, tmp_path)

    assert result.steps_run == 0 and result.resumed_from == 4
    assert result.losses == done.losses
    assert_same_tensors(adapter_state(again), adapter_state(first))


def test_a_checkpoint_from_other_settings_is_discarded(tmp_path):
    train_motion_lora(make_unet(), make_batch(), fast_params(steps=2, lr=1e-3), tmp_path)
    assert latest_checkpoint(tmp_path).name == "step-2"

    result = train_motion_lora(make_unet(), make_batch(), fast_params(steps=2, lr=2e-3), tmp_path)

    assert result.resumed_from == 0 and result.steps_run == 2
    assert [p.name for p in tmp_path.iterdir()] == ["step-2"]


def test_half_written_checkpoints_are_ignored_and_cleaned_up(tmp_path):
    params = fast_params(steps=4, checkpoint_every=2)
    interrupted = CancelAt(3)
    with pytest.raises(CancelledError):
        train_motion_lora(
            make_unet(), make_batch(), params, tmp_path, interrupted, interrupted.token
        )
    for name in (".step-4.partial-dead", ".tmp-step-4-dead"):  # killed while being written
        half = tmp_path / name  # (the second: as versions before framerelay.files named it)
        half.mkdir()
        (half / "adapter.safetensors").write_bytes(b"partial")
    (tmp_path / "step-9").mkdir()  # a step dir without its files is not a checkpoint
    assert latest_checkpoint(tmp_path) == tmp_path / "step-2"

    result = train_motion_lora(make_unet(), make_batch(), params, tmp_path)

    assert result.resumed_from == 2 and result.steps_run == 2
    assert [p.name for p in tmp_path.iterdir()] == ["step-4"]
