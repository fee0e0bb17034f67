"""The `[defaults]` section of the daemon's config file: what a job that leaves its preset, output
format or output folder unset gets.

The daemon reads it at start (a broken section stops the start with one line naming it), again
whenever the file changes, and writes it for SetDefaults (`config_sections.SectionSettings`).
Plugins and the tray app read it through GetDefaults, so every host offers the same defaults.

    [defaults]
    preset = "local"                 # auto | local | style | shape
    output_format = "mp4"            # mov | mp4 | png
    output_folder = "/projects/renders"
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from framerelay.engine.params import PRESET_NAMES
from framerelay.engine.request import OUTPUT_FORMATS
from framerelay.errors import InvalidSpecError
from framerelay.jobs.output_policy import OutputPolicy
from framerelay.jobs.spec import DEFAULT_OUTPUT_FORMAT, check_output_folder
from framerelay.service.config_sections import SectionSettings

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


class DefaultsSettings(SectionSettings[JobDefaults]):
    """The job defaults of one config file."""

    def __init__(self, path: Path, policy: OutputPolicy):
        self.policy = policy
        hint = f"Fix {path} (see docs/daemon.md, 'Job defaults'), or delete its [{SECTION}]."
        super().__init__(path, SECTION, self._parse_checked, JobDefaults.to_dict, hint)

    def _parse_checked(self, table: dict[str, Any]) -> JobDefaults:
        """The section as read from the file, held to the same rules as SetDefaults."""
        return self._check_roots(JobDefaults.from_dict(table))

    def _check_roots(self, value: JobDefaults) -> JobDefaults:
        if value.output_folder is not None:
            # A default applies to every clip, so "next to the source" cannot admit it.
            global_policy = replace(self.policy, next_to_source=False)
            global_policy.check_folder(value.output_folder, value.output_folder)
        return value

    def update(self, value: JobDefaults) -> JobDefaults:
        """Checks the defaults, then writes them."""
        return super().update(self._check_roots(value.validate()))
