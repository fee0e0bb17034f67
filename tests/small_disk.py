"""A small file system of its own, to fill up in a test: a size-limited tmpfs mounted for it.

Mounting needs root (or CAP_SYS_ADMIN); where the machine refuses, the test is skipped with the
reason. Filling it writes a file until ENOSPC; emptying it removes that file.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHUNK = 64 * 1024


@contextmanager
def small_disk(folder: Path, size_mb: int) -> Iterator[Path]:
    """`folder`, as the mount point of a tmpfs of `size_mb` MiB; unmounted afterwards."""
    if sys.platform != "linux":
        pytest.skip("a size-limited tmpfs needs Linux")
    if shutil.which("mount") is None:
        pytest.skip("no mount command on this machine")
    folder.mkdir(parents=True, exist_ok=True)
    command = ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0700", "tmpfs", str(folder)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path, name: str = "filler") -> Path:
    """Writes `folder/name` until the disk is full; returns its path."""
    path = folder / name
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    block = b"\xff" * CHUNK
    try:
        while True:
            try:
                os.write(descriptor, block)
            except OSError as error:
                if error.errno != errno.ENOSPC:
                    raise
                if len(block) == 1:
                    break
                block = block[: len(block) // 2]
    finally:
        os.close(descriptor)
    return path


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free
