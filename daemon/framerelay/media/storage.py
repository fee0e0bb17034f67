"""Atomic output: stage next to the target, publish by rename, never leave a half-written file.

A staged path lives in the target's folder (so the rename never crosses file systems) under a hidden
name without an image or video extension, so folder watchers and hosts ignore it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from framerelay.errors import DiskFullError, InvalidSpecError

_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def check_target(target: Path, overwrite: bool) -> None:
    """Refuse to replace an existing output unless `overwrite` is set."""
    if not os.path.lexists(target):
        return
    if not overwrite:
        raise InvalidSpecError(
            f"output already exists: {target}",
            "Choose another output path, delete the old output, or pass overwrite "
            "(--overwrite on the command line).",
        )


def staging_path(target: Path) -> Path:
    """A fresh hidden name in the target's folder, e.g. `.out.mp4.partial-1a2b3c4d`."""
    return target.with_name(f".{target.name}.partial-{secrets.token_hex(4)}")


def prepare_folder(target: Path) -> None:
    """Create the target's parent folder (and its parents) if needed."""
    with disk_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)


def publish(staged: Path, target: Path, overwrite: bool) -> None:
    """Move a finished file or folder onto the target path in one rename."""
    check_target(target, overwrite)
    if staged.is_dir() and target.exists():
        _replace_folder(staged, target)
    elif target.is_dir():
        raise InvalidSpecError(
            f"output path is a folder: {target}", "Give a file path such as out.mp4 or out.mov."
        )
    else:
        os.replace(staged, target)


def _replace_folder(staged: Path, target: Path) -> None:
    if not target.is_dir():
        raise InvalidSpecError(
            f"output path is a file, not a folder: {target}",
            "Give a folder path (ending in /) for a PNG sequence.",
        )
    retired = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    os.replace(target, retired)
    os.replace(staged, target)
    shutil.rmtree(retired, ignore_errors=True)


def remove_quietly(path: Path) -> None:
    """Delete a staged file or folder; a missing path is fine."""
    with contextlib.suppress(FileNotFoundError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


@contextlib.contextmanager
def staged_output(target: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a staging path; publish it to `target` on success, delete it on any error."""
    check_target(target, overwrite)
    prepare_folder(target)
    staged = staging_path(target)
    try:
        with disk_errors(target):
            yield staged
            publish(staged, target, overwrite)
    except BaseException:
        remove_quietly(staged)
        raise


def write_bytes_atomic(data: bytes, target: Path, overwrite: bool) -> None:
    with staged_output(target, overwrite) as staged:
        staged.write_bytes(data)


@contextlib.contextmanager
def disk_errors(target: Path) -> Iterator[None]:
    """Translate a full disk to DiskFullError and an unwritable folder to InvalidSpecError."""
    try:
        yield
    except PermissionError as error:
        raise InvalidSpecError(
            f"cannot write {target}: permission denied",
            "Choose an output folder you can write to.",
        ) from error
    except OSError as error:
        if error.errno in _DISK_FULL_ERRNOS:
            raise DiskFullError(f"disk full while writing {target}") from error
        raise
