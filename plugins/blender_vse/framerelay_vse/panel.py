"""The framerelay tab in the sequencer's sidebar (N): daemon, strip and edit, settings, takes."""

from __future__ import annotations

import os
from typing import Any

import bpy

from . import compat, display, tracker
from .params import PARAMS
from .rates import format_rate, scene_rate, snap_rate

STATE_ICONS = {
    "submitting": "TIME",
    "awaiting_edit": "GREASEPENCIL",
    "queued": "SORTTIME",
    "running": "PLAY",
    "finished": "CHECKMARK",
    "failed": "ERROR",
    "cancelled": "CANCEL",
    "lost": "QUESTION",
}


class SidebarPanel:
    bl_space_type = "SEQUENCE_EDITOR"
    bl_region_type = "UI"
    bl_category = "framerelay"


def labels(layout: Any, text: str, icon: str = "NONE") -> None:
    """A long text over several lines (the sidebar does not wrap)."""
    for index, line in enumerate(display.wrap(text)):
        layout.label(text=line, icon=icon if index == 0 else "BLANK1")


class FRAMERELAY_PT_daemon(SidebarPanel, bpy.types.Panel):
    bl_label = "framerelay"

    def draw(self, context: Any) -> None:
        layout = self.layout
        session = tracker.SESSION
        row = layout.row(align=True)
        if session.status is not None:
            row.label(text=display.status_line(session.status), icon="CHECKMARK")
        elif session.starting_daemon:
            row.label(text="Starting the daemon…", icon="TIME")
        elif not session.status_error:
            row.label(text="Looking for the daemon…", icon="TIME")
        else:
            row.label(text="Daemon not running", icon="ERROR")
            row.operator("framerelay.start_daemon", text="Start", icon="PLAY")
        row.operator("framerelay.refresh", text="", icon="FILE_REFRESH")
        if session.last_error:
            box = layout.box()
            box.alert = True
            labels(box, session.last_error, icon="ERROR")


class FRAMERELAY_PT_edit(SidebarPanel, bpy.types.Panel):
    bl_label = "Strip and Edit"
    bl_parent_id = "FRAMERELAY_PT_daemon"

    def draw(self, context: Any) -> None:
        layout = self.layout
        scene = compat.sequencer_scene(context)
        strip = compat.active_strip(scene)
        if strip is None or strip.type != "MOVIE":
            layout.label(text="Select a movie strip.", icon="INFO")
            return
        draw_strip(layout, strip, scene)
        settings = scene.framerelay
        layout.operator("framerelay.edit_first_frame", icon="GREASEPENCIL")
        layout.operator("framerelay.use_edited_image", icon="FILEBROWSER")
        layout.prop(settings, "edited_image")
        layout.prop(settings, "mask_image")
        row = layout.row()
        row.scale_y = 1.4
        row.enabled = bool(settings.edited_image)
        row.operator("framerelay.propagate", icon="RENDER_ANIMATION")


def draw_strip(layout: Any, strip: Any, scene: Any) -> None:
    start = int(compat.strip_value(strip, "left_handle"))
    duration = int(compat.strip_value(strip, "duration"))
    offset = compat.strip_value(strip, "left_offset")
    media = format_rate(snap_rate(strip.fps)) if getattr(strip, "fps", 0) > 0 else "?"
    scene_fps = format_rate(scene_rate(scene.render.fps, scene.render.fps_base))
    column = layout.column(align=True)
    column.label(text=strip.name, icon="SEQUENCE")
    column.label(text=f"Frames {start}–{start + duration - 1} ({duration}), clip frame {offset:g}")
    column.label(text=f"Clip {media} fps · scene {scene_fps} fps")
    if getattr(strip, "retiming_keys", None):
        column.label(text="Retimed: reset its retiming first", icon="ERROR")


class FRAMERELAY_PT_settings(SidebarPanel, bpy.types.Panel):
    bl_label = "Settings"
    bl_parent_id = "FRAMERELAY_PT_daemon"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.use_property_split = True
        settings = compat.sequencer_scene(context).framerelay
        layout.prop(settings, "preset")
        for param in PARAMS:
            if not param.advanced:
                layout.prop(settings, param.name)
        layout.prop(settings, "output_format")
        layout.prop(settings, "output_location")
        if settings.output_location == "FOLDER":
            layout.prop(settings, "output_folder")
        layout.prop(settings, "show_advanced")
        if settings.show_advanced:
            for param in PARAMS:
                if param.advanced:
                    layout.prop(settings, param.name)
            layout.prop(settings, "model")
            layout.prop(settings, "sixteen_bit")
            layout.prop(settings, "follow_saves")


class FRAMERELAY_PT_takes(SidebarPanel, bpy.types.Panel):
    bl_label = "Takes in This Scene"
    bl_parent_id = "FRAMERELAY_PT_daemon"

    def draw(self, context: Any) -> None:
        layout = self.layout
        jobs = compat.sequencer_scene(context).framerelay.jobs
        if not len(jobs):
            layout.label(text="No takes yet.")
            return
        for record in reversed(jobs):
            draw_take(layout.box(), record)
        layout.operator("framerelay.clear_ended", icon="TRASH")


def draw_take(box: Any, record: Any) -> None:
    header = box.row()
    header.label(text=record.name, icon=STATE_ICONS.get(record.state, "QUESTION"))
    if not record.ended:
        header.operator("framerelay.cancel", text="", icon="X").job_id = record.job_id
    if record.connection_lost:
        labels(box, "Lost the daemon: retrying…", icon="ERROR")
    state = record.state
    if state == "awaiting_edit":
        draw_awaiting(box, record)
    elif state == "queued":
        box.label(text=f"Queued ({record.position})" if record.position else "Queued")
    elif state == "running":
        text = display.progress_text(
            record.phase, record.step, record.total, record.window, record.windows, record.eta
        )
        box.progress(factor=record.progress, type="BAR", text=text)
    elif state == "finished":
        draw_finished(box, record)
    elif state in ("failed", "lost") or record.error:
        column = box.column()
        column.alert = True
        labels(column, record.error or "Failed.")
        if record.hint:
            labels(box, record.hint, icon="INFO")
    elif state == "cancelled":
        box.label(text="Cancelled.")
    if record.message and state in ("awaiting_edit", "running"):
        labels(box, record.message)


def draw_awaiting(box: Any, record: Any) -> None:
    box.label(text="Waiting for your edit", icon="GREASEPENCIL")
    if record.exported_path:
        labels(box, f"Save it in the editor: {os.path.basename(record.exported_path)}")
    if record.hint:
        labels(box, record.hint, icon="INFO")
    row = box.row(align=True)
    attach = row.operator("framerelay.use_edited_image", text="Use Edited Image…")
    attach.job_id = record.job_id
    if record.exported_path:
        folder = row.operator("wm.path_open", text="", icon="FILE_FOLDER")
        folder.filepath = os.path.dirname(record.exported_path)


def draw_finished(box: Any, record: Any) -> None:
    if record.placed:
        box.label(text=f"On channel {record.result_channel}: {record.result_strip}")
    if record.preset:
        chosen = tracker.chosen_preset(record)
        box.label(text=f"Preset: {record.preset}" + (" (chosen by auto)" if chosen else ""))
    if record.error:
        column = box.column()
        column.alert = True
        labels(column, record.error)


CLASSES = (FRAMERELAY_PT_daemon, FRAMERELAY_PT_edit, FRAMERELAY_PT_settings, FRAMERELAY_PT_takes)
