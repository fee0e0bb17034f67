"""Shared fixtures. Engine fixtures build tiny real diffusers components once per session.

Every test runs sealed from the user's folders (tests/sealing.py: an autouse fixture points them
all into the test's temporary folder, and the suite fails if anything is written under the real
ones).
"""

from __future__ import annotations

import os

import pytest

# The tiny models are far too small for two threads to pay off, and torch's spinning OpenMP
# threads slow every small op down many times when anything else wants the other core (the video
# writer threads do). Set before torch is imported; subprocesses inherit it.
os.environ.setdefault("OMP_NUM_THREADS", "1")

pytest_plugins = ("pytester", "tests.sealing")


@pytest.fixture(autouse=True)
def ample_disk(monkeypatch) -> None:
    """The pre-flight disk check (jobs/preflight.py) sees 1 PiB free: a real-size estimate of a
    long test clip (1000 frames: 34 GB) must not meet this machine's free space. Tests of the check
    set `free_bytes` themselves; the daemon's own full-disk handling reads the real disk."""
    from framerelay.jobs import preflight

    monkeypatch.setattr(preflight, "free_bytes", lambda _folder: 2**50)


@pytest.fixture
def ray_installed() -> None:
    """Ray is in the lock (the cluster extra): a missing Ray is a broken setup, never a skip."""
    import importlib.util

    assert importlib.util.find_spec("ray") is not None, (
        "Ray is not installed: bash scripts/setup-venv installs it from requirements-lock.txt"
    )


@pytest.fixture(scope="session")
def tiny_pipe():
    pytest.importorskip("torch")
    from framerelay.engine.tiny import tiny_pipeline

    return tiny_pipeline()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A saved tiny pipeline folder, loaded through the real --model code path."""
    pytest.importorskip("torch")
    from framerelay.engine.tiny import save_tiny_pipeline

    return save_tiny_pipeline(tmp_path_factory.mktemp("models") / "tiny-svd")


# No test may import a real DaVinci Resolve scripting module (tests/fake_resolve/guard.py).
from tests.fake_resolve import guard as _resolve_guard  # noqa: E402

_resolve_guard.install()
