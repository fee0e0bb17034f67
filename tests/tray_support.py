"""Helpers for the tray app's tests and its screenshot: a Qt application, an event pump, and a
daemon holding jobs in every state.

Importing this module selects Qt's offscreen platform unless one was chosen.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication

from framerelay.errors import OutOfMemoryError
from framerelay.jobs.fake_executor import FakeExecutor, write_test_video
from framerelay.progress import Progress
from framerelay.proto.v1 import jobs_pb2, specs_pb2
from framerelay.service.client import DaemonClient
from framerelay_tray.app import Options, TrayApp
from tests.daemon_harness import running_daemon, wait_for


def qt_application() -> QApplication:
    app = QApplication.instance() or QApplication([])
    assert isinstance(app, QApplication)
    return app


def pump(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Runs the Qt event loop until `predicate()` is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        QApplication.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        value = predicate()
        if value:
            return value
        time.sleep(0.005)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


def tray_options(root: Path, **overrides: Any) -> Options:
    settings = {
        "config_dir": root / "config",
        "use_tray": False,
        "start_daemon": False,
        "resolve": False,
        "status_interval_s": 0.1,
        **overrides,
    }
    return Options(**settings)


@contextmanager
def tray_app(root: Path, **overrides: Any) -> Iterator[TrayApp]:
    qt_application()
    app = TrayApp(tray_options(root, **overrides))
    app.start()
    try:
        yield app
    finally:
        app.shutdown()
        app.window.close()
        app.window.deleteLater()
        QApplication.processEvents()


def set_state_dirs(monkeypatch: Any, root: Path) -> None:
    """The daemon's folders under `root` for everything this process (and its children) runs."""
    for name, folder in (
        ("CONFIG", "config"),
        ("DATA", "data"),
        ("LOG", "log"),
        ("CACHE", "cache"),
    ):
        monkeypatch.setenv(f"FRAMERELAY_{name}_DIR", str(root / folder))


# --- a daemon holding jobs in every state, for the window's picture ---

CLIPS = (  # (file name, host)
    ("A001_C003_0412.mov", "resolve"),
    ("B002_C011_0412.mov", "blender"),
    ("street_night.mp4", ""),
    ("interview_cam2.mov", "resolve"),
    ("drone_pass.mp4", "blender"),
    ("logo_reveal.mov", ""),
    ("coffee_pour.mov", "resolve"),
)


@dataclass
class Scene:
    client: DaemonClient
    hold: threading.Event  # set it to let the running job go on
    jobs: dict[str, str]  # state -> job id


FAILS, HOLDS = CLIPS[1][0], CLIPS[2][0]  # the clip that fails, the one held mid-job


class HoldingReporter:
    """Passes reports on, and holds the job after the step `at` until `hold` is set."""

    def __init__(self, inner: Any, hold: threading.Event, at: tuple[str, int]):
        self.inner, self.hold, self.at = inner, hold, at

    def progress(self, progress: Progress) -> None:
        self.inner.progress(progress)
        if (progress.phase, progress.step) == self.at:
            self.hold.wait(60)

    def preview(self, png: bytes, width: int, height: int, phase: str) -> None:
        self.inner.preview(png, width, height, phase)


class SceneExecutor:
    """The fake executor; one clip fails for lack of memory, another is held mid-edit."""

    def __init__(self, hold: threading.Event):
        self.hold = hold
        self.fake = FakeExecutor(
            fail=self._fail, preview_phase="invert", frame_size=(96, 54), step_seconds=0.01
        )

    @staticmethod
    def _fail(run: Any) -> BaseException | None:
        if run.spec.source.name == FAILS:
            return OutOfMemoryError("the job ran out of GPU memory in window 2 of 3.")
        return None

    def execute(self, run: Any, report: Any, cancel: Any) -> Any:
        if run.spec.source.name == HOLDS:
            report = HoldingReporter(report, self.hold, ("edit", 3))
        return self.fake.execute(run, report, cancel)

    def status(self) -> Any:
        return self.fake.status()

    def unload(self) -> None:
        self.fake.unload()


def scene_spec(media: Path, index: int, frames: int = 12) -> specs_pb2.JobSpec:
    name, host = CLIPS[index]
    source = media / name
    if not source.exists():
        write_test_video(source, "mp4", 24, Fraction(24), (96, 54), index)
    edited = media / "edited.png"
    if not edited.exists():
        from PIL import Image

        Image.new("RGB", (96, 54), (200, 60, 40)).save(edited)
    return specs_pb2.JobSpec(
        source_path=str(source),
        edited_frame_paths=[str(edited)],
        frame_range=specs_pb2.FrameRange(in_frame=0, out_frame=frames),
        source_fps=specs_pb2.Rational(num=24, den=1),
        host_context={"host": host} if host else {},
    )


@contextmanager
def every_state_daemon(root: Path) -> Iterator[Scene]:
    """A real daemon (fake executor) with a finished, a failed, a cancelled, a running (held
    mid-job, with a preview), two queued and an awaiting-edit job."""
    hold = threading.Event()
    media = root / "media"
    media.mkdir(parents=True, exist_ok=True)
    with running_daemon(root, SceneExecutor(hold)) as (_, client):
        jobs = {}
        jobs["finished"] = client.submit(scene_spec(media, 0)).id
        list(client.watch(jobs["finished"]))
        jobs["failed"] = client.submit(scene_spec(media, 1)).id
        list(client.watch(jobs["failed"]))
        jobs["running"] = client.submit(scene_spec(media, 2)).id
        for event in client.watch(jobs["running"]):
            if (event.progress.phase, event.progress.step) == ("edit", 3):
                break
        jobs["queued"] = client.submit(scene_spec(media, 3)).id
        jobs["queued_2"] = client.submit(scene_spec(media, 4)).id
        jobs["cancelled"] = client.submit(scene_spec(media, 5)).id
        client.cancel(jobs["cancelled"])
        round_trip = scene_spec(media, 6)
        del round_trip.edited_frame_paths[:]
        round_trip.edit_session.open_editor = False
        jobs["awaiting edit"] = client.submit(round_trip).id
        wait_for(
            lambda: client.get(jobs["awaiting edit"]).state == jobs_pb2.JOB_STATE_AWAITING_EDIT
        )
        try:
            yield Scene(client, hold, jobs)
        finally:
            hold.set()


def render_window(app: TrayApp, scene: Scene, path: Path, size: tuple[int, int] = (1100, 460)):
    """Saves the window showing the scene, the running job selected, as a PNG; returns it."""
    from PySide6.QtGui import QImage

    window = app.window
    pump(lambda: len(app.model.rows()) == len(scene.jobs) and app.status is not None)
    window.resize(*size)
    window.show()
    window.select_job(scene.jobs["running"])
    pump(lambda: window.preview.showing == (scene.jobs["running"], "live"))
    window.statusBar().clearMessage()
    for _ in range(10):
        QApplication.processEvents()
    window.grab().save(str(path))
    return QImage(str(path))
