"""Starting `framerelay serve` from Blender, detached, so it outlives Blender. No bpy here."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .follow import CONNECTION_ERRORS, Connection

START_TIMEOUT_SECONDS = 60.0
HOW_TO_START = (
    "Install framerelay and start it in a terminal with `framerelay serve`, or set its full path "
    "in the add-on preferences (Start Command)."
)


class ServeProblem(RuntimeError):
    pass


def command(configured: str) -> list[str]:
    """The command line Start runs: the preference, or `framerelay serve` where it is found."""
    if configured.strip():
        return shlex.split(configured, posix=os.name != "nt")
    found = shutil.which("framerelay") or next(
        (str(p) for p in usual_places() if p.is_file() and os.access(p, os.X_OK)), None
    )
    if found is None:
        raise ServeProblem(f"framerelay was not found on PATH. {HOW_TO_START}")
    return [found, "serve"]


def usual_places() -> list[Path]:
    """Where pip and pipx put the command when Blender's PATH (from the desktop) lacks it."""
    home = Path.home()
    if sys.platform == "win32":
        scripts = Path(os.environ.get("APPDATA", home)) / "Python" / "Scripts"
        return [scripts / "framerelay.exe", home / ".local" / "bin" / "framerelay.exe"]
    return [home / ".local" / "bin" / "framerelay"]


def launch(argv: list[str]) -> tuple[subprocess.Popen, Path]:
    """Starts the daemon in its own session; its early output goes to a log file."""
    log = Path(tempfile.gettempdir()) / f"framerelay-serve-{os.getpid()}.log"
    options: dict = {"start_new_session": True}
    if sys.platform == "win32":
        options = {
            "creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS
        }
    try:
        with open(log, "wb") as output:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=output, stderr=output, **options
            )
    except OSError as error:
        reason = error.strerror or error
        raise ServeProblem(f"could not run {argv[0]}: {reason}. {HOW_TO_START}") from None
    return process, log


def wait_until_up(
    connection: Connection,
    process: subprocess.Popen,
    log: Path,
    timeout: float = START_TIMEOUT_SECONDS,
) -> dict:
    """The daemon's status once it answers; ServeProblem if it exits or stays silent."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connection.call(lambda client: client.status())
        except CONNECTION_ERRORS:
            pass
        code = process.poll()
        if code is not None:
            raise ServeProblem(f"framerelay serve exited with status {code}: {last_line(log)}")
        if time.monotonic() > deadline:
            raise ServeProblem(
                f"framerelay serve did not answer within {timeout:.0f} s (log: {log})."
            )
        time.sleep(0.25)


def last_line(log: Path) -> str:
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"
