"""The daemon's configuration: command-line flags over FRAMERELAY_* environment variables."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from framerelay.cache import default_cache_root
from framerelay.engine.params import DEFAULT_MODEL
from framerelay.errors import InvalidSpecError

APP_NAME = "framerelay"
ENV_CONFIG_DIR = "FRAMERELAY_CONFIG_DIR"
ENV_DATA_DIR = "FRAMERELAY_DATA_DIR"
ENV_LOG_DIR = "FRAMERELAY_LOG_DIR"
LOOPBACK = "127.0.0.1"


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
    no_open: bool = False  # never open the image editor: round trips only report the path

    @classmethod
    def from_env(cls, **overrides) -> DaemonConfig:
        dirs = {
            "config_dir": config_dir(),
            "data_dir": data_dir(),
            "log_dir": log_dir(),
            "cache_dir": cache_dir(),
        }
        return cls(**{**dirs, **{k: v for k, v in overrides.items() if v is not None}})

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
                f"the idle unload time must be positive, got {self.idle_unload_s}."
            )
        return self
