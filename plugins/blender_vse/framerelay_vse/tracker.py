"""The main thread's side of job following: drain the inbox, update the scenes' job records,
place finished takes, report, and redraw the sequencer.

`drain()` is the `bpy.app.timers` callback. Timers never fire in bpy module mode, so scripts and
tests call `drain()` themselves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import bpy

from . import hostcontext, prefs
from .follow import UNFINISHED_STATES, Hub, Message
from .placement import NoFreeChannel, take_name
from .rates import rate_text
from .timeline import place_take
from .vendor.framerelay_client import errors as client_errors
from .vendor.framerelay_client import events

log = logging.getLogger(__name__)

BUSY_INTERVAL = 0.2  # seconds between drains while jobs are followed
IDLE_INTERVAL = 1.0
STATUS_INTERVAL = 5.0  # how often the panel's daemon status is refreshed


@dataclass
class Session:
    """What this Blender session knows beyond the .blend (never saved)."""

    hub: Hub = field(default_factory=Hub)
    views: dict[str, events.JobView] = field(default_factory=dict)
    last_error: str = ""
    status: dict | None = None
    status_error: str = ""
    status_time: float = 0.0
    starting_daemon: bool = False


SESSION = Session()


# --- reporting -------------------------------------------------------------------------------


def report(level: str, text: str) -> None:
    """A Blender report (status bar and Info editor) from outside an operator; errors are kept
    for the panel."""
    if level == "ERROR":
        SESSION.last_error = text
    print(f"framerelay: {level.lower()}: {text}")
    # An ERROR report raises in the caller by design; it is in Blender's reports all the same.
    with contextlib.suppress(RuntimeError, AttributeError):
        bpy.ops.framerelay.report(level=level, message=text)


def error_text(error: BaseException) -> str:
    if isinstance(error, client_errors.DaemonNotRunning | client_errors.DaemonUnreachable):
        return f"{error} Or press Start in the framerelay panel."
    return str(error)


def redraw() -> None:
    manager = getattr(bpy.context, "window_manager", None)
    for window in getattr(manager, "windows", ()):
        for area in window.screen.areas:
            if area.type == "SEQUENCE_EDITOR":
                area.tag_redraw()


# --- the records -----------------------------------------------------------------------------


def find_record(job_id: str) -> tuple[Any, Any]:
    for scene in bpy.data.scenes:
        for record in scene.framerelay.jobs:
            if record.job_id == job_id:
                return scene, record
    return None, None


def state_word(state: str) -> str:
    return state.lower().removeprefix("job_state_")


def apply_view(record: Any, view: events.JobView) -> None:
    record.state = state_word(view.state)
    record.phase = view.phase
    record.progress = max(0.0, min(1.0, view.progress))
    record.step, record.total = view.step, view.total
    record.window, record.windows = view.window, view.windows
    record.eta = time_left(view)
    record.position = view.position
    record.message, record.hint = view.message, view.hint
    if view.preset:
        record.preset = view.preset
    if view.exported_path:
        record.exported_path = view.exported_path
    if view.output_paths:
        record.output_path = view.output_paths[0]
    if view.error_message:
        record.error = view.error_message
        record.hint = view.error_hint


def time_left(view: events.JobView) -> float:
    """Seconds left for the whole take from its pace so far, else the daemon's estimate for the
    current phase; -1 while unknown."""
    whole = events.remaining_seconds(view, time.time())
    if whole is not None:
        return whole
    return -1.0 if view.eta_seconds is None else view.eta_seconds


def follow(job: dict) -> None:
    """Start following a job whose record exists; its Job dict seeds the view."""
    view = events.JobView.from_job(job)
    SESSION.views[view.job_id] = view
    _, record = find_record(view.job_id)
    if record is not None:
        apply_view(record, view)
    SESSION.hub.follow(view.job_id)


# --- the drain -------------------------------------------------------------------------------


def drain() -> float | None:
    """Applies everything the workers learnt; returns the timer's next interval."""
    try:
        configure_connection()
        changed = False
        for message in SESSION.hub.drain():
            handle(message)
            changed = True
        if time.monotonic() - SESSION.status_time > STATUS_INTERVAL:
            refresh_status()
        if changed:
            redraw()
    except Exception:  # a timer that raises is dropped by Blender: log and keep going
        log.exception("framerelay: the drain failed")
    return BUSY_INTERVAL if SESSION.hub.busy() else IDLE_INTERVAL


def configure_connection() -> None:
    SESSION.hub.connection.configure(prefs.current().connection())


def handle(message: Message) -> None:
    handler = HANDLERS.get(message.kind)
    if handler is not None:
        handler(message)


def on_snapshot(message: Message) -> None:
    SESSION.views[message.job_id] = events.JobView.from_job(message.payload)
    update(message.job_id)


def on_event(message: Message) -> None:
    event = message.payload
    view = SESSION.views.get(message.job_id) or events.JobView.empty(message.job_id)
    SESSION.views[message.job_id] = events.reduce(view, event)
    if "edit" in event:
        on_edit_event(message.job_id, event["edit"])
    update(message.job_id)


def on_edit_event(job_id: str, edit: dict) -> None:
    _, record = find_record(job_id)
    name = record.name if record is not None else job_id[:8]
    kind = edit.get("kind", "")
    text = edit.get("message", "")
    if kind in ("EDIT_EVENT_KIND_VALIDATION_PROBLEM", "EDIT_EVENT_KIND_EDITOR_FAILED"):
        hint = edit.get("hint", "")
        report("WARNING", f"{name}: {text} {hint}".strip())
    elif kind == "EDIT_EVENT_KIND_EDIT_RECEIVED":
        warnings = "; ".join(edit.get("warnings", []))
        report("INFO", f"{name}: {text}" + (f" ({warnings})" if warnings else ""))


def on_ended(message: Message) -> None:
    scene, record = find_record(message.job_id)
    view = SESSION.views.get(message.job_id)
    if record is None or view is None:
        return
    apply_view(record, view)
    if view.state == events.FINISHED and not record.placed:
        place(scene, record, view)
    elif view.state == events.FAILED:
        hint = f" {view.error_hint}" if view.error_hint else ""
        report("ERROR", f"{record.name} failed: {view.error_message}{hint}")
    elif view.state == events.CANCELLED:
        report("INFO", f"{record.name} was cancelled.")


def on_gone(message: Message) -> None:
    _, record = find_record(message.job_id)
    if record is not None:
        record.state = "lost"
        record.error = f"The daemon no longer knows this job ({message.payload})."
        report("WARNING", f"{record.name}: {record.error}")


def on_trouble(message: Message) -> None:
    _, record = find_record(message.job_id)
    if record is not None:
        record.connection_lost = True
    text = f"Lost the framerelay daemon: {error_text(message.payload)}"
    if text != SESSION.last_error:  # once per outage, not once per take
        report("ERROR", text)


def on_reconnected(message: Message) -> None:
    _, record = find_record(message.job_id)
    if record is not None:
        record.connection_lost = False


def on_status(message: Message) -> None:
    result = message.payload
    was_up = SESSION.status is not None
    if isinstance(result, BaseException):
        SESSION.status, SESSION.status_error = None, error_text(result)
        return
    SESSION.status, SESSION.status_error = result, ""
    if not was_up:  # the daemon (re)appeared: look for this file's jobs again
        resume()


def on_serve(message: Message) -> None:
    SESSION.starting_daemon = False
    on_status(message)
    if isinstance(message.payload, BaseException):
        report("ERROR", f"The daemon did not start: {message.payload}")
    else:
        report("INFO", f"framerelay {message.payload.get('version', '')} is running.")


def on_adopt(message: Message) -> None:
    """Jobs of this file found in the daemon that no record knows (the file was not saved after
    they were submitted): record them and follow them."""
    jobs = message.payload
    if isinstance(jobs, BaseException):
        if not isinstance(jobs, client_errors.DaemonNotRunning):
            report("WARNING", f"Could not look for this file's jobs: {error_text(jobs)}")
        return
    for job in jobs:
        if find_record(job["id"])[1] is not None:
            continue
        insertion = hostcontext.parse(job.get("spec", {}).get("hostContext", {}))
        scene = scene_by_key(insertion.scene_key) if insertion else None
        if scene is None:
            continue
        add_record(scene.framerelay, insertion, job)
        follow(job)
        report("INFO", f"Following {take_name(insertion.source_name, insertion.take)} again.")


HANDLERS = {
    "snapshot": on_snapshot,
    "event": on_event,
    "ended": on_ended,
    "gone": on_gone,
    "trouble": on_trouble,
    "reconnected": on_reconnected,
    "status": on_status,
    "serve": on_serve,
    "adopt": on_adopt,
}


def update(job_id: str) -> None:
    _, record = find_record(job_id)
    view = SESSION.views.get(job_id)
    if record is not None and view is not None:
        apply_view(record, view)


def add_record(settings: Any, insertion: hostcontext.Insertion, job: dict) -> Any:
    record = settings.jobs.add()
    record.name = take_name(insertion.source_name, insertion.take)
    record.job_id = job["id"]
    record.source_name = insertion.source_name
    record.take = insertion.take
    record.channel = insertion.channel
    record.record_start = insertion.record_start
    record.duration = insertion.duration
    record.media_fps = rate_text(insertion.media_rate)
    record.scene_fps = rate_text(insertion.scene_rate)
    record.output_format = insertion.output_format
    record.requested_preset = events.JobView.from_job(job).preset
    paths = job.get("outputPaths") or []
    record.output_path = paths[0] if paths else ""
    return record


def scene_by_key(key: str) -> Any:
    return next((s for s in bpy.data.scenes if s.framerelay.scene_key == key), None)


# --- placing ---------------------------------------------------------------------------------


def place(scene: Any, record: Any, view: events.JobView) -> None:
    output = view.output_paths[0] if view.output_paths else record.output_path
    try:
        placed = place_take(
            scene,
            output=output,
            source_channel=record.channel,
            record_start=record.record_start,
            frame_count=record.duration,
            name=record.name,
        )
    except (NoFreeChannel, FileNotFoundError, RuntimeError) as error:
        record.error = f"Could not place the take: {error}"
        report("ERROR", f"{record.name}: {record.error} It is at {output}.")
        return
    record.placed = True
    record.result_strip, record.result_channel = placed.strip_name, placed.channel
    problems = list(placed.problems)
    if view.frame_count and view.frame_count != record.duration:
        problems.append(f"the daemon rendered {view.frame_count} frames, not {record.duration}")
    where = f"channel {placed.channel}, frames {placed.start}–{placed.end - 1}"
    if problems:
        record.error = "Placed, but " + "; ".join(problems) + "."
        report("WARNING", f"{placed.strip_name} on {where}: {record.error}")
    else:
        chosen = chosen_preset(record)
        report("INFO", f"Placed {placed.strip_name} on {where}{chosen}.")


def chosen_preset(record: Any) -> str:
    if record.requested_preset == "auto" and record.preset and record.preset != "auto":
        return f" (auto chose the {record.preset} preset)"
    return ""


# --- status and resuming ---------------------------------------------------------------------


def refresh_status() -> None:
    SESSION.status_time = time.monotonic()
    connection = SESSION.hub.connection
    SESSION.hub.background("status", lambda: connection.call(lambda c: c.status()))


def resume() -> None:
    """Follow this file's unfinished jobs again: those its records know, and those the daemon
    knows by their host context (submitted after the file was last saved)."""
    configure_connection()
    for scene in bpy.data.scenes:
        for record in scene.framerelay.jobs:
            if record.job_id and (not record.ended or needs_placing(record)):
                SESSION.hub.follow(record.job_id)
    keys = [s.framerelay.scene_key for s in bpy.data.scenes if s.framerelay.scene_key]
    blend = blend_path()
    if keys and blend:
        connection = SESSION.hub.connection
        SESSION.hub.background("adopt", lambda: unfinished_jobs_of(connection, keys, blend))


def needs_placing(record: Any) -> bool:
    return record.state == "finished" and not record.placed and not record.error


def unfinished_jobs_of(connection: Any, keys: list[str], blend: str) -> list[dict]:
    reply = connection.call(lambda c: c.list_jobs(states=UNFINISHED_STATES))
    return [
        job
        for job in reply.get("jobs", [])
        if hostcontext.belongs_here(
            hostcontext.parse(job.get("spec", {}).get("hostContext", {})), keys, blend
        )
    ]


def blend_path() -> str:
    path = bpy.data.filepath
    return os.path.normcase(os.path.abspath(path)) if path else ""


def forget_all() -> None:
    """Before another file loads: stop following the current file's jobs."""
    SESSION.hub.stop_all()
    SESSION.views.clear()
