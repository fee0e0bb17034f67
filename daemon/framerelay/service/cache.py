"""What the cache RPCs need from a cache: its size per clip, and ways to trim and empty it.

`ArtifactCacheStore` serves the engine's `framerelay.cache.ArtifactCache` (the daemon's default);
`DirectoryCache` serves a plain folder, each top-level entry counting as one cache entry.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import NamedTuple, Protocol

from framerelay.cache import ArtifactCache


class ClipUsage(NamedTuple):
    source: str  # the clip's path; "" when its entries do not name it
    entries: int
    bytes: int


class CacheInfo(NamedTuple):
    entries: int
    bytes: int  # all of it: the entries and the unfinished bytes
    root: Path
    unfinished_bytes: int = 0  # outside finished entries: checkpoints of unfinished training
    clips: tuple[ClipUsage, ...] = ()  # largest first


def by_clip(entries: list[tuple[str, int]]) -> tuple[ClipUsage, ...]:
    """(clip, bytes) per entry, grouped by clip, largest first."""
    groups: dict[str, list[int]] = {}
    for clip, size in entries:
        groups.setdefault(clip, []).append(size)
    usage = [ClipUsage(clip, len(sizes), sum(sizes)) for clip, sizes in groups.items()]
    return tuple(sorted(usage, key=lambda u: (-u.bytes, u.source)))


class CacheStore(Protocol):
    """Called from a worker thread, never from the event loop."""

    def info(self) -> CacheInfo: ...

    def clear(self) -> int:
        """Removes every entry; returns the bytes freed."""
        ...

    def gc(self, max_bytes: int) -> int:
        """Removes least recently used entries until at most `max_bytes` are left; bytes freed."""
        ...


def tree_size(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(FileNotFoundError):  # removed while we walk
                total += (Path(folder) / name).lstat().st_size
    return total


class DirectoryCache:
    def __init__(self, root: Path):
        self.root = root

    def info(self) -> CacheInfo:
        if not self.root.is_dir():
            return CacheInfo(0, 0, self.root)
        sizes = [(entry.name, tree_size(entry)) for entry in self.root.iterdir()]
        return CacheInfo(
            len(sizes), sum(size for _, size in sizes), self.root, clips=by_clip(sizes)
        )

    def clear(self) -> int:
        return self.gc(0)

    def gc(self, max_bytes: int) -> int:
        if not self.root.is_dir():
            return 0
        entries = sorted(self.root.iterdir(), key=lambda e: e.lstat().st_mtime)
        sizes = {entry: tree_size(entry) for entry in entries}
        total, freed = sum(sizes.values()), 0
        for entry in entries:
            if total <= max_bytes:
                break
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            total -= sizes[entry]
            freed += sizes[entry]
        return freed


class ArtifactCacheStore:
    def __init__(self, cache: ArtifactCache):
        self.cache = cache

    def info(self) -> CacheInfo:
        entries = self.cache.ls()
        unfinished = self.cache.unfinished_bytes(entries)
        total = sum(e.bytes for e in entries) + unfinished
        clips = by_clip([(str(e.meta.get("clip", "")), e.bytes) for e in entries])
        return CacheInfo(len(entries), total, self.cache.root, unfinished, clips)

    def clear(self) -> int:
        return self.cache.clear()

    def gc(self, max_bytes: int) -> int:
        return self.cache.gc(max_bytes)
