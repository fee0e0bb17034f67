"""The tray icon on a real X11 system tray: Xvfb plus trayer (a freedesktop tray host), so that
QSystemTrayIcon.isSystemTrayAvailable() is true; its tooltip and menu show the queue."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.proto.v1 import jobs_pb2
from tests.daemon_harness import ROOT, clip_spec, make_media, running_daemon, wait_for

XCB_PACKAGES = (
    "libxcb-icccm4 libxcb-keysyms1 libxcb-cursor0 libxcb-image0 libxcb-render-util0 "
    "libxkbcommon-x11-0 libxcb-shape0 libxcb-xkb1 libxcb-randr0 libxcb-xinerama0"
)

pytestmark = pytest.mark.skipif(
    sys.platform != "linux" or not (shutil.which("Xvfb") and shutil.which("trayer")),
    reason="needs Linux with Xvfb and trayer (apt-get install -y xvfb trayer)",
)


@contextmanager
def x_display_with_tray() -> Iterator[str]:
    """A fresh Xvfb display, with trayer holding its system-tray selection."""
    read_end, write_end = os.pipe()
    xvfb = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_end), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write_end,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_end)
    trayer = None
    try:
        ready, _, _ = select.select([read_end], [], [], 20)
        assert ready, "Xvfb did not start within 20 s"
        display = ":" + os.read(read_end, 32).decode().strip()
        trayer = subprocess.Popen(
            ["trayer", "--expand", "false", "--width", "10", "--height", "24"],
            env={**os.environ, "DISPLAY": display},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        yield display
    finally:
        os.close(read_end)
        for process in (trayer, xvfb):
            if process is not None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def test_the_tray_icon_shows_the_queue_in_its_tooltip_and_menu(tmp_path):
    source, edited = make_media(tmp_path / "media")
    gate = threading.Event()
    with (
        running_daemon(tmp_path, FakeExecutor(gate=gate)) as (_, client),
        x_display_with_tray() as display,
    ):
        running = client.submit(clip_spec(source, edited, label="A001_C003"))
        client.submit(clip_spec(source, edited, label="B002"))
        wait_for(lambda: client.get(running.id).state == jobs_pb2.JOB_STATE_RUNNING)
        env = {
            **os.environ,
            "DISPLAY": display,
            "PYTHONPATH": os.pathsep.join(str(ROOT / p) for p in ("", "daemon", "gui")),
            "FRAMERELAY_LOG_DIR": str(tmp_path / "log"),
        }
        probe = subprocess.run(
            [sys.executable, "-m", "tests.tray_probe", str(tmp_path / "config")],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        gate.set()
    assert probe.returncode == 0, (
        f"the probe failed; if Qt could not load its xcb plugin, install {XCB_PACKAGES}:\n"
        f"{probe.stderr[-3000:]}"
    )
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["available"] and result["visible"]
    assert result["geometry"][2] > 0 and result["geometry"][3] > 0
    # The gated fake has loaded the model and waits before its first step.
    running_line = "Running: A001_C003, load 1/1 (100%)"
    assert result["tooltip"] == f"framerelay: 1 job queued · {running_line}"
    menu = result["menu"]
    assert menu[:2] == ["1 job queued", running_line]
    for entry in (
        "Open queue window",
        "Pause queue (the running job finishes)",
        "Pause queue and interrupt the running job",
        "Unload model (free GPU memory)",
        "Stop daemon",
        "Show daemon log",
        "Quit",
    ):
        assert entry in menu
    assert "Resume queue" not in menu and "Start daemon" not in menu
    assert "Send current Resolve clip" not in menu  # no Resolve Studio here
    assert not result["window_before_click"] and result["window_after_click"]
