"""Inversion + matched edit against plain diffusers SVD sampling, in one run.

CPU (default): the medium random UNet (~28 M parameters), 14 frames at 128x224 px, 25 steps.
--cuda: the real-size SVD UNet/VAE/CLIP with random weights at 576x1024x14 (needs a GPU).

Prints seconds per phase, the ratio to plain sampling, peak memory and the bytes that a clip's
cache entry holds (the inversion trajectory); nothing is written to disk by the matching itself.

Rows: the first edit (inversion + matched edit, the source store sized to the machine); the same
with the source recomputed inline (no store); inversion + edit without matching; and the re-edit
from the cache: the inversion read back from the artifact cache and the source store kept by the
warm engine (what a daemon does when the same clip is edited again), so only the editing pass and
the new condition are timed. Plain sampling and every framerelay row stop at the latents (no VAE
decode in either).
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from framerelay.engine import artifacts, attention
from framerelay.engine.conditioning import encode_condition, encode_video_latents
from framerelay.engine.editing import sample_edit
from framerelay.engine.inversion import invert
from framerelay.engine.params import EngineParams
from framerelay.engine.sarp import perturb_smooth_areas
from framerelay.engine.source_store import window_store


def real_size_pipeline(dtype: torch.dtype):
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

    from framerelay.engine.tiny import svd_scheduler

    torch.manual_seed(0)
    with torch.device("cuda"):
        unet = UNetSpatioTemporalConditionModel()
        vae = AutoencoderKLTemporalDecoder(
            block_out_channels=[128, 256, 512, 512],
            down_block_types=["DownEncoderBlock2D"] * 4,
            latent_channels=4,
        )
        clip = CLIPVisionModelWithProjection(
            CLIPVisionConfig(
                hidden_size=1280,
                num_hidden_layers=32,
                num_attention_heads=16,
                intermediate_size=5120,
                patch_size=14,
                image_size=224,
                projection_dim=1024,
            )
        )
    pipe = StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=clip,
        unet=unet,
        scheduler=svd_scheduler(),
        feature_extractor=CLIPImageProcessorPil(crop_size=224, size=224),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to("cuda", dtype)


def synthetic_clip(frames: int, height: int, width: int) -> torch.Tensor:
    y, x = np.mgrid[0:height, 0:width] / max(height, width)
    clip = []
    for i in range(frames):
        red = 0.5 + 0.5 * np.sin(6 * x + 0.3 * i)
        green = 0.5 + 0.5 * np.cos(5 * y - 0.2 * i)
        blue = np.full_like(x, 0.4)
        clip.append(np.stack([red, green, blue]))
    return torch.tensor(np.stack(clip), dtype=torch.float32) * 2 - 1


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


@dataclass(frozen=True)
class Clock:
    wall: float
    cpu: float  # this process's CPU time: on the CPU with one torch thread, what other programs
    # loading the machine change least (wall time grows with the load average)

    def seconds(self, device: str) -> float:
        return self.cpu if device == "cpu" else self.wall

    def __add__(self, other: Clock) -> Clock:
        return Clock(self.wall + other.wall, self.cpu + other.cpu)

    def show(self, device: str) -> str:
        if device == "cpu":
            return f"{self.cpu:.2f} s CPU ({self.wall:.2f} s wall)"
        return f"{self.wall:.2f} s"


def timed(device: str, fn):
    sync(device)
    start, start_cpu = time.perf_counter(), time.process_time()
    result = fn()
    sync(device)
    return result, Clock(time.perf_counter() - start, time.process_time() - start_cpu)


def peak_memory(device: str) -> str:
    if device == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB VRAM"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10:.0f} MiB RSS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cuda", action="store_true")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument(
        "--budget-mb",
        type=int,
        default=None,
        help="source store budget (default: from free memory)",
    )
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch threads on the CPU")
    args = parser.parse_args()

    if args.cuda:
        device, height, width, dtype = "cuda", 576, 1024, torch.bfloat16
        pipe = real_size_pipeline(dtype)
    else:
        from framerelay.engine.tiny import tiny_pipeline

        torch.set_num_threads(args.threads)
        device, height, width, dtype = "cpu", 128, 224, torch.float32
        pipe = tiny_pipeline("medium", num_frames=args.frames)
    params = EngineParams(height=height, width=width, steps=args.steps)
    frames = synthetic_clip(args.frames, height, width).to(device)
    edited = frames[:1].flip(-1)
    first = Image.fromarray(
        ((frames[0].permute(1, 2, 0).cpu().numpy() + 1) * 127.5).astype("uint8")
    )
    print(f"device {device}, {args.frames} frames at {height}x{width}, {args.steps} steps, {dtype}")

    def plain():
        return pipe(
            image=first,
            height=height,
            width=width,
            num_frames=args.frames,
            num_inference_steps=args.steps,
            min_guidance_scale=1.0,
            max_guidance_scale=2.0,
            output_type="latent",
        ).frames

    latent_hw = (height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)

    def store_for(budget_mb: int | None, inline: bool):
        if inline:
            return attention.SourceAttentionStore(0)
        return window_store(budget_mb, torch.device(device), args.frames, latent_hw, dtype, 8)

    def framerelay(store):
        """Encode, invert (recording into the store) and edit; the condition encoding counts."""
        controller = None
        if store is not None:
            layers = attention.self_attention_layers(pipe.unet)
            controller = attention.AttentionController(
                layers, attention.MatchingConfig(0.5, 0.8), store
            )
            previous = attention.install_processors(pipe.unet, controller)
        try:

            def first_edit():
                generator = torch.Generator().manual_seed(0)
                source = encode_condition(pipe, frames[:1], params, generator)
                perturbed = perturb_smooth_areas(frames, 0.001, 0.005, generator)
                latents = encode_video_latents(pipe, perturbed, 8)
                return invert(pipe, latents, source, args.steps, controller)

            def edit(inversion, seed):
                condition = encode_condition(
                    pipe, edited, params, torch.Generator().manual_seed(seed)
                )
                return sample_edit(pipe, inversion, condition, 1.0, 2.0, controller)

            inversion, t_invert = timed(device, first_edit)
            _, t_edit = timed(device, lambda: edit(inversion, 1))
            t_reedit = None
            if store is not None and len(store) == args.steps:
                with tempfile.TemporaryDirectory() as folder:
                    path = Path(folder) / artifacts.INVERSION_FILE
                    artifacts.save_inversion(inversion, path)

                    def re_edit():
                        cached = artifacts.load_inversion(path, torch.device(device))
                        return edit(cached, 2)

                    _, t_reedit = timed(device, re_edit)
        finally:
            if controller is not None:
                attention.restore_processors(pipe.unet, previous)
        stored = len(store) if store is not None else 0
        ram = store.nbytes if store is not None else 0
        return t_invert, t_edit, t_reedit, inversion.nbytes(), stored, ram

    plain()  # warm-up
    for repeat in range(args.repeats):
        _, plain_clock = timed(device, plain)
        t_plain = plain_clock.seconds(device)
        print(
            f"[{repeat}] plain diffusers sampling: {plain_clock.show(device)} "
            f"({peak_memory(device)}); load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        for label, store in (
            ("framerelay, source store", store_for(args.budget_mb, False)),
            ("framerelay, source inline", store_for(None, True)),
            ("invert + edit, no matching", None),
        ):
            t_inv, t_edit, t_reedit, disk, stored, ram = framerelay(store)
            total = t_inv + t_edit
            print(
                f"[{repeat}] {label}: invert {t_inv.show(device)} + edit {t_edit.show(device)} "
                f"= {total.show(device)}, ratio {total.seconds(device) / t_plain:.2f}x plain; "
                f"steps stored {stored} ({ram / 2**20:.1f} MiB); cache bytes per clip "
                f"{disk / 2**20:.2f} MiB; {peak_memory(device)}; "
                f"load average {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            if t_reedit is not None:
                print(
                    f"[{repeat}] {label}, re-edit from the cache (store kept): "
                    f"{t_reedit.show(device)}, ratio {t_reedit.seconds(device) / t_plain:.2f}x plain",
                    flush=True,
                )


if __name__ == "__main__":
    main()
