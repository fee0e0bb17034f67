"""scripts/vendor-client: the plugins' copies of the client package, and the check CI runs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "vendor-client"
COPIES = (
    "plugins/blender_vse/framerelay_vse/vendor/framerelay_client",
    "plugins/davinci_resolve/framerelay_resolve/vendor/framerelay_client",
)


def vendor(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def repo(tmp_path) -> Path:
    """A tree with the client's source, vendored once."""
    shutil.copytree(
        ROOT / "daemon" / "framerelay_client",
        tmp_path / "daemon" / "framerelay_client",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    assert vendor(tmp_path).returncode == 0
    return tmp_path


def test_the_repositorys_copies_are_current():
    done = vendor(ROOT, "--check")
    assert done.returncode == 0, done.stderr


def test_fresh_copies_pass_the_check_and_are_verbatim(repo):
    done = vendor(repo, "--check")
    assert done.returncode == 0 and done.stdout.count("current:") == 2
    source = repo / "daemon" / "framerelay_client"
    for copy in COPIES:
        for path in source.iterdir():
            assert (repo / copy / path.name).read_bytes() == path.read_bytes()
        stamp = (repo / copy / "VENDORED.txt").read_text()
        assert "sha256: " in stamp and "Do not edit this copy" in stamp


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (lambda r: (r / COPIES[0] / "http.py").write_text("# edited by hand\n"), "http.py differs"),
        (lambda r: (r / COPIES[0] / "events.py").unlink(), "events.py is missing"),
        (lambda r: (r / COPIES[0] / "extra.py").write_text(""), "extra.py is not in the source"),
        (lambda r: shutil.rmtree(r / COPIES[0]), "it is missing"),
        (lambda r: (r / COPIES[0] / "VENDORED.txt").write_text("sha256: 0\n"), "VENDORED.txt"),
    ],
)
def test_a_stale_copy_fails_the_check_and_is_named(repo, change, says):
    change(repo)
    done = vendor(repo, "--check")
    assert done.returncode == 1
    assert f"stale: {COPIES[0]}" in done.stderr and says in done.stderr
    assert f"current: {COPIES[1]}" in done.stdout
    assert vendor(repo).returncode == 0 and vendor(repo, "--check").returncode == 0


def test_a_changed_source_makes_both_copies_stale(repo):
    timecode = repo / "daemon" / "framerelay_client" / "timecode.py"
    timecode.write_text(timecode.read_text() + "\n# a change\n")
    done = vendor(repo, "--check")
    assert done.returncode == 1
    assert all(f"stale: {copy}" in done.stderr for copy in COPIES)
    assert "timecode.py differs" in done.stderr


def test_caches_are_neither_copied_nor_compared(repo):
    cache = repo / "daemon" / "framerelay_client" / "__pycache__"
    cache.mkdir()
    (cache / "http.cpython-311.pyc").write_bytes(b"\0")
    assert vendor(repo, "--check").returncode == 0
    assert vendor(repo).returncode == 0
    assert not (repo / COPIES[0] / "__pycache__").exists()
