"""Shared fixtures. Engine fixtures build tiny real diffusers components once per session."""

from __future__ import annotations

import pytest


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
