"""Helpers for the scenarios, inside bpy: scenes with trimmed movie strips, pumping the drain
(timers never fire in module mode), and plain-data views of strips and job records."""

from __future__ import annotations

import time
import types
from collections.abc import Callable
from typing import Any

import bpy

import framerelay_vse
from framerelay_vse import compat, props, tracker

_registered = False
TRACKER = tracker  # the installed copy's tracker in the install scenario


def register() -> None:
    global _registered
    if not _registered:
        framerelay_vse.register()
        _registered = True


def scene(fps: int = 24, fps_base: float = 1.0, register_source: bool = True) -> Any:
    if register_source:
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
        TRACKER.drain()
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
    return {"last_error": TRACKER.SESSION.last_error}


# --- drawing panels without a window -------------------------------------------------------


class Layout:
    """Stands in for a UILayout (there is none in module mode) and records the panel's calls.

    Every method, keyword and attribute is checked against Blender's own UILayout RNA, every
    operator against the registered operators and every `prop` against the data's RNA, so a
    call the running Blender version would reject fails here too."""

    CONTAINERS = ("row", "column", "box", "split", "grid_flow", "column_flow")

    def __init__(self, calls: list) -> None:
        object.__setattr__(self, "calls", calls)

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in bpy.types.UILayout.bl_rna.properties:
            raise AttributeError(f"UILayout has no attribute {name!r}")

    def __getattr__(self, name: str) -> Any:
        function = bpy.types.UILayout.bl_rna.functions.get(name)
        if function is None:
            raise AttributeError(f"UILayout has no method {name!r}")
        parameters = [p.identifier for p in function.parameters]

        def call(*args: Any, **kwargs: Any) -> Any:
            unknown = set(kwargs) - set(parameters)
            if unknown:
                raise TypeError(f"UILayout.{name} takes no {sorted(unknown)}")
            named = dict(zip(parameters, args, strict=False)) | kwargs
            self.calls.append((name, {k: v for k, v in named.items() if k != "data"}))
            if name in self.CONTAINERS:
                return Layout(self.calls)
            if name == "operator":
                return OperatorProperties(named["operator"])
            if name == "prop":
                data, prop = named["data"], named["property"]
                if prop not in data.bl_rna.properties:
                    raise AttributeError(f"{data.bl_rna.identifier} has no property {prop!r}")
            return None

        return call


class OperatorProperties:
    def __init__(self, idname: str) -> None:
        category, name = idname.split(".")
        operator = getattr(getattr(bpy.ops, category), name)
        object.__setattr__(self, "rna", operator.get_rna_type())

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self.rna.properties:
            raise AttributeError(f"{self.rna.identifier} has no property {name!r}")


def draw(panel: Any) -> list:
    """The calls `panel.draw` makes in the current context."""
    calls: list = []
    panel.draw(types.SimpleNamespace(layout=Layout(calls)), bpy.context)
    return calls


def texts(calls: list) -> list[str]:
    return [c[1].get("text", "") for c in calls if c[1].get("text")]
