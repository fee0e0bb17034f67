"""A pytest plugin that seals the tests from the user's folders.

Every folder framerelay reads or writes (config with the discovery file and the editor settings,
data, logs, cache) and every HOME/XDG-derived folder a library might use is pointed into a
temporary folder: for the whole session at its start (so collection and session fixtures are
covered), then afresh for each test. Subprocesses inherit the environment.

The real user folders, as they were before the session changed anything, are watched: a test
that leaves them different fails (an error in its teardown, naming the paths), and a change made
outside any test fails the session. Another program writing there while the tests run is blamed
on the test running at that moment.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from pathlib import Path

import platformdirs
import pytest

APP = "framerelay"
FRAMERELAY_DIRS = {
    "FRAMERELAY_CONFIG_DIR": "config",
    "FRAMERELAY_DATA_DIR": "data",
    "FRAMERELAY_LOG_DIR": "log",
    "FRAMERELAY_CACHE_DIR": "cache",
}
XDG_DIRS = {
    "XDG_CONFIG_HOME": ".config",
    "XDG_CACHE_HOME": ".cache",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
}


def real_user_folders() -> tuple[Path, ...]:
    """framerelay's folders under the current environment: the platform's and any override."""
    folders = {
        platformdirs.user_config_path(APP, appauthor=False),
        platformdirs.user_cache_path(APP, appauthor=False),
        platformdirs.user_data_path(APP, appauthor=False),
        platformdirs.user_state_path(APP, appauthor=False),
        platformdirs.user_log_path(APP, appauthor=False),
    }
    folders.update(Path(os.environ[v]).expanduser() for v in FRAMERELAY_DIRS if os.environ.get(v))
    return tuple(sorted(folders))


Snapshot = dict[str, tuple]


def snapshot(folders: tuple[Path, ...]) -> Snapshot:
    """Every entry under `folders`: its type, size and modification time."""
    seen: Snapshot = {}
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                path = os.path.join(root, name)
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    continue
                seen[path] = (stat.S_IFMT(info.st_mode), info.st_size, info.st_mtime_ns)
        if folder.exists():
            seen.setdefault(str(folder), ("exists",))
    return seen


def changes(before: Snapshot, after: Snapshot) -> list[str]:
    lines = [f"created {p}" for p in sorted(after.keys() - before.keys())]
    lines += [f"removed {p}" for p in sorted(before.keys() - after.keys())]
    lines += [f"changed {p}" for p in sorted(before.keys() & after.keys()) if before[p] != after[p]]
    return lines


def sealed_environment(root: Path) -> dict[str, str]:
    """The variables that put every user folder under `root`."""
    home = root / "home"
    env = {"HOME": str(home), "USERPROFILE": str(home)}
    env.update({var: str(home / sub) for var, sub in XDG_DIRS.items()})
    env.update({var: str(root / APP / sub) for var, sub in FRAMERELAY_DIRS.items()})
    env["XDG_RUNTIME_DIR"] = str(root / "runtime")
    env["HF_HOME"] = str(root / "huggingface")
    env["TORCH_HOME"] = str(root / "torch")
    return env


def seal(root: Path) -> dict[str, str]:
    """`sealed_environment(root)`, with the folders that must exist made."""
    env = sealed_environment(root)
    Path(env["HOME"]).mkdir(parents=True, exist_ok=True)
    Path(env["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    return env


# Taken at import, before this plugin changes the environment.
REAL_FOLDERS = real_user_folders()
_session: dict = {}
_problem = pytest.StashKey[list]()


def pytest_sessionstart(session: pytest.Session) -> None:
    _session["before"] = snapshot(REAL_FOLDERS)
    keys = ("PYENV_ROOT", *sealed_environment(Path("/")))
    _session["saved"] = {key: os.environ.get(key) for key in keys}
    # pyenv's shims find their versions through HOME unless PYENV_ROOT says where.
    pyenv = Path.home() / ".pyenv"
    if "PYENV_ROOT" not in os.environ and pyenv.is_dir():
        os.environ["PYENV_ROOT"] = str(pyenv)
    _session["root"] = Path(tempfile.mkdtemp(prefix="framerelay-tests-"))
    os.environ.update(seal(_session["root"]))


def pytest_sessionfinish(session: pytest.Session) -> None:
    for key, value in _session.get("saved", {}).items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if "root" in _session:
        shutil.rmtree(_session["root"], ignore_errors=True)
    if "before" in _session:
        found = changes(_session["before"], snapshot(REAL_FOLDERS))
        if found:
            session.config.stash[_problem] = found
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    found = config.stash.get(_problem, None)
    if found:
        terminalreporter.section("tests wrote under the real user folders", red=True)
        for line in found:
            terminalreporter.write_line(line)


@pytest.fixture(autouse=True)
def sealed_user_folders(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Points every user folder into this test's own temporary folder; fails the test if it
    wrote under the real ones anyway."""
    before = snapshot(REAL_FOLDERS)
    for key, value in seal(tmp_path_factory.mktemp("user")).items():
        monkeypatch.setenv(key, value)
    yield
    found = changes(before, snapshot(REAL_FOLDERS))
    if found:
        pytest.fail("the test wrote under the real user folders:\n" + "\n".join(found))
