"""Room kept on the data disk, so that a full disk can still record why a job stopped.

The daemon keeps `<data dir>/disk-reserve` (1 MiB of random bytes, so that no file system
compresses it away). When the job database cannot be written for want of space, the worker frees
it, records the running job's end, and waits until the disk has room again before it recreates
the reserve and takes the next job.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from framerelay.errors import DiskFullError
from framerelay.files import write_atomic

RESERVE_FILE = "disk-reserve"
RESERVE_BYTES = 1024 * 1024
RESUME_FREE_BYTES = 4 * RESERVE_BYTES  # free space, besides the reserve, before jobs run again


class DiskReserve:
    def __init__(self, folder: Path, size: int = RESERVE_BYTES):
        self.folder = folder
        self.size = size
        self.path = folder / RESERVE_FILE

    def ensure(self) -> bool:
        """Creates the reserve unless it is there whole; False when the disk has no room for it."""
        with contextlib.suppress(FileNotFoundError):
            if self.path.stat().st_size >= self.size:
                return True
        try:
            write_atomic(self.path, os.urandom(self.size))
        except DiskFullError:
            return False
        return True

    def release(self) -> bool:
        """Frees the reserve; False when there was none to free."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def has_room(self) -> bool:
        """Whether the disk has room enough to run jobs again (and to keep the reserve)."""
        needed = RESUME_FREE_BYTES + (0 if self.path.exists() else self.size)
        return shutil.disk_usage(self.folder).free >= needed
