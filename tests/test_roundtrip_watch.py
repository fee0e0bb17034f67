import os
import time
from pathlib import Path

import pytest

from framerelay.roundtrip.watch import SaveWatcher, is_image_name
from tests.roundtrip_support import (
    SAVE_STYLES,
    Recorder,
    make_frame,
    png_bytes,
    save_atomic_replace,
)


def _exported(folder: Path) -> int:
    target = folder / "frame_edit.png"
    target.write_bytes(png_bytes(make_frame()))
    return target.stat().st_mtime_ns


@pytest.mark.parametrize("polling", [False, True], ids=["notify", "polling"])
@pytest.mark.parametrize("style", sorted(SAVE_STYLES))
@pytest.mark.slow
def test_each_completed_save_fires_exactly_once(tmp_path, style, polling):
    since = _exported(tmp_path)
    saves = Recorder()
    save = SAVE_STYLES[style]
    with SaveWatcher(tmp_path, saves, since_ns=since, polling=polling):
        save(tmp_path / "frame_edit.png", png_bytes(make_frame(seed=1)))
        saves.wait_count(1)
        save(tmp_path / "frame_edit.png", png_bytes(make_frame(seed=2)))
        saves.wait_count(2)
        fired = saves.stays(2)
    assert fired == [tmp_path.resolve() / "frame_edit.png"] * 2


@pytest.mark.slow
def test_a_new_file_saved_as_psd_fires_with_its_own_path(tmp_path):
    since = _exported(tmp_path)
    saves = Recorder()
    with SaveWatcher(tmp_path, saves, since_ns=since):
        save_atomic_replace(tmp_path / "frame_edit.psd", b"8BPS not parsed by the watcher")
        assert saves.wait_count(1) == [tmp_path.resolve() / "frame_edit.psd"]
        saves.stays(1)


@pytest.mark.slow
def test_files_not_newer_than_the_export_and_other_names_are_ignored(tmp_path):
    since = _exported(tmp_path)
    saves = Recorder()
    with SaveWatcher(tmp_path, saves, since_ns=since):
        old = tmp_path / "old.png"
        old.write_bytes(b"x")
        os.utime(old, ns=(since - 10**9, since - 10**9))
        (tmp_path / "notes.txt").write_text("not an image")
        (tmp_path / "frame_edit.png.tmp").write_bytes(b"partial")
        (tmp_path / "subfolder").mkdir()
        (tmp_path / "subfolder" / "inside.png").write_bytes(b"not watched")
        saves.stays(0, seconds=2.0)


@pytest.mark.slow
def test_a_save_made_before_the_watch_started_is_found(tmp_path):
    since = _exported(tmp_path)
    time.sleep(0.01)
    save_atomic_replace(tmp_path / "frame_edit.png", png_bytes(make_frame(seed=3)))
    saves = Recorder()
    with SaveWatcher(tmp_path, saves, since_ns=since):
        assert saves.wait_count(1) == [tmp_path.resolve() / "frame_edit.png"]
        saves.stays(1)


def test_a_failing_callback_does_not_stop_the_watch(tmp_path):
    since = _exported(tmp_path)
    saves = Recorder()

    def on_save(path: Path) -> None:
        saves(path)
        if len(saves.items) == 1:
            raise RuntimeError("handler bug")

    with SaveWatcher(tmp_path, on_save, since_ns=since):
        save_atomic_replace(tmp_path / "a.png", png_bytes(make_frame(seed=4)))
        saves.wait_count(1)
        save_atomic_replace(tmp_path / "b.png", png_bytes(make_frame(seed=5)))
        saves.wait_count(2)


def test_stop_is_prompt_and_idempotent(tmp_path):
    watcher = SaveWatcher(tmp_path, Recorder(), since_ns=0)
    watcher.start()
    started = time.monotonic()
    watcher.stop()
    watcher.stop()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("frame_edit.png", True),
        ("Frame_Edit.TIFF", True),
        ("edit.psd", True),
        ("edit.jpeg", True),
        ("frame_edit.png~", False),
        (".goutputstream-ABC", False),
        ("._frame_edit.png", False),
        ("frame_edit.png.tmp4821", False),
        ("psE0A1.tmp", False),
    ],
)
def test_image_names(name, expected):
    assert is_image_name(name) is expected
