"""Time per motion-LoRA training step, and peak memory.

CPU (default): the medium random UNet (~28 M parameters), 14 frames at 128x224 px (latent 16x28),
rank 32 on all 12 Linears of every temporal block, with and without gradient checkpointing. Each
configuration runs in its own process, so peak RSS is its own. Prints the warm best-of-N seconds
per step (the first step is the warm-up) and the peak RSS.

--cuda: the real-size SVD UNet (default config = the hub's, random fp32 weights) at 512x896 px and
14 frames (latent 64x112), 250 steps, bf16 autocast, gradient checkpointing and a checkpoint every
50 steps, as in production. Prints total and per-step time and peak VRAM.

Run from the repository root: PYTHONPATH=daemon python bench/lora_step.py [--cuda]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from framerelay.engine.lora import LoraTrainingParams, TrainingBatch, train_motion_lora
from framerelay.progress import Progress


def random_batch(
    frames: int, height: int, width: int, embed_dim: int, device: str
) -> TrainingBatch:
    g = torch.Generator().manual_seed(0)
    latent = (height // 8, width // 8)
    return TrainingBatch(
        video_latents=torch.randn(1, frames, 4, *latent, generator=g),
        condition_latent=torch.randn(1, 4, *latent, generator=g),
        image_embeddings=torch.randn(1, 1, embed_dim, generator=g),
        added_time_ids=torch.tensor([[6.0, 127.0, 0.02]]),
    ).to(torch.device(device))


class StepClock:
    """A progress sink that timestamps every finished step."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def __call__(self, event: Progress) -> None:
        self.stamps.append(time.perf_counter())

    def step_seconds(self) -> list[float]:
        return [b - a for a, b in zip(self.stamps, self.stamps[1:], strict=False)]


def run_cpu_config(gradient_checkpointing: bool, steps: int, threads: int) -> dict:
    from framerelay.engine.tiny import medium_unet

    torch.set_num_threads(threads)
    unet = medium_unet(num_frames=14)
    batch = random_batch(14, 128, 224, embed_dim=64, device="cpu")
    params = LoraTrainingParams(
        steps=steps, checkpoint_every=10**6, gradient_checkpointing=gradient_checkpointing
    )
    clock = StepClock()
    with tempfile.TemporaryDirectory() as checkpoints:
        train_motion_lora(unet, batch, params, Path(checkpoints), progress=clock)
    warm = clock.step_seconds()[1:]  # drop the warm-up step
    return {
        "gradient_checkpointing": gradient_checkpointing,
        "best_s": min(warm),
        "median_s": statistics.median(warm),
        "runs_s": [round(s, 3) for s in warm],
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "lora_params": sum(p.numel() for n, p in unet.named_parameters() if ".lora_" in n),
    }


def cpu_benchmark(steps: int, threads: int) -> None:
    print(f"motion LoRA step, CPU, {platform.processor() or platform.machine()}, {threads} threads")
    print("medium UNet, 14 frames, 128x224 px (latent 16x28), rank 32, fp32")
    print(f"warm best of {steps - 1} steps (first step = warm-up); one process per row")
    print(f"{'grad ckpt':>9}  {'best s/step':>11}  {'median':>7}  {'peak RSS':>9}  runs")
    for checkpointing in (False, True):
        command = [sys.executable, __file__, "--one", str(int(checkpointing))]
        command += ["--steps", str(steps), "--threads", str(threads)]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row = json.loads(output.strip().splitlines()[-1])
        print(
            f"{'on' if checkpointing else 'off':>9}  {row['best_s']:>11.2f}  "
            f"{row['median_s']:>7.2f}  {row['peak_rss_mib']:>5.0f} MiB  {row['runs_s']}"
        )
    print(f"LoRA parameters: {row['lora_params']:,}")


def cuda_benchmark(steps: int, gradient_checkpointing: bool) -> None:
    from diffusers import UNetSpatioTemporalConditionModel

    torch.manual_seed(0)
    with torch.device("cuda"):
        unet = UNetSpatioTemporalConditionModel()
    batch = random_batch(14, 512, 896, embed_dim=1024, device="cuda")
    params = LoraTrainingParams(steps=steps, gradient_checkpointing=gradient_checkpointing)
    clock = StepClock()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as checkpoints:
        result = train_motion_lora(
            unet,
            batch,
            params,
            Path(checkpoints),
            progress=clock,
            device="cuda",
            autocast_dtype=torch.bfloat16,
        )
    torch.cuda.synchronize()
    total = time.perf_counter() - start
    per_step = clock.step_seconds()[1:]
    print(f"motion LoRA training, {torch.cuda.get_device_name()}, real-size SVD UNet (random)")
    print(f"512x896 px, 14 frames, {steps} steps, bf16, grad ckpt {gradient_checkpointing}")
    print(
        f"total {total:.1f} s; per step best {min(per_step):.3f} s, "
        f"median {statistics.median(per_step):.3f} s; final loss {result.final_loss:.4f}"
    )
    print(
        f"peak VRAM allocated {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB, "
        f"reserved {torch.cuda.max_memory_reserved() / 2**30:.2f} GiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cuda", action="store_true", help="real size on the GPU")
    parser.add_argument("--steps", type=int, default=None, help="CPU: 6 (1 warm-up); CUDA: 250")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (default 2)")
    parser.add_argument(
        "--no-gradient-checkpointing", action="store_true", help="CUDA: train without it"
    )
    parser.add_argument("--one", choices=("0", "1"), help=argparse.SUPPRESS)  # a CPU row
    args = parser.parse_args()
    if args.one is not None:
        row = run_cpu_config(args.one == "1", args.steps or 6, args.threads)
        print(json.dumps(row))
    elif args.cuda:
        cuda_benchmark(args.steps or 250, not args.no_gradient_checkpointing)
    else:
        cpu_benchmark(args.steps or 6, args.threads)


if __name__ == "__main__":
    main()
