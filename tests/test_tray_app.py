"""The tray app's queue window against a real daemon on loopback (fake executor), Qt offscreen:
rows and progress, the two cancel verbs, reordering, pause/resume, unload, reconnecting after a
restart, retry, results, previews, notifications, the cache and settings panels."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import QModelIndex, Qt, QTimer
from PySide6.QtGui import QGuiApplication

from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.proto.v1 import events_pb2, jobs_pb2, specs_pb2
from framerelay.service.app import DaemonThread
from framerelay.service.cache import DirectoryCache
from framerelay.service.client import DaemonClient
from framerelay.service.discovery import Discovery, discovery_path, write_discovery
from framerelay_tray import frames
from framerelay_tray.model import MIME_TYPE
from tests.daemon_harness import (
    clip_spec,
    kinds,
    make_config,
    make_media,
    running_daemon,
    start_serve,
    stop_serve,
    wait_for,
)
from tests.tray_support import pump, qt_application, set_state_dirs, tray_app


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    qt_application()
    set_state_dirs(monkeypatch, tmp_path)


def rows_by_id(app) -> dict:
    return {row.job_id: row for row in app.model.rows()}


def state_of(app, job_id: str) -> str:
    row = rows_by_id(app).get(job_id)
    return row.state if row else ""


def test_rows_appear_and_progress_updates(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    fake = FakeExecutor(gate=gate, step_seconds=0.05)
    with running_daemon(tmp_path, fake) as (_, client), tray_app(tmp_path) as app:
        before = client.submit(clip_spec(source, edited, label="first"))
        pump(lambda: state_of(app, before.id) == "running")
        queued = [client.submit(clip_spec(source, edited, label=f"q{n}")) for n in (1, 2)]
        pump(lambda: len(app.model.rows()) == 3)
        texts = [app.model.data(app.model.index(n, 2)) for n in range(3)]
        gate.set()
        steps = []
        pump(lambda: steps.append(rows_by_id(app)[before.id].step) or len(set(steps)) >= 3)
        progress = app.model.data(app.model.index(app.model.row_of(before.id), 5))
        pump(lambda: all(state_of(app, j.id) == "finished" for j in (before, *queued)))
        finished = rows_by_id(app)[before.id]
        pump(lambda: app.status is not None and app.status.queue_length == 0)
        line = app.window.status_label.text()
    assert texts == ["running", "queued #1", "queued #2"]
    assert progress and "/" in progress
    assert finished.preset == "local" and finished.fraction == 1.0
    assert finished.output_paths == tuple(before.output_paths)
    assert "0 queued" in line and "framerelay 0.1.0" in line


def test_cancel_and_interrupt_are_two_verbs_that_reach_the_daemon(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    with (
        running_daemon(tmp_path, FakeExecutor(gate=gate)) as (_, client),
        tray_app(tmp_path) as app,
    ):
        running = client.submit(clip_spec(source, edited))
        queued = client.submit(clip_spec(source, edited))
        pump(lambda: state_of(app, running.id) == "running" and state_of(app, queued.id))
        window = app.window
        window.select_job(running.id)
        on_running = {n: window.actions[n].isEnabled() for n in ("cancel", "interrupt")}
        app.cancel(running.id)  # "cancel queued" never stops a running job
        pump(lambda: app.commands.pending == 0)
        still_running = client.get(running.id)
        window.select_job(queued.id)
        on_queued = {n: window.actions[n].isEnabled() for n in ("cancel", "interrupt")}
        window.actions["cancel"].trigger()
        pump(lambda: state_of(app, queued.id) == "cancelled")
        window.select_job(running.id)
        window.actions["interrupt"].trigger()
        pump(lambda: state_of(app, running.id) == "cancelled")
        last_running = list(client.watch(running.id))[-1]
        last_queued = list(client.watch(queued.id))[-1]
    assert on_running == {"cancel": False, "interrupt": True}
    assert on_queued == {"cancel": True, "interrupt": False}
    assert still_running.state == jobs_pb2.JOB_STATE_RUNNING and not still_running.cancel_requested
    assert last_queued.cancelled.reason == events_pb2.CANCEL_REASON_DEQUEUED
    assert last_running.cancelled.reason == events_pb2.CANCEL_REASON_INTERRUPTED


def test_move_buttons_and_drag_reorder_the_daemons_queue(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    with (
        running_daemon(tmp_path, FakeExecutor(gate=gate)) as (_, client),
        tray_app(tmp_path) as app,
    ):
        running = client.submit(clip_spec(source, edited, label="running"))
        wait_for(lambda: client.get(running.id).state == jobs_pb2.JOB_STATE_RUNNING)
        b, c, d = (client.submit(clip_spec(source, edited, label=x)).id for x in "bcd")

        def daemon_order() -> list[str]:
            return [j.id for j in client.list([jobs_pb2.JOB_STATE_QUEUED]).jobs]

        def shown_order() -> list[str]:
            return [row.job_id for row in app.model.rows() if row.state == "queued"]

        pump(lambda: shown_order() == [b, c, d])
        app.window.select_job(d)
        app.window.actions["up"].trigger()
        pump(lambda: shown_order() == [b, d, c])
        after_button = daemon_order()
        app.window.select_job(b)
        app.window.actions["down"].trigger()
        pump(lambda: shown_order() == [d, b, c])

        model = app.model
        source_row = model.row_of(c)
        data = model.mimeData([model.index(source_row, 0)])
        dropped = model.dropMimeData(
            data, Qt.DropAction.MoveAction, model.row_of(d), 0, QModelIndex()
        )
        pump(lambda: shown_order() == [c, d, b])
        after_drag = daemon_order()
        data = model.mimeData([model.index(model.row_of(c), 0)])
        onto = model.index(model.row_of(b), 0)  # dropped onto the last queued row: its place
        model.dropMimeData(data, Qt.DropAction.MoveAction, -1, -1, onto)
        pump(lambda: shown_order() == [d, b, c])
        final = daemon_order()
        running_row = model.data(model.index(model.row_of(running.id), 0))
        gate.set()
    assert after_button == [b, d, c]
    assert dropped and bytes(data.data(MIME_TYPE).data()).decode() == c
    assert after_drag == [c, d, b]
    assert final == [d, b, c]
    assert running_row == "running"
    assert not model.flags(model.index(model.row_of(running.id), 0)) & Qt.ItemFlag.ItemIsDragEnabled


def test_pause_resume_and_unload_from_the_app(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    fake = FakeExecutor(gate=gate, step_seconds=0.02)
    with (
        running_daemon(tmp_path, fake, idle_unload_s=3600) as (_, client),
        tray_app(tmp_path) as app,
    ):
        running = client.submit(clip_spec(source, edited))
        waiting = client.submit(clip_spec(source, edited))
        pump(lambda: state_of(app, running.id) == "running")
        app.pause(interrupt=True)
        pump(lambda: app.status is not None and app.status.queue_paused)
        gate.set()
        pump(lambda: state_of(app, running.id) == "queued")
        order = [row.job_id for row in app.model.rows() if row.state == "queued"]
        window = app.window
        paused_controls = (window.pause_button.isEnabled(), window.actions["resume"].isEnabled())
        app.unload()
        pump(lambda: app.commands.pending == 0)
        app.resume()
        pump(lambda: state_of(app, waiting.id) == "finished")
        pump(lambda: app.status.model_loaded)
        app.unload()
        pump(lambda: not app.status.model_loaded)
        events = list(client.watch(running.id))
    assert order == [running.id, waiting.id]
    assert paused_controls == (False, True)
    reasons = [e.queued.reason for e in events if e.HasField("queued")]
    assert reasons == [events_pb2.QUEUED_REASON_SUBMITTED, events_pb2.QUEUED_REASON_PAUSED]
    assert kinds(events)[-1] == "finished"
    assert fake.unloads >= 1


def test_the_window_reconnects_after_a_daemon_restart(tmp_path):
    source, edited = make_media(tmp_path / "media")
    with tray_app(tmp_path) as app:
        first = DaemonThread(make_config(tmp_path), FakeExecutor())
        with first:
            with DaemonClient.from_discovery(first.discovery) as client:
                job = client.submit(clip_spec(source, edited))
            pump(lambda: state_of(app, job.id) == "finished")
            pump(lambda: app.status is not None)
            first_pid_token = first.discovery.token
        pump(lambda: app.status is None and not app.feed.connected)
        down_line = app.window.status_label.text()
        with running_daemon(tmp_path) as (daemon, client):
            again = client.submit(clip_spec(source, edited))
            pump(lambda: state_of(app, again.id) == "finished")
            token = daemon.discovery.token
        ids = set(rows_by_id(app))
    assert "not running" in down_line
    assert token != first_pid_token
    assert {job.id, again.id} <= ids


def test_retry_copy_error_and_failure_notification(tmp_path):
    source, edited = make_media(tmp_path / "media")
    broken = {"on": True}
    fake = FakeExecutor(fail=lambda run: RuntimeError("boom") if broken["on"] else None)
    with running_daemon(tmp_path, fake) as (_, client), tray_app(tmp_path) as app:
        job = client.submit(clip_spec(source, edited, label="take 3", request_id="resolve-1"))
        pump(lambda: state_of(app, job.id) == "failed")
        row = rows_by_id(app)[job.id]
        app.window.select_job(job.id)
        retry_enabled = app.window.actions["retry"].isEnabled()
        app.window.actions["copy_error"].trigger()
        clipboard = QGuiApplication.clipboard().text()
        broken["on"] = False
        app.window.actions["retry"].trigger()
        pump(lambda: any(r.clip == "take 3" and r.state == "finished" for r in app.model.rows()))
        retried = next(r for r in app.model.rows() if r.job_id != job.id)
        retried_job = client.get(retried.job_id)
    assert retry_enabled
    assert row.error_message in clipboard and f"Hint: {row.error_hint}" in clipboard
    assert retried_job.spec.request_id == "" and retried_job.spec.label == "take 3"
    assert retried_job.spec.source_path == str(source)
    assert ("Failed", f"take 3: {row.error_message}") in app.notifications
    assert ("Finished", "take 3: the take is ready.") in app.notifications


class RecordingOpener:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Path]] = []

    def open(self, path: Path) -> None:
        self.calls.append(("open", path))

    def reveal(self, path: Path) -> None:
        self.calls.append(("reveal", path))


def test_open_and_reveal_the_result_and_see_its_frames(tmp_path):
    source, edited = make_media(tmp_path / "media")
    with running_daemon(tmp_path) as (_, client), tray_app(tmp_path) as app:
        app.opener = opener = RecordingOpener()
        job = client.submit(clip_spec(source, edited, frames=8))
        pump(lambda: state_of(app, job.id) == "finished")
        window = app.window
        window.select_job(job.id)
        window.actions["open"].trigger()
        window.actions["reveal"].trigger()
        pump(lambda: window.preview.showing == (job.id, "strip"))
        strip_frames = window.preview.frame_count()
        title = window.preview.title.text()
    output = Path(job.output_paths[0])
    assert opener.calls == [("open", output), ("reveal", output)]
    assert strip_frames == 6 and "local" in title


def test_a_finished_strip_without_pyav_says_how_to_get_it(tmp_path, monkeypatch):
    movie = tmp_path / "result.mov"
    movie.write_bytes(b"not looked at")
    monkeypatch.setattr(frames, "pyav_available", lambda: False)
    strip = frames.result_strip(movie)
    assert strip.frames == [] and "media extra" in strip.note
    png_folder = tmp_path / "png"
    png_folder.mkdir()
    from PIL import Image

    for n in range(10):
        Image.new("RGB", (32, 18), (n * 20, 0, 0)).save(png_folder / f"frame_{n:06d}.png")
    from_pngs = frames.result_strip(png_folder)
    assert len(from_pngs.frames) == 6 and from_pngs.frames[-1].pixelColor(0, 0).red() == 180


def test_the_running_jobs_live_preview_is_shown(tmp_path):
    source, edited = make_media(tmp_path / "media")
    fake = FakeExecutor(preview_phase="decode", step_seconds=0.3)
    with running_daemon(tmp_path, fake) as (_, client), tray_app(tmp_path) as app:
        job = client.submit(clip_spec(source, edited))
        pump(lambda: app.window.preview.showing == (job.id, "live"))
        title = app.window.preview.title.text()
        shown = app.window.preview.picture.pixmap()
        client.cancel(job.id)
        pump(lambda: state_of(app, job.id) == "cancelled")
        forgotten = job.id not in app.previews
    assert "Live preview" in title and not shown.isNull() and shown.height() > 0
    assert forgotten


def test_the_cache_panel_shows_clips_and_trims_and_clears(tmp_path):
    root = tmp_path / "artifacts"
    for name, size in (("old", 1000), ("new", 3000)):
        (root / name).mkdir(parents=True)
        (root / name / "data.bin").write_bytes(b"x" * size)
    cache = DirectoryCache(root)
    with running_daemon(tmp_path, cache=cache) as _, tray_app(tmp_path) as app:
        panel = app.window.cache_panel
        app.window.tabs.setCurrentWidget(panel)
        pump(lambda: panel.clips.rowCount() == 2)
        listed = [panel.clips.item(n, 0).text() for n in range(2)]
        panel.trim_size.setText("3500B")
        panel.trim()
        pump(lambda: panel.clips.rowCount() == 1)
        panel.clear_button.click()
        pump(lambda: panel.clips.rowCount() == 0)
        summary = panel.summary.text()
    assert listed == ["new", "old"]
    assert "empty" in summary and not any(root.iterdir())


def test_settings_are_read_and_written_through_the_daemon(tmp_path):
    renders = tmp_path / "renders"
    renders.mkdir()
    with running_daemon(tmp_path) as (_, client), tray_app(tmp_path) as app:
        panel = app.window.settings_panel
        app.window.tabs.setCurrentWidget(panel)
        pump(lambda: "config.toml" in panel.where.text())
        initial = (panel.preset.currentText(), panel.output_format.currentText())
        panel.preset.setCurrentText("style")
        panel.output_format.setCurrentText("mp4")
        panel.output_folder.setText(str(renders))
        panel.open_editor.setChecked(False)
        panel.save()
        pump(lambda: app.commands.pending == 0)
        defaults = client.defaults().defaults
        editor = client.editor_config().config
        panel.output_folder.setText("/definitely/outside/the/roots")
        panel.save()
        pump(lambda: app.commands.pending == 0)
        refused = app.window.statusBar().currentMessage()
        kept = client.defaults().defaults.output_folder
    assert initial == ("auto", "mov")
    assert defaults.preset == specs_pb2.PRESET_STYLE
    assert defaults.output_format == specs_pb2.OUTPUT_FORMAT_MP4
    assert defaults.output_folder == str(renders)
    assert editor.HasField("open_editor") and not editor.open_editor
    assert "Could not save the settings" in refused and "output roots" in refused
    assert kept == str(renders)


@pytest.mark.slow
def test_the_ui_thread_never_waits_on_a_stalled_daemon(tmp_path):
    """A daemon that accepts connections and never answers: every action returns at once and
    the event loop keeps turning."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    found = Discovery("127.0.0.1", port, port, "token", 1, "0.1.0")
    write_discovery(discovery_path(tmp_path / "config"), found)
    try:
        with tray_app(tmp_path) as app:
            ticks = []
            timer = QTimer()
            timer.timeout.connect(lambda: ticks.append(time.monotonic()))
            timer.start(10)
            started = time.monotonic()
            for action in (
                lambda: app.pause(interrupt=True),
                app.resume,
                app.unload,
                lambda: app.cancel("0" * 32),
                lambda: app.move_to("0" * 32, 1),
                lambda: app.window.settings_panel.reload(),
                lambda: app.window.cache_panel.refresh(),
            ):
                action()
            returned = time.monotonic() - started
            pump(lambda: len(ticks) >= 20, timeout=5)
            gaps = [b - a for a, b in itertools.pairwise(ticks)]
            timer.stop()
    finally:
        silent.close()
    assert returned < 0.5
    assert max(gaps) < 0.5


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_a_job_that_crashed_the_daemon_twice_shows_as_failed_with_its_hint(tmp_path):
    source, edited = make_media(tmp_path / "media")
    state = tmp_path / "state"
    job_id = ""
    with tray_app(state) as app:
        for attempt in (1, 2):
            process, found = start_serve(state, "--fake", "--fake-step-seconds", "0.1")
            try:
                with DaemonClient.from_discovery(found) as client:
                    job_id = job_id or client.submit(clip_spec(source, edited)).id
                    seen = 0
                    for event in client.watch(job_id):
                        seen = event.started.attempt or seen
                        if seen == attempt and event.progress.phase == "lora":
                            break
                pid = process.pid
                pump(lambda: app.status is not None and app.status.pid == pid)  # noqa: B023
                os.kill(process.pid, signal.SIGKILL)
                process.wait(10)
            finally:
                if process.poll() is None:
                    process.kill()
                process.communicate()
            pump(lambda: app.status is None)
        process, found = start_serve(state, "--fake")
        try:
            pump(lambda: state_of(app, job_id) == "failed")
            row = rows_by_id(app)[job_id]
            notified = app.notifications[-1]
        finally:
            stop_serve(process)
    assert "2 times" in row.error_message and "retry" in row.error_hint
    assert notified[0] == "Failed"
