"""The `[defaults]` section of the daemon's config file: what a job that leaves its preset, output
format or output folder unset gets.

The daemon reads it at start (a broken section stops the start with one line naming it), again
whenever the file changes, and writes it for SetDefaults; other sections are kept as they are.
Plugins and the tray app read it through GetDefaults, so every host offers the same defaults.

    [defaults]
    preset = "local"                 # auto | local | style | shape
    output_format = "mp4"            # mov | mp4 | png
    output_folder = "/projects/renders"
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from framerelay.engine.params import PRESET_NAMES
from framerelay.engine.request import OUTPUT_FORMATS
from framerelay.errors import InvalidSpecError
from framerelay.jobs.output_policy import OutputPolicy
from framerelay.jobs.spec import DEFAULT_OUTPUT_FORMAT, check_output_folder
from framerelay.roundtrip.files import write_atomic
from framerelay.service.editor_settings import dump_toml, read_document

log = logging.getLogger(__name__)

SECTION = "defaults"
KEYS = ("preset", "output_format", "output_folder")


@dataclass(frozen=True)
class JobDefaults:
    preset: str = "auto"
    output_format: str = DEFAULT_OUTPUT_FORMAT
    output_folder: Path | None = None  # None: the daemon's data folder, one sub-folder per job

    def validate(self) -> JobDefaults:
        if self.preset not in PRESET_NAMES:
            raise InvalidSpecError(
                f"unknown default preset {self.preset!r}.",
                f"Choose one of {', '.join(PRESET_NAMES)}.",
            )
        if self.output_format not in OUTPUT_FORMATS:
            raise InvalidSpecError(
                f"unknown default output format {self.output_format!r}.",
                f"Choose one of {', '.join(OUTPUT_FORMATS)}.",
            )
        check_output_folder(self.output_folder)
        return self

    def to_dict(self) -> dict[str, str]:
        data = {"preset": self.preset, "output_format": self.output_format}
        if self.output_folder is not None:
            data["output_folder"] = str(self.output_folder)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobDefaults:
        unknown = sorted(set(data) - set(KEYS))
        if unknown:
            raise InvalidSpecError(
                f"[{SECTION}] has unknown settings: {', '.join(unknown)}.",
                f"Known settings: {', '.join(KEYS)}.",
            )
        if not all(isinstance(value, str) for value in data.values()):
            raise InvalidSpecError(f"the settings of [{SECTION}] must be strings.")
        folder = data.get("output_folder") or None
        return cls(
            preset=data.get("preset", "auto"),
            output_format=data.get("output_format", DEFAULT_OUTPUT_FORMAT),
            output_folder=Path(folder).expanduser() if folder else None,
        ).validate()


def read_defaults(path: Path) -> JobDefaults:
    section = read_document(path).get(SECTION, {})
    if not isinstance(section, dict):
        raise InvalidSpecError(f"{path}: [{SECTION}] must be a table.", _fix_hint(path))
    try:
        return JobDefaults.from_dict(section)
    except InvalidSpecError as error:
        raise InvalidSpecError(f"{path}: {error.message}", error.hint) from None


class DefaultsSettings:
    """The job defaults of one config file; thread-safe."""

    def __init__(self, path: Path, policy: OutputPolicy):
        self.path = path
        self.policy = policy
        self._lock = threading.Lock()
        self._stamp = _stamp(path)
        self._defaults = read_defaults(path)

    def current(self) -> JobDefaults:
        """The defaults, read again when the file changed; a broken file keeps the last good ones."""
        with self._lock:
            stamp = _stamp(self.path)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._defaults = read_defaults(self.path)
                except InvalidSpecError as error:
                    log.warning("%s %s Keeping the previous job defaults.", error, error.hint)
            return self._defaults

    def update(self, defaults: JobDefaults) -> JobDefaults:
        """Checks `defaults`, writes them as the `[defaults]` section and uses them from now on."""
        defaults.validate()
        if defaults.output_folder is not None:
            # A default applies to every clip, so "next to the source" cannot admit it.
            global_policy = replace(self.policy, next_to_source=False)
            global_policy.check_folder(defaults.output_folder, defaults.output_folder)
        with self._lock:
            document = read_document(self.path)
            document[SECTION] = defaults.to_dict()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, dump_toml(document).encode("utf-8"))
            self._stamp = _stamp(self.path)
            self._defaults = defaults
            log.info("job defaults written to %s: %s", self.path, defaults.to_dict())
            return defaults


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _fix_hint(path: Path) -> str:
    return f"Fix {path} (see docs/daemon.md, 'Job defaults'), or delete the [{SECTION}] section."
