"""Run the whole single-clip pipeline on tiny built-in components: proves an install works."""

from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from framerelay.engine.params import EngineParams
from framerelay.engine.request import EditRequest
from framerelay.engine.run import run_edit
from framerelay.engine.tiny import save_tiny_pipeline
from framerelay.errors import InternalError
from framerelay.media import image, video, writer
from framerelay.progress import ProgressSink, ignore_progress

FRAMES, WIDTH, HEIGHT, FPS = 6, 160, 96, Fraction(30000, 1001)


@dataclass(frozen=True)
class SelfTestReport:
    seconds: float
    frames: int
    fps: Fraction
    size: tuple[int, int]


def synthetic_frames(count: int, width: int, height: int) -> np.ndarray:
    """A ball moving over a gradient, (N, H, W, 3) uint8."""
    y, x = np.mgrid[0:height, 0:width]
    frames = np.empty((count, height, width, 3), dtype=np.uint8)
    for i in range(count):
        cx, cy = width * (0.2 + 0.6 * i / max(1, count - 1)), height / 2
        ball = (x - cx) ** 2 + (y - cy) ** 2 < (height / 5) ** 2
        frames[i, ..., 0] = np.where(ball, 230, 40 + 150 * x // width)
        frames[i, ..., 1] = np.where(ball, 60, 80 + 100 * y // height)
        frames[i, ..., 2] = np.where(ball, 50, 180)
    return frames


def run_selftest(workdir: Path, progress: ProgressSink = ignore_progress) -> SelfTestReport:
    start = time.perf_counter()
    model = save_tiny_pipeline(workdir / "tiny-svd")
    frames = synthetic_frames(FRAMES, WIDTH, HEIGHT)
    source = workdir / "source.mp4"
    writer.write_video(frames, source, FPS)
    edited = frames[0].astype(np.float32) / 255.0
    edited[..., [0, 2]] = edited[..., [2, 0]]  # swap red and blue: a recoloured ball
    edited_path = workdir / "edited.png"
    image.save_png(edited, edited_path)
    request = EditRequest(
        source=source,
        edited_frames=(edited_path,),
        outputs=(workdir / "result.mp4",),
        model=str(model),
        device="cpu",
        params=EngineParams(height=64, width=128, steps=4, source_memory_budget_mb=64),
    )
    result = run_edit(request, progress=progress)
    info = video.probe(result.outputs[0])
    if (info.frame_count, info.fps, (info.width, info.height)) != (FRAMES, FPS, (WIDTH, HEIGHT)):
        raise InternalError(
            f"self-test output has {info.frame_count} frames at {info.fps} fps, "
            f"{info.width}x{info.height}; expected {FRAMES} at {FPS}, {WIDTH}x{HEIGHT}."
        )
    return SelfTestReport(time.perf_counter() - start, info.frame_count, info.fps, (WIDTH, HEIGHT))
