"""Output videos written while windows are still being generated, one writer thread each.

Frames arrive as the model made them (its canvas, in [-1, 1]); the writer thread maps each back to
the source: pad removed, pixel aspect and rotation undone, colour returned to the source's space
(HDR included), and — with an edit region and `keep_unedited` — the source's own pixels, decoded
at full resolution and precision, kept wherever the feathered region says nothing was edited.
Frames stay float until the encoder rounds them once.

The media writer publishes a file only once it is complete; a sink that is aborted (error,
cancellation) leaves nothing at the output path.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from framerelay.media import footage, writer
from framerelay.media.audio import AudioClip

_END = object()
_ABORT = object()


class _Aborted(Exception):
    pass


@dataclass(frozen=True, eq=False)
class Restore:
    """How model frames become output frames (see the module docstring)."""

    bridge: footage.Bridge
    span: footage.Span
    keep_unedited: bool = True

    def frames(
        self, batches: Iterator[tuple[np.ndarray, np.ndarray | None]]
    ) -> Iterator[np.ndarray]:
        sources = footage.iter_native(self.span)
        for model_frames, regions in batches:
            for i, model_frame in enumerate(model_frames):
                source = next(sources)
                edited = self.bridge.to_native(model_frame)
                weights = None
                if self.keep_unedited and regions is not None:
                    weights = self.bridge.region(regions[i])
                yield footage.compose(source, edited, weights)


class VideoSink:
    def __init__(
        self,
        path: Path,
        fps: Fraction,
        fmt: str | None,
        overwrite: bool,
        *,
        restore: Restore | None = None,
        encoding: writer.Encoding | None = None,
        audio: AudioClip | None = None,
    ):
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._info: writer.OutputInfo | None = None
        self._restore = restore
        self._thread = threading.Thread(
            target=self._run,
            args=(path, fps, fmt, overwrite, encoding, audio),
            name=f"writer {path.name}",
        )
        self._thread.start()

    def _batches(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if item is _ABORT:
                raise _Aborted
            yield item

    def _frames(self) -> Iterator[np.ndarray]:
        if self._restore is not None:
            yield from self._restore.frames(self._batches())
            return
        for frames, _ in self._batches():
            yield from frames

    def _run(self, path, fps, fmt, overwrite, encoding, audio) -> None:
        try:
            self._info = writer.write_video(
                self._frames(), path, fps, fmt, overwrite=overwrite, encoding=encoding, audio=audio
            )
        except BaseException as error:
            self._error = error
            self._drain()

    def _drain(self) -> None:
        while True:
            try:
                self._queue.get_nowait()
            except queue.Empty:
                return

    def _put(self, item) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue
        self._raise_error()

    def _raise_error(self) -> None:
        if self._error is not None and not isinstance(self._error, _Aborted):
            raise self._error

    def write(self, frames: np.ndarray, regions: np.ndarray | None = None) -> None:
        """Frames appended in order: the model's (F, 3, Ht, Wt) in [-1, 1] with its (F, Ht, Wt)
        edit regions when the sink restores them, else (N, H, W, 3) ready-made frames."""
        self._put((np.array(frames, copy=True), None if regions is None else np.array(regions)))

    def close(self) -> writer.OutputInfo:
        self._put(_END)
        self._thread.join()
        self._raise_error()
        assert self._info is not None
        return self._info

    def abort(self) -> None:
        if self._thread.is_alive():
            self._drain()
            with contextlib.suppress(queue.Full):
                self._queue.put(_ABORT, timeout=5)
        self._thread.join()
