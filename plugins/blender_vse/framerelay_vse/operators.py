"""The panel's buttons."""

from __future__ import annotations

import os
from typing import Any

import bpy
from bpy.props import EnumProperty, StringProperty

from . import compat, prefs, serve, submit, tracker
from .follow import CONNECTION_ERRORS
from .source import ClipProblem
from .vendor.framerelay_client import errors as client_errors

EXPECTED = (ClipProblem, client_errors.ClientError, serve.ServeProblem)


def fail(operator: Any, error: BaseException) -> set[str]:
    text = tracker.error_text(error)
    tracker.SESSION.last_error = text
    operator.report({"ERROR"}, text)
    return {"CANCELLED"}


def movie_strip_active(context: Any) -> bool:
    strip = compat.active_strip(compat.sequencer_scene(context))
    return strip is not None and strip.type == "MOVIE"


class SubmitBase:
    bl_options = {"REGISTER"}
    roundtrip = False

    @classmethod
    def poll(cls, context: Any) -> bool:
        return movie_strip_active(context)

    def execute(self, context: Any) -> set[str]:
        try:
            done = submit.submit(context, self.roundtrip)
        except EXPECTED as error:
            return fail(self, error)
        tracker.SESSION.last_error = ""
        note = done.plan.rate_note()
        if note:
            self.report({"INFO"}, note)
        if self.roundtrip:
            where = done.exported_path or done.record.exported_path
            self.report({"INFO"}, f"{done.record.name}: waiting for your edit of {where}")
        else:
            self.report({"INFO"}, f"Queued {done.record.name}.")
        tracker.redraw()
        return {"FINISHED"}


class FRAMERELAY_OT_propagate(SubmitBase, bpy.types.Operator):
    """Propagate the edited image through the active strip's visible frames"""

    bl_idname = "framerelay.propagate"
    bl_label = "Propagate"


class FRAMERELAY_OT_edit_first_frame(SubmitBase, bpy.types.Operator):
    """Open the strip's frame under the playhead (its first when the playhead is off the strip)
    in your image editor; the edit propagates both ways and the take is queued when you save it"""

    bl_idname = "framerelay.edit_first_frame"  # the id predates editing any frame: kept
    bl_label = "Edit Current Frame"
    roundtrip = True


class FRAMERELAY_OT_use_edited_image(bpy.types.Operator):
    """Pick an edited frame: for a take waiting for its edit, or for Propagate"""

    bl_idname = "framerelay.use_edited_image"
    bl_label = "Use Edited Image…"
    bl_options = {"REGISTER"}

    filepath: StringProperty(subtype="FILE_PATH")
    filter_image: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    filter_folder: bpy.props.BoolProperty(default=True, options={"HIDDEN", "SKIP_SAVE"})
    job_id: StringProperty(options={"HIDDEN", "SKIP_SAVE"})

    def invoke(self, context: Any, event: Any) -> set[str]:
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context: Any) -> set[str]:
        path = os.path.normpath(bpy.path.abspath(self.filepath))
        if not os.path.isfile(path):
            return fail(self, ClipProblem(f"{path} is not a file.", "Pick the edited image."))
        if not self.job_id:
            compat.sequencer_scene(context).framerelay.edited_image = path
            self.report({"INFO"}, f"Propagate will use {os.path.basename(path)}.")
            return {"FINISHED"}
        try:
            reply = tracker.SESSION.hub.connection.call(lambda c: c.attach_edit(self.job_id, path))
        except EXPECTED as error:
            return fail(self, error)
        warnings = "; ".join(reply.get("warnings", []))
        self.report(
            {"INFO"}, f"Edit version {reply.get('version', 1)} attached. {warnings}".strip()
        )
        return {"FINISHED"}


class FRAMERELAY_OT_cancel(bpy.types.Operator):
    """Remove the take from the queue, or stop it at its next step"""

    bl_idname = "framerelay.cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}

    job_id: StringProperty()

    def execute(self, context: Any) -> set[str]:
        try:
            reply = tracker.SESSION.hub.connection.call(lambda c: c.cancel(self.job_id))
        except EXPECTED as error:
            return fail(self, error)
        outcome = reply.get("outcome", "")
        if outcome == "CANCEL_OUTCOME_INTERRUPT_REQUESTED":
            self.report({"INFO"}, "Stopping at the next step…")
        elif outcome == "CANCEL_OUTCOME_ALREADY_ENDED":
            self.report({"INFO"}, "That take had already ended.")
        return {"FINISHED"}


class FRAMERELAY_OT_start_daemon(bpy.types.Operator):
    """Start `framerelay serve` (it keeps running after Blender closes)"""

    bl_idname = "framerelay.start_daemon"
    bl_label = "Start"
    bl_options = {"REGISTER"}

    def execute(self, context: Any) -> set[str]:
        tracker.configure_connection()
        connection = tracker.SESSION.hub.connection
        try:
            status = connection.call(lambda c: c.status())
        except CONNECTION_ERRORS:
            pass
        else:
            tracker.SESSION.status = status
            self.report({"INFO"}, "The framerelay daemon is already running.")
            return {"FINISHED"}
        try:
            process, log = serve.launch(serve.command(prefs.current(context).serve_command))
        except EXPECTED as error:
            return fail(self, error)
        tracker.SESSION.starting_daemon = True
        tracker.SESSION.hub.background(
            "serve", lambda: serve.wait_until_up(connection, process, log)
        )
        self.report({"INFO"}, "Starting the framerelay daemon…")
        return {"FINISHED"}


class FRAMERELAY_OT_refresh(bpy.types.Operator):
    """Ask the daemon for its status"""

    bl_idname = "framerelay.refresh"
    bl_label = "Refresh"

    def execute(self, context: Any) -> set[str]:
        tracker.configure_connection()
        tracker.refresh_status()
        return {"FINISHED"}


class FRAMERELAY_OT_clear_ended(bpy.types.Operator):
    """Remove ended takes from this list (their strips and files stay)"""

    bl_idname = "framerelay.clear_ended"
    bl_label = "Clear Ended"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context: Any) -> set[str]:
        jobs = compat.sequencer_scene(context).framerelay.jobs
        for index in reversed(range(len(jobs))):
            if jobs[index].ended:
                jobs.remove(index)
        return {"FINISHED"}


class FRAMERELAY_OT_report(bpy.types.Operator):
    """Show a message from framerelay"""

    bl_idname = "framerelay.report"
    bl_label = "framerelay Message"
    bl_options = {"INTERNAL"}

    level: EnumProperty(
        items=(("INFO", "Info", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", ""))
    )
    message: StringProperty()

    def execute(self, context: Any) -> set[str]:
        self.report({self.level}, self.message)
        return {"FINISHED"}


CLASSES = (
    FRAMERELAY_OT_propagate,
    FRAMERELAY_OT_edit_first_frame,
    FRAMERELAY_OT_use_edited_image,
    FRAMERELAY_OT_cancel,
    FRAMERELAY_OT_start_daemon,
    FRAMERELAY_OT_refresh,
    FRAMERELAY_OT_clear_ended,
    FRAMERELAY_OT_report,
)
