"""The queue window's other tabs: the cache, the settings the daemon keeps, and the daemon itself
(start, stop, its log). Each reads and writes through the app, never on the UI thread."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from framerelay.cache.size import format_size, parse_size
from framerelay.proto.v1 import daemon_pb2, specs_pb2

if TYPE_CHECKING:
    from framerelay_tray.app import TrayApp

PRESETS = ("auto", "local", "style", "shape")
FORMATS = ("mov", "mp4", "png")
DEFAULT_TRIM = "20GB"
LOG_REFRESH_MS = 2000


class CachePanel(QWidget):
    """Size, entries per clip, clear, and trim to a size (least recently used first)."""

    def __init__(self, app: TrayApp):
        super().__init__()
        self.app = app
        self.summary = QLabel("Cache: not read yet")
        self.summary.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.clips = QTableWidget(0, 3)
        self.clips.setHorizontalHeaderLabels(["Clip", "Entries", "Size"])
        header = self.clips.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.clips.verticalHeader().setVisible(False)
        self.clips.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.refresh_button = QPushButton("Refresh")
        self.clear_button = QPushButton("Clear cache")
        self.trim_size = QLineEdit(DEFAULT_TRIM)
        self.trim_size.setMaximumWidth(90)
        self.trim_button = QPushButton("Trim to size")
        self.refresh_button.clicked.connect(self.refresh)
        self.clear_button.clicked.connect(self.app.clear_cache)
        self.trim_button.clicked.connect(self.trim)
        buttons = QHBoxLayout()
        for widget in (
            self.refresh_button,
            self.clear_button,
            QLabel("Keep at most"),
            self.trim_size,
            self.trim_button,
        ):
            buttons.addWidget(widget)
        buttons.addStretch()
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.clips)
        layout.addLayout(buttons)

    def refresh(self) -> None:
        self.app.cache_info(self.show_info)

    def trim(self) -> None:
        try:
            size = parse_size(self.trim_size.text().strip())
        except ValueError as error:
            self.app.say(f"{error}")
            return
        self.app.gc_cache(size)

    def show_info(self, info: daemon_pb2.GetCacheInfoResponse) -> None:
        self.summary.setText(
            f"{info.entries} entries, {format_size(info.bytes)} in {info.root}"
            if info.entries
            else f"The cache is empty ({info.root})."
        )
        self.clips.setRowCount(len(info.clips))
        for n, clip in enumerate(info.clips):
            cells = (
                clip.source_path or "(clip not recorded)",
                str(clip.entries),
                format_size(clip.bytes),
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column:
                    item.setTextAlignment(
                        Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                    )
                self.clips.setItem(n, column, item)


class SettingsPanel(QWidget):
    """The image editor and the job defaults, as the daemon keeps them for every host."""

    def __init__(self, app: TrayApp):
        super().__init__()
        self.app = app
        self._editor = daemon_pb2.EditorConfig()
        self.editor_application = QLineEdit()
        self.editor_application.setPlaceholderText("the system's default application")
        self.open_editor = QCheckBox("Open the exported frame in the editor")
        self.preset = QComboBox()
        self.preset.addItems(PRESETS)
        self.output_format = QComboBox()
        self.output_format.addItems(FORMATS)
        self.output_folder = QLineEdit()
        self.output_folder.setPlaceholderText("the daemon's data folder, one sub-folder per job")
        choose = QPushButton("Choose…")
        choose.clicked.connect(self.choose_folder)
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.output_folder)
        folder_row.addWidget(choose)
        self.save_button = QPushButton("Save")
        self.reload_button = QPushButton("Reload")
        self.save_button.clicked.connect(self.save)
        self.reload_button.clicked.connect(self.reload)
        self.where = QLabel("")
        self.where.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Image editor", self.editor_application)
        form.addRow("", self.open_editor)
        form.addRow("Default preset", self.preset)
        form.addRow("Output format", self.output_format)
        form.addRow("Output folder", folder_row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.reload_button)
        buttons.addStretch()
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.where)
        layout.addStretch()

    def reload(self) -> None:
        self.app.read_settings(self.show_settings)

    def show_settings(self, settings: tuple[Any, Any]) -> None:
        editor, defaults = settings
        self._editor = editor.config
        self.editor_application.setText(editor.config.application)
        open_editor = editor.config.open_editor if editor.config.HasField("open_editor") else True
        self.open_editor.setChecked(open_editor)
        self.preset.setCurrentText(preset_text(defaults.defaults.preset))
        self.output_format.setCurrentText(format_text(defaults.defaults.output_format))
        self.output_folder.setText(defaults.defaults.output_folder)
        note = (
            " The daemon runs with --no-open: it never opens the editor." if editor.no_open else ""
        )
        self.where.setText(f"Kept by the daemon in {defaults.config_path}.{note}")

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Output folder", self.output_folder.text())
        if folder:
            self.output_folder.setText(folder)

    def editor_config(self) -> daemon_pb2.EditorConfig:
        config = daemon_pb2.EditorConfig()
        config.CopyFrom(self._editor)  # keep what this panel does not show (arguments, polling)
        config.application = self.editor_application.text().strip()
        config.open_editor = self.open_editor.isChecked()
        return config

    def job_defaults(self) -> daemon_pb2.JobDefaults:
        return daemon_pb2.JobDefaults(
            preset=specs_pb2.Preset.Value(f"PRESET_{self.preset.currentText().upper()}"),
            output_format=specs_pb2.OutputFormat.Value(
                f"OUTPUT_FORMAT_{self.output_format.currentText().upper()}"
            ),
            output_folder=self.output_folder.text().strip(),
        )

    def save(self) -> None:
        self.app.write_settings(self.editor_config(), self.job_defaults(), self.show_settings)


def preset_text(value: int) -> str:
    name = specs_pb2.Preset.Name(value).removeprefix("PRESET_").lower()
    return "auto" if name == "unspecified" else name


def format_text(value: int) -> str:
    name = specs_pb2.OutputFormat.Name(value).removeprefix("OUTPUT_FORMAT_").lower()
    return "mov" if name == "unspecified" else name


class DaemonPanel(QWidget):
    """Start and stop the daemon, and read its log."""

    def __init__(self, app: TrayApp):
        super().__init__()
        self.app = app
        self.state = QLabel("")
        self.start_button = QPushButton("Start daemon")
        self.stop_button = QPushButton("Stop daemon")
        self.refresh_button = QPushButton("Refresh log")
        self.start_button.clicked.connect(app.start_daemon)
        self.stop_button.clicked.connect(app.stop_daemon)
        self.refresh_button.clicked.connect(self.refresh_log)
        self.log_path = QLabel(str(app.launcher.log_path))
        self.log_path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        buttons = QHBoxLayout()
        for widget in (self.start_button, self.stop_button, self.refresh_button):
            buttons.addWidget(widget)
        buttons.addStretch()
        layout = QVBoxLayout(self)
        layout.addWidget(self.state)
        layout.addLayout(buttons)
        layout.addWidget(self.log_path)
        layout.addWidget(self.log)
        self.timer = QTimer(self)
        self.timer.setInterval(LOG_REFRESH_MS)
        self.timer.timeout.connect(self.refresh_log)

    def show_status(self, status: daemon_pb2.GetStatusResponse | None) -> None:
        if status is None:
            self.state.setText("The daemon is not running.")
        else:
            self.state.setText(
                f"The daemon runs (process {status.pid}, framerelay {status.version})."
            )
        self.start_button.setEnabled(status is None)
        self.stop_button.setEnabled(status is not None)

    def refresh_log(self) -> None:
        self.app.commands.background(
            "read the daemon's log", self.app.launcher.read_log, self.show_log
        )

    def show_log(self, text: str) -> None:
        bar = self.log.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 2
        self.log.setPlainText(text)
        if at_end:
            bar.setValue(bar.maximum())

    def showEvent(self, event: Any) -> None:
        self.refresh_log()
        self.timer.start()
        super().showEvent(event)

    def hideEvent(self, event: Any) -> None:
        self.timer.stop()
        super().hideEvent(event)
