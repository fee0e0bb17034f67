"""Atomic writes: whoever reads a path sees the old file (or folder) or the whole new one.

Every writer in the package does it the same way: stage under a hidden name next to the target
(the rename then never crosses file systems, and folder watchers and hosts ignore the name), make
the staged data durable (fsync the file, or every file and folder of a staged folder), rename it
onto the target, then fsync the target's folder so that the rename survives a power cut too. On
any error the staged path is removed; a full disk is raised as the catalogue's DiskFullError.

`write_atomic` writes bytes; `replacing` yields a staging path for writers that need one (a video
encoder, a folder of files); `publish` is the last step for stagings made elsewhere (the artifact
cache's, which its garbage collector must recognise).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from framerelay.errors import DiskFullError, is_disk_full


def staging_path(target: Path) -> Path:
    """A fresh hidden name in the target's folder, e.g. `.out.mp4.partial-1a2b3c4d`."""
    return target.with_name(f".{target.name}.partial-{secrets.token_hex(4)}")


def write_atomic(target: Path, data: bytes, *, mode: int = 0o666) -> Path:
    """Write `data` at `target`, replacing what is there; `mode` before the umask."""
    with replacing(target) as staged:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        flags |= getattr(os, "O_BINARY", 0)
        with os.fdopen(os.open(staged, flags, mode), "wb") as stream:
            stream.write(data)
    return target


@contextlib.contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """Yield a staging path for `target`; the caller creates a file or a folder there. When the
    block ends without an error the staging is published at `target` (an existing file or folder
    there is replaced); otherwise it is removed."""
    staged = staging_path(target)
    try:
        with disk_full_as_error(target):
            yield staged
            publish(staged, target)
    except BaseException:
        remove(staged)
        raise


def publish(staged: Path, target: Path, *, replace: bool = True) -> None:
    """Make `staged` durable and rename it onto `target`.

    replace=False is for folders: an existing non-empty folder at `target` wins, and
    FileExistsError is raised (the artifact cache's entries are written once, first writer wins).
    """
    sync(staged)
    if not replace:
        try:
            os.rename(staged, target)
        except OSError as error:
            if error.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise FileExistsError(errno.EEXIST, "already exists", str(target)) from error
            raise
    elif staged.is_dir() and target.is_dir() and not target.is_symlink():
        _replace_folder(staged, target)
    else:
        os.replace(staged, target)
    sync_folder(target.parent)


def _replace_folder(staged: Path, target: Path) -> None:
    """A folder cannot be renamed onto a non-empty one: move the old one aside first."""
    retired = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    os.replace(target, retired)
    os.replace(staged, target)
    shutil.rmtree(retired, ignore_errors=True)


def sync(path: Path) -> None:
    """fsync a file, or every file and folder under a folder."""
    if not path.is_dir():
        _fsync(path)
        return
    for folder, _, names in os.walk(path):
        for name in names:
            _fsync(Path(folder, name))
        sync_folder(Path(folder))


def sync_folder(path: Path) -> None:
    """fsync a folder, so that the names created or renamed in it are durable."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows cannot open folders
        return
    try:
        os.fsync(descriptor)
    except OSError:  # pragma: no cover - some file systems refuse fsync on folders
        pass
    finally:
        os.close(descriptor)


def _fsync(path: Path) -> None:
    binary = getattr(os, "O_BINARY", 0)
    try:  # Windows flushes only what is open for writing
        descriptor = os.open(path, os.O_RDWR | binary)
    except PermissionError:
        descriptor = os.open(path, os.O_RDONLY | binary)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove(path: Path) -> None:
    """Delete a staged file or folder; a missing path is fine."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


@contextlib.contextmanager
def disk_full_as_error(target: Path, message: str = "") -> Iterator[None]:
    """A write that failed for want of space (ENOSPC, EDQUOT) raises DiskFullError(`message`)."""
    try:
        yield
    except OSError as error:
        if is_disk_full(error):
            message = message or f"No space left on the disk to write {target}."
            raise DiskFullError(message) from error
        raise
