"""Pre-flight estimates against the accounting (bench/real_size.py), and refusals with a hint."""

from __future__ import annotations

import pytest

from framerelay.engine import estimate as est

GB = 1e9
TOLERANCE = 0.05  # the estimates stay within 5 % of the accounting at shapes it was not fitted to

# bench/real_size.py figures at shapes the profile was NOT built from (bench/RESULTS.md, issue 17:
# the 512x896 LoRA rows and the `--frames 25` run). The profile holds the 576x1024x14 ones.
ACCOUNTED = {
    "lora step 512x896x14: TFLOP": (101.9, lambda: est.SVD.flops("lora", 14, 512, 896) / 1e12),
    "lora step 512x896x14: peak GB": (12.3, lambda: est.SVD.peak("lora", 14, 512, 896) / GB),
    "lora step 576x1024x25: peak GB": (23.9, lambda: est.SVD.peak("lora", 25, 576, 1024) / GB),
    "skip-interval capture + edit, 25 frames: peak GB": (
        24.8,
        lambda: est.SVD.peak("edit_anchored", 25, 576, 1024) / GB,
    ),
    "inversion per clip, 25 frames: TFLOP": (
        2148,
        lambda: (
            (est.SVD.flops("encode", 25, 576, 1024) + 26 * est.SVD.flops("invert", 25, 576, 1024))
            / 1e12
        ),
    ),
    "edit per clip, 25 frames: TFLOP": (
        5373,
        lambda: (
            (25 * est.SVD.flops("edit", 25, 576, 1024) + est.SVD.flops("decode", 25, 576, 1024))
            / 1e12
        ),
    ),
}


@pytest.mark.parametrize("name", list(ACCOUNTED))
def test_the_model_scales_the_accounting_to_other_shapes(name):
    accounted, estimated = ACCOUNTED[name]
    assert estimated() == pytest.approx(accounted, rel=TOLERANCE), name


def test_the_reference_shape_reproduces_the_per_clip_accounting():
    inversion = est.SVD.flops("encode", 14, 576, 1024) + 26 * est.SVD.flops("invert", 14, 576, 1024)
    edit = 25 * est.SVD.flops("edit", 14, 576, 1024) + est.SVD.flops("decode", 14, 576, 1024)
    assert inversion / 1e12 == pytest.approx(1205, rel=0.01)
    assert edit / 1e12 == pytest.approx(3012, rel=0.01)


def test_a_default_job_fits_24_gb_and_a_25_frame_window_does_not():
    default = est.estimate(est.JobShape(frame_count=40))
    assert default.peak_phase == "edit_anchored"
    assert est.vram_problem(default, 24 * 2**30) is None
    xt = est.estimate(est.JobShape(frame_count=60, window=25))
    message, hint = est.vram_problem(xt, 24 * 2**30)
    assert message.startswith("needs 26 GB of VRAM (editing a later window with skip-interval)")
    assert message.endswith("this GPU has 24.")
    assert "skip-interval off" in hint


def test_the_hint_names_the_lora_size_when_training_is_the_peak():
    shape = est.JobShape(frame_count=14, window=14, height=1024, width=1536)
    estimate = est.estimate(shape)
    assert estimate.peak_phase == "lora"
    _, hint = est.vram_problem(estimate, 24 * 2**30)
    assert hint == "Train the motion LoRA at 512×896 or process fewer frames per window."
    smaller = est.estimate(
        shape.__class__(**{**shape.__dict__, "lora_height": 512, "lora_width": 896})
    )
    assert smaller.peak_vram_bytes < estimate.peak_vram_bytes


def test_time_follows_the_measured_speed_of_this_machine():
    shape = est.JobShape(frame_count=27, window=14)
    guess = est.estimate(shape)
    assert not guess.calibrated and guess.windows == 2
    job = {"lora_steps": 500, "inversions": 2, "edit_passes": 2, "decoded_windows": 2}
    seconds = {"lora": 100.0, "invert": 10.0, "edit": 40.0, "decode": 2.0}
    speeds = est.measured_speeds(shape, seconds, job)
    again = est.estimate(shape, speeds)
    assert again.calibrated
    # the same job again: the estimate is what it took (edit includes the anchored window's cost)
    assert again.seconds["lora"] == pytest.approx(100.0)
    assert again.seconds["invert"] == pytest.approx(10.0)
    assert again.seconds["decode"] == pytest.approx(2.0)
    assert again.seconds["edit"] > 40.0


def test_disk_counts_outputs_cache_and_the_frames_a_backward_half_waits_on():
    forward = est.estimate(est.JobShape(frame_count=48, output_format="png"))
    both = est.estimate(est.JobShape(frame_count=48, keyframes=(20,), output_format="png"))
    assert forward.scratch_bytes == 0 and both.scratch_bytes > 0
    assert forward.output_bytes == pytest.approx(48 * 1920 * 1080 * 3 * 0.6)
    assert both.cache_bytes > forward.cache_bytes  # two halves: more windows
    message, hint = est.disk_problem(5 * GB, 2 * GB, "/out")
    assert message == "needs 5.0 GB of disk on /out, 2.0 GB are free."
    assert "cache gc" in hint
    assert est.disk_problem(1 * GB, 2 * GB, "/out") is None


def test_halves_follow_the_edited_frames():
    assert [h.frames for h in est.halves(est.JobShape(frame_count=30, keyframes=(10,)))] == [11, 20]
    assert [h.frames for h in est.halves(est.JobShape(frame_count=30, keyframes=(0, 20)))] == [
        11,
        10,
        10,
    ]


def test_the_scaling_law_holds_for_a_real_unet_under_the_accountant():
    """The estimate's law (attention quadratic in a frame's tokens, the rest linear in frames x
    tokens, activations linear) against bench/accounting.py on the tiny SVD UNet: a profile built
    at one shape predicts another's FLOPs and peak."""
    torch = pytest.importorskip("torch")
    from bench import accounting as acct
    from framerelay.engine.conditioning import Condition
    from framerelay.engine.denoiser import predict_v
    from framerelay.engine.tiny import tiny_unet

    def measure(frames: int, height: int, width: int) -> tuple[float, float, float]:
        with acct.fake_world():
            unet = tiny_unet(num_frames=frames)
            accountant = acct.Accountant()
            accountant.track(list(unet.parameters()) + list(unet.buffers()))
            weights = accountant.live[acct.DEVICE.type]
            x = torch.randn(1, frames, 4, height // 8, width // 8)
            condition = Condition(
                torch.randn(1, 1, 32),
                torch.randn(1, 4, height // 8, width // 8),
                torch.tensor([[6.0, 127.0, 0.02]]),
            )
            with torch.no_grad(), accountant, accountant.phase("call") as tally:
                predict_v(unet, x, 1.0, condition)
            return tally.total_flops, tally.peak_bytes, weights

    # tiny_unet: spatial attention at level 0 (2 down + 3 up layers, 32 channels) and in the mid
    # block at level 1 (64 channels)
    attention = ((5, 32), (1, 64))
    flops, peak, weights = measure(4, 128, 128)
    scratch = est.Profile("tiny", 128, 128, 4, 8, {}, attention=attention)
    share = scratch.quadratic(128, 128) * 4 / flops
    profile = est.Profile(
        "tiny", 128, 128, 4, 8, {"call": est.Phase(flops, share, peak, weights)}, attention
    )
    accounted_flops, accounted_peak, _ = measure(6, 256, 192)
    assert share > 0.05  # the quadratic part is not negligible at these sizes
    assert profile.flops("call", 6, 256, 192) == pytest.approx(accounted_flops, rel=TOLERANCE)
    assert profile.peak("call", 6, 256, 192) == pytest.approx(accounted_peak, rel=TOLERANCE)
