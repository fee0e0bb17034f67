"""EDM maths against an analytic Gaussian denoiser: invert, then reconstruct.

For data x0 ~ N(mu, a^2) per element, the exact denoiser is D(x; s) = mu + a^2/(a^2+s^2) (x - mu),
so the probability-flow ODE is known and first-order Euler inversion error shrinks with N.
"""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from framerelay.engine.conditioning import Condition
from framerelay.engine.editing import sample_edit
from framerelay.engine.inversion import invert

MU, SCALE = 0.0, 0.05


def oracle_forward(sample, timestep, encoder_hidden_states=None, added_time_ids=None, **_):
    sigma = torch.exp(4 * torch.as_tensor(timestep, dtype=torch.float64)).reshape(-1, 1, 1, 1, 1)
    x = sample[:, :, :4].double() * torch.sqrt(sigma**2 + 1)
    denoised = MU + SCALE**2 / (SCALE**2 + sigma**2) * (x - MU)
    v = (x / (sigma**2 + 1) - denoised) * torch.sqrt(sigma**2 + 1) / sigma
    return (v.to(sample.dtype),)


@pytest.fixture
def oracle_pipe(tiny_pipe, monkeypatch):
    monkeypatch.setattr(tiny_pipe.unet, "forward", oracle_forward)
    return tiny_pipe


@pytest.fixture
def clean_latents():
    generator = torch.Generator().manual_seed(1)
    return MU + SCALE * torch.randn(1, 4, 4, 8, 16, generator=generator)


def _condition(frames: int = 4) -> Condition:
    return Condition(torch.zeros(1, 1, 32), torch.zeros(1, 4, 8, 16), torch.zeros(1, 3))


def _reconstruct_with_pipeline(pipe, noise, steps):
    image = Image.new("RGB", (128, 64), (128, 128, 128))
    out = pipe(
        image=image,
        height=64,
        width=128,
        num_frames=noise.shape[1],
        num_inference_steps=steps,
        min_guidance_scale=1.0,
        max_guidance_scale=1.0,
        latents=noise,
        output_type="latent",
    )
    return out.frames


@pytest.mark.parametrize("reconstruct", ["diffusers", "framerelay"])
def test_inversion_error_falls_as_steps_grow(oracle_pipe, clean_latents, reconstruct):
    errors = []
    for steps in (10, 25, 50):
        inversion = invert(oracle_pipe, clean_latents, _condition(), steps)
        if reconstruct == "diffusers":
            rebuilt = _reconstruct_with_pipeline(oracle_pipe, inversion.noise, steps)
        else:
            rebuilt = sample_edit(oracle_pipe, inversion, _condition(), 1.0, 1.0)
        errors.append(float((rebuilt - clean_latents).abs().max()))
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.5 * float(clean_latents.abs().max())


def test_inverted_noise_has_sigma_max_scale(oracle_pipe, clean_latents):
    inversion = invert(oracle_pipe, clean_latents, _condition(), 25)
    assert inversion.trajectory[0].std() == pytest.approx(700.0, rel=0.3)  # Euler undershoots
    assert inversion.noise.std() == pytest.approx(1.0, rel=0.3)
    assert inversion.init_noise_sigma == pytest.approx(math.sqrt(700.0**2 + 1))


def test_forgetting_init_noise_sigma_division_fails(oracle_pipe, clean_latents):
    inversion = invert(oracle_pipe, clean_latents, _condition(), 25)
    right = _reconstruct_with_pipeline(oracle_pipe, inversion.noise, 25)
    wrong = _reconstruct_with_pipeline(oracle_pipe, inversion.trajectory[0], 25)
    right_error = float((right - clean_latents).abs().max())
    wrong_error = float((wrong - clean_latents).abs().max())
    assert right_error < 0.2
    assert wrong_error > 10 * right_error


def test_trajectory_holds_one_latent_per_denoising_sigma(oracle_pipe, clean_latents):
    inversion = invert(oracle_pipe, clean_latents, _condition(), 10)
    assert len(inversion.trajectory) == inversion.steps == 10
    stds = [float(t.std()) for t in inversion.trajectory]
    assert stds == sorted(stds, reverse=True)  # noisiest first, like the denoising schedule


def test_one_step_inverts_from_svds_sigma_min_in_one_euler_step(oracle_pipe, clean_latents):
    from framerelay.engine.denoiser import predict_v
    from framerelay.engine.edm import ONE_STEP_SIGMA_MIN, denoised, euler_step

    inversion = invert(oracle_pipe, clean_latents, _condition(), 1)
    assert inversion.steps == 1 and len(inversion.trajectory) == 1
    assert inversion.first_sigma == pytest.approx(ONE_STEP_SIGMA_MIN)
    v = predict_v(oracle_pipe.unet, clean_latents, ONE_STEP_SIGMA_MIN, _condition())
    x0 = denoised(v, clean_latents, ONE_STEP_SIGMA_MIN)
    expected = euler_step(clean_latents, x0, ONE_STEP_SIGMA_MIN, 700.0)
    torch.testing.assert_close(inversion.trajectory[0], expected)
    rebuilt = sample_edit(oracle_pipe, inversion, _condition(), 1.0, 1.0)
    assert rebuilt.shape == clean_latents.shape and bool(torch.isfinite(rebuilt).all())
