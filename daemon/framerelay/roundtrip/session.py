"""One job's round trip: export the frame, open the editor, take each save (or picked file)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from framerelay.errors import EditUnreadableError, FramerelayError, InvalidSpecError
from framerelay.files import write_atomic
from framerelay.roundtrip.editor import EditorConfig, Launcher, LaunchResult, open_in_editor
from framerelay.roundtrip.export import export_frame
from framerelay.roundtrip.records import (
    EDITS_FOLDER,
    EXPORT_STEM,
    AcceptedEdit,
    EditEvent,
    EventKind,
    ExportedFrame,
    SessionState,
    copy_name,
)
from framerelay.roundtrip.validate import EditedFrame, read_edited_frame
from framerelay.roundtrip.watch import SaveWatcher

log = logging.getLogger(__name__)

EventSink = Callable[[EditEvent], None]


class EditSession:
    """Round trip for one job in `folder`, a folder only the round trip writes images into.

    Events go to `on_event` in order, from the caller's thread or the watcher's thread, while the
    session's lock is held: the handler may call back into the session but must not block.
    """

    def __init__(
        self,
        folder: Path,
        on_event: EventSink,
        *,
        editor: EditorConfig | None = None,
        follow_saves: bool = False,
        frame_size: tuple[int, int] | None = None,
        quiet: float = 0.5,
        stable_check: float = 0.15,
        launch: Launcher = open_in_editor,
    ) -> None:
        self.folder = Path(folder)
        self.editor = editor or EditorConfig()
        self._on_event = on_event
        self._follow_saves = follow_saves
        self._frame_size = frame_size
        self._quiet = quiet
        self._stable_check = stable_check
        self._launch = launch
        self._lock = threading.RLock()
        self._state = SessionState.created
        self._exported: ExportedFrame | None = None
        self._background: np.ndarray | None = None
        self._current: AcceptedEdit | None = None
        self._version = 0
        self._accepted_sources: set[tuple[Path, int, int]] = set()
        self._watcher: SaveWatcher | None = None

    @property
    def state(self) -> SessionState:
        return self._state

    @property
    def current(self) -> AcceptedEdit | None:
        return self._current

    @property
    def exported(self) -> ExportedFrame | None:
        return self._exported

    @property
    def follow_saves(self) -> bool:
        return self._follow_saves

    @follow_saves.setter
    def follow_saves(self, value: bool) -> None:
        with self._lock:
            self._follow_saves = value

    def begin(self, frame: np.ndarray, *, sixteen_bit: bool = False) -> Path:
        """Export, start watching, then open the editor (or report the path with --no-open)."""
        path = self.export(frame, sixteen_bit=sixteen_bit)
        self.watch()
        self.open_editor()
        return path

    def export(self, frame: np.ndarray, *, sixteen_bit: bool = False) -> Path:
        """Write the frame to edit; exporting again (another frame) restarts a running watch."""
        with self._lock:
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()  # our own write must not count as a save
        exported = export_frame(frame, self.folder, sixteen_bit=sixteen_bit, stem=EXPORT_STEM)
        with self._lock:
            self._exported = exported
            self._frame_size = exported.size
            self._background = frame
            if self._state is SessionState.created:
                self._state = SessionState.awaiting_edit
            width, height = exported.size
            self._emit(
                EventKind.exported,
                f"Exported the frame ({width}×{height}) to {exported.path.name}.",
                path=exported.path,
            )
        if watcher is not None:
            self.watch()
        return exported.path

    def resume(
        self,
        exported: ExportedFrame,
        *,
        background: np.ndarray | None = None,
        current: AcceptedEdit | None = None,
    ) -> None:
        """Take over a frame exported earlier (after a restart), without exporting or opening the
        editor; call `watch()` next. Saves count when newer than `exported.mtime_ns`; versions go
        on after `current`'s."""
        with self._lock:
            if self._exported is not None or self._state is not SessionState.created:
                raise InvalidSpecError("This edit session has already begun; resume a new one.")
            self._exported = exported
            self._frame_size = exported.size
            self._background = background
            self._current = current
            self._version = current.version if current else 0
            self._state = SessionState.edit_ready if current else SessionState.awaiting_edit

    def open_editor(self) -> LaunchResult | None:
        path = self._require_export().path
        if not self.editor.open_editor:
            self._emit(
                EventKind.open_skipped,
                f"Open {path} in your image editor, edit the frame and save it in the same folder "
                "(PNG, TIFF, JPEG or PSD).",
                path=path,
            )
            return None
        try:
            result = self._launch(path, self.editor, on_exit=self._editor_exited)
        except FramerelayError as exc:
            self._emit(EventKind.editor_failed, exc.message, hint=exc.hint, path=path)
            return None
        opened = f"Opened {path.name} in {result.description}."
        self._emit(EventKind.editor_opened, opened, path=path)
        return result

    def watch(self) -> None:
        exported = self._require_export()
        with self._lock:
            if self._watcher is not None or self._state is SessionState.closed:
                return
            self._watcher = SaveWatcher(
                self.folder,
                self._saved,
                since_ns=exported.mtime_ns,
                quiet=self._quiet,
                stable_check=self._stable_check,
                polling=self.editor.poll_saves,
            )
            self._watcher.start()

    def attach(self, path: Path) -> AcceptedEdit:
        """'Pick a file instead': take any image as the edited frame; EditUnreadableError if bad."""
        path = Path(path)
        size = self._require_frame_size()
        try:
            frame = read_edited_frame(path, size, background=self._background, attempts=1)
        except EditUnreadableError as exc:
            self._emit(EventKind.validation_problem, exc.message, hint=exc.hint, source=path)
            raise
        with self._lock:
            if self._state is SessionState.closed:
                raise InvalidSpecError("This edit session is closed.", "Create a new job.")
            return self._accept(frame, follow=self._state is SessionState.started)

    def mark_started(self) -> AcceptedEdit:
        """The job starts now with the current edit; later saves follow `follow_saves`."""
        with self._lock:
            if self._current is None:
                raise InvalidSpecError(
                    "The job has no edited frame yet.",
                    "Save the frame in your image editor, or pick an edited file, then start the "
                    "job.",
                )
            self._state = SessionState.started
            return self._current

    def close(self) -> None:
        with self._lock:
            self._state = SessionState.closed
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def __enter__(self) -> EditSession:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _saved(self, path: Path) -> None:
        if not self._wants_save(path):
            return
        try:
            frame = read_edited_frame(path, self._require_frame_size(), background=self._background)
        except EditUnreadableError as exc:
            self._emit(EventKind.validation_problem, exc.message, hint=exc.hint, source=path)
            return
        with self._lock:
            if self._wants_save(path):
                self._accept(frame, follow=self._state is SessionState.started)

    def _wants_save(self, path: Path) -> bool:
        with self._lock:
            if self._state is SessionState.closed or _source_key(path) in self._accepted_sources:
                return False
            if self._state is SessionState.started and not self._follow_saves:
                self._emit(
                    EventKind.save_ignored,
                    f"{path.name} was saved after the job started; the running job keeps its edit.",
                    hint="Turn on 'follow saves' to start a new job for each save.",
                    source=path,
                )
                return False
            return True

    def _accept(self, frame: EditedFrame, *, follow: bool) -> AcceptedEdit:
        version = self._version + 1
        copy = self.folder / EDITS_FOLDER / copy_name(version)
        copy.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(copy, _encode_png(frame.image, sixteen_bit=frame.bit_depth > 8))
        accepted = AcceptedEdit(version, copy, frame.path, frame.warnings, follow)
        self._version = version
        self._current = accepted
        self._accepted_sources.add(_source_key(frame.path))
        if self._state in (SessionState.created, SessionState.awaiting_edit):
            self._state = SessionState.edit_ready
        self._emit(
            EventKind.edit_received,
            f"Received the edited frame (version {version}) from {frame.path.name}.",
            path=copy,
            source=frame.path,
            version=version,
            follow=follow,
            warnings=frame.warnings,
        )
        return accepted

    def _editor_exited(self, status: int) -> None:
        if status != 0:
            self._emit(
                EventKind.editor_failed,
                f"The editor command exited with status {status}.",
                hint="Check the editor setting in the daemon config or the tray app, or open the "
                "exported file yourself.",
                path=self._exported.path if self._exported else None,
            )

    def _require_export(self) -> ExportedFrame:
        if self._exported is None:
            raise InvalidSpecError("No frame was exported for this job yet.")
        return self._exported

    def _require_frame_size(self) -> tuple[int, int]:
        if self._frame_size is None:
            raise InvalidSpecError("The size of the source frame is unknown; export it first.")
        return self._frame_size

    def _emit(self, kind: EventKind, message: str, **details: Any) -> None:
        event = EditEvent(kind, message, **details)
        with self._lock:
            try:
                self._on_event(event)
            except Exception:
                log.exception("the round-trip event handler failed on %s", kind.value)


def _source_key(path: Path) -> tuple[Path, int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (path.resolve(), -1, -1)
    return (path.resolve(), stat.st_size, stat.st_mtime_ns)


def _encode_png(image: np.ndarray, *, sixteen_bit: bool) -> bytes:
    scale, dtype = (65535.0, np.uint16) if sixteen_bit else (255.0, np.uint8)
    pixels = np.rint(np.clip(image, 0.0, 1.0) * scale).astype(dtype)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels[:, :, ::-1]))
    if not ok:
        raise InvalidSpecError(f"OpenCV could not encode the edited frame of shape {image.shape}.")
    return encoded.tobytes()
