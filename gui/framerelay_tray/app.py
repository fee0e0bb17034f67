"""The tray app: wires the daemon feed, the job model, the window and the tray icon, and carries
out what the user asks. Every call to the daemon runs off the UI thread (`Commands`)."""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QApplication, QSystemTrayIcon

from framerelay.proto.v1 import daemon_pb2
from framerelay_tray.daemon_process import DaemonLauncher
from framerelay_tray.feed import Commands, QueueFeed
from framerelay_tray.frames import FrameStrip, result_strip
from framerelay_tray.model import JobTableModel
from framerelay_tray.resolve_actions import ResolveActions, describe, find_resolve_actions
from framerelay_tray.rows import JobRow, retry_spec
from framerelay_tray.tray import Tray
from framerelay_tray.window import QueueWindow

log = logging.getLogger(__name__)

NO_TRAY_NOTICE = (
    "This desktop has no system tray: the queue window is the app, and closing it quits. "
    "The daemon keeps running for your plugins."
)


@dataclass(frozen=True)
class Options:
    config_dir: Path | None = None  # where daemon.json is; None: the user's
    use_tray: bool = True
    start_daemon: bool = True  # start `framerelay serve` when no daemon runs
    serve_args: tuple[str, ...] = ()
    show_window: bool = False  # with a tray, the window opens on a click
    resolve: bool = True  # look for the Resolve Studio integration
    status_interval_s: float = 1.0


class FileOpener:
    """Opens results with the desktop; tests swap it for a recorder."""

    def open(self, path: Path) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(path)))

    def reveal(self, path: Path) -> None:
        if sys.platform == "darwin":
            subprocess.Popen(["open", "-R", str(path)])
        elif sys.platform == "win32":
            subprocess.Popen(["explorer", f"/select,{path}"])
        else:  # no common "select this file" call: open its folder
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(path.parent)))


class TrayApp(QObject):
    def __init__(self, options: Options):
        super().__init__()
        self.options = options
        self.status: daemon_pb2.GetStatusResponse | None = None
        self.previews: dict[str, bytes] = {}  # job id -> latest preview PNG
        self.notifications: list[tuple[str, str]] = []  # (title, text), newest last
        self.notices: list[str] = []  # lines said once (no tray...)
        self._strips: dict[str, FrameStrip | None] = {}  # None: being decoded
        self.opener = FileOpener()
        self.model = JobTableModel()
        self.feed = QueueFeed(options.config_dir, options.status_interval_s)
        self.commands = Commands(options.config_dir)
        self.launcher = DaemonLauncher(options.config_dir, options.serve_args)
        self.resolve: ResolveActions | None = find_resolve_actions() if options.resolve else None
        self.tray: Tray | None = None
        if options.use_tray and QSystemTrayIcon.isSystemTrayAvailable():
            self.tray = Tray(self)
        self.window = QueueWindow(self)
        self._wire()

    def _wire(self) -> None:
        self.feed.snapshot.connect(self.model.load)
        self.feed.job_seen.connect(self.model.add_job)
        self.feed.event.connect(self.model.apply)
        self.feed.status.connect(self._status)
        self.feed.connection.connect(self._connection)
        self.model.move_requested.connect(self.move_to)
        self.model.ended.connect(self._ended)
        self.model.preview.connect(self._preview)
        self.model.changed.connect(self._changed)
        self.commands.failed.connect(self._failed)

    # --- life ---

    def start(self) -> None:
        self.feed.start()
        if self.tray is not None:
            self.tray.show()
            if self.options.show_window:
                self.show_window()
        else:
            if self.options.use_tray:  # asked for one (not --no-tray, not --check)
                self.say_once(NO_TRAY_NOTICE)
            self.show_window()
        if self.options.start_daemon and not self.launcher.running():
            self.start_daemon()

    def shutdown(self) -> None:
        self.feed.stop()
        self.commands.shutdown()
        if self.tray is not None:
            self.tray.hide()

    def quit(self) -> None:
        self.shutdown()
        QApplication.quit()

    def show_window(self) -> None:
        self.window.show()
        self.window.raise_()
        self.window.activateWindow()

    def show_log(self) -> None:
        self.show_window()
        self.window.tabs.setCurrentWidget(self.window.daemon_panel)

    def say(self, text: str) -> None:
        self.window.say(text)

    def say_once(self, text: str) -> None:
        if text in self.notices:
            return
        self.notices.append(text)
        log.warning("%s", text)
        self.window.say(text, 0)

    # --- from the feed ---

    def _status(self, status: daemon_pb2.GetStatusResponse | None) -> None:
        self.status = status
        self.window.show_status(status)
        if self.tray is not None:
            self.tray.update()

    def _connection(self, connected: bool, why: str) -> None:
        if not connected:
            self.say(f"Not connected to the daemon: {why}")

    def _changed(self) -> None:
        if self.tray is not None:
            self.tray.update()

    def _preview(self, job_id: str, png: bytes) -> None:
        self.previews[job_id] = png
        self.window.update_preview()

    def _ended(self, row: JobRow) -> None:
        self.previews.pop(row.job_id, None)
        if row.state == "finished":
            self.notify("Finished", f"{row.clip}: the take is ready.", failed=False)
        elif row.state == "failed":
            self.notify("Failed", f"{row.clip}: {row.error_message}", failed=True)

    def notify(self, title: str, text: str, failed: bool) -> None:
        self.notifications.append((title, text))
        if self.tray is not None:
            self.tray.notify(title, text, failed)
        else:
            self.say(f"{title}: {text}")

    def _failed(self, what: str, message: str, hint: str) -> None:
        self.say(f"Could not {what}: {message}" + (f" {hint}" if hint else ""))

    # --- jobs ---

    def _row(self, job_id: str) -> JobRow | None:
        return self.model.state.rows.get(job_id)

    def cancel(self, job_id: str) -> None:
        """Removes a queued job; a job that started meanwhile is left running (interrupt it)."""

        def request(client: Any) -> Any:
            job = client.get(job_id)
            if job.state == 2:  # JOB_STATE_RUNNING: the other verb
                return None
            return client.cancel(job_id)

        def done(response: Any) -> None:
            if response is None:
                self.say("The job started meanwhile; use Interrupt to stop it.")

        self.commands.call("cancel the job", request, done)

    def interrupt(self, job_id: str) -> None:
        self.commands.call(
            "interrupt the job", lambda client: client.cancel(job_id), self._interrupted
        )

    def _interrupted(self, response: daemon_pb2.CancelJobResponse) -> None:
        self.model.mark_stopping(response.job)
        self.window.selection_changed()

    def move_to(self, job_id: str, position: int) -> None:
        self.commands.call("move the job", lambda client: client.move(job_id, position))

    def up(self, job_id: str) -> None:
        self.move_to(job_id, max(1, self.model.state.position(job_id) - 1))

    def down(self, job_id: str) -> None:
        self.move_to(job_id, self.model.state.position(job_id) + 1)

    def retry(self, job_id: str) -> None:
        row = self._row(job_id)
        if row is None:
            return
        spec = retry_spec(row.spec)
        self.commands.call(
            "retry the job",
            lambda client: client.submit(spec),
            lambda job: self.say(f"{row.clip} queued again as job {job.id[:8]}."),
        )

    def open(self, job_id: str) -> None:
        row = self._row(job_id)
        if row is not None and row.output_paths:
            self.opener.open(Path(row.output_paths[0]))

    def reveal(self, job_id: str) -> None:
        row = self._row(job_id)
        if row is not None and row.output_paths:
            self.opener.reveal(Path(row.output_paths[0]))

    def copy_error(self, job_id: str) -> None:
        row = self._row(job_id)
        if row is not None and row.error_text:
            QGuiApplication.clipboard().setText(row.error_text)
            self.say("The error and its hint are on the clipboard.")

    def result_strip(self, row: JobRow, done: Callable[[tuple[JobRow, FrameStrip]], None]) -> None:
        """The result's frames, decoded once per job in the background."""
        if row.job_id in self._strips:
            strip = self._strips[row.job_id]
            if strip is not None:
                done((row, strip))
            return
        self._strips[row.job_id] = None
        path = Path(row.output_paths[0])

        def decoded(strip: FrameStrip) -> None:
            self._strips[row.job_id] = strip
            done((row, strip))

        self.commands.background("read the result's frames", lambda: result_strip(path), decoded)

    # --- the queue, the model, the cache, the settings ---

    def pause(self, interrupt: bool) -> None:
        def done(response: daemon_pb2.PauseQueueResponse) -> None:
            if response.interrupted_job_id:
                self.say("Queue paused; the running job stops and runs first on resume.")
            else:
                self.say("Queue paused; the running job finishes.")

        self.commands.call("pause the queue", lambda client: client.pause(interrupt), done)

    def resume(self) -> None:
        self.commands.call(
            "resume the queue", lambda client: client.resume(), lambda _: self.say("Queue resumed.")
        )

    def unload(self) -> None:
        def done(response: daemon_pb2.UnloadModelResponse) -> None:
            self.say("Model unloaded." if response.was_loaded else "No model was loaded.")

        self.commands.call("unload the model", lambda client: client.unload(), done)

    def cache_info(self, done: Callable[[daemon_pb2.GetCacheInfoResponse], None]) -> None:
        self.commands.call("read the cache", lambda client: client.cache_info(), done)

    def clear_cache(self) -> None:
        def request(client: Any) -> daemon_pb2.GetCacheInfoResponse:
            client.clear_cache()
            return client.cache_info()

        self.commands.call("clear the cache", request, self.window.cache_panel.show_info)

    def gc_cache(self, max_bytes: int) -> None:
        def request(client: Any) -> daemon_pb2.GetCacheInfoResponse:
            client.gc_cache(max_bytes)
            return client.cache_info()

        self.commands.call("trim the cache", request, self.window.cache_panel.show_info)

    def read_settings(self, done: Callable[[tuple[Any, Any]], None]) -> None:
        self.commands.call(
            "read the settings", lambda client: (client.editor_config(), client.defaults()), done
        )

    def write_settings(
        self,
        editor: daemon_pb2.EditorConfig,
        defaults: daemon_pb2.JobDefaults,
        done: Callable[[tuple[Any, Any]], None],
    ) -> None:
        def request(client: Any) -> tuple[Any, Any]:
            client.set_defaults(defaults)
            if editor != client.editor_config().config:
                client.set_editor_config(editor)
            return client.editor_config(), client.defaults()

        def saved(settings: tuple[Any, Any]) -> None:
            done(settings)
            self.say("Settings saved by the daemon.")

        self.commands.call("save the settings", request, saved)

    # --- the daemon ---

    def start_daemon(self) -> None:
        def started(did: bool) -> None:
            if did:
                self.say("Starting the daemon…")
                self.feed.reconnect()

        self.commands.background("start the daemon", self.launcher.start, started)

    def stop_daemon(self) -> None:
        def stopped(was_running: bool) -> None:
            self.say("Daemon stopped." if was_running else "The daemon was not running.")

        self.commands.background("stop the daemon", self.launcher.stop, stopped)

    # --- DaVinci Resolve Studio ---

    def send_resolve_clip(self) -> None:
        if self.resolve is not None:
            self.commands.background(
                "send the current Resolve clip",
                self.resolve.send_current_clip,
                lambda result: self.say(describe(result, "Resolve clip sent")),
            )

    def place_resolve_takes(self) -> None:
        if self.resolve is not None:
            self.commands.background(
                "place the finished takes",
                self.resolve.place_finished_takes,
                lambda result: self.say(describe(result, "Takes placed")),
            )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="framerelay-tray", description="The framerelay queue in the system tray."
    )
    parser.add_argument("--no-tray", action="store_true", help="only the queue window")
    parser.add_argument("--show", action="store_true", help="open the queue window at start")
    parser.add_argument(
        "--no-start-daemon",
        action="store_true",
        help="do not start `framerelay serve` when no daemon runs",
    )
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="an argument for `framerelay serve` when the tray starts it (repeatable), "
        "e.g. --serve-arg=--fake",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="start, wait until the daemon answers, print one line about it and exit",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="--check waits this long")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="framerelay-tray: %(message)s")
    if args.check:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # the check shows nothing
    elif not has_display():
        print(
            "framerelay-tray: error: there is no display to show the tray and the queue window "
            "on (DISPLAY and WAYLAND_DISPLAY are not set).\n"
            "hint: Start it in your desktop session; over SSH, `framerelay-tray --check` or "
            "`framerelay jobs` show the daemon and its queue.",
            file=sys.stderr,
        )
        return 2
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    qt_app.setApplicationName("framerelay")
    options = Options(
        use_tray=not args.no_tray and not args.check,
        start_daemon=not args.no_start_daemon,
        serve_args=tuple(args.serve_arg),
        show_window=args.show,
    )
    app = TrayApp(options)
    qt_app.setQuitOnLastWindowClosed(app.tray is None)
    app.start()
    if args.check:
        return check(app, qt_app, args.timeout)
    try:
        return qt_app.exec()
    finally:
        app.shutdown()


def has_display(environ: Any = os.environ, platform: str = sys.platform) -> bool:
    """Whether Qt has somewhere to draw: always on Windows and macOS; elsewhere an X11 or
    Wayland display, or a platform plugin chosen by hand (QT_QPA_PLATFORM)."""
    if platform in ("win32", "darwin") or environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))


def check(app: TrayApp, qt_app: Any, timeout: float) -> int:
    """Runs the event loop until the daemon's status and queue arrive; prints them."""
    result = {"code": 1}

    def poll() -> None:
        if app.status is not None and app.feed.connected:
            status = app.status
            print(
                f"framerelay-tray: connected to framerelay {status.version} (process "
                f"{status.pid}); {len(app.model.rows())} jobs; {app.window.status_label.text()}"
            )
            result["code"] = 0
            qt_app.quit()

    timer = QTimer()
    timer.timeout.connect(poll)
    timer.start(50)
    QTimer.singleShot(round(timeout * 1000), qt_app.quit)
    qt_app.exec()
    app.shutdown()
    if result["code"]:
        print(f"framerelay-tray: no daemon answered within {timeout:.0f} s", file=sys.stderr)
    return result["code"]
