"""The suite is sealed from the user's folders, and the seal's own check can fail."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

from framerelay.cache import default_cache_root
from framerelay.service import config
from framerelay.service.discovery import discovery_path
from framerelay.service.editor_settings import config_file
from tests import sealing

REPO = Path(__file__).resolve().parents[1]


def framerelay_folders() -> dict[str, str]:
    return {
        "config": str(config.config_dir()),
        "data": str(config.data_dir()),
        "log": str(config.log_dir()),
        "cache": str(default_cache_root()),
        "discovery": str(discovery_path(config.config_dir())),
        "editor settings": str(config_file(config.config_dir())),
        "platform config": str(platformdirs.user_config_path("framerelay")),
        "platform cache": str(platformdirs.user_cache_path("framerelay")),
        "platform data": str(platformdirs.user_data_path("framerelay")),
        "platform state": str(platformdirs.user_state_path("framerelay")),
        "home": str(Path.home()),
    }


def test_every_folder_is_inside_this_tests_own_temporary_folder(tmp_path_factory):
    base = tmp_path_factory.getbasetemp()
    for name, folder in framerelay_folders().items():
        assert Path(folder).is_relative_to(base), (name, folder)
        assert not any(Path(folder).is_relative_to(real) for real in sealing.REAL_FOLDERS)


def test_each_test_starts_from_a_fresh_empty_folder():
    home = Path.home()
    root = home.parent
    assert root.name.startswith("user")  # made by tmp_path_factory.mktemp for this test alone
    assert sorted(p.name for p in root.iterdir()) == ["home", "runtime"]
    assert not any(home.iterdir()) and not config.config_dir().exists()


def test_a_subprocess_sees_the_sealed_folders(tmp_path_factory):
    code = (
        "import json, platformdirs; from framerelay.service import config;"
        "from framerelay.cache import default_cache_root;"
        "print(json.dumps([str(config.config_dir()), str(default_cache_root()),"
        " str(platformdirs.user_cache_path('framerelay'))]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    base = tmp_path_factory.getbasetemp()
    for folder in json.loads(out.stdout):
        assert Path(folder).is_relative_to(base), folder


def test_snapshot_changes_name_created_changed_and_removed_entries(tmp_path):
    (tmp_path / "keep").write_text("a")
    (tmp_path / "gone").write_text("a")
    before = sealing.snapshot((tmp_path,))
    (tmp_path / "gone").unlink()
    (tmp_path / "new").write_text("b")
    (tmp_path / "keep").write_text("longer")
    found = sealing.changes(before, sealing.snapshot((tmp_path,)))
    assert found == [
        f"created {tmp_path / 'new'}",
        f"removed {tmp_path / 'gone'}",
        f"changed {tmp_path / 'keep'}",
    ]


INNER_TESTS = """
import os
from pathlib import Path


def test_clean(tmp_path):
    (tmp_path / "fine").write_text("x")


def test_writes_the_real_cache():
    folder = Path(os.environ["REAL_CACHE"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "leftover").write_text("x")
"""


def run_inner(
    pytester: pytest.Pytester, tests: str, real_cache: Path
) -> subprocess.CompletedProcess:
    """A pytest session with the sealing plugin, in a process whose 'real' user folders are this
    test's sealed ones (the only ones it may write)."""
    pytester.makepyfile(test_inner=tests)
    env = {**os.environ, "REAL_CACHE": str(real_cache), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.sealing", "-p", "no:randomly",
         "-p", "no:cacheprovider", "-q", str(pytester.path)],
        cwd=pytester.path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_test_that_writes_the_real_folders_fails_and_is_named(pytester):
    real_cache = platformdirs.user_cache_path("framerelay")  # 'real' for the inner session
    result = run_inner(pytester, INNER_TESTS, real_cache)
    assert result.returncode == 1, result.stdout
    assert "2 passed, 1 error" in result.stdout  # its call passed, its teardown failed
    assert "ERROR at teardown of test_writes_the_real_cache" in result.stdout
    assert f"created {real_cache / 'leftover'}" in result.stdout


def test_a_write_outside_any_test_fails_the_session(pytester):
    real_cache = platformdirs.user_cache_path("framerelay")
    tests = INNER_TESTS.split("def test_writes")[0] + (
        "folder = Path(os.environ['REAL_CACHE'])\n"
        "folder.mkdir(parents=True, exist_ok=True)\n"
        "(folder / 'at-import').write_text('x')\n"
    )
    result = run_inner(pytester, tests, real_cache)
    # Written at collection, under the session's seal: the session's check sees it.
    assert "1 passed" in result.stdout
    assert result.returncode == 1, result.stdout
    assert "tests wrote under the real user folders" in result.stdout
    assert f"created {real_cache / 'at-import'}" in result.stdout


def test_a_clean_session_passes(pytester):
    result = run_inner(pytester, INNER_TESTS.split("def test_writes")[0], Path("/nonexistent"))
    assert result.returncode == 0, result.stdout
    assert "1 passed" in result.stdout
