"""The Blender extension's Blender-free parts, in the main venv: exact rates from Blender's floats,
what a strip may be sent as, where a take goes, the parameter table against the daemon's own
defaults and limits, the host context, and the job follower against a real daemon."""

from __future__ import annotations

import queue
import struct
import time
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from framerelay.engine.params import PRESET_NAMES, job_params
from framerelay.jobs import spec as daemon_spec
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay.service.app import DaemonThread
from framerelay_vse import hostcontext, params, serve
from framerelay_vse.display import clock, progress_text, status_line
from framerelay_vse.follow import Connection, ConnectionSettings, Hub
from framerelay_vse.params import BLENDER_INT_MAX
from framerelay_vse.placement import (
    NoFreeChannel,
    Span,
    free_channel,
    readback_mismatches,
    take_name,
)
from framerelay_vse.rates import format_rate, scene_rate, snap_rate
from framerelay_vse.source import ClipProblem, StripFacts, plan_source
from framerelay_vse.vendor.framerelay_client import spec as client_spec
from tests.daemon_harness import make_config, make_media, running_daemon, wait_for


def float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


@pytest.mark.parametrize(
    ("stored", "exact"),
    [
        (float32(30000 / 1001), Fraction(30000, 1001)),
        (float32(24000 / 1001), Fraction(24000, 1001)),
        (float32(60000 / 1001), Fraction(60000, 1001)),
        (float32(29.97), Fraction(2997, 100)),  # a real 29.97 stays apart from 30000/1001
        (25.0, Fraction(25)),
        (12.5, Fraction(25, 2)),
        (float32(23.976), Fraction(2997, 125)),
    ],
)
def test_blender_floats_snap_to_the_exact_rate(stored, exact):
    assert snap_rate(stored) == exact


def test_scene_rate_from_fps_and_a_float_base():
    assert scene_rate(24, float32(1.001)) == Fraction(24000, 1001)
    assert scene_rate(30000, 1001.0) == Fraction(30000, 1001)
    assert scene_rate(25, 1.0) == 25
    assert [format_rate(Fraction(n, d)) for n, d in ((24, 1), (30000, 1001), (25, 2))] == [
        "24",
        "29.97",
        "12.5",
    ]
    with pytest.raises(ValueError, match="above 0"):
        snap_rate(0.0)


@pytest.fixture
def facts(tmp_path: Path) -> StripFacts:
    clip = tmp_path / "clip.mov"
    clip.write_bytes(b"not decoded here")
    return StripFacts(
        name="A001",
        kind="MOVIE",
        filepath=str(clip),
        channel=2,
        left_handle=15,
        duration=40,
        content_start=10.0,
        left_offset=5.0,
        content_duration=48,
        media_rate=Fraction(24),
        media_frames=48,
        retiming_keys=0,
        in_meta=False,
        scene_rate=Fraction(24),
    )


def test_plan_sends_the_visible_source_frames_and_freezes_the_insertion_point(facts):
    plan = plan_source(facts)
    assert (plan.in_frame, plan.out_frame, plan.frame_count) == (5, 45, 40)
    assert (plan.channel, plan.record_start) == (2, 15)
    assert plan.rate_note() == ""


def test_a_clip_at_another_rate_played_frame_by_frame_is_planned_with_a_note(facts):
    plan = plan_source(replace(facts, media_rate=Fraction(30000, 1001), scene_rate=Fraction(24)))
    assert (plan.in_frame, plan.out_frame) == (5, 45)
    assert plan.rate_note() == (
        "A001 is 29.97 fps in a 24 fps scene: Blender shows it frame by frame, and the take is "
        "placed the same way, frame for frame."
    )


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"retiming_keys": 3}, "Reset Retiming"),
        (  # Adjust Playback Rate: 60 frames at 29.97 shown over 48 frames of a 24 fps scene
            {"media_rate": Fraction(30000, 1001), "media_frames": 60, "content_duration": 48},
            "Set the scene to 29.97 fps",
        ),
        ({"left_offset": 5.5, "content_start": 9.5}, "Snap its left handle"),
        ({"left_offset": -2.0, "content_start": 17.0}, "shows only frames of the clip"),
        ({"media_frames": 44, "content_duration": 44}, "shows only frames of the clip"),
        ({"kind": "IMAGE"}, "Select a movie strip"),
        ({"in_meta": True}, "Leave the meta strip"),
        ({"filepath": "/nowhere/clip.mov"}, "Check that the clip plays"),
    ],
)
def test_strips_that_cannot_line_up_are_refused_with_what_to_change(facts, change, says):
    with pytest.raises(ClipProblem) as refused:
        plan_source(replace(facts, **change))
    assert says in str(refused.value)


def test_free_channel_is_the_first_above_free_over_the_whole_range():
    taken = [Span(2, 50, 60), Span(3, 0, 15), Span(3, 55, 56), Span(5, 0, 100)]
    assert free_channel(taken, above=1, start=15, end=55) == 3  # [0,15) and [55,56) touch only
    assert free_channel(taken, above=1, start=15, end=56) == 4
    assert free_channel(taken, above=1, start=15, end=55, locked=[3, 4]) == 6
    assert free_channel([], above=7, start=0, end=1) == 8
    with pytest.raises(NoFreeChannel, match="above channel 127"):
        free_channel([Span(128, 0, 10)], above=127, start=5, end=6)


def test_take_names_fit_blenders_limit():
    assert take_name("src", 2) == "src take 2"
    long = take_name("é" * 80, 12)
    assert long.endswith(" take 12") and len(long.encode()) <= 60


def test_parameters_have_the_daemons_defaults_and_ranges():
    """Each panel row is a job parameter of the daemon's table, with its default and range."""
    rows = {row.name: row for row in job_params()}
    for param in params.PARAMS:
        row = rows[param.name]  # a job parameter: the proto, the JSON and the daemon take it
        assert param.name in client_spec.PARAMS
        assert (param.kind, param.default) == (row.kind, row.default), param.name
        if param.kind is bool:
            continue
        high = min(row.high, BLENDER_INT_MAX) if param.kind is int else row.high
        assert (param.low, param.high) == (row.low, high), param.name
    assert {p[0] for p in params.PRESETS} == set(PRESET_NAMES)
    assert params.PRESETS[0][0] == daemon_spec.JobSpec.preset == rows["preset"].default == "auto"
    assert [f[0] for f in params.OUTPUT_FORMATS] == ["mov", "mp4", "png"]
    assert params.OUTPUT_FORMATS[0][0] == daemon_spec.DEFAULT_OUTPUT_FORMAT


def test_only_changed_parameters_are_sent():
    values = {p.name: p.default for p in params.PARAMS}
    assert params.changed_params(values) == {}
    values.update(steps=30, max_guidance=2.5, skip_interval=False)
    assert params.changed_params(values) == {
        "steps": 30,
        "max_guidance": 2.5,
        "skip_interval": False,
    }


def test_host_context_round_trips_and_identifies_this_files_jobs(facts):
    plan = plan_source(facts)
    context = hostcontext.build(
        plan,
        scene_key="k1",
        scene_name="Edit",
        blend_file="/p/edit.blend",
        take=3,
        output_format="png",
        version="0.1.0",
    )
    assert all(isinstance(v, str) for v in context.values())
    insertion = hostcontext.parse(context)
    assert insertion is not None
    assert (insertion.channel, insertion.record_start, insertion.duration) == (2, 15, 40)
    assert (insertion.take, insertion.media_rate, insertion.scene_rate) == (3, 24, 24)
    assert hostcontext.belongs_here(insertion, ["k0", "k1"], "/p/edit.blend")
    assert not hostcontext.belongs_here(insertion, ["k1"], "/p/other.blend")
    assert not hostcontext.belongs_here(insertion, ["k2"], "/p/edit.blend")
    assert not hostcontext.belongs_here(insertion, ["k1"], "")  # an unsaved file has no jobs
    assert hostcontext.parse({**context, "host": "resolve"}) is None
    assert hostcontext.parse({**context, "channel": "two"}) is None


def test_panel_words():
    assert [clock(s) for s in (7.4, 65, 3723)] == ["0:07", "1:05", "1:02:03"]
    assert progress_text("edit", 3, 4, 2, 3, 80.0) == "edit 3/4 · window 2/3 · ETA 1:20"
    assert progress_text("load", 1, 1, 0, 0, -1.0) == "load 1/1"
    line = status_line({"version": "0.1.0", "device": "cpu", "queueLength": 2})
    assert line == "framerelay 0.1.0 · cpu · model not loaded · 2 queued"


def follow_until_ended(hub: Hub, job_id: str, timeout: float = 30) -> list:
    seen: list = []

    def ended() -> bool:
        while True:
            try:
                seen.append(hub.inbox.get_nowait())
            except queue.Empty:
                return any(m.kind == "ended" for m in seen)

    hub.follow(job_id)
    wait_for(ended, timeout=timeout)
    return seen


def test_follower_takes_a_snapshot_then_every_event_once(tmp_path):
    source, edited = make_media(tmp_path / "media", frames=6)
    with running_daemon(tmp_path):
        hub = Hub()
        hub.connection.configure(
            ConnectionSettings(discovery_path=str(tmp_path / "config" / "daemon.json"))
        )
        spec = client_spec.job_spec(source, [edited], in_frame=0, out_frame=6, fps=24)
        job = hub.connection.call(lambda c: c.submit(spec))["job"]
        messages = follow_until_ended(hub, job["id"])
    kinds = [m.kind for m in messages]
    assert kinds[0] == "snapshot" and kinds[-1] == "ended"
    seqs = [m.payload["seq"] for m in messages if m.kind == "event"]
    first = messages[0].payload.get("lastSeq", 0)
    assert seqs == list(range(first + 1, first + 1 + len(seqs)))
    assert "finished" in messages[-2].payload


def test_follower_rides_out_a_daemon_restart_on_new_ports(tmp_path):
    """The daemon stops while the job runs and comes back with another port and token: the
    follower says so once, reads the discovery file again and resumes after its last event."""
    source, edited = make_media(tmp_path / "media", frames=6)
    config = make_config(tmp_path)
    executor = FakeExecutor(step_seconds=0.05)
    hub = Hub()
    hub.connection.configure(
        ConnectionSettings(discovery_path=str(tmp_path / "config" / "daemon.json"))
    )
    first = DaemonThread(config, executor)
    with first:
        spec = client_spec.job_spec(source, [edited], in_frame=0, out_frame=6, fps=24)
        job = hub.connection.call(lambda c: c.submit(spec))["job"]
        hub.follow(job["id"])
        wait_for(
            lambda: hub.followers[job["id"]].after_seq and hub.followers[job["id"]].after_seq >= 4
        )
    time.sleep(0.5)
    with DaemonThread(config, FakeExecutor()) as second:
        assert second.discovery.http_port != first.discovery.http_port
        messages: list = []

        def ended() -> bool:
            while not hub.inbox.empty():
                messages.append(hub.inbox.get_nowait())
            return any(m.kind == "ended" for m in messages)

        wait_for(ended, timeout=30)
    kinds = [m.kind for m in messages]
    assert "trouble" in kinds and "reconnected" in kinds
    assert kinds.count("trouble") == 1
    seqs = [m.payload["seq"] for m in messages if m.kind == "event"]
    assert seqs == sorted(set(seqs))  # no event twice
    events = [m.payload for m in messages if m.kind == "event"]
    assert any(
        "queued" in e and e["queued"].get("reason") == "QUEUED_REASON_RECOVERED" for e in events
    )
    assert "finished" in events[-1]


def test_connection_reports_a_missing_daemon_with_how_to_start_it(tmp_path):
    connection = Connection(ConnectionSettings(discovery_path=str(tmp_path / "daemon.json")))
    from framerelay_vse.follow import CONNECTION_ERRORS

    with pytest.raises(CONNECTION_ERRORS) as missing:
        connection.call(lambda c: c.status())
    assert "framerelay serve" in str(missing.value)


def test_readback_names_every_difference():
    wanted = Span(3, 15, 55)
    assert readback_mismatches(wanted, Span(3, 15, 55), 40, 40) == []
    assert readback_mismatches(wanted, Span(4, 16, 60), 40, 44) == [
        "it landed on channel 4 instead of 3",
        "it starts at frame 16 instead of 15",
        "it ends before frame 60 instead of 55",
        "it holds 44 frames instead of 40",
    ]


def test_start_without_framerelay_on_path_says_how_to_start_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(Path, "home", lambda: tmp_path)
    with pytest.raises(serve.ServeProblem) as missing:
        serve.command("")
    assert "framerelay serve" in str(missing.value) and "Start Command" in str(missing.value)
    tool = tmp_path / ".local" / "bin" / "framerelay"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert serve.command("") == [str(tool), "serve"]
    assert serve.command("'/opt/my tools/framerelay' serve --fake") == [
        "/opt/my tools/framerelay",
        "serve",
        "--fake",
    ]
