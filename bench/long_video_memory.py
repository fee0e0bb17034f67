"""Peak RSS of a whole long-video edit (tiny random model, CPU) for 3 and for 9 windows.

Each run is its own process, so `ru_maxrss` is that run's peak. Memory must not grow with the
number of windows: decoding, the outputs and the skip-interval anchor are all streamed or bounded.
Also prints the artifact-cache bytes per window (the motion LoRA and the inversion trajectory).

    python bench/long_video_memory.py [--windows 3 9] [--size 128x256]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from fractions import Fraction
from pathlib import Path
import torch
torch.set_num_threads(int(sys.argv[5]))
from framerelay.engine import run
from framerelay.engine.params import EngineParams, MotionLoraParams
from framerelay.engine.request import EditRequest
from framerelay.engine.selftest import synthetic_frames
from framerelay.engine.tiny import save_tiny_pipeline
from framerelay.media import image, writer

folder, frames, height, width = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
model = save_tiny_pipeline(folder / "model")
clip = synthetic_frames(frames, width, height)
writer.write_video(clip, folder / "source.mp4", Fraction(24))
image.save_png(clip[0][..., ::-1].astype("float32") / 255.0, folder / "edit.png")
params = EngineParams(height=height, width=width, steps=10, lora=MotionLoraParams(steps=5, rank=8))
request = EditRequest(source=folder / "source.mp4", edited_frames=(folder / "edit.png",),
    outputs=(folder / "out.mp4",), model=str(model), device="cpu", params=params,
    cache_dir=folder / "cache")
start = time.perf_counter()
result = run.run_edit(request)
cache = sum(p.stat().st_size for p in (folder / "cache").rglob("*") if p.is_file()
            and "checkpoints" not in p.parts)
print(json.dumps({"windows": result.windows, "frames": result.frame_count,
    "seconds": time.perf_counter() - start, "cache_bytes": cache,
    "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def frames_for(windows: int, window: int = 14, overlap: int = 1) -> int:
    return window + (windows - 1) * (window - overlap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--windows", type=int, nargs="+", default=[3, 9])
    parser.add_argument("--size", default="128x256", help="processing HEIGHTxWIDTH")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()
    height, width = (int(v) for v in args.size.split("x"))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    for windows in args.windows:
        with tempfile.TemporaryDirectory() as folder:
            out = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    folder,
                    str(frames_for(windows)),
                    str(height),
                    str(width),
                    str(args.threads),
                ],
                capture_output=True,
                text=True,
                env=env,
            )
        if out.returncode != 0:
            sys.exit(out.stderr)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        per_window = figures["cache_bytes"] / figures["windows"] / 2**20
        print(
            f"{figures['windows']} windows ({figures['frames']} frames at {height}x{width}): "
            f"peak RSS {figures['peak_rss_mib']:.0f} MiB, {figures['seconds']:.1f} s, "
            f"cache {per_window:.2f} MiB per window"
        )


if __name__ == "__main__":
    main()
