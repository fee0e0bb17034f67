"""Progress reports and cancellation, shared by the engine, the daemon and the CLI (no torch)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from framerelay.errors import CancelledError


@dataclass(frozen=True)
class Progress:
    phase: str  # decode, lora, invert, edit, encode, ...
    step: int
    total: int
    clip: int = 1
    clips: int = 1
    message: str = ""


ProgressSink = Callable[[Progress], None]


def ignore_progress(_: Progress) -> None:
    pass


class CancelToken:
    """Set from any thread; the engine checks it at every step boundary."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise CancelledError("The job was cancelled.")
