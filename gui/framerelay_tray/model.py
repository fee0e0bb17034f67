"""The Qt model of the queue window: one row per job, fed by `QueueFeed` in the UI thread.

Queued rows can be dragged to another place; the model asks for the move (`move_requested`) and
shows the new order only when the daemon's `queued` event comes back, so it never disagrees with
the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from PySide6.QtCore import (
    QAbstractTableModel,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor

from framerelay.proto.v1 import events_pb2, jobs_pb2
from framerelay_tray.rows import JobRow, QueueState, format_created, format_eta, progress_text

MIME_TYPE = "application/x-framerelay-job-id"
FRACTION_ROLE = Qt.ItemDataRole.UserRole + 1  # the Progress column's 0..1
JOB_ID_ROLE = Qt.ItemDataRole.UserRole + 2
STATE_COLOURS = {
    "failed": QColor(190, 40, 40),
    "cancelled": QColor(120, 120, 120),
    "finished": QColor(30, 120, 50),
    "awaiting edit": QColor(150, 100, 0),
}
AnyIndex = QModelIndex | QPersistentModelIndex


@dataclass(frozen=True)
class Column:
    title: str
    text: Any  # JobRow, position -> str


def _window(row: JobRow, _: int) -> str:
    return f"{row.window}/{row.windows}" if row.windows else ""


def _state(row: JobRow, position: int) -> str:
    if row.state == "queued" and position:
        return f"queued #{position}"
    return row.state


COLUMNS = (
    Column("Clip", lambda row, _: row.clip),
    Column("Host", lambda row, _: row.host or "—"),
    Column("State", _state),
    Column("Phase", lambda row, _: row.phase if row.state == "running" else ""),
    Column("Window", _window),
    Column("Progress", lambda row, _: progress_text(row)),
    Column("ETA", lambda row, _: format_eta(row.eta_seconds) if row.state == "running" else ""),
    Column("Created", lambda row, _: format_created(row.created_at)),
    Column("Preset", lambda row, _: row.preset),
)
PROGRESS_COLUMN = 5


class JobTableModel(QAbstractTableModel):
    move_requested = Signal(str, int)  # job id, new 1-based queue position
    changed = Signal()  # any update: the tray's tooltip and menu follow
    ended = Signal(object)  # JobRow that just finished, failed or was cancelled
    preview = Signal(str, bytes)  # job id, PNG of its latest preview event

    def __init__(self) -> None:
        super().__init__()
        self.state = QueueState()
        self._rows: list[JobRow] = []

    # --- fed by QueueFeed ---

    def load(self, jobs: list[jobs_pb2.Job]) -> None:
        """A fresh snapshot; jobs seen running or queued before that have ended since (while the
        feed was reconnecting) are reported as ended."""
        before = self.state.rows
        self.state.load(jobs)
        self._refresh()
        for job_id, row in self.state.rows.items():
            old = before.get(job_id)
            if old is not None and not old.ended and row.ended:
                self.ended.emit(row)

    def add_job(self, job: jobs_pb2.Job) -> None:
        self.state.add(job)
        self._refresh()

    def apply(self, event: events_pb2.JobEvent) -> None:
        before = self.state.rows.get(event.job_id)
        if not self.state.apply(event):
            return
        after = self.state.rows[event.job_id]
        if event.WhichOneof("kind") == "preview":
            self.preview.emit(event.job_id, bytes(event.preview.png))
        if before is not None and not before.ended and after.ended:
            self.ended.emit(after)
        self._refresh()

    def mark_stopping(self, job: jobs_pb2.Job) -> None:
        """The daemon accepted an interrupt: the row says so until the job stops."""
        row = self.state.rows.get(job.id)
        if row is not None and job.cancel_requested:
            self.state.rows[job.id] = replace(row, cancel_requested=True)
            self._refresh()

    def _refresh(self) -> None:
        rows = self.state.ordered()
        old_ids = [row.job_id for row in self._rows]
        new_ids = [row.job_id for row in rows]
        if old_ids == new_ids:
            changed = [n for n, (a, b) in enumerate(zip(self._rows, rows, strict=True)) if a != b]
            self._rows = rows
            if changed:
                last = self.columnCount() - 1
                self.dataChanged.emit(self.index(min(changed), 0), self.index(max(changed), last))
        else:
            self.layoutAboutToBeChanged.emit()
            where = {job_id: n for n, job_id in enumerate(new_ids)}
            old = self.persistentIndexList()
            new = []
            for index in old:
                target = where.get(old_ids[index.row()]) if index.row() < len(old_ids) else None
                new.append(QModelIndex() if target is None else self.index(target, index.column()))
            self._rows = rows
            self.changePersistentIndexList(old, new)
            self.layoutChanged.emit()
        self.changed.emit()

    # --- reading ---

    def row_at(self, row: int) -> JobRow | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, job_id: str) -> int:
        return next((n for n, row in enumerate(self._rows) if row.job_id == job_id), -1)

    def rows(self) -> list[JobRow]:
        return list(self._rows)

    def rowCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: AnyIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = 0) -> Any:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section].title
        return None

    def data(self, index: AnyIndex, role: int = 0) -> Any:
        row = self.row_at(index.row())
        if row is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[index.column()].text(row, self.state.position(row.job_id))
        if role == FRACTION_ROLE:
            return row.fraction if row.state in ("running", "finished") else None
        if role == JOB_ID_ROLE:
            return row.job_id
        if role == Qt.ItemDataRole.ForegroundRole:
            return STATE_COLOURS.get(row.state)
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(row)
        return None

    # --- drag to reorder ---

    def flags(self, index: AnyIndex) -> Qt.ItemFlag:
        base = super().flags(index) | Qt.ItemFlag.ItemIsDropEnabled
        row = self.row_at(index.row())
        if row is not None and row.state == "queued":
            base |= Qt.ItemFlag.ItemIsDragEnabled
        return base

    def supportedDropActions(self) -> Qt.DropAction:
        return Qt.DropAction.MoveAction

    def mimeTypes(self) -> list[str]:
        return [MIME_TYPE]

    def mimeData(self, indexes: list[QModelIndex]) -> QMimeData:
        data = QMimeData()
        rows = [self.row_at(index.row()) for index in indexes]
        queued = [row.job_id for row in rows if row is not None and row.state == "queued"]
        if queued:
            data.setData(MIME_TYPE, queued[0].encode("ascii"))
        return data

    def dropMimeData(
        self, data: QMimeData, action: Qt.DropAction, row: int, column: int, parent: AnyIndex
    ) -> bool:
        if not data.hasFormat(MIME_TYPE):
            return False
        job_id = bytes(data.data(MIME_TYPE).data()).decode("ascii")
        source = self.row_of(job_id)
        if source < 0:
            return False
        if row < 0:  # dropped onto a row: take its place
            target = parent.row() if parent.isValid() else len(self._rows)
            row = target + 1 if parent.isValid() and target > source else target
        position = self.drop_position(job_id, row)
        if position != self.state.position(job_id):
            self.move_requested.emit(job_id, position)
        return True  # the view's removeRows after a move is a no-op: the daemon moves the row

    def drop_position(self, job_id: str, before_row: int) -> int:
        """The queue position of `job_id` dropped before display row `before_row`."""
        ahead = [
            row
            for row in self._rows[: max(before_row, 0)]
            if row.state == "queued" and row.job_id != job_id
        ]
        return len(ahead) + 1


def tooltip(row: JobRow) -> str:
    lines = [row.spec.source_path]
    if row.output_paths:
        lines += ["Result:", *row.output_paths]
    if row.error_message:
        lines.append(row.error_text)
    if row.exported_path:
        lines.append(f"Edit and save: {row.exported_path}")
    return "\n".join(lines)
