"""Helpers for the scenarios, inside bpy: scenes with trimmed movie strips, pumping the drain
(timers never fire in module mode), and plain-data views of strips and job records."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import bpy

import framerelay_vse
from framerelay_vse import compat, props, tracker

_registered = False


def register() -> None:
    global _registered
    if not _registered:
        framerelay_vse.register()
        _registered = True


def scene(fps: int = 24, fps_base: float = 1.0) -> Any:
    register()
    current = bpy.context.scene
    current.render.fps, current.render.fps_base = fps, fps_base
    current.sequence_editor_create()
    return current


def add_movie(
    target: Any,
    path: str,
    *,
    channel: int = 1,
    start: int = 1,
    trim_start: int = 0,
    trim_end: int = 0,
    name: str = "src",
    active: bool = True,
) -> Any:
    editor = target.sequence_editor
    strip = compat.top_level_strips(editor).new_movie(
        name=name, filepath=path, channel=channel, frame_start=start, fit_method="FIT"
    )
    compat.set_strip_value(strip, "left_offset", trim_start)
    compat.set_strip_value(strip, "right_offset", trim_end)
    if active:
        editor.active_strip = strip
    return strip


def pump(until: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    """Drains the inbox until `until()` is true; records every job state seen on the way."""
    deadline = time.monotonic() + timeout
    while True:
        tracker.drain()
        note_states()
        value = until()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or until}: {records()}")
        time.sleep(0.02)


STATES_SEEN: dict[str, list[str]] = {}


def note_states() -> None:
    for record in all_records():
        seen = STATES_SEEN.setdefault(record.job_id, [])
        if not seen or seen[-1] != record.state:
            seen.append(record.state)


def all_records() -> list[Any]:
    return [r for s in bpy.data.scenes for r in s.framerelay.jobs]


def records() -> list[dict]:
    return [record_facts(r) for r in all_records()]


RECORD_FIELDS = tuple(props.FRAMERELAY_PG_job.__annotations__)


def record_facts(record: Any) -> dict:
    facts = {name: getattr(record, name) for name in RECORD_FIELDS}
    facts["states_seen"] = STATES_SEEN.get(record.job_id, [])
    return facts


def strip_facts(strip: Any) -> dict:
    facts = {
        "name": strip.name,
        "type": strip.type,
        "channel": strip.channel,
        "start": int(compat.strip_value(strip, "left_handle")),
        "end": int(compat.strip_value(strip, "right_handle")),
        "duration": int(compat.strip_value(strip, "duration")),
        "content_duration": int(compat.strip_value(strip, "content_duration")),
    }
    if strip.type == "MOVIE":
        facts["file"] = bpy.path.abspath(strip.filepath)
    elif strip.type == "IMAGE":
        facts["file"] = bpy.path.abspath(strip.directory)
        facts["elements"] = [element.filename for element in strip.elements]
    return facts


def strips(target: Any) -> list[dict]:
    return sorted(
        (strip_facts(s) for s in compat.top_level_strips(target.sequence_editor)),
        key=lambda f: (f["channel"], f["start"]),
    )


def all_placed() -> bool:
    done = all_records()
    return bool(done) and all(
        r.placed or (r.ended and (r.state != "finished" or r.error)) for r in done
    )


def run_operator(name: str, **kwargs: Any) -> dict:
    """Calls bpy.ops.framerelay.<name>; an ERROR report raises RuntimeError in module mode."""
    try:
        result = getattr(bpy.ops.framerelay, name)(**kwargs)
    except RuntimeError as error:
        return {"result": "ERROR", "message": str(error)}
    return {"result": sorted(result), "message": ""}


def session_facts() -> dict:
    return {"last_error": tracker.SESSION.last_error}
