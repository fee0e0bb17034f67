"""The discovery file: how clients find the daemon's ports and token.

`<config dir>/daemon.json`, written atomically with mode 0600 at every start (the token changes at
every start) and removed at a clean stop. Clients read it, then send the token with every call.
While the daemon runs it checks the file: if others could read it, the token may have leaked, so
the daemon replaces the token and rewrites the file.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from framerelay.errors import UnavailableError
from framerelay.files import write_atomic

FILE_NAME = "daemon.json"
FORMAT_VERSION = 1
PRIVATE = os.name != "nt"  # POSIX modes; on Windows the user profile's ACL protects the file

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Discovery:
    host: str
    grpc_port: int
    http_port: int
    token: str
    pid: int
    version: str

    @property
    def grpc_target(self) -> str:
        return f"{url_host(self.host)}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        return f"http://{url_host(self.host)}:{self.http_port}"

    def to_json(self) -> dict[str, object]:
        return {
            "format": FORMAT_VERSION,
            **asdict(self),
            "grpc_target": self.grpc_target,
            "http_url": self.http_url,
        }


def url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def new_token() -> str:
    return secrets.token_urlsafe(32)


def discovery_path(config_dir: Path) -> Path:
    return config_dir / FILE_NAME


def private_folder(folder: Path) -> None:
    """Creates `folder` as 0700; one of ours that others may write to is made 0700 too (else they
    could replace the discovery file and collect the token from our clients)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not PRIVATE:
        return
    info = folder.stat()
    if info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) & 0o022:
        os.chmod(folder, stat.S_IMODE(info.st_mode) & ~0o022)
        log.warning("%s was writable by others; it no longer is", folder)


def write_discovery(path: Path, discovery: Discovery) -> None:
    """Creates the file as 0600 from the start (never readable by others, even briefly)."""
    private_folder(path.parent)
    write_atomic(path, json.dumps(discovery.to_json(), indent=2).encode("utf-8"), mode=0o600)


@dataclass(frozen=True)
class Problem:
    reason: str
    leaked: bool  # others may have read the token


def discovery_problem(path: Path, discovery: Discovery) -> Problem | None:
    """What is wrong with this daemon's discovery file, if anything.

    A file another daemon has since written (another pid) is left alone.
    """
    try:
        info = path.lstat()
        found = json.loads(path.read_text()) if stat.S_ISREG(info.st_mode) else {}
    except FileNotFoundError:
        return Problem("was missing", leaked=False)
    except (OSError, ValueError):
        return Problem("was unreadable", leaked=True)
    if isinstance(found, dict) and found.get("pid") not in (None, discovery.pid):
        return None
    if not stat.S_ISREG(info.st_mode):
        return Problem("was not a regular file", leaked=True)
    if PRIVATE and info.st_uid != os.getuid():
        return Problem(f"belonged to user {info.st_uid}", leaked=True)
    mode = stat.S_IMODE(info.st_mode)
    if PRIVATE and mode & 0o077:
        return Problem(f"had mode {mode:04o}, readable by others", leaked=True)
    if not isinstance(found, dict) or found.get("token") != discovery.token:
        return Problem("did not hold the current token", leaked=False)
    return None


def read_discovery(path: Path) -> Discovery:
    try:
        data = json.loads(path.read_text())
        return Discovery(
            host=data["host"],
            grpc_port=int(data["grpc_port"]),
            http_port=int(data["http_port"]),
            token=data["token"],
            pid=int(data["pid"]),
            version=data["version"],
        )
    except FileNotFoundError:
        raise UnavailableError(f"the daemon is not running (no {path}).") from None
    except (ValueError, KeyError, TypeError) as error:
        raise UnavailableError(
            f"the discovery file {path} is unreadable: {error}.",
            "Restart the daemon with `framerelay serve`; it rewrites the file.",
        ) from error


def remove_discovery(path: Path, pid: int) -> None:
    """Removes the file if it is still this daemon's (a newer daemon may have replaced it)."""
    try:
        if json.loads(path.read_text()).get("pid") == pid:
            path.unlink()
    except (FileNotFoundError, ValueError):
        pass
