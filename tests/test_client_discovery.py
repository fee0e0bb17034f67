"""framerelay_client.discovery finds the daemon's folder as the daemon does (platformdirs), on
Linux, macOS and Windows, and reads its discovery file; the error catalogue matches the daemon's."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import platformdirs
import pytest
from platformdirs import macos, unix, windows

from framerelay import errors as daemon_errors
from framerelay.service import config as daemon_config
from framerelay.service.discovery import Discovery as DaemonDiscovery
from framerelay.service.discovery import write_discovery
from framerelay_client import errors
from framerelay_client.discovery import Discovery, config_dir, read_discovery
from framerelay_client.errors import DaemonNotRunning

PLATFORMS = {"linux": unix.Unix, "darwin": macos.MacOS, "win32": windows.Windows}
ENV = ("FRAMERELAY_CONFIG_DIR", "XDG_CONFIG_HOME", "LOCALAPPDATA", "WIN_PD_OVERRIDE_LOCAL_APPDATA")


def platformdirs_answer(platform: str) -> Path:
    return Path(PLATFORMS[platform]("framerelay", appauthor=False).user_config_dir)


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """A clean environment with a fake home; platformdirs' Windows class reads the environment
    (its shell-folder lookup needs Windows)."""
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(windows, "_RESOLVE_WIN_FOLDER", windows.get_win_folder_from_env_vars)
    return monkeypatch


CASES = [
    ("linux", {}),
    ("linux", {"XDG_CONFIG_HOME": "/xdg/config"}),
    ("linux", {"XDG_CONFIG_HOME": "relative/config"}),  # not absolute: ignored
    ("linux", {"XDG_CONFIG_HOME": ""}),
    ("freebsd14", {}),
    ("darwin", {}),
    ("darwin", {"XDG_CONFIG_HOME": "/Users/me/.config"}),  # platformdirs honours it on macOS
    ("win32", {"LOCALAPPDATA": "/c/Users/me/AppData/Local"}),
    ("win32", {"LOCALAPPDATA": "/c/local", "XDG_CONFIG_HOME": "/xdg"}),  # no XDG on Windows
    (
        "win32",
        {"LOCALAPPDATA": "/c/local", "WIN_PD_OVERRIDE_LOCAL_APPDATA": "D:\\Portable\\AppData"},
    ),
]


@pytest.mark.parametrize(("platform", "env"), CASES)
def test_config_dir_is_platformdirs_answer(environment, platform, env):
    for name, value in env.items():
        environment.setenv(name, value)
    expected = platformdirs_answer("linux" if platform.startswith("freebsd") else platform)
    environment.setattr(sys, "platform", platform)
    assert config_dir() == expected


def test_config_dir_on_this_machine_is_the_daemons(environment):
    assert (
        config_dir()
        == daemon_config.config_dir()
        == platformdirs.user_config_path("framerelay", appauthor=False)
    )
    environment.setenv("FRAMERELAY_CONFIG_DIR", "/somewhere/else")
    assert config_dir() == daemon_config.config_dir() == Path("/somewhere/else")


def test_a_relative_home_counts_as_unset(environment):
    environment.setenv("HOME", "not/absolute")
    assert config_dir() == platformdirs_answer("linux")
    assert config_dir().is_absolute()


def test_reads_the_file_the_daemon_writes(tmp_path):
    written = DaemonDiscovery("127.0.0.1", 41231, 41233, "secret-token", 81234, "0.1.0")
    write_discovery(tmp_path / "daemon.json", written)
    found = read_discovery(tmp_path / "daemon.json")
    assert found == Discovery(
        host="127.0.0.1",
        http_port=41233,
        grpc_port=41231,
        token="secret-token",
        pid=81234,
        version="0.1.0",
        http_url="http://127.0.0.1:41233",
        grpc_target="127.0.0.1:41231",
    )


def test_reads_the_default_folder(environment, tmp_path):
    environment.setenv("FRAMERELAY_CONFIG_DIR", str(tmp_path))
    write_discovery(tmp_path / "daemon.json", DaemonDiscovery("::1", 1, 2, "t", 3, "0.1.0"))
    assert read_discovery().http_url == "http://[::1]:2"


@pytest.mark.parametrize(
    "content",
    [None, "", "{not json", "[]", json.dumps({"host": "127.0.0.1"}), json.dumps({"token": 5})],
)
def test_a_missing_or_broken_file_means_not_running(tmp_path, content):
    path = tmp_path / "daemon.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DaemonNotRunning) as caught:
        read_discovery(path)
    assert "framerelay serve" in caught.value.hint
    assert str(caught.value) == f"{caught.value.message} ({caught.value.hint})"


def test_the_catalogue_matches_the_daemons():
    daemon = {
        f"ERROR_CODE_{code.name.upper()}": entry for code, entry in daemon_errors.CATALOG.items()
    }
    client = {cls.code: cls for cls in errors.CATALOG}
    assert client.keys() == daemon.keys()
    for code, cls in client.items():
        assert cls.status == daemon[code].http_status, code
        assert cls.default_hint == daemon[code].hint, code
        assert errors.error_for_code(code, "m").code == code


def test_error_from_reply_picks_the_catalogue_type():
    body = {"error": {"code": "ERROR_CODE_INVALID_SPEC", "message": "bad", "hint": "fix it"}}
    error = errors.error_from_reply(400, json.dumps(body).encode())
    assert type(error) is errors.InvalidSpec
    assert (error.message, error.hint, error.http_status, str(error)) == (
        "bad",
        "fix it",
        400,
        "bad (fix it)",
    )
    unknown = {"error": {"code": "ERROR_CODE_FROM_THE_FUTURE", "message": "new"}}
    assert type(errors.error_from_reply(404, unknown)) is errors.NotFound
    assert type(errors.error_from_reply(502, b"<html>bad gateway</html>")) is errors.Internal
    assert "bad gateway" in errors.error_from_reply(502, b"<html>bad gateway</html>").message
    assert type(errors.error_from_reply(401, b"")) is errors.Unauthenticated
    assert issubclass(errors.DaemonNotRunning, errors.DaemonUnreachable)
    assert issubclass(errors.DaemonUnreachable, errors.Unavailable)
