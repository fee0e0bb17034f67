"""The command line's input checks: numbers out of range, pipes and unwritable outputs get one
line and a hint with exit status 2, before any work and without a traceback."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from framerelay.cli import main
from tests.daemon_harness import ROOT, daemon_env, make_media

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="FIFOs and /proc")


@pytest.fixture
def media(tmp_path):
    return make_media(tmp_path / "media")


@pytest.fixture
def no_daemon(tmp_path, monkeypatch):
    """Clients look for a daemon in an empty folder: reaching it would say 'not running'."""
    monkeypatch.setenv("FRAMERELAY_CONFIG_DIR", str(tmp_path / "no-daemon"))


def one_error(capsys) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("framerelay: error: "), err
    assert lines[1].startswith("hint: ") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--steps", "-1"], "steps must be 1..200, got -1"),
        (["--steps", "0"], "steps must be 1..200, got 0"),
        (["--seed", str(2**32)], f"seed must be 0..{2**32 - 1}, got {2**32}"),
        (["--seed", "-3"], "seed must be"),
        (["--lora-steps", "-1"], "lora_steps must be 0..1000"),
        (["--lora-rank", "-4"], "lora_rank must be 1..256"),
        (["--width", "-64"], "width must be a multiple of 64"),
        (["--height", str(2**33)], "height must be a multiple of 64"),
        (["--overlap", "-1"], "overlap must be 0..63"),
        (["--in", "-1", "--out", "5", "--fps", "24"], "at least two frames"),
        (["--in", str(2**32), "--out", str(2**32 + 8), "--fps", "24"], "--in 4294967296 is out"),
        (["--in", "0", "--out", "8", "--fps", f"1/{2**40}"], "--fps"),
    ],
)
def test_submit_numbers_out_of_range_are_one_line_and_exit_2(
    media, no_daemon, capsys, flags, words
):
    source, edited = media
    assert main(["submit", str(source), str(edited), *flags]) == 2
    assert words in one_error(capsys)


def test_submit_frame_out_of_range_is_one_line(media, no_daemon, capsys):
    source, _ = media
    assert main(["submit", str(source), "--roundtrip", "--frame", str(2**33)]) == 2
    assert "--frame 8589934592 is out of range" in one_error(capsys)
    assert main(["submit", str(source), "--roundtrip", "--frame", "-1"]) == 2
    assert "--frame must be 0 or more" in one_error(capsys)


def test_in_range_numbers_reach_the_daemon(media, no_daemon, capsys):
    source, edited = media
    flags = ["--steps", "200", "--seed", str(2**32 - 1), "--in", "0", "--out", "8", "--fps", "24"]
    assert main(["submit", str(source), str(edited), *flags]) == 2
    assert "the daemon is not running" in one_error(capsys)


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["jobs", "--limit", "-1"], "--limit must be 0 or more, got -1"),
        (["watch", "abc", "--after-seq", "-3"], "--after-seq must be 0 or more, got -3"),
    ],
)
def test_negative_numbers_of_jobs_and_watch_are_one_line(no_daemon, capsys, argv, words):
    assert main(argv) == 2
    assert words in one_error(capsys)


def test_serve_refuses_a_negative_idle_unload_with_a_hint_about_it(no_daemon, capsys):
    assert main(["serve", "--fake", "--idle-unload", "-3"]) == 2
    error, hint = capsys.readouterr().err.strip().splitlines()
    assert error == "framerelay: error: the idle unload time must be positive, got -3.0."
    assert hint.startswith("hint: ") and "--idle-unload 300" in hint


def test_a_missing_input_lut_gets_a_hint_about_luts(media, tmp_path):
    from framerelay.errors import EditUnreadableError
    from framerelay.jobs.spec import JobSpec

    source, edited = media
    spec = JobSpec(source=source, edited_frames=[edited], input_lut=tmp_path / "log.cube")
    with pytest.raises(EditUnreadableError, match="the input LUT") as error:
        spec.validate()
    assert ".cube" in error.value.hint and "edited frame" not in error.value.hint


def test_two_edits_of_the_same_name_are_refused_before_any_folder_is_made(media, tmp_path, capsys):
    # Each output is named after its edited frame: the same name twice used to make the output
    # folder, then fail with "two edits would write the same output" and "Give distinct outputs".
    source, edited = media
    other = tmp_path / "other"
    other.mkdir()
    twin = other / edited.name
    twin.write_bytes(edited.read_bytes())
    out = tmp_path / "takes" / "take.mp4"
    assert main(["edit", str(source), str(edited), str(twin), "-o", str(out), "--quiet"]) == 2
    line = one_error(capsys)
    assert f"two edited frames are named {edited.stem!r}" in line
    assert not (tmp_path / "takes").exists()


def run_edit_cli(*args: str, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "framerelay", "edit", *args],
        env=daemon_env(root),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )


@posix_only
@pytest.mark.parametrize("which", ["source", "edited"])
def test_edit_refuses_a_fifo_at_once(tmp_path, media, which):
    source, edited = media
    fifo = tmp_path / f"{which}.fifo"
    os.mkfifo(fifo)
    inputs = (fifo, edited) if which == "source" else (source, fifo)
    began = time.monotonic()
    done = run_edit_cli(*map(str, inputs), "-o", str(tmp_path / "out.mp4"), root=tmp_path)
    assert done.returncode == 2, done.stderr
    assert "is a pipe, not a regular file" in done.stderr and "Traceback" not in done.stderr
    assert time.monotonic() - began < 30


@pytest.fixture
def engine_never_runs(monkeypatch):
    """A stand-in for the engine whose run_edit fails the test: the checks come first."""
    engine = ModuleType("framerelay.engine.run")

    def run_edit(*args, **kwargs):
        raise AssertionError("the pipeline ran before the output was checked")

    engine.run_edit = run_edit  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "framerelay.engine.run", engine)


@posix_only
def test_edit_checks_the_output_can_be_written_before_any_work(
    tmp_path, media, capsys, engine_never_runs
):
    source, edited = media
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for output, words in [
        ("/proc/x.mp4", "cannot write in '/proc'"),
        (str(a_file / "x.mp4"), "is a file, not a folder"),
        (str(a_file / "deeper" / "x.mp4"), "is a file, not a folder"),
    ]:
        assert main(["edit", str(source), str(edited), "-o", output]) == 2
        assert words in one_error(capsys)
    read_only = tmp_path / "read-only"
    read_only.mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        assert main(["edit", str(source), str(edited), "-o", str(read_only / "x.mp4")]) == 2
        assert "cannot write in" in one_error(capsys)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (PermissionError(errno.EACCES, "Permission denied", "/renders/x.mp4"), "permission denied"),
        (OSError(errno.ENOSPC, "No space left on device", "/renders/x.mp4"), "the disk is full"),
        (FileNotFoundError(errno.ENOENT, "No such file or directory", "/renders"), "No such file"),
    ],
)
def test_a_late_file_error_is_still_one_line(tmp_path, media, capsys, monkeypatch, error, words):
    pytest.importorskip("torch")
    from framerelay.engine import run

    source, edited = media

    def run_edit(*args, **kwargs):
        raise error

    monkeypatch.setattr(run, "run_edit", run_edit)
    assert main(["edit", str(source), str(edited), "-o", str(tmp_path / "x.mp4")]) == 2
    line = one_error(capsys)
    assert words in line and "/renders" in line
