"""Atomic file writes for the round trip: a reader never sees a half-written file."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from framerelay.errors import DiskFullError


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a hidden temporary file next to `path`, then rename it onto `path`."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(f"No space left on the disk to write {path}.") from exc
        raise
