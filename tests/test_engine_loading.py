from __future__ import annotations

import json

import pytest
import torch

from framerelay.engine.loading import choose_placement, load_pipeline
from framerelay.errors import InvalidSpecError, ModelMissingError

CPU = choose_placement("cpu")


def test_cpu_defaults_to_fp32():
    assert CPU.device.type == "cpu" and CPU.dtype is torch.float32
    assert choose_placement("cpu", "bf16").dtype is torch.bfloat16


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_a_clear_error():
    with pytest.raises(InvalidSpecError, match="no CUDA GPU") as caught:
        choose_placement("cuda")
    assert "--device cpu" in caught.value.hint


def test_unknown_dtype_and_device_are_errors():
    with pytest.raises(InvalidSpecError, match="unknown dtype"):
        choose_placement("cpu", "fp8")
    with pytest.raises(InvalidSpecError, match="unknown device"):
        choose_placement("tpu-of-the-future")


def test_loads_a_saved_folder_through_the_real_path(tiny_model_dir):
    pipe = load_pipeline(str(tiny_model_dir), CPU)
    assert type(pipe).__name__ == "StableVideoDiffusionPipeline"
    assert pipe.unet.dtype is torch.float32 and pipe.unet.device.type == "cpu"
    bf16 = load_pipeline(str(tiny_model_dir), choose_placement("cpu", "bf16"))
    assert bf16.unet.dtype is torch.bfloat16


def test_missing_folder_says_how_to_get_the_model(tmp_path):
    with pytest.raises(ModelMissingError) as caught:
        load_pipeline(str(tmp_path / "nowhere" / "svd"), CPU)
    assert "no such folder" in caught.value.message
    assert "--model" in caught.value.hint


def test_folder_that_is_not_a_diffusers_model(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({}))
    with pytest.raises(ModelMissingError, match=r"model_index\.json"):
        load_pipeline(str(tmp_path), CPU)


def test_hub_id_not_in_the_local_cache_fails_fast_with_a_hint(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(ModelMissingError) as caught:
        load_pipeline("stabilityai/stable-video-diffusion-img2vid", CPU, local_files_only=True)
    assert "stabilityai/stable-video-diffusion-img2vid" in caught.value.message
    assert "hf auth login" in caught.value.hint
