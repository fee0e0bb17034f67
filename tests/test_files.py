"""framerelay.files: the one atomic writer every file the package writes goes through."""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path

import pytest

from framerelay import files
from framerelay.errors import DiskFullError

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX modes")
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/fd")


def test_write_atomic_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "settings.toml"
    files.write_atomic(target, b"old")
    files.write_atomic(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["settings.toml"]


@posix_only
def test_a_private_file_is_never_readable_by_others(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def look_then_replace(src, dst):
        seen.append(stat.S_IMODE(os.stat(src).st_mode))  # the staged file, before it is published
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "replace", look_then_replace)
    files.write_atomic(tmp_path / "daemon.json", b"{}", mode=0o600)
    assert seen == [0o600]
    assert stat.S_IMODE((tmp_path / "daemon.json").stat().st_mode) == 0o600


@linux_only
def test_the_data_and_the_rename_are_made_durable_in_order(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(descriptor):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def replace(src, dst):
        events.append(("rename", str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(files.os, "fsync", fsync)
    monkeypatch.setattr(files.os, "replace", replace)
    target = tmp_path / "frame.png"
    files.write_atomic(target, b"png")
    (synced_file, name), rename, synced_folder = events
    assert synced_file == "fsync" and Path(name).name.startswith(".frame.png.partial-")
    assert rename == ("rename", str(target))
    assert synced_folder == ("fsync", str(tmp_path))


def test_an_error_while_staging_keeps_the_old_file_and_removes_the_staging(tmp_path):
    target = tmp_path / "out.mov"
    target.write_bytes(b"the old take")
    with pytest.raises(RuntimeError), files.replacing(target) as staged:
        staged.write_bytes(b"half a ")
        raise RuntimeError("the encoder died")
    assert target.read_bytes() == b"the old take"
    assert [p.name for p in tmp_path.iterdir()] == ["out.mov"]


def test_a_full_disk_is_disk_full_error_naming_the_file(tmp_path):
    target = tmp_path / "edit_v001.png"
    with pytest.raises(DiskFullError, match=r"edit_v001\.png"), files.replacing(target) as staged:
        staged.write_bytes(b"x")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


def test_a_staged_folder_replaces_a_folder_whole(tmp_path):
    target = tmp_path / "take"
    target.mkdir()
    (target / "frame_000001.png").write_bytes(b"old")
    (target / "frame_000002.png").write_bytes(b"old")
    with files.replacing(target) as staged:
        staged.mkdir()
        (staged / "frame_000001.png").write_bytes(b"new")
    assert sorted(p.name for p in target.iterdir()) == ["frame_000001.png"]
    assert (target / "frame_000001.png").read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["take"]


def test_publish_without_replace_lets_the_first_folder_win(tmp_path):
    first, second = tmp_path / ".tmp-1", tmp_path / ".tmp-2"
    for folder, text in ((first, "first"), (second, "second")):
        folder.mkdir()
        (folder / "meta.json").write_text(text)
    entry = tmp_path / "entry"
    files.publish(first, entry, replace=False)
    with pytest.raises(FileExistsError):
        files.publish(second, entry, replace=False)
    assert (entry / "meta.json").read_text() == "first"
