"""What the bpy-side of each test does. Each function runs in a fresh bpy process (driver.py),
talks to the daemon the main pytest started, and returns plain facts for the test to assert on.
Asserts here only guard the steps a scenario needs before it can go on."""

from __future__ import annotations

import os
import shutil
from typing import Any

import bpy
import kit

from framerelay_vse import tracker


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
    kit.pump(kit.all_placed, what="every take placed")
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


def refused(source: str, edited: str, retime: bool = False, settings: dict | None = None) -> dict:
    """Strips or settings framerelay must refuse before anything reaches the daemon."""
    scene = kit.scene()
    strip = kit.add_movie(scene, source, start=1, trim_start=2)
    if retime:
        strip.retiming_keys.add(timeline_frame=10)
    scene.framerelay.edited_image = edited
    for name, value in (settings or {}).items():
        setattr(scene.framerelay, name, value)
    return {"answer": kit.run_operator("propagate"), "records": kit.records()}


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


def round_trip(source: str, edited: str) -> dict:
    """Edit First Frame; save an edit next to the exported frame (as an editor would); the job
    is queued by the daemon and the take placed."""
    scene = kit.scene()
    kit.add_movie(scene, source, start=20, trim_start=3)
    answer = kit.run_operator("edit_first_frame")
    record = scene.framerelay.jobs[0]
    kit.pump(lambda: record.state == "awaiting_edit" and record.exported_path, what="export")
    waiting = kit.record_facts(record)
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
