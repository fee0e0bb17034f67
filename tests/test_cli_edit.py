"""`framerelay edit` end to end on tiny real components: geometry, frame count and fps survive,
and bad input gets one line with a hint and exit status 2."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from framerelay.cli import main
from framerelay.media.video import probe
from tests.media_factory import NTSC, make_clip, pattern_frame, write_image

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--height", "64", "--width", "128", "--steps", "3", "--quiet", "--device", "cpu"]
FAST += ["--lora-steps", "2", "--lora-rank", "4", "--no-cache"]


def _edited_frame(path: Path, width: int, height: int, **kwargs) -> Path:
    frame = pattern_frame(0, width, height).copy()
    frame[height // 4 : height // 2, width // 4 : width // 2] = (255, 0, 0)
    return write_image(path, frame, **kwargs)


@pytest.mark.parametrize(
    ("width", "height", "count"),
    [(160, 96, 10), (128, 96, 5), (72, 128, 4)],  # 5:3 (not 16:9), 4:3, 9:16
)
@pytest.mark.slow
def test_edit_keeps_frame_count_fps_and_size(
    tmp_path, tiny_model_dir, capsys, width, height, count
):
    source = make_clip(tmp_path / "source.mp4", n=count, width=width, height=height, fps=NTSC)
    edited = _edited_frame(tmp_path / "edited.png", width, height)
    output = tmp_path / "out" / "result.mp4"
    status = main(
        ["edit", str(source), str(edited), "-o", str(output), "--model", str(tiny_model_dir), *FAST]
    )
    assert status == 0
    info = probe(output)
    assert (info.frame_count, info.fps, info.width, info.height) == (count, NTSC, width, height)
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith(f"wrote {output}: {count} frames, 30000/1001 fps, {width}x{height}")


@pytest.mark.slow
def test_edit_writes_prores_and_png_sequences(tmp_path, tiny_model_dir):
    source = make_clip(tmp_path / "source.mp4", n=4, width=96, height=64, fps=Fraction(25))
    edited = _edited_frame(tmp_path / "edited.png", 96, 64)
    mov = tmp_path / "result.mov"
    assert (
        main(
            [
                "edit",
                str(source),
                str(edited),
                "-o",
                str(mov),
                "--model",
                str(tiny_model_dir),
                *FAST,
            ]
        )
        == 0
    )
    assert probe(mov).codec == "prores" and probe(mov).frame_count == 4
    frames = tmp_path / "frames"
    args = ["edit", str(source), str(edited), "-o", str(frames), "--format", "png"]
    assert main([*args, "--model", str(tiny_model_dir), *FAST]) == 0
    assert len(sorted(frames.glob("frame_*.png"))) == 4


def test_time_window_selects_frames(tmp_path, tiny_model_dir):
    source = make_clip(tmp_path / "source.mp4", n=12, width=96, height=64, fps=Fraction(10))
    edited = _edited_frame(tmp_path / "edited.png", 96, 64)
    output = tmp_path / "window.mp4"
    args = ["edit", str(source), str(edited), "-o", str(output), "--start", "0.2", "--end", "0.7"]
    assert main([*args, "--model", str(tiny_model_dir), *FAST]) == 0
    assert probe(output).frame_count == 5


@pytest.mark.parametrize("kind", ["rgba", "gray16", "rgb16", "larger"])
@pytest.mark.slow
def test_edited_frames_are_converted_not_refused(tmp_path, tiny_model_dir, kind):
    source = make_clip(tmp_path / "source.mp4", n=3, width=96, height=64)
    frame = pattern_frame(0, 96, 64)
    if kind == "rgba":
        image = np.dstack([frame, np.full((64, 96), 255, np.uint8)])
    elif kind == "gray16":
        image = (frame.mean(axis=2) * 257).astype(np.uint16)
    elif kind == "rgb16":
        image = frame.astype(np.uint16) * 257
    else:  # same aspect, twice the size
        image = np.repeat(np.repeat(frame, 2, axis=0), 2, axis=1)
    edited = write_image(tmp_path / "edited.png", image)
    output = tmp_path / "out.mp4"
    assert (
        main(
            [
                "edit",
                str(source),
                str(edited),
                "-o",
                str(output),
                "--model",
                str(tiny_model_dir),
                *FAST,
            ]
        )
        == 0
    )
    assert probe(output).frame_count == 3


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    return subprocess.run(
        [sys.executable, "-m", "framerelay", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[str], str]]:
    good_clip = make_clip(tmp_path / "good.mp4", n=3, width=96, height=64)
    one_frame = make_clip(tmp_path / "one.mp4", n=1, width=96, height=64)
    good_edit = _edited_frame(tmp_path / "edit.png", 96, 64)
    wrong_aspect = _edited_frame(tmp_path / "square.png", 64, 64)
    not_image = tmp_path / "notes.png"
    not_image.write_text("this is not an image")
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("this is not a video")
    out = str(tmp_path / "out.mp4")
    return {
        "missing source": ([str(tmp_path / "nope.mp4"), str(good_edit), "-o", out], "nope.mp4"),
        "not a video": ([str(not_video), str(good_edit), "-o", out], "notes.mp4"),
        "one frame": ([str(one_frame), str(good_edit), "-o", out], "frame"),
        "missing edit": ([str(good_clip), str(tmp_path / "none.png"), "-o", out], "none.png"),
        "not an image": ([str(good_clip), str(not_image), "-o", out], "notes.png"),
        "wrong aspect": ([str(good_clip), str(wrong_aspect), "-o", out], "aspect"),
        "bad output": ([str(good_clip), str(good_edit), "-o", str(tmp_path / "x.avi")], "avi"),
        "bad size": (
            [str(good_clip), str(good_edit), "-o", out, "--height", "100"],
            "multiple of 64",
        ),
    }


def test_bad_input_gets_one_line_a_hint_and_status_2(tmp_path, tiny_model_dir, capsys):
    for name, (args, mention) in _bad_inputs(tmp_path).items():
        status = main(["edit", *args, "--model", str(tiny_model_dir), "--quiet", "--steps", "2"])
        stderr = capsys.readouterr().err
        assert status == 2, (name, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 2, (name, stderr)
        assert lines[0].startswith("framerelay: error: ") and mention in lines[0], (name, lines)
        assert lines[1].startswith("hint: ") and len(lines[1]) > 10, (name, lines)


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path):
    result = _run_cli(
        "--debug", "edit", str(tmp_path / "nope.mp4"), str(tmp_path / "e.png"), "-o", "x.mp4"
    )
    assert result.returncode != 0 and "Traceback" in result.stderr


@pytest.mark.slow
def test_missing_model_fails_with_the_one_line_hint(tmp_path):
    source = make_clip(tmp_path / "source.mp4", n=3, width=96, height=64)
    edited = _edited_frame(tmp_path / "edited.png", 96, 64)
    env_home = tmp_path / "hf"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "framerelay",
            "edit",
            str(source),
            str(edited),
            "-o",
            str(tmp_path / "o.mp4"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT / "daemon"),
            "HF_HUB_OFFLINE": "1",
            "HF_HOME": str(env_home),
        },
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == (
        "framerelay: error: cannot load the model 'stabilityai/stable-video-diffusion-img2vid': "
        "it is not in the local Hugging Face cache and cannot be downloaded now"
    )
    assert "hf auth login" in lines[1] and "--model" in lines[1]


@pytest.mark.slow
def test_edit_with_a_mask_over_two_windows(tmp_path, tiny_model_dir):
    source = make_clip(tmp_path / "source.mp4", n=6, width=96, height=64)
    edited = _edited_frame(tmp_path / "edited.png", 96, 64)
    mask = np.zeros((64, 96), np.uint8)
    mask[16:32, 24:48] = 255
    mask_path = write_image(tmp_path / "mask.png", mask)
    output = tmp_path / "masked.mp4"
    args = ["edit", str(source), str(edited), "-o", str(output), "--mask", str(mask_path)]
    assert main([*args, "--window", "4", "--model", str(tiny_model_dir), *FAST]) == 0
    assert probe(output).frame_count == 6
