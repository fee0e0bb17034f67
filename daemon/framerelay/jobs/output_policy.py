"""Where jobs may write: under the output roots, and never over an existing file unless asked.

A job's output folder must lie, once symlinks and `..` are resolved, under one of:

* the daemon's own outputs folder (`<data dir>/outputs`, where jobs without a folder write);
* the configured output roots (default: the user's video folder);
* the source clip's folder, unless turned off (`outputs_next_to_source = false`).

The folder is checked when the job is submitted and again just before it runs, since a folder
can be replaced by a symlink in between.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from framerelay.errors import DiskFullError, InvalidSpecError, is_disk_full
from framerelay.jobs.spec import JobSpec


def resolved(path: Path) -> Path:
    """The path with symlinks and `..` resolved as far as it exists (the rest lexically)."""
    try:
        return Path(os.path.realpath(path))
    except (OSError, ValueError) as error:
        raise InvalidSpecError(f"cannot resolve {str(path)!r}: {error}.") from None


def check_writable(output: Path) -> None:
    """Refuses an output that cannot be written, before any work: its nearest existing folder
    must be a folder in which a file can be created (tried with a temporary file)."""
    folder = output.parent
    while not os.path.lexists(folder) and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InvalidSpecError(
            f"cannot write {str(output)!r}: {str(folder)!r} is a file, not a folder.",
            "Choose an output in a folder.",
        )
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".framerelay-probe-"):
            pass
    except OSError as error:
        if is_disk_full(error):
            raise DiskFullError(f"the disk of {str(folder)!r} is full.") from None
        raise InvalidSpecError(
            f"cannot write in {str(folder)!r}: {error.strerror or error}.",
            "Choose an output in a folder you can write to.",
        ) from None


def is_within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


@dataclass(frozen=True)
class OutputPolicy:
    outputs_dir: Path  # <data dir>/outputs: always allowed
    roots: tuple[Path, ...] = ()
    next_to_source: bool = True
    config_hint: str = "output_roots in the daemon's config.toml"

    def roots_for(self, source: Path) -> tuple[Path, ...]:
        roots = [self.outputs_dir, *self.roots]
        if self.next_to_source:
            roots.append(source.parent)
        return tuple(resolved(root) for root in roots)

    def check_folder(self, folder: Path, source: Path) -> None:
        target = resolved(folder)
        roots = self.roots_for(source)
        if not any(is_within(target, root) for root in roots):
            shown = ", ".join(str(r) for r in roots)
            raise InvalidSpecError(
                f"the output folder {str(folder)!r} (resolved: {str(target)!r}) is outside the "
                f"daemon's output roots ({shown}).",
                f"Write next to the source clip or under one of the roots, or add the folder to "
                f"{self.config_hint}.",
            )

    def check_spec(self, spec: JobSpec) -> None:
        if spec.output_folder is not None:
            self.check_folder(spec.output_folder, spec.source)

    def check_outputs(self, outputs: Iterable[Path], source: Path, overwrite: bool) -> None:
        """Each output lies under a root and, unless `overwrite`, does not exist yet."""
        for output in outputs:
            self.check_folder(output.parent, source)
            if not overwrite and os.path.lexists(output):
                raise InvalidSpecError(
                    f"the output {str(output)!r} already exists.",
                    "Set output.overwrite to replace it, or choose another output folder.",
                )
