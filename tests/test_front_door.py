"""One front door: `framerelay edit` builds the job `framerelay submit` sends (frames and the
source's rate, converted from seconds or a sequence's frame numbers once, at the CLI) and runs it
through the daemon worker's executor, so the same inputs give the same frames, bit for bit, and
the same account of what the job did."""

from __future__ import annotations

import argparse
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from framerelay.cli import edit, main, submit
from framerelay.media.image import load_image
from framerelay.proto.v1 import specs_pb2
from framerelay.service.convert import spec_from_proto
from tests.daemon_harness import kinds, running_daemon
from tests.media_factory import make_clip, make_sequence, pattern_frame, pattern_frames, write_image

FLAGS = {"height": 64, "width": 128, "steps": 2, "window": 4, "seed": 7}
LORA = {"lora_steps": 1, "lora_rank": 2}


def flags(values: dict[str, int]) -> list[str]:
    return [f"--{name.replace('_', '-')}={value}" for name, value in values.items()]


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> tuple[Path, Path]:
    """A 9-frame clip at 10 fps, made once (x264 through PyAV does not always encode the same
    frames to the same bits), and an edited first frame."""
    root = tmp_path_factory.mktemp("media")
    source = make_clip(root / "source.mp4", n=9, width=96, height=64, fps=Fraction(10))
    frame = pattern_frame(2, 96, 64).copy()
    frame[10:30, 20:50] = (255, 0, 0)
    return source, write_image(root / "edit.png", frame)


def parse(register, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(argv)


def test_edit_builds_the_job_submit_sends(media, tmp_path):
    source, edited = media
    common = [str(source), str(edited), *flags(FLAGS), "--preset", "style", "--no-audio"]
    output = ["-o", str(tmp_path / "take"), "--format", "png"]
    by_seconds, outputs = edit.build_job(
        parse(edit.register, ["edit", *common, *output, "--start", "0.2", "--end", "0.7"])
    )
    by_frames, _ = edit.build_job(
        parse(edit.register, ["edit", *common, *output, "--in", "2", "--out", "7"])
    )
    sent = submit.build_spec(
        parse(
            submit.register, ["submit", *common, "--format", "png", "--in=2", "--out=7", "--fps=10"]
        )
    )
    assert by_seconds == by_frames
    assert by_frames.frame_range.count == 5 and by_frames.source_fps == Fraction(10)
    assert replace(by_frames, model="") == spec_from_proto(sent)  # submit: the daemon's model
    assert outputs == (tmp_path / "take",)


def test_a_sequences_frame_numbers_become_frames_from_its_first(tmp_path):
    folder = make_sequence(tmp_path / "shot", list(pattern_frames(8, 64, 64)), "png", first=1001)
    edited = write_image(tmp_path / "e.png", pattern_frame(2, 64, 64))
    argv = ["edit", str(folder), str(edited), "-o", str(tmp_path / "o.mov"), "--fps", "23.976"]
    spec, _ = edit.build_job(parse(edit.register, [*argv, "--in", "1003", "--out", "1008"]))
    assert (spec.frame_range.in_frame, spec.frame_range.out_frame) == (2, 7)
    assert spec.source_fps == Fraction(24000, 1001) and spec.sequence_fps is None
    whole, _ = edit.build_job(parse(edit.register, argv))  # no range: the rate is the sequence's
    assert whole.frame_range is None and whole.sequence_fps == Fraction(24000, 1001)


def frames_of(folder: Path) -> np.ndarray:
    files = sorted(folder.glob("frame_*.png"))
    assert files, f"no frames in {folder}"
    return np.stack([load_image(f) for f in files])


@pytest.mark.slow
def test_edit_and_a_daemon_job_give_the_same_frames_and_the_same_account(
    tiny_model_dir, media, tmp_path, capsys
):
    from framerelay.jobs.engine_executor import EngineExecutor

    source, edited = media
    values = {**FLAGS, **LORA}
    argv = ["edit", str(source), str(edited), "-o", str(tmp_path / "cli"), "--format", "png"]
    argv += ["--start", "0.2", "--end", "0.7", "--model", str(tiny_model_dir), "--device", "cpu"]
    argv += ["--quiet", "--cache-dir", str(tmp_path / "cli-cache"), *flags(values)]
    assert main(argv) == 0
    printed = capsys.readouterr().out

    spec = specs_pb2.JobSpec(
        source_path=str(source),
        edited_frame_paths=[str(edited)],
        frame_range=specs_pb2.FrameRange(in_frame=2, out_frame=7),
        source_fps=specs_pb2.Rational(num=10, den=1),
        params=specs_pb2.EditParams(**values),
        output=specs_pb2.OutputSpec(
            format=specs_pb2.OUTPUT_FORMAT_PNG, folder=str(tmp_path / "daemon")
        ),
    )
    executor = EngineExecutor(default_model=str(tiny_model_dir), device="cpu")
    with running_daemon(tmp_path / "state", executor, output_roots=(tmp_path,)) as (_, client):
        job = client.submit(spec)
        events = list(client.watch(job.id))
    assert kinds(events)[-1] == "finished", events[-1]
    finished = events[-1].finished

    ours, theirs = frames_of(tmp_path / "cli"), frames_of(Path(finished.output_paths[0]))
    assert ours.shape == theirs.shape == (5, 64, 96, 3)
    assert np.array_equal(ours, theirs), f"up to {np.abs(ours - theirs).max()} apart"

    # The finished event says what the job did, as `framerelay edit` prints it.
    (choice,) = finished.preset_choices
    assert choice.chosen_by_auto and choice.preset == finished.preset
    assert choice.reason.startswith(f"{choice.preset}: the edit changed ")
    assert (finished.frame_count, finished.fps.num, finished.fps.den) == (5, 10, 1)
    assert (finished.seed, finished.windows, finished.cache_hits) == (7, 2, 0)
    assert finished.lora_steps_run == 2  # one step in each window
    assert set(finished.phase_seconds) == {"decode", "load", "lora", "invert", "edit", "encode"}
    assert all(seconds >= 0 for seconds in finished.phase_seconds.values())
    assert "seed 7; decode " in printed
    line = f"5 frames, 10 fps, 96x64, preset {choice.reason}, 2 window(s), 2 LoRA steps, 0 cache"
    assert line in printed
