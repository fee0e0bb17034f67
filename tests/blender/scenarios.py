"""What the bpy-side of each test does. Each function runs in a fresh bpy process (driver.py),
talks to the daemon the main pytest started, and returns plain facts for the test to assert on.
Asserts here only guard the steps a scenario needs before it can go on."""

from __future__ import annotations

import os
import shutil
from typing import Any

import bpy
import kit

from framerelay_vse import compat, tracker


def propagate(
    source: str,
    edited: str,
    *,
    fps: int = 24,
    fps_base: float = 1.0,
    start: int = 10,
    trim_start: int = 5,
    trim_end: int = 3,
    channel: int = 1,
    blockers: list[dict] | None = None,
    output_format: str = "mov",
    takes: int = 1,
    settings: dict[str, Any] | None = None,
    move_after_submit: bool = False,
    again_after_clear: bool = False,
) -> dict:
    """A trimmed movie strip, optional blocking strips, `takes` × Propagate, then placement."""
    scene = kit.scene(fps, fps_base)
    strip = kit.add_movie(
        scene, source, channel=channel, start=start, trim_start=trim_start, trim_end=trim_end
    )
    for index, blocker in enumerate(blockers or []):
        kit.add_movie(scene, source, name=f"blocker{index}", active=False, **blocker)
    scene.sequence_editor.active_strip = strip
    config = scene.framerelay
    config.edited_image = edited
    config.output_format = output_format
    for name, value in (settings or {}).items():
        setattr(config, name, value)
    source_before = kit.strip_facts(strip)
    submits = [kit.run_operator("propagate") for _ in range(takes)]
    assert all(s["result"] == ["FINISHED"] for s in submits), submits
    if move_after_submit:  # the user goes on editing: the take keeps its submit-time place
        strip.channel = 6
        compat.set_strip_value(strip, "content_start", 100)
    kit.pump(kit.all_placed, what="every take placed")
    if again_after_clear:  # the list is emptied; the next take still gets a new number
        assert kit.run_operator("clear_ended")["result"] == ["FINISHED"]
        assert len(config.jobs) == 0
        submits.append(kit.run_operator("propagate"))
        kit.pump(kit.all_placed, what="the take after clearing placed")
    return {
        "source": source_before,
        "source_after": kit.strip_facts(strip),
        "submits": submits,
        "records": kit.records(),
        "strips": kit.strips(scene),
        **kit.session_facts(),
    }


def daemon_down(source: str, edited: str, config_dirs: list[str]) -> dict:
    """Propagate against each config folder (no daemon, a dead port, a wrong token)."""
    scene = kit.scene()
    kit.add_movie(scene, source)
    scene.framerelay.edited_image = edited
    answers = []
    for config_dir in config_dirs:
        os.environ["FRAMERELAY_CONFIG_DIR"] = config_dir
        tracker.SESSION.hub.connection.reset()
        answers.append(kit.run_operator("propagate") | kit.session_facts())
    return {"answers": answers, "records": kit.records(), "strips": kit.strips(scene)}


def refusals(source: str, edited: str, outside: str) -> dict:
    """Strips and settings framerelay must refuse, each with what to change."""
    scene = kit.scene()
    strip = kit.add_movie(scene, source, start=1, trim_start=2)
    config = scene.framerelay
    answers = {}
    config.edited_image = os.path.join(os.path.dirname(edited), "missing.png")
    answers["missing edit"] = kit.run_operator("propagate")
    config.edited_image = edited
    config.output_location, config.output_folder = "FOLDER", outside
    answers["folder outside the roots"] = kit.run_operator("propagate")
    config.output_location = "SOURCE"
    if bpy.app.version >= (5, 1):  # retiming_keys.add() crashes bpy 4.2 and 5.0 in module mode
        strip.retiming_keys.add(timeline_frame=10)
        answers["retimed"] = kit.run_operator("propagate")
    return {"answers": answers, "records": kit.records(), "strips": kit.strips(scene)}


def cancel_running(source: str, edited: str) -> dict:
    """Submit (the daemon holds the job at its gate), cancel it while it runs."""
    scene = kit.scene()
    kit.add_movie(scene, source, start=1, trim_start=2)
    scene.framerelay.edited_image = edited
    assert kit.run_operator("propagate")["result"] == ["FINISHED"]
    record = scene.framerelay.jobs[0]
    kit.pump(lambda: record.state == "running", what="the job running")
    answer = kit.run_operator("cancel", job_id=record.job_id)
    kit.pump(lambda: record.ended, what="the job ending")
    return {"answer": answer, "records": kit.records(), "strips": kit.strips(scene)}


def failing_job(source: str, edited: str) -> dict:
    scene = kit.scene()
    kit.add_movie(scene, source, start=1)
    scene.framerelay.edited_image = edited
    assert kit.run_operator("propagate")["result"] == ["FINISHED"]
    record = scene.framerelay.jobs[0]
    kit.pump(lambda: record.ended, what="the job failing")
    return {"records": kit.records(), "strips": kit.strips(scene), **kit.session_facts()}


def round_trip(source: str, edited: str, attach: bool = False, playhead: int = 1) -> dict:
    """Edit Current Frame (the playhead at `playhead`); save an edit next to the exported frame
    (as an editor would), or pick it with Use Edited Image… (AttachEdit); the daemon queues the
    job and the take is placed."""
    scene = kit.scene()
    kit.add_movie(scene, source, start=20, trim_start=3)
    scene.frame_current = playhead
    answer = kit.run_operator("edit_first_frame")
    record = scene.framerelay.jobs[0]
    kit.pump(lambda: record.state == "awaiting_edit" and record.exported_path, what="export")
    waiting = kit.record_facts(record)
    if attach:
        picked = kit.run_operator("use_edited_image", job_id=record.job_id, filepath=edited)
        assert picked["result"] == ["FINISHED"], picked
    else:
        shutil.copy(edited, os.path.join(os.path.dirname(record.exported_path), "my edit.png"))
    kit.pump(kit.all_placed, what="the take placed")
    return {
        "answer": answer,
        "waiting": waiting,
        "records": kit.records(),
        "strips": kit.strips(scene),
        "exists": os.path.isfile(waiting["exported_path"]),
    }


def submit_and_save(source: str, edited: str, blend: str) -> dict:
    """Job 1 is submitted and the file saved (its record is in the .blend); job 2 is submitted
    after the save (only the daemon knows it). The daemon holds both at its gate."""
    scene = kit.scene()
    kit.add_movie(scene, source, start=5, trim_start=1, trim_end=2)
    scene.framerelay.edited_image = edited
    assert kit.run_operator("propagate")["result"] == ["FINISHED"]
    bpy.ops.wm.save_as_mainfile(filepath=blend)
    assert kit.run_operator("propagate")["result"] == ["FINISHED"]
    return {"records": kit.records(), "blend": bpy.data.filepath}


def reopen_and_follow(blend: str, release: str) -> dict:
    """Open the saved file: both jobs are followed again; then let the daemon run them."""
    kit.register()
    bpy.ops.wm.open_mainfile(filepath=blend)
    kit.pump(lambda: len(kit.all_records()) == 2, what="the unsaved job adopted")
    following = sorted(tracker.SESSION.hub.following())
    before = kit.records()
    open(release, "w").close()  # the main test opens the daemon's gate
    kit.pump(kit.all_placed, what="both takes placed")
    return {
        "following": following,
        "before": before,
        "records": kit.records(),
        "strips": kit.strips(bpy.context.scene),
    }


def panels(source: str) -> dict:
    """Every panel drawn with jobs in every state, checked against this Blender's UILayout."""
    from framerelay_vse import panel

    scene = kit.scene(fps=30000, fps_base=1001)
    kit.add_movie(scene, source, start=1, trim_start=2)
    config = scene.framerelay
    config.show_advanced, config.output_location = True, "FOLDER"
    states = {
        "awaiting_edit": {"exported_path": "/edits/job/frame_edit.png", "hint": "Keep the size."},
        "queued": {"position": 2},
        "running": {
            "phase": "edit",
            "step": 3,
            "total": 4,
            "window": 2,
            "windows": 3,
            "eta": 12.4,
            "progress": 0.4,
        },
        "finished": {
            "placed": True,
            "result_channel": 3,
            "result_strip": "src take 4",
            "requested_preset": "auto",
            "preset": "style",
        },
        "failed": {"error": "the edited frame is damaged.", "hint": "Save it again as PNG."},
        "cancelled": {},
    }
    for take, (state, fields) in enumerate(states.items(), start=1):
        record = config.jobs.add()
        record.name, record.job_id, record.state = f"src take {take}", f"job{take}", state
        for name, value in fields.items():
            setattr(record, name, value)
    drawn = {}
    tracker.SESSION.status = {"version": "0.1.0", "device": "cuda:0", "modelLoaded": True}
    tracker.SESSION.last_error = "Lost the framerelay daemon: nothing answers."
    drawn["daemon_up"] = kit.draw(panel.FRAMERELAY_PT_daemon)
    tracker.SESSION.status = None
    tracker.SESSION.status_error = "The framerelay daemon is not running."
    drawn["daemon_down"] = kit.draw(panel.FRAMERELAY_PT_daemon)
    for cls in (panel.FRAMERELAY_PT_edit, panel.FRAMERELAY_PT_settings, panel.FRAMERELAY_PT_takes):
        drawn[cls.__name__] = kit.draw(cls)
    return {
        "texts": {name: kit.texts(calls) for name, calls in drawn.items()},
        "progress": [c[1] for calls in drawn.values() for c in calls if c[0] == "progress"],
        "operators": sorted(
            {c[1]["operator"] for cs in drawn.values() for c in cs if c[0] == "operator"}
        ),
        "props": sorted({c[1]["property"] for cs in drawn.values() for c in cs if c[0] == "prop"}),
    }


def install_and_run(archive: str, source: str, edited: str, serve_command: str) -> dict:
    """Install the built zip as a user would (Install from Disk), set the Start Command
    preference, start the daemon from the panel's button, then propagate through the
    installed copy."""
    import sys

    bpy.ops.extensions.package_install_files(
        filepath=archive, repo="user_default", enable_on_install=True
    )
    module = "bl_ext.user_default.framerelay_vse"
    installed = {
        "enabled": module in bpy.context.preferences.addons,
        "file": sys.modules[module].__file__,
        "client": sys.modules[module + ".vendor.framerelay_client.http"].__file__,
    }
    kit.TRACKER = sys.modules[module + ".tracker"]
    preferences = bpy.context.preferences.addons[module].preferences
    preferences.serve_command = serve_command
    started = kit.run_operator("start_daemon")
    kit.pump(lambda: kit.TRACKER.SESSION.status, what="the daemon answering")
    status = dict(kit.TRACKER.SESSION.status)
    scene = kit.scene(register_source=False)
    kit.add_movie(scene, source, start=1, trim_start=4)
    scene.framerelay.edited_image = edited
    submitted = kit.run_operator("propagate")
    kit.pump(kit.all_placed, what="the take placed")
    return {
        "installed": installed,
        "started": started,
        "status": status,
        "submitted": submitted,
        "records": kit.records(),
        "strips": kit.strips(scene),
        **kit.session_facts(),
    }
