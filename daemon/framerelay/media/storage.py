"""Outputs: refused when they exist (unless overwriting), written atomically (`framerelay.files`),
never left half-written; an unwritable folder or a full disk is a clear error."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from framerelay import files
from framerelay.errors import InvalidSpecError


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


@contextlib.contextmanager
def staged_output(target: Path, overwrite: bool) -> Iterator[Path]:
    """Yield a staging path (for a file or a folder); publish it to `target` on success, delete it
    on any error."""
    check_target(target, overwrite)
    with disk_errors(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        with files.replacing(target) as staged:
            yield staged
            check_target(target, overwrite)  # another writer may have taken the name meanwhile
            _check_kind(staged, target)


def write_bytes_atomic(data: bytes, target: Path, overwrite: bool) -> None:
    with staged_output(target, overwrite) as staged:
        staged.write_bytes(data)


def _check_kind(staged: Path, target: Path) -> None:
    if staged.is_dir() and target.exists() and not target.is_dir():
        raise InvalidSpecError(
            f"output path is a file, not a folder: {target}",
            "Give a folder path (ending in /) for a PNG sequence.",
        )
    if not staged.is_dir() and target.is_dir():
        raise InvalidSpecError(
            f"output path is a folder: {target}", "Give a file path such as out.mp4 or out.mov."
        )


@contextlib.contextmanager
def disk_errors(target: Path) -> Iterator[None]:
    """A full disk raises DiskFullError and an unwritable folder InvalidSpecError."""
    try:
        with files.disk_full_as_error(target):
            yield
    except PermissionError as error:
        raise InvalidSpecError(
            f"cannot write {target}: permission denied",
            "Choose an output folder you can write to.",
        ) from error
