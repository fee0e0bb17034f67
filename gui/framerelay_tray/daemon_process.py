"""Starting and stopping the daemon from the tray app, and finding its log.

The tray starts `framerelay serve` with its own Python (`python -m framerelay serve`) in a new
session, so the daemon outlives the tray: host plugins still need it after the tray quits. Its
start-up output (what it prints before its log file exists, e.g. a broken config.toml) goes to
`launch.log` next to `daemon.log`. Stopping sends SIGTERM, which the daemon handles cleanly (on
Windows, where there is no SIGTERM, it ends the process: the queue and its jobs survive, and the
running job is recovered at the next start, as after a crash).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from framerelay.errors import UnavailableError
from framerelay.service.config import config_dir, log_dir
from framerelay.service.discovery import Discovery, discovery_path, read_discovery
from framerelay.service.logsetup import FILE_NAME

LAUNCH_LOG = "launch.log"
TAIL_BYTES = 256 * 1024


def pid_alive(pid: int) -> bool:
    if sys.platform == "win32":  # os.kill(pid, 0) would terminate it
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _windows_pid_alive(pid: int) -> bool:
    import ctypes

    query_limited_information, still_active = 0x1000, 259
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(query_limited_information, False, pid)
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and (
            code.value == still_active
        )
    finally:
        kernel32.CloseHandle(handle)


class DaemonLauncher:
    def __init__(
        self,
        folder: Path | None = None,
        serve_args: Sequence[str] = (),
        python: str = sys.executable,
    ):
        self.folder = folder  # the config folder; None: the user's (FRAMERELAY_CONFIG_DIR)
        self.serve_args = tuple(serve_args)
        self.python = python
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def config_folder(self) -> Path:
        return self.folder or config_dir()

    @property
    def log_path(self) -> Path:
        return log_dir() / FILE_NAME

    @property
    def launch_log_path(self) -> Path:
        return log_dir() / LAUNCH_LOG

    def discovery(self) -> Discovery | None:
        try:
            return read_discovery(discovery_path(self.config_folder))
        except UnavailableError:
            return None

    def running(self) -> bool:
        """A daemon's discovery file names a live process (it may still be starting)."""
        found = self.discovery()
        return found is not None and pid_alive(found.pid)

    def start(self) -> bool:
        """Starts `framerelay serve` unless a daemon runs (or this tray started one that is
        still starting); returns whether it started one."""
        if self.running() or (self.process is not None and self.process.poll() is None):
            return False
        env = dict(os.environ)
        if self.folder is not None:
            env["FRAMERELAY_CONFIG_DIR"] = str(self.folder)
        self.launch_log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.launch_log_path, "ab") as output:
            self.process = subprocess.Popen(
                [self.python, "-m", "framerelay", "serve", *self.serve_args],
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=sys.platform != "win32",
                creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0),
            )
        return True

    def stop(self, timeout: float = 20.0) -> bool:
        """Asks the running daemon to stop and waits for it; returns whether one was running."""
        found = self.discovery()
        if found is None or not pid_alive(found.pid):
            return False
        os.kill(found.pid, signal.SIGTERM)
        if self.process is not None and self.process.pid == found.pid:
            self.process.wait(timeout)
            return True
        deadline = time.monotonic() + timeout
        while pid_alive(found.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        return True

    def read_log(self) -> str:
        """The end of the daemon's log (and of its launch output when there is no log yet)."""
        for path in (self.log_path, self.launch_log_path):
            text = tail(path)
            if text:
                return text
        return f"No log yet: the daemon writes {self.log_path} once it runs."


def tail(path: Path, size: int = TAIL_BYTES) -> str:
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            file.seek(max(0, file.tell() - size))
            data = file.read()
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return text if len(data) < size else text.partition("\n")[2]
