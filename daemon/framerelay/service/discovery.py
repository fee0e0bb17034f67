"""The discovery file: how clients find the daemon's ports and token.

`<config dir>/daemon.json`, written atomically with mode 0600 at every start (the token changes at
every start) and removed at a clean stop. Clients read it, then send the token with every call.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from framerelay.errors import UnavailableError

FILE_NAME = "daemon.json"
FORMAT_VERSION = 1


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


def write_discovery(path: Path, discovery: Discovery) -> None:
    """Creates the file as 0600 from the start (never readable by others, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump(discovery.to_json(), file, indent=2)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


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
