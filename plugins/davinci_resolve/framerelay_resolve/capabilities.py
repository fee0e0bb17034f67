"""What this Resolve can do, from its version, its edition and `dir()` of its objects.

`hasattr()` is always true on Resolve's Python objects (they answer every attribute), so a method
is present only when `dir()` lists it; what `dir()` cannot tell (that `AddTrack` honours an
`index` from 19.0, that a free build refuses windows from 19.1) comes from `GetVersion()`. The
Lua bridge has no `dir()`: there the versions below decide alone.

First documented in Resolve's scripting README (bisected over its published copies):
`AddTrack(type, {"index": n})`, `TimelineItem.GetTrackTypeAndIndex` and
`GetSourceStartTime/EndTime` in 19.0; `Timeline.GetSelectedClips` in 21.0.4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .errors import NotSupported

INSERT_TRACK = (19, 0, 0)
TRACK_INDEX = (19, 0, 0)
SOURCE_TIMES = (19, 0, 0)
SELECTION = (21, 0, 4)
FREE_WINDOWS_END = (19, 1, 0)  # free builds refuse UIManager windows from here
FREE_PYTHON_END = (21, 1, 0)  # free builds list no Python script in Workspace > Scripts from here
OLDEST = (18, 5, 0)  # AppendToTimeline's trackIndex/recordFrame and AddTrack


def version_tuple(fields) -> tuple[int, int, int]:
    """[major, minor, patch, build, suffix] (Python list or Lua table as a list) -> (M, m, p)."""
    numbers = []
    for field in list(fields or [])[:3]:
        try:
            numbers.append(int(field))
        except (TypeError, ValueError):
            numbers.append(0)
    while len(numbers) < 3:
        numbers.append(0)
    return numbers[0], numbers[1], numbers[2]


def version_text(version: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in version)


@dataclass(frozen=True)
class Capabilities:
    version: tuple[int, int, int]
    product: str
    studio: bool
    selection: bool  # Timeline.GetSelectedClips: the timeline selection
    insert_track: bool  # AddTrack(type, {"index": n}) inserts (older builds append on top)
    track_index: bool  # TimelineItem.GetTrackTypeAndIndex
    source_times: bool  # TimelineItem.GetSourceStartTime/EndTime (retime check)

    @property
    def edition(self) -> str:
        return "Studio" if self.studio else "free"

    @property
    def name(self) -> str:
        return f"DaVinci Resolve {self.edition} {version_text(self.version)}"

    @property
    def windows(self) -> bool:
        """UIManager windows (and file dialogs): Studio, or free before 19.1."""
        return self.studio or self.version < FREE_WINDOWS_END

    @property
    def python_menu(self) -> bool:
        """Python scripts listed in Workspace > Scripts: Studio, or free before 21.1."""
        return self.studio or self.version < FREE_PYTHON_END

    @property
    def external(self) -> bool:
        """Scripting from another process (DaVinciResolveScript.scriptapp): Studio only."""
        return self.studio

    @classmethod
    def from_version(cls, product: Any, version_fields: Any) -> Capabilities:
        """From the version alone (the Lua bridge)."""
        version = version_tuple(version_fields)
        return cls(
            version=version,
            product=str(product or ""),
            studio=is_studio(product),
            selection=version >= SELECTION,
            insert_track=version >= INSERT_TRACK,
            track_index=version >= TRACK_INDEX,
            source_times=version >= SOURCE_TIMES,
        )

    @classmethod
    def probe(cls, resolve, timeline=None, item=None) -> Capabilities:
        """From a live Resolve: the version, and `dir()` of a timeline and a timeline item."""
        version = version_tuple(resolve.GetVersion())
        timeline_names = set(dir(timeline)) if timeline is not None else set()
        item_names = set(dir(item)) if item is not None else None
        by_version = cls.from_version(resolve.GetProductName(), version)

        def listed(names: set | None, name: str, fallback: bool) -> bool:
            return fallback if names is None else name in names

        return cls(
            version=version,
            product=by_version.product,
            studio=by_version.studio,
            selection="GetSelectedClips" in timeline_names,
            insert_track=by_version.insert_track and "AddTrack" in timeline_names,
            track_index=listed(item_names, "GetTrackTypeAndIndex", by_version.track_index),
            source_times=listed(item_names, "GetSourceStartTime", by_version.source_times),
        )

    def require_placement(self) -> None:
        if self.version < OLDEST:
            raise NotSupported(
                f"{self.name} cannot place a clip on a chosen track at a chosen frame "
                "(18.5 or newer "
                "can).",
                "Update DaVinci Resolve to 18.5 or newer.",
            )


def is_studio(product) -> bool:
    return "studio" in str(product or "").lower()
