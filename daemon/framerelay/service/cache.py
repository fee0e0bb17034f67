"""What the cache RPCs need from a cache: its size and a way to empty it.

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


class CacheInfo(NamedTuple):
    entries: int
    bytes: int  # all of it: the entries and the unfinished bytes
    root: Path
    unfinished_bytes: int = 0  # outside finished entries: checkpoints of unfinished training


class CacheStore(Protocol):
    """Called from a worker thread, never from the event loop."""

    def info(self) -> CacheInfo: ...

    def clear(self) -> int:
        """Removes every entry; returns the bytes freed."""
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
        entries = list(self.root.iterdir())
        return CacheInfo(len(entries), sum(tree_size(e) for e in entries), self.root)

    def clear(self) -> int:
        if not self.root.is_dir():
            return 0
        freed = 0
        for entry in self.root.iterdir():
            freed += tree_size(entry)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        return freed


class ArtifactCacheStore:
    def __init__(self, cache: ArtifactCache):
        self.cache = cache

    def info(self) -> CacheInfo:
        entries = self.cache.ls()
        unfinished = self.cache.unfinished_bytes(entries)
        total = sum(e.bytes for e in entries) + unfinished
        return CacheInfo(len(entries), total, self.cache.root, unfinished)

    def clear(self) -> int:
        return self.cache.clear()
