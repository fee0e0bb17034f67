"""The artifact cache: keys, atomic commits, LRU eviction, sizes and the `framerelay cache` CLI."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from framerelay.cache import (
    ArtifactCache,
    cache_key,
    default_cache_root,
    format_size,
    hash_frames,
    parse_size,
)
from framerelay.cache.store import STALE_TMP_SECONDS
from framerelay.errors import DiskFullError

ROOT = Path(__file__).resolve().parents[1]
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}

KEY_PARTS = {
    "frames": "ab" * 32,
    "size": (576, 1024),
    "window": 14,
    "overlap": 1,
    "model": "stabilityai/stable-video-diffusion-img2vid",
    "revision": "9cf024d",
    "lora": {"rank": 32, "steps": 250, "lr": 5e-4},
    "format": 1,
}


def write_files(files: dict[str, bytes]):
    def writer(folder: Path) -> None:
        for name, data in files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)

    return writer


def make_key(name: str) -> str:
    return cache_key(name=name)


# keys


def test_key_is_stable_and_independent_of_argument_order():
    reordered = dict(reversed(list(KEY_PARTS.items())))
    reordered["lora"] = {"lr": 5e-4, "steps": 250, "rank": 32}
    assert cache_key(**KEY_PARTS) == cache_key(**reordered)
    assert len(cache_key(**KEY_PARTS)) == 64


@pytest.mark.parametrize(
    ("part", "value"),
    [
        ("frames", "cd" * 32),
        ("size", (512, 896)),
        ("window", 25),
        ("overlap", 0),
        ("model", "stabilityai/stable-video-diffusion-img2vid-xt"),
        ("revision", "0000000"),
        ("lora", {"rank": 16, "steps": 250, "lr": 5e-4}),
        ("lora", {"rank": 32, "steps": 250, "lr": 5.0001e-4}),
        ("format", 2),
    ],
)
def test_key_changes_when_any_part_changes(part, value):
    assert cache_key(**{**KEY_PARTS, part: value}) != cache_key(**KEY_PARTS)


def test_key_changes_when_a_part_is_added_or_renamed():
    base = cache_key(**KEY_PARTS)
    assert cache_key(**KEY_PARTS, extra=None) != base
    renamed = {("win" if k == "window" else k): v for k, v in KEY_PARTS.items()}
    assert cache_key(**renamed) != base


def test_key_normalises_paths_tuples_dataclasses_and_numpy_scalars():
    @dataclasses.dataclass(frozen=True)
    class Params:
        rank: int
        lr: float

    assert cache_key(p=Path("a/b")) == cache_key(p="a/b")
    assert cache_key(s=(1, 2)) == cache_key(s=[1, 2])
    assert cache_key(q=Params(32, 5e-4)) == cache_key(q={"rank": 32, "lr": 5e-4})
    assert cache_key(n=np.int64(7), x=np.float32(0.5)) == cache_key(n=7, x=0.5)
    assert cache_key(fps=Fraction(30000, 1001)) != cache_key(fps=Fraction(30, 1))
    assert cache_key(flag=True) != cache_key(flag=1)


@pytest.mark.parametrize(
    ("parts", "error"),
    [
        ({}, ValueError),
        ({"x": float("nan")}, ValueError),
        ({"x": float("inf")}, ValueError),
        ({"x": object()}, TypeError),
        ({"x": {1: "a"}}, TypeError),
        ({"x": b"bytes"}, TypeError),
    ],
)
def test_key_rejects_values_without_a_stable_form(parts, error):
    with pytest.raises(error):
        cache_key(**parts)


def test_hash_frames_tracks_content_shape_and_dtype():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(4, 16, 24, 3), dtype=np.uint8)
    assert hash_frames(frames) == hash_frames(frames.copy())
    changed = frames.copy()
    changed[3, 15, 23, 2] ^= 1
    assert hash_frames(changed) != hash_frames(frames)
    assert hash_frames(frames.reshape(4, 24, 16, 3)) != hash_frames(frames)
    assert hash_frames(frames.view(np.int8)) != hash_frames(frames)


def test_hash_frames_of_a_strided_view_equals_its_contiguous_copy():
    frames = np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)
    view = frames[:, ::2, ::2]
    assert not view.flags.c_contiguous
    assert hash_frames(view) == hash_frames(np.ascontiguousarray(view))


# entries


def test_miss_then_put_then_hit(tmp_path):
    cache = ArtifactCache(tmp_path)
    key = cache_key(**KEY_PARTS)
    assert cache.get(key) is None

    files = {"adapter.safetensors": b"x" * 1000, "sub/latents.bin": b"y" * 24}
    put = cache.put(key, write_files(files), {"kind": "lora", "steps": 250})
    got = cache.get(key)

    assert got is not None
    assert got.key == put.key == key
    assert got.path == tmp_path / key[:2] / key
    assert got.kind == "lora"
    assert got.bytes == 1024
    assert got.meta == {"steps": 250}
    assert (got.path / "adapter.safetensors").read_bytes() == files["adapter.safetensors"]
    assert (got.path / "sub" / "latents.bin").read_bytes() == files["sub/latents.bin"]
    assert cache.get(cache_key(**{**KEY_PARTS, "window": 25})) is None
    assert [p.name for p in tmp_path.iterdir()] == [key[:2]]  # no temp dir left behind


def test_put_of_an_existing_key_keeps_the_entry_and_skips_the_writer(tmp_path):
    cache = ArtifactCache(tmp_path)
    key = make_key("a")
    cache.put(key, write_files({"f": b"first"}), {"kind": "lora"})

    def must_not_run(folder: Path) -> None:
        raise AssertionError("writer called for an existing entry")

    entry = cache.put(key, must_not_run, {"kind": "lora"})
    assert (entry.path / "f").read_bytes() == b"first"


def test_concurrent_writer_of_the_same_key_wins_and_our_temp_dir_is_discarded(tmp_path):
    cache = ArtifactCache(tmp_path)
    key = make_key("race")

    def slow_writer(folder: Path) -> None:
        (folder / "f").write_bytes(b"ours")
        # another process commits the same key while we are still writing
        ArtifactCache(tmp_path).put(key, write_files({"f": b"theirs"}), {"kind": "lora"})

    entry = cache.put(key, slow_writer, {"kind": "lora"})
    assert (entry.path / "f").read_bytes() == b"theirs"
    assert cache.get(key).path == entry.path
    assert [p.name for p in tmp_path.iterdir()] == [key[:2]]


def test_a_failing_writer_leaves_nothing(tmp_path):
    cache = ArtifactCache(tmp_path)
    key = make_key("fail")

    def writer(folder: Path) -> None:
        (folder / "half").write_bytes(b"x")
        raise RuntimeError("encoder crashed")

    with pytest.raises(RuntimeError, match="encoder crashed"):
        cache.put(key, writer, {"kind": "lora"})
    assert cache.get(key) is None
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_raises_disk_full_error(tmp_path):
    cache = ArtifactCache(tmp_path)

    def writer(folder: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError, match="full"):
        cache.put(make_key("big"), writer, {"kind": "inversion"})
    assert list(tmp_path.iterdir()) == []


def test_reserved_and_non_json_metadata_are_refused_before_writing(tmp_path):
    cache = ArtifactCache(tmp_path)
    calls = []
    with pytest.raises(ValueError, match="reserved"):
        cache.put(make_key("m"), calls.append, {"bytes": 3})
    with pytest.raises(TypeError):
        cache.put(make_key("m"), calls.append, {"when": object()})
    assert calls == []


@pytest.mark.parametrize("bad", ["", "abc", "A" * 64, "../" + "a" * 61, "g" * 64])
def test_malformed_keys_are_refused(tmp_path, bad):
    with pytest.raises(ValueError, match="64 lowercase hex"):
        ArtifactCache(tmp_path).get(bad)


def test_directories_without_a_valid_meta_are_not_entries(tmp_path):
    cache = ArtifactCache(tmp_path)
    no_meta, corrupt, wrong_key = make_key("1"), make_key("2"), make_key("3")
    (tmp_path / no_meta[:2] / no_meta).mkdir(parents=True)
    (tmp_path / no_meta[:2] / no_meta / "data").write_bytes(b"x")
    (tmp_path / corrupt[:2] / corrupt).mkdir(parents=True)
    (tmp_path / corrupt[:2] / corrupt / "meta.json").write_text("{not json")
    good = cache.put(make_key("good"), write_files({"d": b"1"}), {"kind": "lora"})
    (tmp_path / wrong_key[:2]).mkdir(exist_ok=True)
    (tmp_path / wrong_key[:2] / wrong_key).mkdir()
    (tmp_path / wrong_key[:2] / wrong_key / "meta.json").write_bytes(
        (good.path / "meta.json").read_bytes()
    )

    for key in (no_meta, corrupt, wrong_key):
        assert cache.get(key) is None
    assert [e.key for e in cache.ls()] == [good.key]

    # a later put of a garbage-occupied key replaces the garbage
    entry = cache.put(no_meta, write_files({"data": b"fresh"}), {"kind": "lora"})
    assert (entry.path / "data").read_bytes() == b"fresh"


def test_ls_total_remove_and_clear(tmp_path):
    cache = ArtifactCache(tmp_path)
    sizes = {"a": 100, "b": 2000, "c": 30}
    for name, size in sizes.items():
        cache.put(make_key(name), write_files({"f": b"x" * size}), {"kind": f"kind-{name}"})
    listed = cache.ls()
    assert [e.kind for e in listed] == ["kind-c", "kind-b", "kind-a"]  # most recent first
    assert all(e.created <= e.last_used for e in listed)
    assert cache.total_bytes() == 2130

    assert cache.remove(make_key("b")) == 2000
    assert cache.remove(make_key("b")) == 0
    assert cache.get(make_key("b")) is None
    assert cache.total_bytes() == 130

    assert cache.clear() == 130
    assert cache.ls() == []
    assert cache.total_bytes() == 0


def test_gc_removes_least_recently_used_first(tmp_path):
    cache = ArtifactCache(tmp_path)
    names = ["a", "b", "c", "d", "e"]
    for name in names:
        cache.put(make_key(name), write_files({"f": b"x" * 1000}), {"kind": "lora"})
    for name in ["c", "a", "e", "d", "b"]:  # use order: b is the most recent
        assert cache.get(make_key(name)) is not None

    freed = cache.gc(max_bytes=2500)

    assert freed == 3000
    survivors = {e.key for e in cache.ls()}
    assert survivors == {make_key("d"), make_key("b")}
    assert cache.gc(max_bytes=2000) == 0
    assert cache.gc(max_bytes=0) == 2000
    with pytest.raises(ValueError, match="max_bytes"):
        cache.gc(-1)


def test_last_used_survives_a_new_cache_object(tmp_path):
    ArtifactCache(tmp_path).put(make_key("old"), write_files({"f": b"1"}), {"kind": "lora"})
    ArtifactCache(tmp_path).put(make_key("new"), write_files({"f": b"1"}), {"kind": "lora"})
    ArtifactCache(tmp_path).get(make_key("old"))
    assert [e.key for e in ArtifactCache(tmp_path).ls()] == [make_key("old"), make_key("new")]


def test_gc_removes_stale_temp_dirs_but_not_live_ones(tmp_path):
    cache = ArtifactCache(tmp_path)
    stale, live = tmp_path / ".tmp-dead", tmp_path / ".tmp-live"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "part").write_bytes(b"x" * 500)
    old = time.time() - STALE_TMP_SECONDS - 60
    for path in (stale / "part", stale):
        os.utime(path, (old, old))

    assert cache.gc(max_bytes=10**9) == 500
    assert not stale.exists()
    assert live.exists()


# atomicity under SIGKILL

KILLED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from framerelay.cache import ArtifactCache

    root, key, where = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

    def announce_and_hang():
        print("READY", flush=True)
        time.sleep(120)

    def writer(folder):
        (folder / "first.bin").write_bytes(b"1" * 4096)
        if where == "writer":
            announce_and_hang()
        (folder / "second.bin").write_bytes(b"2" * 4096)

    if where == "rename":  # meta.json is written, the commit rename has not happened yet
        real_rename = os.rename
        def slow_rename(src, dst):
            if Path(src).name.startswith(".tmp-"):
                announce_and_hang()
            real_rename(src, dst)
        os.rename = slow_rename

    ArtifactCache(root).put(key, writer, {"kind": "lora"})
    """
)


@pytest.mark.parametrize("where", ["writer", "rename"])
def test_a_writer_killed_mid_put_leaves_no_entry(tmp_path, where):
    root, key = tmp_path / "cache", make_key("killed")
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(root), key, where],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=SUBPROCESS_ENV,
    )
    try:
        line = process.stdout.readline()
        assert line.strip() == "READY", process.stderr.read()
        temp_dirs = list(root.glob(".tmp-*"))
        assert len(temp_dirs) == 1
        if where == "rename":
            assert (temp_dirs[0] / "meta.json").exists()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
        process.stdout.close()
        process.stderr.close()

    cache = ArtifactCache(root)
    assert process.returncode == -signal.SIGKILL
    assert cache.get(key) is None
    assert cache.ls() == []

    entry = cache.put(key, write_files({"whole.bin": b"w" * 10}), {"kind": "lora"})
    got = cache.get(key)
    assert (got.path, got.bytes) == (entry.path, 10)
    assert sorted(p.name for p in entry.path.iterdir()) == ["meta.json", "whole.bin"]


# root


def test_root_comes_from_the_argument_then_the_environment_then_platformdirs(tmp_path, monkeypatch):
    monkeypatch.setenv("FRAMERELAY_CACHE_DIR", str(tmp_path / "env"))
    assert ArtifactCache().root == tmp_path / "env"
    assert ArtifactCache(tmp_path / "arg").root == tmp_path / "arg"
    monkeypatch.delenv("FRAMERELAY_CACHE_DIR")
    if sys.platform.startswith("linux"):
        monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
        assert default_cache_root() == tmp_path / "xdg" / "framerelay" / "artifacts"
    assert default_cache_root().parts[-2:] == ("framerelay", "artifacts")


def test_meta_json_records_the_entry(tmp_path):
    entry = ArtifactCache(tmp_path).put(
        make_key("m"), write_files({"f": b"abc"}), {"kind": "inversion", "steps": 25}
    )
    doc = json.loads((entry.path / "meta.json").read_text())
    assert doc["key"] == entry.key
    assert doc["kind"] == "inversion"
    assert doc["bytes"] == 3
    assert doc["steps"] == 25
    assert abs(doc["created"] - time.time()) < 60


# sizes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("123", 123),
        ("123B", 123),
        ("1KB", 1000),
        ("1.5MB", 1_500_000),
        ("20GB", 20_000_000_000),
        ("20gb", 20_000_000_000),
        (" 2 TB ", 2_000_000_000_000),
        ("1KiB", 1024),
        ("1.5MiB", 1_572_864),
        ("8GiB", 8 * 2**30),
        ("0.1GB", 100_000_000),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GB", "-1GB", "20 XB", "1e3", "20G B", "1.2.3MB"])
def test_parse_size_rejects_garbage(text):
    with pytest.raises(ValueError, match="invalid size"):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "text"),
    [(0, "0 B"), (999, "999 B"), (1500, "1.5 KB"), (20_000_000_000, "20 GB"), (999_999, "1 MB")],
)
def test_format_size(size, text):
    assert format_size(size) == text


# CLI


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "framerelay", "cache", *args],
        capture_output=True,
        text=True,
        env=SUBPROCESS_ENV,
        timeout=120,
    )


def test_cli_ls_gc_and_clear(tmp_path):
    cache = ArtifactCache(tmp_path)
    for name, size in (("old", 3000), ("mid", 2000), ("new", 1000)):
        cache.put(make_key(name), write_files({"f": b"x" * size}), {"kind": f"lora-{name}"})

    listed = run_cli("ls", "--cache-dir", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split() == ["KEY", "KIND", "SIZE", "LAST", "USED"]
    assert [line.split()[0] for line in lines[1:4]] == [
        make_key(n)[:12] for n in ("new", "mid", "old")
    ]
    assert "lora-old" in lines[3] and "3 KB" in lines[3]
    assert "3 entries, 6 KB" in lines[4]

    collected = run_cli("gc", "--max-size", "3.5KB", "--cache-dir", str(tmp_path))
    assert collected.returncode == 0, collected.stderr
    assert "freed 3 KB; 2 entries, 3 KB left" in collected.stdout
    assert {e.key for e in cache.ls()} == {make_key("new"), make_key("mid")}

    cleared = run_cli("clear", "--cache-dir", str(tmp_path))
    assert cleared.returncode == 0, cleared.stderr
    assert "removed 2 entries, freed 3 KB" in cleared.stdout
    assert cache.ls() == []
    assert "cache is empty" in run_cli("ls", "--cache-dir", str(tmp_path)).stdout


def test_cli_uses_the_environment_root_and_rejects_a_bad_size(tmp_path):
    ArtifactCache(tmp_path).put(make_key("x"), write_files({"f": b"1"}), {"kind": "lora"})
    result = subprocess.run(
        [sys.executable, "-m", "framerelay", "cache", "ls"],
        capture_output=True,
        text=True,
        env={**SUBPROCESS_ENV, "FRAMERELAY_CACHE_DIR": str(tmp_path)},
        timeout=120,
    )
    assert make_key("x")[:12] in result.stdout

    bad = run_cli("gc", "--max-size", "lots", "--cache-dir", str(tmp_path))
    assert bad.returncode == 2
    assert "invalid size 'lots'" in bad.stderr
    assert "hint: Pass a size such as --max-size 20GB." in bad.stderr
    assert ArtifactCache(tmp_path).get(make_key("x")) is not None


def test_cli_start_up_imports_no_torch():
    code = (
        "import sys; from framerelay.cli import build_parser; build_parser(); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=SUBPROCESS_ENV,
        timeout=120,
    )
    assert result.stdout.strip() == "False", result.stderr


def test_gc_keeps_lora_checkpoints_and_clear_removes_them(tmp_path):
    """An interrupted job (a pause, a restart) resumes its LoRA training from checkpoints in the
    cache folder: trimming the cache keeps them; only clear removes them."""
    cache = ArtifactCache(tmp_path)
    cache.put(make_key("a"), write_files({"f": b"x" * 1000}), {"kind": "window"})
    checkpoint = tmp_path / "checkpoints" / make_key("b") / "step-50"
    checkpoint.mkdir(parents=True)
    (checkpoint / "adapter.safetensors").write_bytes(b"w" * 300)
    (tmp_path / "stray.txt").write_bytes(b"s" * 20)

    assert cache.gc(max_bytes=10**9) == 0
    assert cache.gc(max_bytes=0) == 1000 and cache.ls() == []
    assert (checkpoint / "adapter.safetensors").exists()
    assert cache.unfinished_bytes() == 320
    assert cache.clear() == 320
    assert not (tmp_path / "checkpoints").exists() and cache.unfinished_bytes() == 0
