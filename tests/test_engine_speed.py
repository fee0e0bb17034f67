"""Faster paths: a compiled UNet compiles once per kind of call (no graph breaks, no recompiles per
step), channels-last, the draft mode."""

from __future__ import annotations

import pytest
import torch

from framerelay.engine import attention as A
from framerelay.engine import speed
from framerelay.engine.conditioning import Condition, stack_conditions
from framerelay.engine.denoiser import predict_v
from framerelay.engine.params import DRAFT_STEPS, EngineParams
from framerelay.engine.tiny import tiny_unet


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _condition() -> Condition:
    g = torch.Generator().manual_seed(0)
    return Condition(
        torch.randn(1, 1, 32, generator=g),
        torch.randn(1, 4, 8, 8, generator=g),
        torch.tensor([[6.0, 127.0, 0.02]]),
    )


def test_compiled_matching_unet_does_not_recompile_per_step_or_break_its_graph():
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    unet = tiny_unet(heads=2, num_frames=4).eval()
    layers = A.self_attention_layers(unet)
    controller = A.AttentionController(
        layers, A.MatchingConfig(1.0, 1.0), A.SourceAttentionStore(2**30)
    )
    A.install_processors(unet, controller)
    unet.compile(backend="eager", dynamic=False)
    x = torch.randn(1, 4, 4, 8, 8)
    condition = _condition()
    two = stack_conditions([condition.unconditional(), condition])
    sigmas = [4.0, 2.0, 1.0]
    with torch.no_grad():
        for sigma in sigmas:
            controller.record(sigma, 4)
            predict_v(unet, x, sigma, condition)
            controller.finish_call()
        eager_store = {k: dict(v) for k, v in controller.store._steps.items()}
        outputs = []
        for step, sigma in enumerate(sigmas):  # all in stage 1 (beta1 = 1)
            controller.edit(step, len(sigmas), sigma, 4, 2, False)
            outputs.append(predict_v(unet, torch.cat([x, x]), sigma, two))
            controller.finish_call()
    assert counters["stats"]["unique_graphs"] == 2  # one record graph, one edit graph
    assert sum(counters["graph_break"].values()) == 0
    assert len(eager_store) == 3
    assert all(torch.isfinite(o).all() for o in outputs)


def test_channels_last_keeps_the_output():
    unet = tiny_unet(heads=2, num_frames=4).eval()
    condition = _condition()
    x = torch.randn(1, 4, 4, 8, 8)

    class Pipe:
        pass

    pipe = Pipe()
    pipe.unet = unet
    with torch.no_grad():
        before = predict_v(unet, x, 1.0, condition)
        speed.apply(pipe, speed.Speedups(channels_last=True))
        after = predict_v(unet, x, 1.0, condition)
    conv = next(
        m for m in unet.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size[0] > 1
    )
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)


def test_speedups_are_off_unless_asked(monkeypatch):
    monkeypatch.delenv("FRAMERELAY_COMPILE", raising=False)
    monkeypatch.delenv("FRAMERELAY_CHANNELS_LAST", raising=False)
    assert speed.Speedups.from_env() == speed.Speedups(False, False)
    monkeypatch.setenv("FRAMERELAY_COMPILE", "1")
    monkeypatch.setenv("FRAMERELAY_CHANNELS_LAST", "yes")
    assert speed.Speedups.from_env() == speed.Speedups(True, True)


def test_draft_mode_has_fewer_steps_and_no_lora():
    draft = EngineParams().draft()
    assert draft.steps == DRAFT_STEPS < EngineParams().steps
    assert draft.lora.steps == 0
    assert EngineParams(steps=8).draft().steps == 8  # never more steps than asked
    draft.validate()


def test_the_cli_draft_flag_and_the_default_memory_budget(tmp_path):
    import argparse

    from framerelay.cli import edit

    parser = argparse.ArgumentParser()
    edit.register(parser.add_subparsers())
    base = ["edit", "a.mp4", "e.png", "-o", str(tmp_path / "o.mp4")]
    params = edit.engine_params(parser.parse_args(base))
    assert params.source_memory_budget_mb is None  # sized from free memory
    assert params.steps == 25 and params.lora.steps == 250
    draft = edit.engine_params(parser.parse_args([*base, "--draft"]))
    assert draft.steps == DRAFT_STEPS and draft.lora.steps == 0
