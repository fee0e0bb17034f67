"""One daemon per data folder: an exclusive lock on `<data dir>/daemon.lock`.

The operating system drops the lock when the process ends, even by SIGKILL, so a crash never
leaves a stale lock behind.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

from framerelay.errors import BusyError


def _lock(file: IO[str]) -> None:
    if sys.platform == "win32":
        import msvcrt

        msvcrt.locking(file.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


class InstanceLock:
    def __init__(self, data_dir: Path):
        self.path = data_dir / "daemon.lock"
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        file = open(self.path, "a+")  # noqa: SIM115 - held until release()
        try:
            _lock(file)
        except OSError:
            file.close()
            raise BusyError(
                f"another framerelay daemon is using {self.path.parent}.",
                "Stop it first (its pid is in the discovery file), or give this one its own "
                "FRAMERELAY_DATA_DIR.",
            ) from None
        self._file = file

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing drops the lock
            self._file = None
