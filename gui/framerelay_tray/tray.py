"""The system-tray icon: its tooltip and the top of its menu say how long the queue is and how far
the running job has got; a click opens the queue window."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon

from framerelay_tray.icon import Look, icon
from framerelay_tray.rows import progress_text

if TYPE_CHECKING:
    from framerelay_tray.app import TrayApp


def summary(app: TrayApp) -> tuple[str, str]:
    """(queue line, running line) for the menu and the tooltip."""
    status = app.status
    if status is None:
        return "Daemon not running", ""
    queued = app.model.state.queue_length
    queue = f"{queued} job{'s' if queued != 1 else ''} queued"
    if status.queue_paused:
        queue += " (paused)"
    running = app.model.state.running()
    if running is None:
        return queue, "Nothing running"
    return queue, f"Running: {running.clip}, {progress_text(running)} ({running.fraction:.0%})"


class Tray:
    def __init__(self, app: TrayApp):
        self.app = app
        self.icon = QSystemTrayIcon(icon(Look.offline))
        self.menu = QMenu()
        self.queue_line = self._info("")
        self.running_line = self._info("")
        self.menu.addSeparator()
        self.open_action = self._add("Open queue window", app.show_window)
        self.pause_action = self._add(
            "Pause queue (the running job finishes)", lambda: app.pause(interrupt=False)
        )
        self.pause_interrupt_action = self._add(
            "Pause queue and interrupt the running job", lambda: app.pause(interrupt=True)
        )
        self.resume_action = self._add("Resume queue", app.resume)
        self.unload_action = self._add("Unload model (free GPU memory)", app.unload)
        self.resolve_actions: list[QAction] = []
        if app.resolve is not None:
            self.menu.addSeparator()
            self.resolve_actions = [
                self._add("Send current Resolve clip", app.send_resolve_clip),
                self._add("Place finished takes", app.place_resolve_takes),
            ]
        self.menu.addSeparator()
        self.start_action = self._add("Start daemon", app.start_daemon)
        self.stop_action = self._add("Stop daemon", app.stop_daemon)
        self.log_action = self._add("Show daemon log", app.show_log)
        self.menu.addSeparator()
        self._add("Quit", app.quit)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.update()

    def _info(self, text: str) -> QAction:
        action = self.menu.addAction(text)
        action.setEnabled(False)
        return action

    def _add(self, text: str, slot: Callable[[], object]) -> QAction:
        action = self.menu.addAction(text)
        action.triggered.connect(lambda _=False: slot())
        return action

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.app.show_window()

    def show(self) -> None:
        self.icon.show()

    def hide(self) -> None:
        self.icon.hide()

    def update(self) -> None:
        status = self.app.status
        queue, running = summary(self.app)
        self.queue_line.setText(queue)
        self.running_line.setText(running)
        self.running_line.setVisible(bool(running))
        up = status is not None
        paused = up and status.queue_paused
        self.pause_action.setVisible(up and not paused)
        self.pause_interrupt_action.setVisible(up and not paused)
        self.resume_action.setVisible(paused)
        self.unload_action.setVisible(up)
        self.unload_action.setEnabled(up and status.model_loaded)
        self.start_action.setVisible(not up)
        self.stop_action.setVisible(up)
        for action in self.resolve_actions:
            action.setEnabled(up)
        self.icon.setToolTip("framerelay: " + " · ".join(p for p in (queue, running) if p))
        job = self.app.model.state.running()
        if not up:
            look, fraction = Look.offline, None
        elif paused:
            look, fraction = Look.paused, None
        elif job is not None:
            look, fraction = Look.running, job.fraction
        else:
            look, fraction = Look.idle, None
        self.icon.setIcon(icon(look, fraction))

    def notify(self, title: str, text: str, failed: bool) -> None:
        kind = (
            QSystemTrayIcon.MessageIcon.Critical
            if failed
            else QSystemTrayIcon.MessageIcon.Information
        )
        self.icon.showMessage(title, text, kind, 8000)
