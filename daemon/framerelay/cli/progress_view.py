"""Following a job's events in the terminal, with a progress bar per phase (shared by the CLI)."""

from __future__ import annotations

import sys
import time

from tqdm import tqdm

from framerelay.errors import (
    CancelledError,
    UnauthenticatedError,
    UnavailableError,
    error_for_code,
)
from framerelay.proto.v1 import events_pb2
from framerelay.service.client import DaemonClient
from framerelay.service.errors import code_from_proto

RECONNECT_SECONDS = 30.0
PHASES = ("load", "decode", "lora", "invert", "edit", "encode")  # the order a job runs them in


class PhaseBars:
    def __init__(self) -> None:
        self._bar: tqdm | None = None
        self._phase = ""

    def show(self, progress: events_pb2.Progress) -> None:
        if progress.phase != self._phase or self._bar is None:
            self.close()
            self._phase = progress.phase
            self._bar = tqdm(total=progress.total, desc=progress.phase, unit="step", leave=True)
        if progress.clips > 1:
            self._bar.set_postfix_str(f"clip {progress.clip}/{progress.clips}")
        self._bar.update(progress.step - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def describe(event: events_pb2.JobEvent) -> str | None:
    kind = event.WhichOneof("kind")
    if kind == "queued":
        return f"queued at position {event.queued.position}"
    if kind == "started":
        return f"started (attempt {event.started.attempt})"
    if kind == "edit":
        hint = f"\n  hint: {event.edit.hint}" if event.edit.hint else ""
        warnings = "".join(f"\n  warning: {w}" for w in event.edit.warnings)
        return f"{event.edit.message}{warnings}{hint}"
    return None


def follow(client: DaemonClient, job_id: str, after_seq: int = 0) -> events_pb2.Finished:
    """Shows the job's events until it ends; reconnects (resuming from the last seq) when the
    daemon restarts. Raises the job's error when it fails or is cancelled."""
    bars = PhaseBars()
    last, deadline = after_seq, None
    current: DaemonClient | None = client
    try:
        while True:
            try:
                if current is None:  # a clean stop removes the discovery file until the restart
                    current = DaemonClient.connect()
                for event in current.watch(job_id, last):
                    last, deadline = event.seq, None
                    ended = show(event, bars)
                    if ended is not None:
                        return ended
                raise UnavailableError("the event stream ended before the job did.")
            except (UnavailableError, UnauthenticatedError):
                deadline = deadline or time.monotonic() + RECONNECT_SECONDS
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)
                current = None
    finally:
        bars.close()


def show(event: events_pb2.JobEvent, bars: PhaseBars) -> events_pb2.Finished | None:
    kind = event.WhichOneof("kind")
    if kind == "progress":
        bars.show(event.progress)
        return None
    bars.close()
    if kind == "finished":
        return event.finished
    if kind == "failed":
        error = event.failed.error
        raise error_for_code(code_from_proto(error.code), error.message, error.hint)
    if kind == "cancelled":
        raise CancelledError(event.cancelled.error.message, event.cancelled.error.hint)
    text = describe(event)
    if text:
        print(f"job {event.job_id[:8]}: {text}", file=sys.stderr)
    return None


def print_finished(job_id: str, result: events_pb2.Finished) -> None:
    """What the job did, then its outputs, one a line (the last lines are the outputs)."""
    fps = f"{result.fps.num}/{result.fps.den}" if result.fps.den != 1 else str(result.fps.num)
    print(f"job {job_id[:8]} finished: {result.frame_count} frames at {fps} fps")
    phases = sorted(result.phase_seconds, key=lambda p: (*PHASES, p).index(p))
    times = " · ".join(f"{phase} {result.phase_seconds[phase]:.1f} s" for phase in phases)
    print(
        f"  seed {result.seed}, {result.windows} window(s), {result.lora_steps_run} LoRA steps, "
        f"{result.cache_hits} cache hit(s); {times}"
    )
    for choice in result.preset_choices:
        print(f"  preset {choice.reason}")
    for warning in result.warnings:
        print(f"  warning: {warning}")
    for path in result.output_paths:
        print(path)
