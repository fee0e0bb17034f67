"""Output videos written while windows are still being generated, one writer thread each.

The media writer publishes a file only once it is complete; a sink that is aborted (error,
cancellation) leaves nothing at the output path.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from framerelay.media import writer

_END = object()
_ABORT = object()


class _Aborted(Exception):
    pass


class VideoSink:
    def __init__(self, path: Path, fps: Fraction, fmt: str | None, overwrite: bool):
        self._queue: queue.Queue = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._info: writer.OutputInfo | None = None
        self._thread = threading.Thread(
            target=self._run, args=(path, fps, fmt, overwrite), name=f"writer {path.name}"
        )
        self._thread.start()

    def _frames(self) -> Iterator[np.ndarray]:
        while True:
            item = self._queue.get()
            if item is _END:
                return
            if item is _ABORT:
                raise _Aborted
            yield from item

    def _run(self, path: Path, fps: Fraction, fmt: str | None, overwrite: bool) -> None:
        try:
            self._info = writer.write_video(self._frames(), path, fps, fmt, overwrite=overwrite)
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

    def write(self, frames: np.ndarray) -> None:
        """(N, H, W, 3) uint8 frames, appended in order."""
        self._put(list(frames))

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
