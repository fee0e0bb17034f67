"""The artifact store: a directory per key, committed atomically, evicted least-recently-used first.

Layout under the root:

    <key[:2]>/<key>/...files.../meta.json   a committed entry; meta.json is written last
    .tmp-<random>/                         an entry being written (or left by a killed writer)
    .del-<random>/                         an entry being removed

Anything else under the root (the engine's LoRA checkpoints of unfinished training, which an
interrupted job resumes from) is unfinished work: gc keeps it, clear removes it.

A directory without a valid meta.json is never returned. "Last used" is the modification time of
meta.json, set explicitly with os.utime on every put and get, so it is reliable on noatime mounts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from framerelay.files import disk_full_as_error, publish

log = logging.getLogger(__name__)

CACHE_DIR_ENV = "FRAMERELAY_CACHE_DIR"
META_FILE = "meta.json"
META_VERSION = 1
TMP_PREFIX = ".tmp-"
DELETE_PREFIX = ".del-"
STALE_TMP_SECONDS = 30 * 60  # a writer untouched this long is dead
RESERVED_META = frozenset({"key", "kind", "bytes", "created", "version"})
_KEY = re.compile(r"[0-9a-f]{64}")
_SHARD = re.compile(r"[0-9a-f]{2}")  # key[:2]


def default_cache_root() -> Path:
    """$FRAMERELAY_CACHE_DIR, else the platform's user cache dir + /artifacts."""
    override = os.environ.get(CACHE_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir("framerelay")) / "artifacts"


@dataclass(frozen=True)
class Entry:
    key: str
    path: Path  # the entry's directory: read the artifact's files from here
    kind: str
    bytes: int
    created: float  # seconds since the epoch
    last_used: float
    meta: dict[str, Any] = field(default_factory=dict)  # the caller's metadata, as given to put


class ArtifactCache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root) if root is not None else default_cache_root()

    def entry_dir(self, key: str) -> Path:
        _check_key(key)
        return self.root / key[:2] / key

    def get(self, key: str) -> Entry | None:
        """The committed entry for `key`, marked as just used; None on a miss."""
        entry = self._read_entry(self.entry_dir(key))
        if entry is None or entry.key != key:
            return None
        return self._touch(entry)

    def put(self, key: str, writer: Callable[[Path], None], meta: dict[str, Any]) -> Entry:
        """Let `writer` fill a temp dir, then commit it as the entry for `key`.

        `meta` is JSON-serialisable metadata; "kind" names the artifact type (default "artifact").
        An entry already committed for `key` (by this or another process) wins: its files are kept,
        ours are discarded. The writer is not called when the entry exists at the start.
        Compute the artifact before calling put and let the writer only write files: gc takes a
        temp dir untouched for STALE_TMP_SECONDS for a dead writer's.
        """
        existing = self.get(key)
        if existing is not None:
            return existing
        reserved = RESERVED_META & (meta.keys() - {"kind"})
        if reserved:
            raise ValueError(f"meta keys {sorted(reserved)} are reserved for the cache")
        meta_doc = {
            **meta,
            "key": key,
            "kind": str(meta.get("kind", "artifact")),
            "version": META_VERSION,
        }
        json.dumps(meta_doc, allow_nan=False)  # fail before doing the work on bad metadata
        tmp = self._new_private_dir(TMP_PREFIX)
        try:
            with _disk_full_as_error(self.root):
                writer(tmp)
                meta_doc["bytes"] = _tree_bytes(tmp)
                meta_doc["created"] = time.time()
                text = json.dumps(meta_doc, indent=1, sort_keys=True, allow_nan=False)
                (tmp / META_FILE).write_text(text, encoding="utf-8")
                return self._commit(tmp, key)
        finally:
            if tmp.exists():
                _remove_tree(tmp)

    def remove(self, key: str) -> int:
        """Delete the entry for `key`; the bytes freed (0 when absent)."""
        entry = self._read_entry(self.entry_dir(key))
        if entry is None:
            return 0
        self._delete_dir(entry.path)
        return entry.bytes

    def ls(self) -> list[Entry]:
        """Committed entries, most recently used first."""
        entries = [e for path in self._entry_dirs() if (e := self._read_entry(path)) is not None]
        return sorted(entries, key=lambda e: (-e.last_used, e.key))

    def total_bytes(self) -> int:
        return sum(entry.bytes for entry in self.ls())

    def unfinished_bytes(self, entries: list[Entry] | None = None) -> int:
        """Bytes outside the committed entries: LoRA checkpoints of training that has not
        finished (kept so that it resumes), temp dirs of writers, garbage. `clear` removes them."""
        committed = {entry.path for entry in (self.ls() if entries is None else entries)}
        total = 0
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if Path(folder, d) not in committed]
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.lstat(os.path.join(folder, name)).st_size
        return total

    def gc(self, max_bytes: int) -> int:
        """Delete garbage, then least-recently-used entries down to `max_bytes`; the bytes freed."""
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        freed = self._collect_garbage()
        entries = sorted(self.ls(), key=lambda e: (e.last_used, e.key))
        total = sum(entry.bytes for entry in entries)
        for entry in entries:
            if total <= max_bytes:
                break
            self._delete_dir(entry.path)
            total -= entry.bytes
            freed += entry.bytes
        return freed

    def clear(self) -> int:
        """Delete every entry, all garbage and the unfinished work (a temp dir of a live writer
        is kept); bytes freed."""
        freed = self._collect_garbage()
        for entry in self.ls():
            self._delete_dir(entry.path)
            freed += entry.bytes
        return freed + self._remove_unfinished()

    def _remove_unfinished(self) -> int:
        """Delete what lies outside the shards and the temp dirs: LoRA checkpoints."""
        freed = 0
        if self.root.is_dir():
            for path in self.root.iterdir():
                if path.name.startswith(".") or _SHARD.fullmatch(path.name):
                    continue
                if path.is_dir() and not path.is_symlink():
                    freed += _tree_bytes(path)
                    self._delete_dir(path)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        freed += path.lstat().st_size
                        path.unlink()
        return freed

    def _commit(self, tmp: Path, key: str) -> Entry:
        final = self.entry_dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                publish(tmp, final, replace=False)  # durable, then renamed: first one wins
            except FileExistsError:
                winner = self.get(key)
                if winner is not None:
                    log.debug("cache entry %s was committed concurrently; keeping it", key)
                    return winner
                self._delete_dir(final)  # a directory without a valid meta.json is garbage
                continue
            entry = self._read_entry(final)
            if entry is None:  # pragma: no cover - we just wrote a valid meta.json
                raise RuntimeError(f"cache entry {final} is unreadable right after commit")
            return self._touch(entry)
        raise RuntimeError(f"could not commit cache entry {final}")  # pragma: no cover

    def _touch(self, entry: Entry) -> Entry:
        now = time.time_ns()
        try:
            os.utime(entry.path / META_FILE, ns=(now, now))
        except OSError as error:  # a read-only cache still serves hits
            log.debug("cannot mark cache entry %s as used: %s", entry.key, error)
            return entry
        return Entry(
            entry.key, entry.path, entry.kind, entry.bytes, entry.created, now / 1e9, entry.meta
        )

    def _read_entry(self, path: Path) -> Entry | None:
        meta_path = path / META_FILE
        try:
            doc = json.loads(meta_path.read_text(encoding="utf-8"))
            last_used = meta_path.stat().st_mtime_ns / 1e9
            key, kind, size, created = doc["key"], doc["kind"], doc["bytes"], doc["created"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if key != path.name or not isinstance(size, int) or not isinstance(created, int | float):
            return None
        user_meta = {k: v for k, v in doc.items() if k not in RESERVED_META}
        return Entry(key, path, str(kind), size, float(created), last_used, user_meta)

    def _entry_dirs(self) -> Iterator[Path]:
        if not self.root.is_dir():
            return
        for shard in sorted(self.root.iterdir()):
            if not _SHARD.fullmatch(shard.name) or not shard.is_dir():
                continue
            yield from sorted(p for p in shard.iterdir() if p.is_dir())

    def _collect_garbage(self) -> int:
        """Delete dead temp dirs, half-removed entries and entry dirs without a valid meta.json."""
        freed = 0
        now = time.time()
        if self.root.is_dir():
            for path in self.root.iterdir():
                is_dead_tmp = path.name.startswith(TMP_PREFIX) and (
                    now - _newest_mtime(path) > STALE_TMP_SECONDS
                )
                if is_dead_tmp or path.name.startswith(DELETE_PREFIX):
                    freed += _tree_bytes(path)
                    _remove_tree(path)
        for path in self._entry_dirs():
            if self._read_entry(path) is None:
                freed += _tree_bytes(path)
                self._delete_dir(path)
        return freed

    def _delete_dir(self, path: Path) -> None:
        """Rename out of the way first, so no reader ever sees a half-deleted entry."""
        trash = self._new_private_dir(DELETE_PREFIX, create=False)
        try:
            os.rename(path, trash)
        except FileNotFoundError:
            return
        _remove_tree(trash)

    def _new_private_dir(self, prefix: str, create: bool = True) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{prefix}{secrets.token_hex(8)}"
        if create:
            with _disk_full_as_error(self.root):
                path.mkdir()
        return path


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"cache key must be 64 lowercase hex digits (see cache_key), got {key!r}")


def _tree_bytes(root: Path) -> int:
    total = 0
    for folder, _, files in os.walk(root):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(folder, name)).st_size
    return total


def _newest_mtime(root: Path) -> float:
    newest = 0.0
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            with contextlib.suppress(FileNotFoundError):
                newest = max(newest, os.lstat(os.path.join(folder, name)).st_mtime)
    with contextlib.suppress(FileNotFoundError):
        newest = max(newest, os.lstat(root).st_mtime)
    return newest


def _remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _disk_full_as_error(root: Path) -> contextlib.AbstractContextManager[None]:
    return disk_full_as_error(root, f"The disk holding the cache {root} is full.")
