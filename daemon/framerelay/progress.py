"""Progress reports and cancellation, shared by the engine, the daemon and the CLI (no torch)."""

from __future__ import annotations

import threading
import time
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


class PhaseTimes:
    """Seconds per phase, from a job's progress reports. A report says its phase did a step, so
    the time since the previous report is its phase's: a phase's own setup counts to it."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._last = clock()
        self.seconds: dict[str, float] = {}

    def wrap(self, sink: ProgressSink) -> ProgressSink:
        def report(progress: Progress) -> None:
            self.until_now(progress.phase)
            sink(progress)

        return report

    def until_now(self, phase: str) -> dict[str, float]:
        """Counts the time since the last report to `phase`; the seconds so far."""
        now = self._clock()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self._last
        self._last = now
        return dict(self.seconds)


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
