"""framerelay_client.events (the reducer) and framerelay_client.spec (the JobSpec builder)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest
from google.protobuf import json_format

from framerelay.proto.v1 import daemon_pb2
from framerelay.service.convert import defaults_from_proto, spec_from_proto
from framerelay_client import FakeDaemon, InvalidSpec, JobView, job_defaults, job_spec, reduce
from framerelay_client.events import (
    describe,
    overall_progress,
    parse_time,
    reduce_all,
    reduce_queue,
    remaining_seconds,
)

JOB = "a" * 32


def event(seq: int, **payload) -> dict:
    return {"jobId": JOB, "seq": seq, "cursor": str(seq), "time": "2026-12-05T20:00:00Z", **payload}


def progress(seq: int, phase: str, step: int, total: int, clip=1, clips=1, eta=None) -> dict:
    body = {"phase": phase, "clip": clip, "clips": clips, "step": step, "total": total}
    if eta is not None:
        body["etaSeconds"] = eta
    return event(seq, progress=body)


def test_a_job_dict_becomes_a_view():
    job = {
        "id": JOB,
        "spec": {"params": {"preset": "PRESET_STYLE"}},
        "state": "JOB_STATE_RUNNING",
        "startedAt": "2026-12-05T20:00:10.500Z",
        "attempt": 2,
        "lastSeq": 9,
        "progress": {"phase": "edit", "clip": 2, "clips": 3, "step": 3, "total": 4},
        "outputPaths": ["/out/a.mov"],
    }
    view = JobView.from_job(job)
    assert (view.state, view.phase, view.step, view.total, view.window, view.windows) == (
        "JOB_STATE_RUNNING",
        "edit",
        3,
        4,
        2,
        3,
    )
    assert view.preset == "style" and view.attempt == 2 and view.last_seq == 9
    assert view.output_paths == ("/out/a.mov",) and not view.ended
    assert view.started_at == parse_time("2026-12-05T20:00:10.5Z")
    assert view.progress == pytest.approx(0.05 + 0.95 * (1 + 0.65 + 0.3 * 3 / 4) / 3)
    assert describe(view) == "edit 3/4 · window 2/3"


def test_events_fold_into_the_view_and_old_or_foreign_ones_change_nothing():
    view = JobView.empty(JOB)
    view = reduce(view, event(1, queued={"position": 2, "reason": "QUEUED_REASON_SUBMITTED"}))
    assert (view.state, view.position, describe(view)) == ("JOB_STATE_QUEUED", 2, "Queued (2)")
    view = reduce(view, event(2, started={"attempt": 1}))
    view = reduce(view, progress(3, "lora", 2, 4, eta=12.4))
    assert view.progress == pytest.approx(0.05 + 0.95 * 0.45 * 0.5)
    assert describe(view) == "lora 2/4 · 12 s left"
    assert reduce(view, progress(3, "edit", 1, 4)) is view  # seen already
    assert reduce(view, progress(2, "edit", 1, 4)) is view
    assert reduce(view, {**progress(4, "edit", 1, 4), "jobId": "b" * 32}) is view
    assert reduce(view, event(4, preview={"png": ""})).last_seq == 4
    done = reduce(view, event(5, finished={"outputPaths": ["/o.mov"], "frameCount": 48}))
    assert (done.state, done.progress, done.ended, done.eta_seconds) == (
        "JOB_STATE_FINISHED",
        1.0,
        True,
        None,
    )
    assert done.output_paths == ("/o.mov",) and done.frame_count == 48


def test_progress_never_goes_back_while_running_and_restarts_after_a_recovery():
    view = reduce_all(
        JobView.empty(JOB),
        [
            event(1, queued={"position": 1}),
            event(2, started={"attempt": 1}),
            progress(3, "edit", 4, 4),
            progress(4, "encode", 1, 1),
            progress(5, "edit", 1, 4),  # a second edited frame's pass
            progress(6, "mystery", 1, 1),  # a phase this client does not know
        ],
    )
    assert view.progress == pytest.approx(1.0) and view.phase == "mystery"
    view = reduce(view, event(7, queued={"position": 1, "reason": "QUEUED_REASON_RECOVERED"}))
    assert (view.progress, view.phase, view.state) == (0.0, "", "JOB_STATE_QUEUED")


def test_failures_cancellations_and_round_trips():
    error = {"code": "ERROR_CODE_OUT_OF_MEMORY", "message": "no memory", "hint": "fewer frames"}
    failed = reduce(JobView.empty(JOB), event(1, failed={"error": error}))
    assert (failed.state, failed.error_code, failed.error_hint) == (
        "JOB_STATE_FAILED",
        "ERROR_CODE_OUT_OF_MEMORY",
        "fewer frames",
    )
    assert failed.ended and describe(failed) == "Failed: no memory"
    cancelled = reduce(
        JobView.empty(JOB),
        event(1, cancelled={"reason": "CANCEL_REASON_INTERRUPTED", "phase": "lora", "error": {}}),
    )
    assert cancelled.state == "JOB_STATE_CANCELLED" and cancelled.phase == "lora"

    exported = {"kind": "EDIT_EVENT_KIND_EXPORTED", "message": "Exported.", "path": "/e/f.png"}
    problem = {
        "kind": "EDIT_EVENT_KIND_VALIDATION_PROBLEM",
        "message": "wrong aspect",
        "hint": "crop it",
    }
    received = {"kind": "EDIT_EVENT_KIND_EDIT_RECEIVED", "message": "Received.", "version": 2}
    follow = {**received, "version": 3, "followJobId": "b" * 32}
    view = reduce_all(
        JobView.empty(JOB),
        [event(1, edit=exported), event(2, edit=problem), event(3, edit=received)],
    )
    assert view.awaiting_edit and view.exported_path == "/e/f.png" and view.edit_version == 2
    assert reduce(JobView.empty(JOB), event(1, edit=problem)).hint == "crop it"
    assert reduce(view, event(4, edit=follow)).edit_version == 2  # the follow job took it


def test_a_job_interrupted_by_a_pause_and_its_cached_phases():
    view = reduce_all(
        JobView.empty(JOB),
        [
            event(1, queued={"position": 1, "reason": "QUEUED_REASON_SUBMITTED"}),
            event(2, started={"attempt": 1}),
            progress(3, "decode", 2, 2),
            progress(4, "lora", 2, 4, eta=3.0),
            event(5, queued={"position": 1, "reason": "QUEUED_REASON_PAUSED"}),
        ],
    )
    assert (view.state, view.queued_reason, view.progress, view.phase) == (
        "JOB_STATE_QUEUED",
        "QUEUED_REASON_PAUSED",
        0.0,
        "",
    )
    assert describe(view) == "Queued (1) · stopped by a pause"
    view = reduce(view, event(6, started={"attempt": 2}))
    cached = {"phase": "decode", "clip": 1, "clips": 1, "step": 2, "total": 2, "message": "cached"}
    view = reduce(view, event(7, progress=cached))
    assert view.cached and view.message == "cached" and describe(view) == "decode cached"
    assert view.progress == pytest.approx(0.05) and view.attempt == 2
    view = reduce(view, progress(8, "lora", 1, 4))
    assert not view.cached and describe(view) == "lora 1/4"
    moved = reduce(view, event(9, queued={"position": 2, "reason": "QUEUED_REASON_MOVED"}))
    assert describe(moved) == "Queued (2)" and not moved.cached


def test_the_preset_auto_chose_is_the_views_once_finished():
    spec = {"params": {"preset": "PRESET_AUTO"}}
    queued = JobView.from_job({"id": JOB, "spec": spec, "state": "JOB_STATE_QUEUED"})
    assert queued.preset == "auto"
    done = {"outputPaths": ["/o.mov"], "preset": "style"}
    assert reduce(queued, event(1, finished=done)).preset == "style"
    job = {"id": JOB, "spec": spec, "state": "JOB_STATE_FINISHED", "result": done}
    assert JobView.from_job(job).preset == "style"  # GetJob agrees with the events
    failed = {"id": JOB, "spec": spec, "state": "JOB_STATE_FAILED", "error": {"code": "X"}}
    assert JobView.from_job(failed).preset == "auto"


def test_what_a_finished_job_did_is_the_views():
    """The daemon's own finished event, as its JSON says it, folded into the view."""
    from framerelay.engine.presets import PresetChoice
    from framerelay.jobs import events as daemon_events
    from framerelay.service.convert import finished_to_proto

    finished = daemon_events.Finished(
        outputs=("/o/a.mov", "/o/b.mov"),
        frame_count=48,
        fps=Fraction(24000, 1001),
        width=1920,
        height=1080,
        preset="local,shape",
        preset_choices=(
            PresetChoice("local", True, 0.12, 0.9),
            PresetChoice("shape", True, 0.6, 0.2),
        ),
        seed=0,
        phase_seconds={"load": 3.5, "lora": 60.25, "encode": 1.0},
        windows=4,
        cache_hits=3,
        lora_steps_run=250,
        warnings=("a.mov is interlaced",),
    )
    body = json_format.MessageToDict(finished_to_proto(finished))
    view = reduce(JobView.empty(JOB), event(1, finished=body))
    assert view.preset == "local,shape" and view.fps == Fraction(24000, 1001)
    assert [(c.preset, c.chosen_by_auto, c.changed_fraction) for c in view.preset_choices] == [
        ("local", True, 0.12),
        ("shape", True, 0.6),
    ]
    assert view.preset_choices[0].reason == "local: the edit changed 12% of the frame (under 35%)"
    assert view.preset_choices[1].reason.startswith("shape: the edit changed 60% of the frame")
    assert view.seed == 0 and view.phase_seconds == {"load": 3.5, "lora": 60.25, "encode": 1.0}
    assert (view.windows, view.cache_hits, view.lora_steps_run) == (4, 3, 250)
    assert view.warnings == ("a.mov is interlaced",) and view.frame_count == 48
    job = {"id": JOB, "state": "JOB_STATE_FINISHED", "result": body}
    assert JobView.from_job(job).preset_choices == view.preset_choices


def test_a_queue_stream_gives_every_job_a_view():
    views: dict[str, JobView] = {}
    views = reduce_queue(views, event(1, queued={"position": 1}))
    views = reduce_queue(views, {**event(1, queued={"position": 2}), "jobId": "b" * 32})
    assert {k: v.position for k, v in views.items()} == {JOB: 1, "b" * 32: 2}


def test_remaining_time_and_timestamps():
    view = JobView(JOB, state="JOB_STATE_RUNNING", progress=0.25, started_at=100.0)
    assert remaining_seconds(view, now=130.0) == pytest.approx(90.0)
    assert remaining_seconds(JobView(JOB, state="JOB_STATE_QUEUED"), now=1.0) is None
    assert parse_time("1970-01-01T00:00:01.123456789Z") == pytest.approx(1.123456789)
    assert parse_time("1970-01-01T01:00:00+01:00") == 0.0
    assert parse_time("yesterday") is None and parse_time(None) is None
    assert overall_progress("decode", 1, 2, 1, 1) == pytest.approx(0.025)
    assert overall_progress("nope", 1, 2, 1, 1) is None


def test_the_fakes_whole_stream_reduces_to_a_finished_view(tmp_path):
    source, edited = tmp_path / "a.mov", tmp_path / "a.png"
    source.write_bytes(b"")
    edited.write_bytes(b"")
    fake = FakeDaemon(root=tmp_path)
    fake.script(windows=2)
    job = fake.submit(job_spec(str(source), [str(edited)]))["job"]
    view, seen = JobView.from_job(job), []
    for item in fake.watch(job["id"]):
        view = reduce(view, item)
        seen.append(view.progress)
    assert seen == sorted(seen) and seen[-1] == 1.0 and view.windows == 2


# --- job_spec ---


def test_job_spec_builds_what_the_daemon_parses(tmp_path):
    spec = job_spec(
        Path("/clips/a.mov"),
        ["/edits/a.png", Path("/edits/b.png")],
        in_frame=120,
        out_frame=168,
        fps="23.976",
        mask="/edits/mask.png",
        preset="shape",
        params={"steps": 20, "minGuidance": 1, "skip_interval": False, "seed": None},
        output_format="PNG",
        output_folder="/renders",
        overwrite=True,
        host_context={"record_frame": 86520, "track": "3"},
        request_id="resolve-1",
        label="shot 12",
        model="/models/svd",
    )
    request = json_format.ParseDict({"spec": spec}, daemon_pb2.SubmitJobRequest())
    parsed = spec_from_proto(request.spec)
    assert parsed.source == Path("/clips/a.mov")
    assert parsed.edited_frames == (Path("/edits/a.png"), Path("/edits/b.png"))
    assert (parsed.frame_range.in_frame, parsed.frame_range.out_frame) == (120, 168)
    assert parsed.source_fps == Fraction(24000, 1001)
    assert parsed.preset == "shape" and parsed.output_format == "png" and parsed.overwrite
    assert parsed.params.steps == 20 and parsed.params.min_guidance == 1.0
    assert parsed.params.skip_interval is False and parsed.params.seed is None
    assert parsed.host_context == {"record_frame": "86520", "track": "3"}
    assert (parsed.request_id, parsed.label, parsed.model) == (
        "resolve-1",
        "shot 12",
        "/models/svd",
    )
    assert parsed.mask == Path("/edits/mask.png") and parsed.output_folder == Path("/renders")


def test_job_spec_leaves_to_the_job_defaults_what_it_is_not_given():
    spec = job_spec("/clips/a.mov", ["/e.png"], preset=None)
    assert "params" not in spec and "output" not in spec
    request = json_format.ParseDict({"spec": spec}, daemon_pb2.SubmitJobRequest())
    assert request.spec.params.preset == 0 and request.spec.output.format == 0  # UNSPECIFIED
    assert job_spec("/clips/a.mov", ["/e.png"], preset=None, params={"seed": 3})["params"] == {
        "seed": 3
    }


def test_job_defaults_builds_what_the_daemon_parses():
    built = job_defaults("Style", ".mp4", Path("/renders"))
    assert built == {
        "preset": "PRESET_STYLE",
        "outputFormat": "OUTPUT_FORMAT_MP4",
        "outputFolder": "/renders",
    }
    request = json_format.ParseDict({"defaults": built}, daemon_pb2.SetDefaultsRequest())
    parsed = defaults_from_proto(request.defaults)
    assert (parsed.preset, parsed.output_format, parsed.output_folder) == (
        "style",
        "mp4",
        Path("/renders"),
    )
    assert job_defaults() == {}
    with pytest.raises(InvalidSpec, match="unknown preset"):
        job_defaults(preset="fancy")


def test_job_spec_builds_a_round_trip():
    spec = job_spec("/clips/a.mov", roundtrip={"frame_index": 3, "followSaves": True})
    request = json_format.ParseDict({"spec": spec}, daemon_pb2.SubmitJobRequest())
    session = spec_from_proto(request.spec).edit_session
    assert session.frame_index == 3 and session.follow_saves and session.open_editor is None
    assert "editedFramePaths" not in spec


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"in_frame": 10}, "both in_frame and out_frame"),
        ({"in_frame": 0, "out_frame": 10}, "needs the source fps"),
        ({"in_frame": -1, "out_frame": 10, "fps": 24}, "in_frame must be a frame number"),
        ({"preset": "fancy"}, "unknown preset"),
        ({"output_format": "avi"}, "unknown output format"),
        ({"params": {"stepz": 3}}, "unknown parameter"),
        ({"params": {"steps": "20"}}, "steps must be int"),
        ({"params": {"attention_matching": 1}}, "must be bool"),
        ({"roundtrip": {"frame": 2}}, "unknown round-trip option"),
        ({"host_context": {"track": 3.5}}, "host context values are text"),
    ],
)
def test_job_spec_refuses_what_the_daemon_would_not_take(arguments, says):
    with pytest.raises(InvalidSpec, match=says) as caught:
        job_spec("/clips/a.mov", ["/e.png"], **arguments)
    assert caught.value.hint
