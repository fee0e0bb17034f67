"""The daemon's configuration: command-line flags over `config.toml` over FRAMERELAY_* variables.

`<config dir>/config.toml` (next to the discovery file) holds the security settings:

    output_roots = ["~/Videos", "/projects/renders"]  # replaces the default, the video folder
    outputs_next_to_source = true                     # also allow the source clip's folder
    allowed_origins = ["http://localhost:5173"]       # web pages that may call the HTTP API
    allowed_hosts = ["studio-pc.local"]               # extra Host names (with --allow-remote)

and the `[editor]` table of round trips, which `service.editor_settings` reads and writes (the
daemon re-reads it while it runs); here it is only checked, so that a broken one stops the start.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import platformdirs

from framerelay.cache import default_cache_root
from framerelay.engine.params import DEFAULT_MODEL
from framerelay.errors import InvalidSpecError
from framerelay.jobs.output_policy import OutputPolicy

APP_NAME = "framerelay"
ENV_CONFIG_DIR = "FRAMERELAY_CONFIG_DIR"
ENV_DATA_DIR = "FRAMERELAY_DATA_DIR"
ENV_LOG_DIR = "FRAMERELAY_LOG_DIR"
LOOPBACK = "127.0.0.1"
CONFIG_FILE = "config.toml"


def config_dir() -> Path:
    """Where the discovery file lives: clients look here."""
    return _dir(ENV_CONFIG_DIR, platformdirs.user_config_path)


def data_dir() -> Path:
    return _dir(ENV_DATA_DIR, platformdirs.user_data_path)


def log_dir() -> Path:
    return _dir(ENV_LOG_DIR, platformdirs.user_log_path)


def cache_dir() -> Path:
    """The engine's artifact cache (LoRAs, inversions), shown and cleared by the cache RPCs."""
    return default_cache_root()


def _dir(variable: str, default) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else default(APP_NAME, appauthor=False)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def default_output_roots() -> tuple[Path, ...]:
    return (platformdirs.user_videos_path(),)


def read_config_file(folder: Path) -> dict[str, Any]:
    """The settings of `<folder>/config.toml`, as DaemonConfig fields; {} without the file."""
    path = folder / CONFIG_FILE
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise InvalidSpecError(f"cannot read {path}: {error}.", CONFIG_HINT) from None
    unknown = sorted(set(data) - set(SETTINGS) - set(SECTIONS))
    if unknown:
        raise InvalidSpecError(
            f"{path} has unknown settings: {', '.join(unknown)}.",
            f"Known settings: {', '.join([*SETTINGS, *SECTIONS])}.",
        )
    for name, check in SECTIONS.items():
        if name in data:
            check(data[name], path)
    return {name: parse(data[name], path) for name, parse in SETTINGS.items() if name in data}


CONFIG_HINT = "See the daemon's documentation (docs/daemon.md) for the keys of config.toml."


def _strings(value: Any, name: str, path: Path) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidSpecError(f"{name} in {path} must be a list of strings.", CONFIG_HINT)
    return value


def _roots(value: Any, path: Path) -> tuple[Path, ...]:
    roots = tuple(Path(v).expanduser() for v in _strings(value, "output_roots", path))
    for root in roots:
        if not root.is_absolute():
            raise InvalidSpecError(
                f"output root {str(root)!r} in {path} is not absolute.", CONFIG_HINT
            )
    return roots


def _flag(value: Any, path: Path) -> bool:
    if not isinstance(value, bool):
        raise InvalidSpecError(f"outputs_next_to_source in {path} must be true or false.")
    return value


def _origins(value: Any, path: Path) -> tuple[str, ...]:
    origins = tuple(v.lower().rstrip("/") for v in _strings(value, "allowed_origins", path))
    for origin in origins:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path:
            raise InvalidSpecError(
                f"allowed origin {origin!r} in {path} is not an origin.",
                "Write each one as scheme://host[:port], e.g. http://localhost:5173; "
                "wildcards and null are never allowed.",
            )
    return origins


def _hosts(value: Any, path: Path) -> tuple[str, ...]:
    return tuple(v.lower() for v in _strings(value, "allowed_hosts", path))


def _editor(value: Any, path: Path) -> None:
    from framerelay.service.editor_settings import check_editor_section

    check_editor_section(value, path)


def _defaults(value: Any, path: Path) -> None:
    from framerelay.service.job_defaults import SECTION, JobDefaults

    if not isinstance(value, dict):
        raise InvalidSpecError(f"{path}: [{SECTION}] must be a table.", CONFIG_HINT)
    try:
        JobDefaults.from_dict(value)
    except InvalidSpecError as error:
        raise InvalidSpecError(f"{path}: {error.message}", error.hint) from None


SETTINGS = {
    "output_roots": _roots,
    "outputs_next_to_source": _flag,
    "allowed_origins": _origins,
    "allowed_hosts": _hosts,
}
# Tables of config.toml that their own modules read (and the daemon writes), checked at start, not
# DaemonConfig fields: [editor] (service.editor_settings), [defaults] (service.job_defaults).
SECTIONS = {"editor": _editor, "defaults": _defaults}


@dataclass(frozen=True)
class DaemonConfig:
    config_dir: Path
    data_dir: Path
    log_dir: Path
    cache_dir: Path
    host: str = LOOPBACK
    port: int = 0  # gRPC; 0: any free port
    http_port: int = 0  # HTTP/JSON facade; 0: any free port
    allow_remote: bool = False
    idle_unload_s: float = 600.0
    progress_interval_s: float = 0.1
    model: str = DEFAULT_MODEL
    device: str | None = None
    dtype: str | None = None
    output_roots: tuple[Path, ...] | None = None  # None: the user's video folder
    outputs_next_to_source: bool = True
    allowed_origins: tuple[str, ...] = ()  # browser origins the HTTP API answers
    allowed_hosts: tuple[str, ...] = ()  # Host names accepted besides loopback ones
    discovery_check_s: float = 2.0  # how often the discovery file's permissions are checked
    no_open: bool = False  # never open the image editor: round trips only report the path

    @classmethod
    def from_env(cls, **overrides) -> DaemonConfig:
        """Folders from the environment, then config.toml, then `overrides` (flags)."""
        folder = config_dir()
        dirs = {
            "config_dir": folder,
            "data_dir": data_dir(),
            "log_dir": log_dir(),
            "cache_dir": cache_dir(),
        }
        settings = read_config_file(folder)
        return cls(**{**dirs, **settings, **{k: v for k, v in overrides.items() if v is not None}})

    @property
    def config_file(self) -> Path:
        return self.config_dir / CONFIG_FILE

    def output_policy(self) -> OutputPolicy:
        roots = default_output_roots() if self.output_roots is None else self.output_roots
        return OutputPolicy(
            self.outputs_dir,
            roots,
            self.outputs_next_to_source,
            f"output_roots in {self.config_file}",
        )

    @property
    def database(self) -> Path:
        return self.data_dir / "jobs.sqlite3"

    @property
    def outputs_dir(self) -> Path:
        return self.data_dir / "outputs"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    @property
    def edits_dir(self) -> Path:
        """Round trips with an image editor: `<job id>/` per round trip, kept after the job."""
        return self.data_dir / "edits"

    def validate(self) -> DaemonConfig:
        if not is_loopback(self.host) and not self.allow_remote:
            raise InvalidSpecError(
                f"refusing to listen on {self.host}: it is not a loopback address.",
                "The daemon reads and writes local files for anyone with the token; pass "
                "--allow-remote only on a trusted network.",
            )
        for name in ("port", "http_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise InvalidSpecError(
                    f"{name} must be 0..65535, got {value}.", "0 picks a free port."
                )
        if self.idle_unload_s <= 0:
            raise InvalidSpecError(
                f"the idle unload time must be positive, got {self.idle_unload_s}.",
                "Give the seconds without jobs after which the model is freed, e.g. "
                "--idle-unload 300 (default 600).",
            )
        return self
