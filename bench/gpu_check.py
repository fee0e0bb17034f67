"""One-shot GPU check: the real-size SVD (random weights, no download) on one CUDA GPU.

Prints and writes (JSON, after every phase, so a run cut short still leaves its figures):
plain diffusers sampling time; inversion + matched edit time and its ratio to plain sampling; a
re-edit from the kept store; the draft mode (fewer steps, no LoRA); a 20-step motion-LoRA timing
extrapolated to 250 steps; the fused spatial mask against the reference at a real layer size; peak
VRAM per phase. Meant to finish within 8 minutes on an H100 (`--compile` adds the compile time).

    PYTHONPATH=daemon:. python bench/gpu_check.py [--out gpu_check.json] [--compile]
    PYTHONPATH=daemon:. python bench/gpu_check.py --dry-run   # CPU, tiny models: the code paths
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import resource
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch


@dataclass
class Check:
    device: torch.device
    height: int
    width: int
    frames: int
    steps: int
    lora_steps: int
    lora_full_steps: int
    draft_steps: int
    out: Path
    figures: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    budget_s: float = 480.0  # optional phases are skipped once this much time has passed

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def phase(self, name: str, fn, optional: bool = False):
        """Run fn, record seconds and peak memory, write the figures so far; errors are recorded,
        not raised, so that one failing phase does not hide the others. An optional phase is
        skipped once the time budget is spent."""
        if optional and time.perf_counter() - self.started > self.budget_s:
            self.figures.setdefault("phases", {})[name] = {"skipped": "time budget spent"}
            self.write()
            print(f"{name}: skipped (time budget spent)", flush=True)
            return None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        self.sync()
        start = time.perf_counter()
        try:
            result = fn()
            self.sync()
            entry = {"seconds": round(time.perf_counter() - start, 3), **self._peak()}
        except Exception as error:  # a GPU check reports everything it can
            result = None
            entry = {"error": f"{type(error).__name__}: {error}".splitlines()[0]}
            traceback.print_exc()
        self.figures.setdefault("phases", {})[name] = entry
        self.write()
        print(f"{name}: {entry}", flush=True)
        return result

    def _peak(self) -> dict:
        if self.device.type == "cuda":
            return {
                "peak_allocated_gib": round(
                    torch.cuda.max_memory_allocated(self.device) / 2**30, 2
                ),
                "peak_reserved_gib": round(torch.cuda.max_memory_reserved(self.device) / 2**30, 2),
            }
        return {"peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}

    def write(self) -> None:
        self.figures["elapsed_s"] = round(time.perf_counter() - self.started, 1)
        self.out.write_text(json.dumps(self.figures, indent=1), encoding="utf-8")


# -- the pipeline -----------------------------------------------------------------------------


def real_pipeline(device: torch.device, dtype: torch.dtype, frames: int):
    from diffusers import StableVideoDiffusionPipeline
    from transformers import CLIPImageProcessorPil

    from bench.svd_real import real_image_encoder, real_unet, real_vae
    from framerelay.engine.tiny import svd_scheduler

    torch.manual_seed(0)
    with torch.device(device):
        unet, vae, clip = real_unet(frames), real_vae(), real_image_encoder()
    pipe = StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=clip,
        unet=unet,
        scheduler=svd_scheduler(),
        feature_extractor=CLIPImageProcessorPil(crop_size=224, size=224),
    )
    pipe.set_progress_bar_config(disable=True)
    pipe = pipe.to(device, dtype)
    if dtype == torch.float16:
        pipe.vae.to(torch.float32)  # as framerelay's loader does
    for module in (pipe.unet, pipe.vae, pipe.image_encoder):
        module.eval()
    return pipe


def tiny(device: torch.device):
    from framerelay.engine.tiny import tiny_pipeline

    return tiny_pipeline("tiny", num_frames=4).to(device)


# -- phases -----------------------------------------------------------------------------------


def synthetic_clip(frames: int, height: int, width: int, device) -> torch.Tensor:
    y = torch.linspace(0, 1, height).view(height, 1)
    x = torch.linspace(0, 1, width).view(1, width)
    clip = [
        torch.stack(
            [
                0.5 + 0.5 * torch.sin(6 * x + 0.3 * i + 0 * y),
                0.5 + 0.5 * torch.cos(5 * y - 0.2 * i + 0 * x),
                torch.full((height, width), 0.4),
            ]
        )
        for i in range(frames)
    ]
    return (torch.stack(clip) * 2 - 1).to(device)


def run_checks(check: Check, pipe, compile_unet: bool) -> None:
    from PIL import Image

    from framerelay.engine import attention, fused_mask, lora, memory, speed
    from framerelay.engine.conditioning import (
        added_time_ids,
        decode_video_latents,
        encode_condition,
        encode_image_embeddings,
        encode_image_latent,
        encode_video_latents,
    )
    from framerelay.engine.editing import sample_edit
    from framerelay.engine.inversion import invert
    from framerelay.engine.params import EngineParams
    from framerelay.engine.sarp import perturb_smooth_areas
    from framerelay.engine.source_store import window_store

    c = check
    params = EngineParams(height=c.height, width=c.width, steps=c.steps)
    frames = synthetic_clip(c.frames, c.height, c.width, c.device)
    edited = frames[:1].flip(-1)
    first = Image.fromarray(
        ((frames[0].permute(1, 2, 0).cpu().numpy() + 1) * 127.5).clip(0, 255).astype("uint8")
    )
    latent_hw = (c.height // pipe.vae_scale_factor, c.width // pipe.vae_scale_factor)

    def plain(steps: int = c.steps):
        latents = pipe(
            image=first,
            height=c.height,
            width=c.width,
            num_frames=c.frames,
            num_inference_steps=steps,
            min_guidance_scale=1.0,
            max_guidance_scale=2.0,
            output_type="latent",
        ).frames
        return decode_video_latents(pipe, latents, params.decode_chunk_size)

    c.phase("warm-up (plain sampling, 2 steps)", lambda: plain(2))
    c.phase("plain sampling", plain)

    layers = attention.self_attention_layers(pipe.unet)
    config = attention.MatchingConfig(0.5, 0.8)
    dtype = pipe.unet.dtype
    store = window_store(None, c.device, c.frames, latent_hw, dtype, params.decode_chunk_size)
    controller = attention.AttentionController(layers, config, store)
    previous = attention.install_processors(pipe.unet, controller)
    state: dict = {}
    try:

        def invert_phase():
            generator = torch.Generator().manual_seed(0)
            source = encode_condition(pipe, frames[:1], params, generator)
            perturbed = perturb_smooth_areas(frames, 0.001, 0.005, generator)
            latents = encode_video_latents(pipe, perturbed, params.decode_chunk_size)
            state["inversion"] = invert(pipe, latents, source, c.steps, controller)

        def edit_phase():
            generator = torch.Generator().manual_seed(1)
            condition = encode_condition(pipe, edited, params, generator)
            latents = sample_edit(pipe, state["inversion"], condition, 1.0, 2.0, controller)
            return decode_video_latents(pipe, latents, params.decode_chunk_size)

        c.phase("inversion (records the source store)", invert_phase)
        c.figures["store"] = {
            "kept_steps": len(store),
            "steps": c.steps,
            "gib": round(store.nbytes / 2**30, 2),
            "device_gib": round(store.device_nbytes / 2**30, 2),
            "host_gib": round(store.host_nbytes / 2**30, 2),
            "budget": store.budget.describe(),
        }
        if "inversion" in state:
            c.phase("matched edit", edit_phase)
            c.phase("re-edit (store kept)", edit_phase)
    finally:
        attention.restore_processors(pipe.unet, previous)

    draft_params = EngineParams(height=c.height, width=c.width, steps=c.draft_steps)

    def draft_phase():
        """Draft mode (`framerelay edit --draft`): fewer steps, no motion LoRA."""
        draft_store = window_store(
            None, c.device, c.frames, latent_hw, dtype, params.decode_chunk_size
        )
        ctl = attention.AttentionController(layers, config, draft_store)
        saved = attention.install_processors(pipe.unet, ctl)
        try:
            generator = torch.Generator().manual_seed(0)
            source = encode_condition(pipe, frames[:1], draft_params, generator)
            latents = encode_video_latents(pipe, frames, draft_params.decode_chunk_size)
            inversion = invert(pipe, latents, source, c.draft_steps, ctl)
            condition = encode_condition(pipe, edited, draft_params, generator)
            out = sample_edit(pipe, inversion, condition, 1.0, 2.0, ctl)
            return decode_video_latents(pipe, out, draft_params.decode_chunk_size)
        finally:
            attention.restore_processors(pipe.unet, saved)

    c.phase(f"draft: invert + edit, {c.draft_steps} steps, no LoRA", draft_phase, optional=True)

    def lora_phase():
        autocast = dtype if c.device.type == "cuda" else None
        first_frame = frames[:1]
        batch = lora.TrainingBatch(
            video_latents=encode_video_latents(pipe, frames, params.decode_chunk_size).float(),
            condition_latent=encode_image_latent(pipe, first_frame).float(),
            image_embeddings=encode_image_embeddings(pipe, first_frame).float(),
            added_time_ids=added_time_ids(pipe, params).float(),
        )
        stamps: list[float] = []

        def clock(_event) -> None:
            c.sync()
            stamps.append(time.perf_counter())

        training = lora.LoraTrainingParams(steps=c.lora_steps, checkpoint_every=10**6)
        unused = (pipe.vae, pipe.image_encoder)  # off the GPU while the LoRA trains, as run.py
        with (
            tempfile.TemporaryDirectory() as folder,
            memory.off_device(unused, autocast is not None),
        ):
            lora.train_motion_lora(
                pipe.unet, batch, training, Path(folder), clock, autocast_dtype=autocast
            )
        lora.remove_motion_lora(pipe.unet)
        pipe.unet.eval()
        per_step = [b - a for a, b in itertools.pairwise(stamps[1:])]
        if per_step:
            median = sorted(per_step)[len(per_step) // 2]
            c.figures["lora"] = {
                "steps_timed": len(per_step),
                "median_step_s": round(median, 3),
                "extrapolated_s": round(median * c.lora_full_steps, 1),
                "extrapolated_steps": c.lora_full_steps,
                "size": f"{c.height}x{c.width}x{c.frames}",
            }

    c.phase(f"LoRA training, {c.lora_steps} steps", lora_phase)

    def mask_phase():
        heads, tokens, dim = (5, latent_hw[0] * latent_hw[1], 64)
        g = torch.Generator(device=c.device).manual_seed(0)
        q_src, k_src, q_edit, k_edit = (
            torch.randn(2, heads, tokens, dim, generator=g, device=c.device, dtype=dtype)
            for _ in range(4)
        )
        q_edit = q_src + 0.5 * q_edit
        reference = fused_mask.change_mask(q_src, k_src, q_edit, k_edit, dim**-0.5, "reference")
        c.sync()
        start = time.perf_counter()
        fused = fused_mask.change_mask(q_src, k_src, q_edit, k_edit, dim**-0.5, "fused")
        c.sync()
        near = (reference - 0.35).abs() < 1e-3
        c.figures["fused_mask"] = {
            "backend": fused_mask.resolve_backend("auto", c.device),
            "max_abs_diff": float((fused - reference).abs().max()),
            "decisions_differ_away_from_threshold": int(
                (((fused > 0.35) != (reference > 0.35)) & ~near).sum()
            ),
            "fused_s": round(time.perf_counter() - start, 4),
        }

    c.phase("fused mask vs reference", mask_phase, optional=True)

    # The faster paths, switched on one after the other (they stay on for the phases after).
    def matched_pass():
        store = window_store(None, c.device, c.frames, latent_hw, dtype, params.decode_chunk_size)
        ctl = attention.AttentionController(layers, config, store)
        saved = attention.install_processors(pipe.unet, ctl)
        try:
            generator = torch.Generator().manual_seed(0)
            source = encode_condition(pipe, frames[:1], params, generator)
            latents = encode_video_latents(pipe, frames, params.decode_chunk_size)
            inversion = invert(pipe, latents, source, c.steps, ctl)
            condition = encode_condition(pipe, edited, params, generator)
            return sample_edit(pipe, inversion, condition, 1.0, 2.0, ctl)
        finally:
            attention.restore_processors(pipe.unet, saved)

    variants = [("channels-last", speed.Speedups(channels_last=True))]
    if compile_unet:
        variants.append(("compiled", speed.Speedups(channels_last=True, compile=True)))
    for label, speedups in variants:
        speed.apply(pipe, speedups)
        if speedups.compile:
            c.phase("compile (first plain calls, 2 steps)", lambda: plain(2), optional=True)
            c.phase("compile (first matched calls)", matched_pass, optional=True)
        c.phase(f"plain sampling, {label}", plain, optional=True)
        c.phase(f"inversion + matched edit, {label}", matched_pass, optional=True)

    plain_s = c.figures["phases"].get("plain sampling", {}).get("seconds")
    inv = c.figures["phases"].get("inversion (records the source store)", {}).get("seconds")
    edit = c.figures["phases"].get("matched edit", {}).get("seconds")
    again = c.figures["phases"].get("re-edit (store kept)", {}).get("seconds")
    if plain_s and inv and edit:
        c.figures["ratios"] = {
            "invert_plus_edit_over_plain": round((inv + edit) / plain_s, 3),
            "re_edit_over_plain": round(again / plain_s, 3) if again else None,
        }
    c.write()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu_check.json"))
    parser.add_argument("--dtype", choices=("bf16", "fp16"), default=None)
    parser.add_argument("--frames", type=int, default=14)
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet first")
    parser.add_argument("--dry-run", action="store_true", help="CPU, tiny models, tiny size")
    parser.add_argument(
        "--budget-s", type=float, default=420.0, help="skip optional phases after this long"
    )
    args = parser.parse_args(argv)

    if args.dry_run:
        device = torch.device("cpu")
        check = Check(device, 64, 64, 4, 3, 3, 250, 2, args.out)
        pipe = tiny(device)
    else:
        if not torch.cuda.is_available():
            print("no CUDA GPU visible to torch; use --dry-run on a CPU", file=sys.stderr)
            return 2
        device = torch.device("cuda")
        bf16 = torch.cuda.is_bf16_supported()
        name = args.dtype or ("bf16" if bf16 else "fp16")
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[name]
        check = Check(device, 576, 1024, args.frames, 25, 20, 250, 12, args.out)
        check.figures["gpu"] = torch.cuda.get_device_name(device)
        check.figures["dtype"] = name
        pipe = check.phase(
            "build the real-size pipeline", lambda: real_pipeline(device, dtype, args.frames)
        )
        if pipe is None:
            return 1
    check.figures.update(
        {
            "torch": torch.__version__,
            "host": platform.node(),
            "size": f"{check.height}x{check.width}x{check.frames}",
            "steps": check.steps,
            "compile": args.compile,
        }
    )
    check.budget_s = args.budget_s
    run_checks(check, pipe, args.compile)
    print(json.dumps(check.figures, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
