"""What a round trip reports and keeps: plain records, no media code (the daemon imports them at
start; decoding and encoding wait for the first round trip)."""

from __future__ import annotations

import enum
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPORT_STEM = "frame_edit"
EDITS_FOLDER = "edits"  # accepted versions; a subfolder, so the (non-recursive) watch ignores them


class EventKind(enum.Enum):
    exported = "exported"
    editor_opened = "editor_opened"
    open_skipped = "open_skipped"  # --no-open: the user opens the path themselves
    editor_failed = "editor_failed"
    edit_received = "edit_received"
    validation_problem = "validation_problem"
    save_ignored = "save_ignored"  # saved after the job started, without "follow saves"


class SessionState(enum.Enum):
    created = "created"
    awaiting_edit = "awaiting_edit"
    edit_ready = "edit_ready"
    started = "started"
    closed = "closed"


@dataclass(frozen=True)
class EditEvent:
    kind: EventKind
    message: str
    hint: str = ""
    path: Path | None = None  # exported file, or the accepted copy for edit_received
    source: Path | None = None  # the file the user saved or picked
    version: int = 0
    follow: bool = False  # edit_received after the job started: submit a new job for it
    warnings: tuple[str, ...] = ()
    time: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "message": self.message,
            "hint": self.hint,
            "path": str(self.path) if self.path else "",
            "source": str(self.source) if self.source else "",
            "version": self.version,
            "follow": self.follow,
            "warnings": list(self.warnings),
            "time": self.time,
        }


@dataclass(frozen=True)
class AcceptedEdit:
    version: int
    path: Path  # the frozen copy in <folder>/edits/, the engine's input
    source: Path
    warnings: tuple[str, ...] = ()
    follow: bool = False


@dataclass(frozen=True)
class ExportedFrame:
    path: Path
    size: tuple[int, int]  # (width, height)
    mtime_ns: int  # saves must be newer than this
    sixteen_bit: bool


_COPY = re.compile(r"^edit_v(\d+)\.png$")


def copy_name(version: int) -> str:
    """The frozen copy of an accepted edit, in `<folder>/edits/`: edit_v001.png, ..."""
    return f"edit_v{version:03d}.png"


def copy_version(name: str) -> int | None:
    """The version of a frozen copy's file name; None for any other name."""
    found = _COPY.match(name)
    return int(found.group(1)) if found else None
