"""`framerelay edit` with issue 19's switches, on tiny real components: --at, the estimate it
prints and keeps learning, a refusal, QC, and a segment of an earlier take."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from framerelay.cli import main
from framerelay.jobs import preflight
from tests.media_factory import make_clip, pattern_frame, write_image

FAST = ["--height", "64", "--width", "128", "--steps", "2", "--quiet", "--device", "cpu"]
FAST += ["--lora-steps", "1", "--lora-rank", "2", "--window", "4", "--format", "png"]


@pytest.fixture
def clip(tmp_path):
    source = make_clip(tmp_path / "source.mp4", n=10, width=96, height=64)
    frame = pattern_frame(5, 96, 64).copy()
    frame[10:30, 20:50] = (255, 0, 0)
    return source, write_image(tmp_path / "edit5.png", frame)


def _edit(tiny_model_dir, tmp_path, source, edited, output, *more) -> int:
    edits = edited if isinstance(edited, list) else [edited]
    return main(
        [
            "edit",
            str(source),
            *map(str, edits),
            "-o",
            str(output),
            "--model",
            str(tiny_model_dir),
            "--cache-dir",
            str(tmp_path / "cache"),
            *FAST,
            *more,
        ]
    )


@pytest.mark.slow
def test_edit_at_a_later_frame_prints_an_estimate_and_a_qc_verdict(
    tmp_path, tiny_model_dir, clip, capsys
):
    source, edited = clip
    output = tmp_path / "take"
    assert _edit(tiny_model_dir, tmp_path, source, edited, output, "--at", "5") == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("estimate: peak VRAM ") and "first guess" in lines[0]
    (verdict,) = [line for line in lines if line.startswith("QC: ")]
    assert verdict.endswith("take.qc.json)")
    assert len(list(output.glob("frame_*.png"))) == 10
    job = json.loads((tmp_path / "take.qc.json").read_text())["job"]
    assert job["edit_frames"] == [5] and job["params"]["window"] == 4
    # the run's speeds are kept: the next estimate is this machine's
    kept = preflight.MachineRecord(Path(__import__("os").environ["FRAMERELAY_DATA_DIR"]))
    assert kept.machine.jobs == 1 and kept.speeds("cpu", str(tiny_model_dir))

    # a segment of that take: windows of the forward half from 5 are [5, 9), [8, 10)
    again = tmp_path / "segment"
    status = _edit(
        tiny_model_dir, tmp_path, source, edited, again, "--at", "5", "--max-guidance", "2.5",
        "--segment-of", str(output), "--segment-from", "9",
    )  # fmt: skip
    assert status == 0
    out = capsys.readouterr().out
    assert "first guess" not in out.splitlines()[0]
    assert "a segment: the take starts at frame 9" in out
    assert len(list(again.glob("frame_*.png"))) == 1


def test_a_job_that_does_not_fit_the_disk_is_refused_with_exit_2(
    tmp_path, tiny_model_dir, clip, capsys, monkeypatch
):
    monkeypatch.setattr(preflight, "free_bytes", lambda _folder: 20_000_000)
    source, edited = clip
    status = _edit(
        tiny_model_dir, tmp_path, source, edited, tmp_path / "take", "--at", "5", "--lora-steps",
        "250", "--height", "576", "--width", "1024", "--window", "14",
    )  # fmt: skip
    assert status == 2
    err = capsys.readouterr().err
    assert "of disk on" in err and "20 MB are free" in err and "cache gc" in err


def test_segment_switches_are_checked(tmp_path, tiny_model_dir, clip, capsys):
    source, edited = clip
    status = _edit(tiny_model_dir, tmp_path, source, edited, tmp_path / "x", "--segment-from", "4")
    assert status == 2 and "need --segment-of" in capsys.readouterr().err
    status = _edit(
        tiny_model_dir, tmp_path, source, edited, tmp_path / "x", "--segment-of",
        str(tmp_path / "nothing"), "--segment-from", "4",
    )  # fmt: skip
    assert status == 2 and "no QC sidecar" in capsys.readouterr().err


@pytest.mark.slow
def test_edits_of_two_frames_make_one_take_through_the_cli(tmp_path, tiny_model_dir, clip, capsys):
    source, edited = clip
    first = write_image(tmp_path / "edit0.png", pattern_frame(0, 96, 64))
    output = tmp_path / "take"
    status = _edit(
        tiny_model_dir, tmp_path, source, [first, edited], output, "--at", "0", "--at", "5",
        "--crossfade-frames", "0",
    )  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert len(list(output.glob("frame_*.png"))) == 10
    job = json.loads((tmp_path / "take.qc.json").read_text())["job"]
    assert job["edit_frames"] == [0, 5] and job["params"]["crossfade_frames"] == 0
