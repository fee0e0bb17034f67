"""Driving real Blender (the PyPI `bpy` wheels, headless) from the main pytest.

bpy needs its own Python (3.11 for 4.2–5.0, 3.13 for 5.1+) and pins its own numpy, so each version
lives in its own venv (`scripts/setup-bpy-venvs`, from `plugins/blender_vse/requirements-bpy-*.txt`).
A test starts the daemon in this process (real service, fake executor, temp folders), then runs
one scenario of `tests/blender/scenarios.py` in a bpy subprocess (`tests/blender/driver.py`) and
asserts on the facts it returns. The subprocess gets temp HOME and Blender user folders, so
nothing touches the real user's folders.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DRIVER = ROOT / "tests" / "blender" / "driver.py"
PLUGIN = ROOT / "plugins" / "blender_vse"


@dataclass(frozen=True)
class BpyVenv:
    version: str  # "5.0"
    folder: str  # ".venv-bpy50"
    required: bool  # CI sets these up; the others only run where they exist

    @property
    def python(self) -> Path:
        return ROOT / self.folder / "bin" / "python"

    @property
    def python_tag(self) -> str:
        return "3.13" if self.version >= "5.1" else "3.11"


VENVS = (
    BpyVenv("5.0", ".venv-bpy50", True),
    BpyVenv("5.3", ".venv-bpy53", True),
    BpyVenv("4.2", ".venv-bpy42", False),
)


FAST_TIER = "5.3"  # `pytest -m "not slow"` drives the newest bpy only; CI drives all three


def venv_params() -> list:
    return [
        pytest.param(
            v, id=f"bpy{v.version}", marks=() if v.version == FAST_TIER else pytest.mark.slow
        )
        for v in VENVS
    ]


def require(venv: BpyVenv) -> BpyVenv:
    if not venv.python.exists():
        reason = (
            f"bpy {venv.version} is not set up ({venv.folder} is missing): run "
            f"`bash scripts/setup-bpy-venvs {venv.version}`"
        )
        pytest.skip(reason)
    return venv


def blender_env(root: Path, config_dir: Path) -> dict[str, str]:
    """The bpy subprocess's environment: the daemon's discovery folder, temp user folders."""
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("FRAMERELAY_", "BLENDER_", "PYTHON"))
    }
    env.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        BLENDER_USER_RESOURCES=str(home / "blender"),
        FRAMERELAY_CONFIG_DIR=str(config_dir),
        PYTHONDONTWRITEBYTECODE="1",
        TMPDIR=str(root),
    )
    return env


def run_scenario(
    venv: BpyVenv,
    name: str,
    root: Path,
    config_dir: Path,
    timeout: float = 240,
    env: dict[str, str] | None = None,
    **args: Any,
) -> dict:
    """Runs `scenarios.<name>(**args)` in the bpy venv; returns its facts or fails the test with
    the scenario's traceback and output."""
    work = root / f"scenario-{name}"
    work.mkdir(parents=True, exist_ok=True)
    args_path, result_path = work / "args.json", work / "result.json"
    args_path.write_text(json.dumps(args, default=str))
    result_path.unlink(missing_ok=True)
    process = subprocess.run(
        [str(venv.python), str(DRIVER), name, str(args_path), str(result_path)],
        env=blender_env(root, config_dir) | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=str(work),
    )
    output = f"--- stdout ---\n{process.stdout[-4000:]}\n--- stderr ---\n{process.stderr[-4000:]}"
    if not result_path.exists():
        pytest.fail(f"bpy {venv.version} {name}: no result (exit {process.returncode})\n{output}")
    result = json.loads(result_path.read_text())
    if not result["ok"]:
        pytest.fail(f"bpy {venv.version} {name} failed:\n{result['error']}\n{output}")
    return result["facts"]


def frame_count(path: str | Path) -> int:
    """Frames in a movie file (decoded with PyAV), or PNG files in a folder."""
    path = Path(path)
    if path.is_dir():
        return len(list(path.glob("*.png")))
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def main_python() -> str:
    return sys.executable


def build_extension(output_dir: Path) -> Path:
    """The extension zip, built and validated by scripts/build-blender-extension."""
    process = subprocess.run(
        [
            "bash",
            str(ROOT / "scripts" / "build-blender-extension"),
            "--output-dir",
            str(output_dir),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stdout + process.stderr
    return Path(process.stdout.strip().splitlines()[-1])


def stop_process(pid: int, timeout: float = 20) -> None:
    """Stops a process this test did not start itself (a daemon Blender launched)."""
    import signal
    import time

    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")  # a zombie has exited; nobody may be reaping it
