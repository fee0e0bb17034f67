"""The job's `host_context`: everything needed to place its take, frozen at submit time.

The daemon returns it untouched, so a job submitted before Blender closed (saved or not) can be
found again and placed where it was meant to go: the scene (by a key stored in the scene, so a
renamed scene is still found), the source channel, the record frame and the duration.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction

from .rates import rate_text
from .source import SourcePlan

HOST = "blender"


@dataclass(frozen=True)
class Insertion:
    """Where a take goes, as frozen at submit."""

    scene_key: str
    scene_name: str
    blend_file: str
    source_name: str
    channel: int
    record_start: int
    duration: int
    take: int
    media_rate: Fraction
    scene_rate: Fraction
    output_format: str


def build(
    plan: SourcePlan,
    *,
    scene_key: str,
    scene_name: str,
    blend_file: str,
    take: int,
    output_format: str,
    version: str,
) -> dict[str, str]:
    return {
        "host": HOST,
        "host_version": version,
        "blend_file": blend_file,
        "scene_key": scene_key,
        "scene": scene_name,
        "source_strip": plan.source_name,
        "channel": str(plan.channel),
        "record_frame": str(plan.record_start),
        "duration": str(plan.frame_count),
        "take": str(take),
        "media_fps": rate_text(plan.media_rate),
        "scene_fps": rate_text(plan.scene_rate),
        "output_format": output_format,
    }


def parse(context: Mapping[str, str]) -> Insertion | None:
    """The insertion point of one of our jobs; None for another host's job or a broken one."""
    if context.get("host") != HOST:
        return None
    try:
        return Insertion(
            scene_key=context["scene_key"],
            scene_name=context.get("scene", ""),
            blend_file=context.get("blend_file", ""),
            source_name=context.get("source_strip", ""),
            channel=int(context["channel"]),
            record_start=int(context["record_frame"]),
            duration=int(context["duration"]),
            take=int(context.get("take", "1")),
            media_rate=Fraction(context["media_fps"]),
            scene_rate=Fraction(context["scene_fps"]),
            output_format=context.get("output_format", ""),
        )
    except (KeyError, ValueError, ZeroDivisionError):
        return None


def belongs_here(insertion: Insertion | None, scene_keys: Iterable[str], blend_file: str) -> bool:
    """A job of this saved file: one of its scenes, submitted from this very file."""
    return (
        insertion is not None
        and bool(blend_file)
        and insertion.blend_file == blend_file
        and insertion.scene_key in set(scene_keys)
    )
