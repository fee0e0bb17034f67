"""The tray app starts without torch, starts the daemon when none runs and stops it on request,
shows its log; the Resolve Studio entries appear only with the integration and Resolve's
scripting module; and the window renders jobs in every state."""

from __future__ import annotations

import importlib.machinery
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtGui import QImage

from framerelay.service.discovery import discovery_path
from framerelay_tray import resolve_actions
from framerelay_tray.app import NO_TRAY_NOTICE
from framerelay_tray.tray import Tray
from tests.daemon_harness import ROOT, clip_spec, make_media, running_daemon
from tests.tray_support import (
    every_state_daemon,
    pump,
    qt_application,
    render_window,
    set_state_dirs,
    tray_app,
)

POISON = """\
from pathlib import Path
Path({marker!r}).write_text("{name}")
raise ImportError("{name} must not be imported when the tray app starts")
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    qt_application()
    set_state_dirs(monkeypatch, tmp_path)


def test_the_tray_app_starts_and_connects_without_torch_or_pyav(tmp_path):
    poison = tmp_path / "poison"
    marker = tmp_path / "torch-was-imported"
    for name in ("torch", "av"):
        (poison / name).mkdir(parents=True)
        (poison / name / "__init__.py").write_text(POISON.format(marker=str(marker), name=name))
    source, edited = make_media(tmp_path / "media")
    with running_daemon(tmp_path) as (_, client):
        job = client.submit(clip_spec(source, edited))
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(p) for p in (poison, ROOT / "daemon", ROOT / "gui")),
            "QT_QPA_PLATFORM": "offscreen",
        }
        checked = subprocess.run(
            [sys.executable, "-m", "framerelay_tray", "--check", "--no-start-daemon"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert checked.returncode == 0, checked.stderr
    assert not marker.exists(), f"the tray app imported {marker.read_text()}"
    assert "connected to framerelay 0.1.0" in checked.stdout and "1 jobs" in checked.stdout
    assert job.id


def test_without_a_tray_the_window_is_the_app_and_says_so_once(tmp_path):
    with running_daemon(tmp_path), tray_app(tmp_path) as app:
        pump(lambda: app.status is not None)
        app.say_once(NO_TRAY_NOTICE)
        visible = app.window.isVisible()
    assert app.tray is None and visible
    assert app.notices == [NO_TRAY_NOTICE]


def test_without_a_daemon_the_check_says_so_and_fails(tmp_path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    checked = subprocess.run(
        [sys.executable, "-m", "framerelay_tray", "--check", "--no-start-daemon", "--timeout", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 1
    assert "no daemon answered within 2 s" in checked.stderr


def test_the_tray_starts_the_daemon_shows_its_log_and_stops_it(tmp_path):
    config = tmp_path / "config"
    with tray_app(tmp_path, start_daemon=True, serve_args=("--fake",)) as app:
        try:
            pump(lambda: app.status is not None, timeout=60)
            started = app.launcher.process
            pid = app.status.pid
            again = app.launcher.start()  # a second start never spawns a second daemon
            app.window.tabs.setCurrentWidget(app.window.daemon_panel)
            pump(lambda: "framerelay 0.1.0: gRPC" in app.window.daemon_panel.log.toPlainText())
            stop_enabled = app.window.daemon_panel.stop_button.isEnabled()
            app.stop_daemon()
            pump(lambda: app.status is None, timeout=30)
            pump(lambda: started.poll() is not None, timeout=30)
            panel_state = app.window.daemon_panel.state.text()
            start_enabled = app.window.daemon_panel.start_button.isEnabled()
        finally:
            process = app.launcher.process
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()
    assert started is not None and started.pid == pid and not again
    assert stop_enabled and start_enabled
    assert started.returncode == 0
    assert not discovery_path(config).exists()
    assert "not running" in panel_state
    assert (tmp_path / "log" / "daemon.log").exists()


# --- Resolve Studio ---

EXTERNAL = """\
calls = []


def send_current_clip():
    calls.append("send")
    return "Sent A001_C003 [86400, 86448) to framerelay"


def place_finished_takes():
    calls.append("place")
    return ["take 1", "take 2"]
"""


@pytest.fixture
def clean_imports(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("RESOLVE_SCRIPT_API", raising=False)
    monkeypatch.delenv(resolve_actions.PLUGIN_DIR_ENV, raising=False)
    for name in resolve_modules():  # put back afterwards: other tests hold their classes
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in resolve_modules():  # what this test imported
        del sys.modules[name]


def resolve_modules() -> list[str]:
    return [name for name in sys.modules if name.startswith(RESOLVE_MODULES)]


RESOLVE_MODULES = ("framerelay_resolve", "DaVinciResolveScript")


def write_integration(folder: Path) -> None:
    package = folder / "framerelay_resolve"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "external.py").write_text(EXTERNAL)


def fake_resolve_scripting(monkeypatch) -> None:
    """Resolve Studio's scripting module, as the fake (tests/fake_resolve/guard.py refuses the real
    one, wherever it is installed)."""
    module = types.ModuleType("DaVinciResolveScript")
    module.__spec__ = importlib.machinery.ModuleSpec("DaVinciResolveScript", None)
    module.FAKE = True
    module.scriptapp = lambda name: None
    monkeypatch.setitem(sys.modules, "DaVinciResolveScript", module)


def menu_texts(tray: Tray) -> list[str]:
    return [action.text() for action in tray.menu.actions() if action.text()]


def test_the_resolve_entries_are_hidden_without_resolve_studio(tmp_path, clean_imports):
    assert resolve_actions.find_resolve_actions() is None  # nothing of Resolve on this machine
    with running_daemon(tmp_path), tray_app(tmp_path, resolve=True) as app:
        tray = Tray(app)
        texts = menu_texts(tray)
    assert app.resolve is None
    assert "Send current Resolve clip" not in texts and "Place finished takes" not in texts


def test_the_integration_alone_is_not_enough(tmp_path, clean_imports, monkeypatch):
    write_integration(tmp_path / "plugin")
    monkeypatch.setenv(resolve_actions.PLUGIN_DIR_ENV, str(tmp_path / "plugin"))
    assert resolve_actions.load_external() is None  # DaVinciResolveScript is not found


def test_the_resolve_entries_call_the_integration(tmp_path, clean_imports, monkeypatch):
    write_integration(tmp_path / "plugin")
    fake_resolve_scripting(monkeypatch)
    monkeypatch.setenv(resolve_actions.PLUGIN_DIR_ENV, str(tmp_path / "plugin"))
    with running_daemon(tmp_path), tray_app(tmp_path, resolve=True) as app:
        pump(lambda: app.status is not None)
        tray = Tray(app)
        tray.update()
        entries = {action.text(): action for action in tray.resolve_actions}
        entries["Send current Resolve clip"].trigger()
        pump(lambda: "Sent A001_C003" in app.window.statusBar().currentMessage())
        entries["Place finished takes"].trigger()
        pump(lambda: "Takes placed: 2" in app.window.statusBar().currentMessage())
        enabled = all(action.isEnabled() for action in entries.values())
    external = sys.modules["framerelay_resolve.external"]
    assert set(entries) == {"Send current Resolve clip", "Place finished takes"}
    assert enabled
    assert external.calls == ["send", "place"]


# --- the window with jobs in every state ---


def test_the_window_renders_jobs_in_every_state(tmp_path):
    with every_state_daemon(tmp_path) as scene, tray_app(tmp_path) as app:
        pump(lambda: len(app.model.rows()) == len(scene.jobs) and app.status is not None)
        states = {row.state for row in app.model.rows()}
        image = render_window(app, scene, tmp_path / "tray.png")
    assert states == {"finished", "failed", "cancelled", "running", "queued", "awaiting edit"}
    assert (image.width(), image.height()) == (1100, 460)
    colours = {image.pixel(x, y) for x in range(0, 1100, 7) for y in range(0, 460, 7)}
    assert len(colours) > 50, "the picture looks blank"
    assert (tmp_path / "tray.png").stat().st_size > 10_000


def test_the_readme_shows_a_small_screenshot():
    picture = ROOT / "docs" / "img" / "tray.png"
    image = QImage(str(picture))
    assert not image.isNull() and image.width() >= 800
    assert picture.stat().st_size < 200_000
    assert "docs/img/tray.png" in (ROOT / "README.md").read_text()
    assert (ROOT / "scripts" / "tray-screenshot").exists()  # what makes it


def _no_display_env() -> dict[str, str]:
    hidden = ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")
    return {k: v for k, v in os.environ.items() if k not in hidden}


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="X11/Wayland displays")
def test_the_check_needs_no_display(tmp_path):
    # README: `framerelay-tray --check` prints one line about the daemon; over SSH there is no
    # display, and Qt used to abort (SIGABRT) before anything was checked.
    checked = subprocess.run(
        [sys.executable, "-m", "framerelay_tray", "--check", "--no-start-daemon", "--timeout", "2"],
        env=_no_display_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 1, checked.stderr
    assert "no daemon answered within 2 s" in checked.stderr
    assert "system tray" not in checked.stderr  # the check asks for no tray


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="X11/Wayland displays")
def test_without_a_display_the_app_says_so_in_one_line_and_exits_2(tmp_path):
    started = subprocess.run(
        [sys.executable, "-m", "framerelay_tray", "--no-start-daemon"],
        env=_no_display_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = started.stderr.strip().splitlines()
    assert started.returncode == 2, started.stderr
    assert len(lines) == 2 and "no display" in lines[0] and lines[1].startswith("hint: ")
