"""Fire once per completed save of an image in a folder, whatever way the editor saves.

Editors save through temporary files and renames, or in several writes, and each observer reports
those differently (dependencies.md §3). Every relevant event is mapped to the file it leaves behind,
restarts that file's quiet timer, and the save fires only when the timer runs out and the file's
size and mtime then stay unchanged over one more short check.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED_NO_WRITE,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MOVED,
    EVENT_TYPE_OPENED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".png", ".tif", ".tiff", ".psd", ".jpg", ".jpeg"})
_IGNORED_EVENTS = frozenset({EVENT_TYPE_DELETED, EVENT_TYPE_OPENED, EVENT_TYPE_CLOSED_NO_WRITE})

Signature = tuple[int, int]  # (st_size, st_mtime_ns)


def is_image_name(name: str) -> bool:
    """True for names an editor saves to; False for temporaries, backups and hidden files."""
    if name.startswith(".") or name.endswith("~"):  # .goutputstream-*, ._AppleDouble, Krita backups
        return False
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


class SaveWatcher:
    """Watch `folder` (not its subfolders) and call `on_save(path)` once per completed save.

    Only image files modified after `since_ns` count. `on_save` runs on the watcher's own thread,
    one save at a time; an exception in it is logged and the watch goes on.
    """

    def __init__(
        self,
        folder: Path,
        on_save: Callable[[Path], None],
        *,
        since_ns: int,
        quiet: float = 0.5,
        stable_check: float = 0.15,
        polling: bool = False,
        poll_interval: float = 0.25,
        accept: Callable[[Path], bool] | None = None,
    ) -> None:
        self.folder = Path(folder).resolve()
        self._on_save = on_save
        self._since_ns = since_ns
        self._quiet = quiet
        self._stable_check = stable_check
        self._polling = polling
        self._poll_interval = poll_interval
        self._accept = accept
        self._condition = threading.Condition()
        self._due: dict[str, float] = {}  # name -> monotonic deadline
        self._fired: dict[str, Signature] = {}
        self._stopping = threading.Event()
        self._observer: BaseObserver | None = None
        self._worker: threading.Thread | None = None

    def start(self) -> None:
        if self._worker is not None:
            raise RuntimeError("SaveWatcher.start() was already called")
        self._worker = threading.Thread(
            target=self._run, name="framerelay-save-watcher", daemon=True
        )
        self._worker.start()
        self._observer = self._start_observer()
        self._schedule_existing()

    def stop(self) -> None:
        self._stopping.set()
        with self._condition:
            self._condition.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
        worker = self._worker
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout=5)

    def __enter__(self) -> SaveWatcher:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def notice(self, name: str) -> None:
        """Something happened to `name`: (re)start its quiet timer."""
        if not is_image_name(name) or (self._accept and not self._accept(self.folder / name)):
            return
        with self._condition:
            self._due[name] = time.monotonic() + self._quiet
            self._condition.notify_all()

    def _start_observer(self) -> BaseObserver:
        handler = _Handler(self)
        observer: BaseObserver = (
            PollingObserver(timeout=self._poll_interval) if self._polling else Observer()
        )
        try:
            observer.schedule(handler, str(self.folder), recursive=False)
            observer.start()
        except OSError as exc:  # e.g. the inotify watch limit
            if self._polling:
                raise
            log.warning("file notifications failed (%s); polling %s instead", exc, self.folder)
            observer = PollingObserver(timeout=self._poll_interval)
            observer.schedule(handler, str(self.folder), recursive=False)
            observer.start()
        return observer

    def _schedule_existing(self) -> None:
        """Saves made before the watch started still count (the editor may be fast)."""
        for entry in os.scandir(self.folder):
            try:
                newer = entry.is_file() and entry.stat().st_mtime_ns > self._since_ns
            except OSError:
                continue
            if newer:
                self.notice(entry.name)

    def _run(self) -> None:
        while not self._stopping.is_set():
            name = self._next_due()
            if name is not None:
                self._check(name)

    def _next_due(self) -> str | None:
        with self._condition:
            while not self._stopping.is_set():
                now = time.monotonic()
                if self._due:
                    name, deadline = min(self._due.items(), key=lambda item: item[1])
                    if deadline <= now:
                        del self._due[name]
                        return name
                    self._condition.wait(deadline - now)
                else:
                    self._condition.wait()
        return None

    def _check(self, name: str) -> None:
        before = self._signature(name)
        if before is None or before[1] <= self._since_ns or self._fired.get(name) == before:
            return
        if self._stopping.wait(self._stable_check):
            return
        after = self._signature(name)
        with self._condition:
            if name in self._due:  # a new event arrived during the check; its timer decides
                return
            if after != before:
                self._due[name] = time.monotonic() + self._quiet
                return
        self._fired[name] = after
        try:
            self._on_save(self.folder / name)
        except Exception:
            log.exception("handling the save of %s failed", name)

    def _signature(self, name: str) -> Signature | None:
        try:
            stat = (self.folder / name).stat()
        except OSError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def _event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type in _IGNORED_EVENTS:
            return
        raw = event.dest_path if event.event_type == EVENT_TYPE_MOVED else event.src_path
        path = Path(os.fsdecode(raw))
        if path.parent != self.folder and path.parent.resolve() != self.folder:
            return
        self.notice(path.name)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: SaveWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        self._watcher._event(event)
