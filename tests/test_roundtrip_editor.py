import json
import os
import sys
from pathlib import Path

import pytest

from framerelay.errors import InvalidSpecError
from framerelay.roundtrip.editor import EditorConfig, find_photoshop, open_in_editor
from tests.roundtrip_support import Recorder


def _stand_in_editor(folder: Path, exit_status: int = 0) -> tuple[Path, Path]:
    """A real executable that records its arguments to a JSON file, then exits."""
    record = folder / "argv.json"
    script = folder / "fake-editor"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"record = {str(record)!r}\n"
        "with open(record + '.partial', 'w') as f:\n"
        "    json.dump(sys.argv[1:], f)\n"
        "os.replace(record + '.partial', record)\n"
        f"sys.exit({exit_status})\n"
    )
    script.chmod(0o755)
    return script, record


def _wait_for_file(path: Path, timeout: float = 15.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)
    return path.read_text()


class FakeSpawner:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv, on_exit):
        self.calls.append(list(argv))
        return 4242


@pytest.fixture
def exported(tmp_path) -> Path:
    folder = tmp_path / "job folder; $HOME 'quoted'"  # would break any shell
    folder.mkdir()
    path = folder / "frame_edit.png"
    path.write_bytes(b"png")
    return path


@pytest.mark.skipif(os.name == "nt", reason="the stand-in is a POSIX script")
def test_configured_executable_gets_its_arguments_and_the_path(tmp_path, exported):
    script, record = _stand_in_editor(tmp_path)
    config = EditorConfig(application=str(script), arguments=("--new-window",))
    exits = Recorder()
    result = open_in_editor(exported, config, platform="linux", on_exit=exits)
    assert json.loads(_wait_for_file(record)) == ["--new-window", str(exported)]
    assert result.argv == (str(script), "--new-window", str(exported))
    assert isinstance(result.pid, int)
    assert exits.wait_count(1) == [0]


@pytest.mark.skipif(os.name == "nt", reason="the stand-in is a POSIX script")
def test_an_executable_named_on_path_is_found(tmp_path, exported, monkeypatch):
    _script, record = _stand_in_editor(tmp_path)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    result = open_in_editor(exported, EditorConfig(application="fake-editor"), platform="linux")
    assert json.loads(_wait_for_file(record)) == [str(exported)]
    assert result.description == "fake-editor"


@pytest.mark.skipif(os.name == "nt", reason="the stand-in is a POSIX script")
def test_a_failing_editor_reports_its_exit_status(tmp_path, exported):
    script, _record = _stand_in_editor(tmp_path, exit_status=3)
    exits = Recorder()
    open_in_editor(exported, EditorConfig(application=str(script)), platform="linux", on_exit=exits)
    assert exits.wait_count(1) == [3]


def test_a_file_that_cannot_be_executed_is_an_error_with_a_hint(tmp_path, exported):
    not_executable = tmp_path / "editor.txt"
    not_executable.write_text("plain text")
    not_executable.chmod(0o644)
    with pytest.raises(InvalidSpecError, match="Could not start") as caught:
        open_in_editor(exported, EditorConfig(application=str(not_executable)), platform="linux")
    assert "--no-open" in caught.value.hint


def test_an_unknown_editor_is_an_error(exported):
    with pytest.raises(InvalidSpecError, match="not-an-editor-xyz"):
        open_in_editor(
            exported,
            EditorConfig(application="not-an-editor-xyz"),
            platform="linux",
            spawn=FakeSpawner(),
        )


@pytest.mark.parametrize(
    ("platform", "expected"),
    [("linux", ["xdg-open"]), ("darwin", ["open"]), ("freebsd14", ["xdg-open"])],
)
def test_os_default_handler_per_platform(exported, platform, expected):
    spawn = FakeSpawner()
    result = open_in_editor(exported, EditorConfig(), platform=platform, spawn=spawn)
    assert spawn.calls == [[*expected, str(exported)]]
    assert result.description == "the default application"
    assert result.pid == 4242


def test_windows_default_handler_uses_startfile(exported):
    spawn, started = FakeSpawner(), Recorder()
    result = open_in_editor(
        exported, EditorConfig(), platform="win32", spawn=spawn, startfile=started
    )
    assert started.items == [str(exported)]
    assert spawn.calls == []
    assert result.argv == ()


def test_windows_startfile_failure_is_an_error(exported):
    def broken(_: str) -> None:
        raise OSError(1155, "No application is associated")

    with pytest.raises(InvalidSpecError, match="Windows could not open"):
        open_in_editor(exported, EditorConfig(), platform="win32", startfile=broken)


def _fake_mac_applications(root: Path) -> None:
    for name in ("Adobe Photoshop 2024", "Adobe Photoshop 2025", "Adobe Photoshop (Beta)"):
        (root / name / f"{name}.app").mkdir(parents=True)


def _fake_windows_program_files(root: Path) -> None:
    for name in ("Adobe Photoshop 2023", "Adobe Photoshop 2025"):
        (root / "Adobe" / name).mkdir(parents=True)
        (root / "Adobe" / name / "Photoshop.exe").write_bytes(b"MZ")


def test_photoshop_on_macos_opens_the_newest_install_with_open_a(tmp_path, exported):
    _fake_mac_applications(tmp_path / "Applications")
    spawn = FakeSpawner()
    result = open_in_editor(
        exported,
        EditorConfig(application="Photoshop"),
        platform="darwin",
        spawn=spawn,
        search_roots=[tmp_path / "Applications"],
    )
    app = tmp_path / "Applications" / "Adobe Photoshop 2025" / "Adobe Photoshop 2025.app"
    assert spawn.calls == [["open", "-a", str(app), str(exported)]]
    assert result.description == "Adobe Photoshop 2025"


def test_photoshop_on_windows_runs_photoshop_exe(tmp_path, exported):
    _fake_windows_program_files(tmp_path / "Program Files")
    spawn = FakeSpawner()
    result = open_in_editor(
        exported,
        EditorConfig(application="photoshop"),
        platform="win32",
        spawn=spawn,
        search_roots=[tmp_path / "Program Files"],
    )
    exe = tmp_path / "Program Files" / "Adobe" / "Adobe Photoshop 2025" / "Photoshop.exe"
    assert spawn.calls == [[str(exe), str(exported)]]
    assert result.description == "Adobe Photoshop 2025"


@pytest.mark.parametrize("platform", ["darwin", "win32", "linux"])
def test_missing_photoshop_is_an_error_with_a_hint(tmp_path, exported, platform):
    with pytest.raises(InvalidSpecError, match="Photoshop") as caught:
        open_in_editor(
            exported,
            EditorConfig(application="photoshop"),
            platform=platform,
            spawn=FakeSpawner(),
            search_roots=[tmp_path / "nothing here"],
        )
    assert "editor" in caught.value.hint


def test_find_photoshop_prefers_release_over_beta(tmp_path):
    _fake_mac_applications(tmp_path)
    (tmp_path / "Adobe Photoshop 2026 (Beta)" / "Adobe Photoshop 2026 (Beta).app").mkdir(
        parents=True
    )
    assert find_photoshop("darwin", [tmp_path]).name == "Adobe Photoshop 2025.app"
    assert find_photoshop("linux", [tmp_path]) is None


def test_mac_application_names_and_bundles_use_open_a(tmp_path, exported):
    spawn = FakeSpawner()
    never_on_path = lambda name: None  # noqa: E731
    for application in ("Pixelmator Pro", "/Applications/GIMP.app"):
        config = EditorConfig(application=application, arguments=("--no-splash",))
        open_in_editor(exported, config, platform="darwin", spawn=spawn, which=never_on_path)
    assert spawn.calls == [
        ["open", "-a", "Pixelmator Pro", str(exported), "--args", "--no-splash"],
        ["open", "-a", "/Applications/GIMP.app", str(exported), "--args", "--no-splash"],
    ]


def test_config_round_trips_through_a_dict():
    config = EditorConfig(application="gimp", arguments=("-n",), open_editor=False, poll_saves=True)
    assert config.to_dict() == {
        "application": "gimp",
        "arguments": ["-n"],
        "open_editor": False,
        "poll_saves": True,
    }
    assert EditorConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    assert EditorConfig.from_dict({}) == EditorConfig()
    assert EditorConfig.from_dict({"application": ""}).application is None
    assert EditorConfig().to_dict()["application"] == ""


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"editor": "gimp"}, "Unknown editor settings: editor"),
        ({"application": 3}, "must be a string"),
        ({"arguments": "-n"}, "list of strings"),
        ({"open_editor": "no"}, "true or false"),
    ],
)
def test_config_rejects_bad_values(data, message):
    with pytest.raises(InvalidSpecError, match=message):
        EditorConfig.from_dict(data)
