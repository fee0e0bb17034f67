"""Every setting the daemon writes, it reads back: a real `framerelay serve` restarts after each
setter and must start, with the setting in force."""

from __future__ import annotations

import stat
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from framerelay.proto.v1 import daemon_pb2
from framerelay.service.client import DaemonClient
from tests.daemon_harness import ROOT, daemon_env, start_serve, stop_serve

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="stand-in editors are scripts")


def stand_in(folder: Path, name: str) -> Path:
    """An executable `name` that does nothing: an installed editor, as far as detection goes."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def restarted(state: Path) -> daemon_pb2.GetEditorConfigResponse:
    """Starts `framerelay serve --fake` on `state` (it must start) and reads the editor back."""
    process, found = start_serve(state, "--fake")
    try:
        with DaemonClient.from_discovery(found) as client:
            shown = client.editor_config()
    finally:
        _, err = stop_serve(process)
    assert process.returncode == 0, err
    return shown


def editor_cli(state: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "framerelay", "editor", *args],
        env=daemon_env(state),
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_each_editor_setter_is_read_back_by_a_restarted_daemon(tmp_path, monkeypatch):
    state = tmp_path / "state"
    bin_dir = tmp_path / "bin"
    stand_in(bin_dir, "krita")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    config_file = state / "config" / "config.toml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(f'output_roots = ["{tmp_path}"]\n')

    setters = [
        daemon_pb2.EditorConfig(application="krita"),
        daemon_pb2.EditorConfig(application="krita", open_editor=False, poll_saves=True),
        daemon_pb2.EditorConfig(application="", open_editor=True),
    ]
    for wanted in setters:
        process, found = start_serve(state, "--fake")
        try:
            with DaemonClient.from_discovery(found) as client:
                detected = client.editor_config().detected
                assert [(e.name, e.path) for e in detected] == [("krita", str(bin_dir / "krita"))]
                saved = client.set_editor_config(wanted).config
        finally:
            stop_serve(process)
        assert restarted(state).config == saved, wanted

    editor_cli(state, "--application", str(tmp_path / "my editor"), "--argument=--flag", "--poll")
    read = restarted(state).config
    assert read.application == str(tmp_path / "my editor") and list(read.arguments) == ["--flag"]
    assert read.poll_saves and read.open_editor

    document = tomllib.loads(config_file.read_text())
    assert document["output_roots"] == [str(tmp_path)]  # the other settings are kept


def test_a_broken_editor_table_stops_the_start_with_a_line_naming_it(tmp_path):
    state = tmp_path / "state"
    (state / "config").mkdir(parents=True)
    (state / "config" / "config.toml").write_text("[editor]\nopen_editor = 'yes'\n")
    done = subprocess.run(
        [sys.executable, "-m", "framerelay", "serve", "--fake"],
        env=daemon_env(state),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "open_editor must be true or false" in done.stderr and "Traceback" not in done.stderr


def test_the_editor_command_writes_the_file_without_a_daemon_and_shows_it(tmp_path):
    state = tmp_path / "state"
    shown = editor_cli(state, "--application", "/opt/paint/paint", "--argument=-n", "--no-open")
    assert "application: /opt/paint/paint" in shown and "arguments:   -n" in shown
    assert "open editor: no" in shown and "not running" in shown
    table = tomllib.loads((state / "config" / "config.toml").read_text())["editor"]
    assert table == {
        "application": "/opt/paint/paint",
        "arguments": ["-n"],
        "open_editor": False,
        "poll_saves": False,
    }
    shown = editor_cli(state, "--no-arguments", "--application", "")
    assert "application: (the system default)" in shown and "arguments:   (none)" in shown


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ("[editor]\napplication = 5\n", "docs/roundtrip.md"),
        ('[defaults]\noutput_folder = "/etc"\n', "outside the daemon's output roots"),
    ],
)
def test_a_hand_edited_section_the_api_would_refuse_stops_the_start(tmp_path, table, words):
    # docs/daemon.md: a default folder must lie under the output roots, and a broken section
    # stops the start with one line naming it (the folder used to be found only at each submit,
    # as if the user had asked for /etc); the editor's type errors pointed at `edit --help`.
    state = tmp_path / "state"
    (state / "config").mkdir(parents=True)
    (state / "config" / "config.toml").write_text(table)
    done = subprocess.run(
        [sys.executable, "-m", "framerelay", "serve", "--fake"],
        env=daemon_env(state),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert words in done.stderr and "Traceback" not in done.stderr
    assert "framerelay edit --help" not in done.stderr
