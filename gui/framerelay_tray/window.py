"""The queue window: the job table with its actions, the preview, the status line, and the cache,
settings and daemon tabs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QSize, Qt
from PySide6.QtGui import QAction, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMainWindow,
    QMenu,
    QSplitter,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionProgressBar,
    QStyleOptionViewItem,
    QTableView,
    QTabWidget,
    QToolBar,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from framerelay.cache.size import format_size
from framerelay.proto.v1 import daemon_pb2
from framerelay_tray.frames import FrameStrip, preview_image, thumbnail
from framerelay_tray.model import FRACTION_ROLE, PROGRESS_COLUMN
from framerelay_tray.panels import CachePanel, DaemonPanel, SettingsPanel
from framerelay_tray.rows import JobRow

if TYPE_CHECKING:
    from framerelay_tray.app import TrayApp

PREVIEW_HEIGHT = 220


class ProgressDelegate(QStyledItemDelegate):
    """Paints the Progress column as a bar with its text."""

    def paint(self, painter: Any, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        fraction = index.data(FRACTION_ROLE)
        if fraction is None:
            super().paint(painter, option, index)
            return
        bar = QStyleOptionProgressBar()
        bar.rect = option.rect.adjusted(2, 3, -2, -3)
        bar.minimum, bar.maximum = 0, 1000
        bar.progress = round(fraction * 1000)
        bar.text = index.data() or f"{fraction:.0%}"
        bar.textVisible = True
        bar.state = QStyle.StateFlag.State_Enabled | QStyle.StateFlag.State_Horizontal
        QApplication.style().drawControl(QStyle.ControlElement.CE_ProgressBar, bar, painter)


def status_line(status: daemon_pb2.GetStatusResponse | None) -> str:
    """framerelay 0.1.0 · cuda:0 · model loaded · VRAM 9.1 GB / 24 GB · 3 queued (paused)"""
    if status is None:
        return "Daemon not running: start it from the Daemon tab or the tray menu."
    parts = [f"framerelay {status.version}", status.device]
    parts.append(f"model loaded ({status.model})" if status.model_loaded else "model not loaded")
    if status.vram_total_bytes:
        used, total = format_size(status.vram_used_bytes), format_size(status.vram_total_bytes)
        parts.append(f"VRAM {used} / {total}")
    queue = f"{status.queue_length} queued"
    parts.append(f"{queue} (paused)" if status.queue_paused else queue)
    return " · ".join(parts)


class PreviewPanel(QWidget):
    """The running job's latest preview frame; a strip of frames from a finished job's result."""

    def __init__(self) -> None:
        super().__init__()
        self.title = QLabel("Preview")
        self.title.setWordWrap(True)
        self.picture = QLabel("Select a job")
        self.picture.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.picture.setMinimumSize(QSize(240, PREVIEW_HEIGHT))
        self.strip = QHBoxLayout()
        self.strip.setSpacing(2)
        strip_box = QWidget()
        strip_box.setLayout(self.strip)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.picture, 1)
        layout.addWidget(strip_box)
        self.showing: tuple[str, str] = ("", "")  # (job id, "live" | "strip" | "")

    def clear_strip(self) -> None:
        while self.strip.count():
            item = self.strip.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()

    def show_text(self, title: str, text: str) -> None:
        self.title.setText(title)
        self.picture.setPixmap(QPixmap())
        self.picture.setText(text)
        self.clear_strip()
        self.showing = ("", "")

    def show_live(self, row: JobRow, png: bytes) -> None:
        image = preview_image(png)
        self.title.setText(f"Live preview: {row.clip} ({row.phase or 'starting'})")
        self.clear_strip()
        if image.isNull():
            self.picture.setText("The preview could not be read.")
        else:
            self.picture.setPixmap(QPixmap.fromImage(thumbnail(image, PREVIEW_HEIGHT)))
        self.showing = (row.job_id, "live")

    def show_strip(self, row: JobRow, strip: FrameStrip) -> None:
        self.title.setText(f"Result: {row.clip} ({row.preset})")
        self.clear_strip()
        if not strip.frames:
            self.picture.setPixmap(QPixmap())
            self.picture.setText(strip.note)
        else:
            self.picture.setPixmap(QPixmap.fromImage(thumbnail(strip.frames[0], PREVIEW_HEIGHT)))
            for frame in strip.frames:
                label = QLabel()
                label.setPixmap(QPixmap.fromImage(frame).scaledToHeight(48))
                self.strip.addWidget(label)
            self.strip.addStretch()
        self.showing = (row.job_id, "strip")

    def frame_count(self) -> int:
        return sum(1 for n in range(self.strip.count()) if self.strip.itemAt(n).widget())


class QueueWindow(QMainWindow):
    def __init__(self, app: TrayApp):
        super().__init__()
        self.app = app
        self.setWindowTitle("framerelay queue")
        self.resize(1100, 560)
        self.table = QTableView()
        self.table.setModel(app.model)
        self.table.setItemDelegateForColumn(PROGRESS_COLUMN, ProgressDelegate(self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.table.setDragEnabled(True)
        self.table.setAcceptDrops(True)
        self.table.setDropIndicatorShown(True)
        self.table.verticalHeader().setVisible(False)
        self.table.setAlternatingRowColors(True)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(PROGRESS_COLUMN, QHeaderView.ResizeMode.Fixed)
        header.resizeSection(PROGRESS_COLUMN, 190)
        self.table.selectionModel().selectionChanged.connect(self.selection_changed)
        self.table.doubleClicked.connect(self.open_double_clicked)
        app.model.layoutChanged.connect(self.selection_changed)
        app.model.dataChanged.connect(self.selection_changed)

        self.preview = PreviewPanel()
        splitter = QSplitter()
        splitter.addWidget(self.table)
        splitter.addWidget(self.preview)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)

        self.cache_panel = CachePanel(app)
        self.settings_panel = SettingsPanel(app)
        self.daemon_panel = DaemonPanel(app)
        self.tabs = QTabWidget()
        self.tabs.addTab(splitter, "Queue")
        self.tabs.addTab(self.cache_panel, "Cache")
        self.tabs.addTab(self.settings_panel, "Settings")
        self.tabs.addTab(self.daemon_panel, "Daemon")
        self.tabs.currentChanged.connect(self.tab_changed)
        self.setCentralWidget(self.tabs)

        self.actions = self._make_actions()
        self.status_label = QLabel(status_line(None))
        self.statusBar().addPermanentWidget(self.status_label)
        self.selection_changed()

    # --- actions ---

    def _make_actions(self) -> dict[str, QAction]:
        app = self.app
        toolbar = QToolBar("Jobs")
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(toolbar)
        specs = (
            ("cancel", "Cancel", "Remove the queued job (or the round trip awaiting its edit)"),
            ("interrupt", "Interrupt", "Stop the running job at its next step"),
            ("up", "Move up", "Run the queued job earlier"),
            ("down", "Move down", "Run the queued job later"),
            ("retry", "Retry", "Queue the failed or cancelled job again"),
            ("open", "Open result", "Open the result in its application"),
            ("reveal", "Reveal", "Show the result in the file manager"),
            ("copy_error", "Copy error", "Copy the error and its hint"),
        )
        actions: dict[str, QAction] = {}
        for name, text, tip in specs:
            action = QAction(text, self)
            action.setToolTip(tip)
            action.triggered.connect(lambda _=False, name=name: self.act(name))
            toolbar.addAction(action)
            actions[name] = action
        toolbar.addSeparator()
        pause_menu = QMenu(self)
        actions["pause"] = pause_menu.addAction("Pause: let the running job finish")
        actions["pause"].triggered.connect(lambda: app.pause(interrupt=False))
        actions["pause_interrupt"] = pause_menu.addAction("Pause and interrupt the running job")
        actions["pause_interrupt"].triggered.connect(lambda: app.pause(interrupt=True))
        pause_button = QToolButton()
        pause_button.setText("Pause queue")
        pause_button.setMenu(pause_menu)
        pause_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        toolbar.addWidget(pause_button)
        self.pause_button = pause_button
        for name, text, slot in (
            ("resume", "Resume queue", app.resume),
            ("unload", "Unload model", app.unload),
        ):
            action = QAction(text, self)
            action.triggered.connect(slot)
            toolbar.addAction(action)
            actions[name] = action
        return actions

    def selected(self) -> JobRow | None:
        rows = self.table.selectionModel().selectedRows()
        return self.app.model.row_at(rows[0].row()) if rows else None

    def select_job(self, job_id: str) -> None:
        row = self.app.model.row_of(job_id)
        if row >= 0:
            self.table.selectRow(row)

    def act(self, name: str) -> None:
        row = self.selected()
        if row is not None:
            getattr(self.app, name)(row.job_id)

    def open_double_clicked(self, index: QModelIndex | QPersistentModelIndex) -> None:
        row = self.app.model.row_at(index.row())
        if row is not None and row.output_paths:
            self.app.open(row.job_id)

    def selection_changed(self, *_: Any) -> None:
        row = self.selected()
        state = row.state if row else ""
        position = self.app.model.state.position(row.job_id) if row else 0
        length = self.app.model.state.queue_length
        enabled = {
            "cancel": state in ("queued", "awaiting edit"),
            "interrupt": state == "running" and not (row and row.cancel_requested),
            "up": state == "queued" and position > 1,
            "down": state == "queued" and 0 < position < length,
            "retry": state in ("failed", "cancelled"),
            "open": bool(row and row.output_paths),
            "reveal": bool(row and row.output_paths),
            "copy_error": bool(row and row.error_message),
        }
        for name, on in enabled.items():
            self.actions[name].setEnabled(on)
        self.update_preview()

    # --- status and preview ---

    def show_status(self, status: daemon_pb2.GetStatusResponse | None) -> None:
        self.status_label.setText(status_line(status))
        connected = status is not None
        self.actions["resume"].setEnabled(connected and status.queue_paused)
        self.pause_button.setEnabled(connected and not status.queue_paused)
        self.actions["unload"].setEnabled(connected and status.model_loaded)
        self.daemon_panel.show_status(status)

    def update_preview(self) -> None:
        row = self.selected() or self.app.model.state.running()
        if row is None:
            self.preview.show_text("Preview", "Select a job to see its frames.")
            return
        if row.state == "running":
            png = self.app.previews.get(row.job_id)
            if png is None:
                self.preview.show_text(f"Live preview: {row.clip}", "No preview frame yet.")
            else:
                self.preview.show_live(row, png)
        elif row.state == "finished" and row.output_paths:
            if self.preview.showing != (row.job_id, "strip"):
                self.app.result_strip(row, self._strip_ready)
        else:
            text = row.error_text or f"{row.clip} is {row.state}."
            self.preview.show_text(row.clip, text)

    def _strip_ready(self, result: tuple[JobRow, FrameStrip]) -> None:
        row, strip = result
        current = self.selected() or self.app.model.state.running()
        if current is not None and current.job_id == row.job_id:
            self.preview.show_strip(row, strip)

    def tab_changed(self, index: int) -> None:
        widget = self.tabs.widget(index)
        if widget is self.cache_panel:
            self.cache_panel.refresh()
        elif widget is self.settings_panel:
            self.settings_panel.reload()

    def say(self, text: str, milliseconds: int = 8000) -> None:
        self.statusBar().showMessage(text, milliseconds)

    def closeEvent(self, event: Any) -> None:
        if self.app.tray is not None:  # the tray keeps the app; the window only hides
            event.ignore()
            self.hide()
        else:
            event.accept()
