"""Finding the daemon: its config folder and the discovery file `daemon.json` in it.

The folder follows the daemon's own rules (platformdirs' `user_config_dir("framerelay",
appauthor=False)`), without platformdirs:

* `FRAMERELAY_CONFIG_DIR`, when set, is the folder;
* Linux and other Unixes: `$XDG_CONFIG_HOME/framerelay` when that is an absolute path, else
  `~/.config/framerelay`;
* macOS: `$XDG_CONFIG_HOME/framerelay` likewise (platformdirs 4.14 honours it on macOS too), else
  `~/Library/Application Support/framerelay`;
* Windows: `%LOCALAPPDATA%\\framerelay` (`WIN_PD_OVERRIDE_LOCAL_APPDATA` first, when it is a fully
  qualified path, as platformdirs does). Windows sets `LOCALAPPDATA` from the Local AppData known
  folder at logon, so it names the folder platformdirs asks the shell for.
"""

from __future__ import annotations

import json
import ntpath
import os
import posixpath
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DaemonNotRunning

APP_NAME = "framerelay"
FILE_NAME = "daemon.json"
ENV_CONFIG_DIR = "FRAMERELAY_CONFIG_DIR"
START_HINT = "start it with `framerelay serve`"


@dataclass(frozen=True)
class Discovery:
    """What the daemon wrote about itself at its start (the token changes at every start)."""

    host: str
    http_port: int
    grpc_port: int
    token: str
    pid: int
    version: str
    http_url: str
    grpc_target: str


def config_dir() -> Path:
    """The daemon's config folder, where `daemon.json` and `config.toml` live."""
    value = os.environ.get(ENV_CONFIG_DIR)
    if value:
        return Path(os.path.expanduser(value))
    if sys.platform == "win32":
        return Path(os.path.normpath(_local_appdata())) / APP_NAME
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    if posixpath.isabs(xdg):
        return Path(xdg) / APP_NAME
    if sys.platform == "darwin":
        return Path(_home()) / "Library" / "Application Support" / APP_NAME
    return Path(_home()) / ".config" / APP_NAME


def discovery_path(folder: Path | None = None) -> Path:
    return (folder or config_dir()) / FILE_NAME


def read_discovery(path: Path | None = None) -> Discovery:
    """The daemon's discovery file (default: `config_dir()/daemon.json`).

    Raises `DaemonNotRunning` when the file is missing, unreadable or malformed.
    """
    path = path or discovery_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DaemonNotRunning(f"the framerelay daemon is not running (no {path}).") from None
    except (OSError, ValueError) as error:
        raise DaemonNotRunning(
            f"cannot read the daemon's discovery file {path}: {error}."
        ) from None
    try:
        return parse_discovery(data)
    except (KeyError, TypeError, ValueError) as error:
        raise DaemonNotRunning(
            f"the daemon's discovery file {path} is malformed ({type(error).__name__}: {error}).",
            "restart it with `framerelay serve`; it rewrites the file",
        ) from None


def parse_discovery(data: Any) -> Discovery:
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    host = _text(data, "host")
    http_port, grpc_port = int(data["http_port"]), int(data["grpc_port"])
    token = _text(data, "token")
    if not token:
        raise ValueError("empty token")
    url_host = f"[{host}]" if ":" in host else host
    return Discovery(
        host=host,
        http_port=http_port,
        grpc_port=grpc_port,
        token=token,
        pid=int(data.get("pid", 0)),
        version=str(data.get("version", "")),
        http_url=str(data.get("http_url") or f"http://{url_host}:{http_port}"),
        grpc_target=str(data.get("grpc_target") or f"{url_host}:{grpc_port}"),
    )


def _text(data: dict[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"{key} is not a string")
    return value


def _home() -> str:
    """`~` as platformdirs expands it: a relative HOME counts as unset on POSIX."""
    home = os.environ.get("HOME")
    if home is not None and not posixpath.isabs(home) and sys.platform != "win32":
        try:
            import pwd

            return pwd.getpwuid(os.getuid()).pw_dir
        except (ImportError, KeyError):
            return home
    return os.path.expanduser("~")


def _local_appdata() -> str:
    override = os.environ.get("WIN_PD_OVERRIDE_LOCAL_APPDATA", "").strip()
    if _fully_qualified(override):
        return override
    value = os.environ.get("LOCALAPPDATA")
    if value:
        return value
    return os.path.join(os.path.expanduser("~"), "AppData", "Local")


def _fully_qualified(path: str) -> bool:
    """A Windows path with a drive and a root (C:\\x) or a UNC share (\\\\server\\share)."""
    if not path:
        return False
    drive, tail = ntpath.splitdrive(ntpath.normpath(path))
    if drive.startswith("\\\\"):
        server, _, share = drive[2:].partition("\\")
        return all(part not in ("", ".", "..", "?") for part in (server, share))
    return len(drive) == 2 and tail.startswith("\\")
