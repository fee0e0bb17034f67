"""A token holder cannot make the daemon run a program: over the API the editor is chosen among
the detected image editors (or stays the one set locally in config.toml), its arguments never
change, and with --allow-remote nothing changes at all."""

from __future__ import annotations

import stat
import sys
from pathlib import Path

import pytest

from framerelay.errors import ForbiddenError
from framerelay.proto.v1 import daemon_pb2, specs_pb2
from framerelay.roundtrip.editor import DetectedEditor, EditorConfig, detect_editors
from framerelay.service.editor_settings import EditorSettings
from tests.daemon_harness import http_call, make_media, running_daemon, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX shell and scripts")

GIMP = DetectedEditor("gimp", "GIMP", Path("/usr/bin/gimp"))


def settings(tmp_path: Path, *, locked: bool = False, text: str = "") -> EditorSettings:
    path = tmp_path / "config.toml"
    if text:
        path.write_text(text)
    return EditorSettings(path, locked=locked, detect=lambda: [GIMP])


@pytest.mark.parametrize(
    "wanted",
    [
        EditorConfig("/bin/sh", ("-c", "touch /tmp/owned")),
        EditorConfig("sh", ("-c", "id")),
        EditorConfig("/usr/bin/python3"),
        EditorConfig("open", ("-a", "Terminal")),
        EditorConfig(None, ("-c", "id")),  # arguments for the default application
        EditorConfig("gimp", ("--batch-interpreter=python-fu-eval", "-b", "import os")),
    ],
)
def test_a_program_or_arguments_of_the_callers_choice_are_refused(tmp_path, wanted):
    chosen = settings(tmp_path)
    with pytest.raises(ForbiddenError) as refused:
        chosen.update_over_api(wanted)
    assert str(chosen.path) in refused.value.hint  # where to set it instead
    assert chosen.current() == EditorConfig() and not chosen.path.exists()


def test_the_api_chooses_among_detected_editors_and_keeps_the_local_choice(tmp_path):
    local = '[editor]\napplication = "/opt/my editor/run"\narguments = ["--new-window"]\n'
    chosen = settings(tmp_path, text=local)
    mine = EditorConfig("/opt/my editor/run", ("--new-window",))
    # The read-modify-write of a client: the local program stays, with its own arguments.
    kept = chosen.update_over_api(EditorConfig("/opt/my editor/run", ("--new-window",), False))
    assert kept == EditorConfig("/opt/my editor/run", ("--new-window",), open_editor=False)
    assert (
        chosen.update_over_api(EditorConfig("/opt/my editor/run", ())).arguments == mine.arguments
    )
    # A detected editor by name: the local arguments do not follow it.
    assert chosen.update_over_api(EditorConfig("GIMP", ("--new-window",))) == EditorConfig("gimp")
    assert chosen.update_over_api(EditorConfig(None, (), poll_saves=True)) == EditorConfig(
        None, (), poll_saves=True
    )
    with pytest.raises(ForbiddenError, match="not an image editor the daemon detected"):
        chosen.update_over_api(mine)  # once changed, a local program is set locally again


def test_locked_settings_change_nothing(tmp_path):
    chosen = settings(tmp_path, locked=True)
    with pytest.raises(ForbiddenError, match="--allow-remote"):
        chosen.update_over_api(EditorConfig(None, (), open_editor=False))
    assert not chosen.path.exists()


def shell_trick(marker: Path) -> dict:
    return {"config": {"application": "/bin/sh", "arguments": ["-c", f"touch {marker}"]}}


def recording_editor(folder: Path, name: str) -> tuple[Path, Path]:
    """An executable `name` that writes its arguments to a file: an editor for the tests."""
    record = folder / f"{name}.args"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "$@" > "{record}"\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path, record


def test_the_shell_trick_over_http_fails_and_runs_nothing(tmp_path):
    marker = tmp_path / "owned"
    source, _ = make_media(tmp_path / "media")
    mine, opened = recording_editor(tmp_path / "bin", "my-editor")
    config_file = tmp_path / "state" / "config" / "config.toml"
    config_file.parent.mkdir(parents=True)
    config_file.write_text(f'[editor]\napplication = "{mine}"\n')
    before = config_file.read_text()
    with running_daemon(tmp_path / "state") as (daemon, client):
        found = daemon.discovery
        status, refused = http_call(found, "SetEditorConfig", shell_trick(marker))
        assert status == 403 and refused["error"]["code"] == "ERROR_CODE_FORBIDDEN"
        assert str(config_file) in refused["error"]["hint"]
        arguments_only = {"config": {"application": str(mine), "arguments": ["-c", "id"]}}
        status, refused = http_call(found, "SetEditorConfig", arguments_only)
        assert status == 403 and "arguments" in refused["error"]["message"]
        assert client.editor_config().config.application == str(mine)

        job = client.submit(
            specs_pb2.JobSpec(
                source_path=str(source), edit_session=specs_pb2.EditSessionSpec(open_editor=True)
            )
        )
        assert wait_for(lambda: opened.exists() and opened.read_text(), 30).strip() == (
            job.edit.exported_path
        )
        assert "EDIT_EVENT_KIND_EDITOR_OPENED" in edit_kinds(found, job.id)
    assert not marker.exists()
    assert config_file.read_text() == before


def edit_kinds(found, job_id: str) -> list[str]:
    _, reply = http_call(found, "PollJob", {"jobId": job_id})
    return [e["edit"]["kind"] for e in reply.get("events", []) if "edit" in e]


def test_a_detected_editor_is_chosen_over_the_api_and_opened(tmp_path, monkeypatch):
    krita, record = recording_editor(tmp_path / "bin", "krita")
    bin_dir = krita.parent
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    assert [e.name for e in detect_editors("linux")] == ["krita"]
    source, _ = make_media(tmp_path / "media")
    with running_daemon(tmp_path / "state") as (daemon, client):
        status, shown = http_call(daemon.discovery, "GetEditorConfig", {})
        assert status == 200
        assert shown["detected"] == [{"name": "krita", "label": "Krita", "path": str(krita)}]
        assert not shown.get("readOnly")
        status, saved = http_call(
            daemon.discovery, "SetEditorConfig", {"config": {"application": "krita"}}
        )
        assert status == 200 and saved["config"]["application"] == "krita"
        job = client.submit(
            specs_pb2.JobSpec(
                source_path=str(source),
                edit_session=specs_pb2.EditSessionSpec(open_editor=True),
            )
        )
        assert wait_for(lambda: record.exists() and record.read_text(), 30).strip() == (
            job.edit.exported_path
        )


def test_with_allow_remote_the_editor_settings_are_read_only(tmp_path):
    with running_daemon(tmp_path / "state", allow_remote=True) as (daemon, client):
        shown = client.editor_config()
        assert shown.read_only
        with pytest.raises(ForbiddenError, match="--allow-remote"):
            client.set_editor_config(daemon_pb2.EditorConfig(open_editor=False))
        status, refused = http_call(
            daemon.discovery, "SetEditorConfig", {"config": {"pollSaves": True}}
        )
        assert status == 403 and "config.toml" in refused["error"]["hint"]
