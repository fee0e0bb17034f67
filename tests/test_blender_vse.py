"""The Blender extension in real bpy (5.0 on Python 3.11, 5.3 on Python 3.13, and 4.2 LTS where
its venv exists) against a real daemon on loopback with the fake executor.

Each test runs one scenario in a bpy subprocess (tests/blender/scenarios.py) and asserts here on
what it saw: the take strips' channel, start, end, file and frame count, the job records and the
reports.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from fractions import Fraction
from pathlib import Path

import pytest

from framerelay.errors import EditUnreadableError
from framerelay.jobs.fake_executor import FakeExecutor, write_test_video
from framerelay.service.discovery import discovery_path
from tests.blender_support import (
    VENVS,
    build_extension,
    frame_count,
    require,
    run_scenario,
    stop_process,
    venv_params,
)
from tests.daemon_harness import http_call, make_media, running_daemon, wait_for

pytestmark = pytest.mark.parametrize("venv", venv_params())


@pytest.fixture
def media(tmp_path: Path) -> tuple[Path, Path]:
    """A 48-frame 24 fps 64×64 clip and an edited first frame."""
    return make_media(tmp_path / "media", frames=48)


def scenario(venv, name: str, root: Path, **args):
    """Runs a scenario against the daemon whose folders are under `root` (running_daemon)."""
    return run_scenario(require(venv), name, root, root / "config", **args)


def job_json(daemon, job_id: str) -> dict:
    status, reply = http_call(daemon.discovery, "GetJob", {"jobId": job_id})
    assert status == 200, reply
    return reply["job"]


def takes(facts: dict) -> list[dict]:
    return [s for s in facts["strips"] if " take " in s["name"]]


def test_take_lands_on_the_channel_above_a_trimmed_strip(venv, tmp_path, media):
    source, edited = media
    with running_daemon(tmp_path):
        facts = scenario(venv, "propagate", tmp_path, source=source, edited=edited)
    # The source: content from frame 10, trimmed 5 at the head and 3 at the tail.
    assert (facts["source"]["start"], facts["source"]["end"]) == (15, 55)
    [record] = facts["records"]
    assert record["state"] == "finished" and record["placed"], record
    assert record["states_seen"][-1] == "finished"
    [take] = takes(facts)
    assert take["name"] == "src take 1"
    assert take["type"] == "MOVIE"
    assert (take["channel"], take["start"], take["end"]) == (2, 15, 55)
    assert take["content_duration"] == 40
    assert take["file"] == record["output_path"]
    assert Path(take["file"]).parent == source.parent / "framerelay"
    assert take["file"].endswith(".mov")
    assert frame_count(take["file"]) == 40
    assert facts["source_after"] == facts["source"]  # nothing moved or overwritten
    assert facts["last_error"] == ""


def test_occupied_channel_above_sends_the_take_to_the_next_free_one(venv, tmp_path, media):
    source, edited = media
    blockers = [
        # channel 2 overlaps the range's last frame (54); channel 3 ends right before it starts
        {"channel": 2, "start": 54, "trim_end": 30},
        {"channel": 3, "start": -33, "trim_end": 0},
    ]
    with running_daemon(tmp_path):
        facts = scenario(
            venv, "propagate", tmp_path, source=source, edited=edited, blockers=blockers
        )
    by_name = {s["name"]: s for s in facts["strips"]}
    assert (by_name["blocker0"]["channel"], by_name["blocker0"]["start"]) == (2, 54)
    assert (by_name["blocker1"]["channel"], by_name["blocker1"]["end"]) == (3, 15)
    [take] = takes(facts)
    assert (take["channel"], take["start"], take["end"]) == (3, 15, 55)


def test_the_take_keeps_its_submit_time_place_when_the_source_moves(venv, tmp_path, media):
    source, edited = media
    with running_daemon(tmp_path):
        facts = scenario(
            venv, "propagate", tmp_path, source=source, edited=edited, move_after_submit=True
        )
    assert (facts["source_after"]["channel"], facts["source_after"]["start"]) == (6, 105)
    [take] = takes(facts)
    assert (take["channel"], take["start"], take["end"]) == (2, 15, 55)


def test_two_takes_go_on_two_channels_and_overwrite_nothing(venv, tmp_path, media):
    source, edited = media
    with running_daemon(tmp_path):
        facts = scenario(venv, "propagate", tmp_path, source=source, edited=edited, takes=2)
    first, second = sorted(takes(facts), key=lambda s: s["name"])
    assert (first["name"], first["channel"]) == ("src take 1", 2)
    assert (second["name"], second["channel"]) == ("src take 2", 3)
    assert (first["start"], first["end"]) == (second["start"], second["end"]) == (15, 55)
    assert first["file"] != second["file"]
    assert all(frame_count(t["file"]) == 40 for t in (first, second))


def test_png_sequence_take_is_an_image_strip_and_the_settings_reach_the_job(venv, tmp_path, media):
    source, edited = media
    with running_daemon(tmp_path) as (daemon, _):
        facts = scenario(
            venv,
            "propagate",
            tmp_path,
            source=source,
            edited=edited,
            output_format="png",
            settings={
                "lora_steps": 0,
                "seed": 7,
                "preset": "style",
                "mask_image": str(edited),
                "output_location": "DAEMON",
            },
        )
        spec = job_json(daemon, facts["records"][0]["job_id"])["spec"]
    assert spec["params"] == {"preset": "PRESET_STYLE", "loraSteps": 0, "seed": 7}
    assert spec["maskPath"] == str(edited)
    assert spec["output"] == {"format": "OUTPUT_FORMAT_PNG"}  # the daemon's own folder
    assert spec["editedFramePaths"] == [str(edited)]
    [take] = takes(facts)
    assert Path(take["file"]).is_relative_to(tmp_path / "data" / "outputs")
    assert take["type"] == "IMAGE"
    assert (take["channel"], take["start"], take["end"]) == (2, 15, 55)
    assert len(take["elements"]) == 40 == frame_count(take["file"])


def test_clip_at_29_97_in_a_24_fps_scene_is_placed_frame_for_frame(venv, tmp_path):
    source = tmp_path / "media" / "ntsc.mp4"
    write_test_video(source, "mp4", 60, Fraction(30000, 1001), (64, 64))
    _, edited = make_media(tmp_path / "edit", frames=2)
    with running_daemon(tmp_path) as (daemon, _):
        facts = scenario(
            venv,
            "propagate",
            tmp_path,
            source=source,
            edited=edited,
            start=1,
            trim_start=10,
            trim_end=5,
            output_format="mp4",
        )
        spec = job_json(daemon, facts["records"][0]["job_id"])["spec"]
    assert spec["sourceFps"] == {"num": 30000, "den": 1001}
    assert spec["frameRange"] == {"inFrame": 10, "outFrame": 55}
    assert spec["hostContext"]["scene_fps"] == "24/1"
    assert spec["hostContext"]["media_fps"] == "30000/1001"
    [take] = takes(facts)
    assert (take["channel"], take["start"], take["end"]) == (2, 11, 56)
    assert frame_count(take["file"]) == 45
    note = facts["submits"][0]
    assert note["result"] == ["FINISHED"]


def test_daemon_down_wrong_token_and_dead_port_are_clear_reports(venv, tmp_path, media):
    source, edited = media
    empty = tmp_path / "no-daemon"
    empty.mkdir()
    with running_daemon(tmp_path):
        found = json.loads(discovery_path(tmp_path / "config").read_text())
        dead = write_discovery(tmp_path / "dead-port", {**found, **closed_port_fields()})
        wrong = write_discovery(tmp_path / "wrong-token", {**found, "token": "not-the-token"})
        facts = scenario(
            venv,
            "daemon_down",
            tmp_path,
            source=source,
            edited=edited,
            config_dirs=[str(empty), str(dead), str(wrong)],
        )
    not_running, refused, unauthenticated = facts["answers"]
    assert not_running["result"] == "ERROR"
    assert "framerelay serve" in not_running["message"]
    assert "Start in the framerelay panel" in not_running["last_error"]
    assert refused["result"] == "ERROR"
    assert "framerelay serve" in refused["message"] or "answer" in refused["message"]
    assert unauthenticated["result"] == "ERROR"
    assert "token" in unauthenticated["message"].lower()
    assert facts["records"] == [] and len(facts["strips"]) == 1


def closed_port_fields() -> dict:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {"http_port": port, "http_url": f"http://127.0.0.1:{port}"}


def write_discovery(folder: Path, data: dict) -> Path:
    folder.mkdir()
    path = folder / "daemon.json"
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return folder


def test_cancel_stops_a_running_take_and_places_nothing(venv, tmp_path, media):
    source, edited = media
    gate = threading.Event()  # never opened: the job waits in its first phase
    with running_daemon(tmp_path, FakeExecutor(gate=gate)) as (daemon, _):
        facts = scenario(venv, "cancel_running", tmp_path, source=source, edited=edited)
        [record] = facts["records"]
        job = job_json(daemon, record["job_id"])
    assert facts["answer"]["result"] == ["FINISHED"]
    assert job["state"] == "JOB_STATE_CANCELLED"
    assert record["state"] == "cancelled" and not record["placed"]
    assert "running" in record["states_seen"]
    assert [s["name"] for s in facts["strips"]] == ["src"]


def test_failed_job_reports_its_message_and_hint(venv, tmp_path, media):
    source, edited = media

    def broken(run):
        return EditUnreadableError("the edited frame is damaged.", "Save it again as PNG.")

    with running_daemon(tmp_path, FakeExecutor(fail=broken)):
        facts = scenario(venv, "failing_job", tmp_path, source=source, edited=edited)
    [record] = facts["records"]
    assert record["state"] == "failed" and not record["placed"]
    assert record["error"] == "the edited frame is damaged."
    assert record["hint"] == "Save it again as PNG."
    assert (
        (facts["last_error"])
        == "src take 1 failed: the edited frame is damaged. Save it again as PNG."
    )
    assert [s["name"] for s in facts["strips"]] == ["src"]


@pytest.mark.parametrize(
    ("attach", "playhead", "index"),
    [(False, 1, 0), (True, 1, 0), (False, 30, 7)],
    ids=["saved", "picked", "current-frame"],
)
def test_round_trip_waits_for_the_edit_then_queues_and_places(
    venv, tmp_path, media, attach, playhead, index
):
    source, edited = media
    with running_daemon(tmp_path, no_open=True) as (daemon, _):
        facts = scenario(
            venv,
            "round_trip",
            tmp_path,
            source=source,
            edited=edited,
            attach=attach,
            playhead=playhead,
        )
        [record] = facts["records"]
        job = job_json(daemon, record["job_id"])
    assert facts["answer"]["result"] == ["FINISHED"]
    waiting = facts["waiting"]
    assert waiting["state"] == "awaiting_edit" and facts["exists"]
    assert Path(waiting["exported_path"]).name == "frame_edit.png"
    seen = record["states_seen"]
    assert seen[0] in ("submitting", "awaiting_edit") and seen[-1] == "finished"
    assert "awaiting_edit" in seen
    assert seen.index("awaiting_edit") < seen.index("finished")
    assert job["edit"]["version"] == 1
    # the strip shows source frames 3..47 from scene frame 23: the playhead names the frame to
    # edit, the range stays the whole strip and the take lands where it always does
    assert job["edit"]["sourceFrame"] == 3 + index
    assert job["spec"]["editSession"].get("frameIndex", 0) == index
    assert job["spec"]["frameRange"] == {"inFrame": 3, "outFrame": 48}
    [take] = takes(facts)
    assert (take["channel"], take["start"], take["end"]) == (2, 23, 68)
    assert frame_count(take["file"]) == 45


def test_reopening_the_blend_follows_its_unfinished_jobs_again(venv, tmp_path, media):
    source, edited = media
    blend = tmp_path / "edit.blend"
    release = tmp_path / "release"
    gate = threading.Event()
    opener = threading.Thread(target=open_when_file_appears, args=(release, gate), daemon=True)
    opener.start()
    with running_daemon(tmp_path, FakeExecutor(gate=gate)) as (daemon, _):
        first = scenario(
            venv, "submit_and_save", tmp_path, source=source, edited=edited, blend=blend
        )
        ids = [r["job_id"] for r in first["records"]]
        wait_for(lambda: job_json(daemon, ids[0])["state"] == "JOB_STATE_RUNNING")
        states = [job_json(daemon, job_id)["state"] for job_id in ids]
        facts = scenario(venv, "reopen_and_follow", tmp_path, blend=blend, release=release)
    gate.set()
    assert states == ["JOB_STATE_RUNNING", "JOB_STATE_QUEUED"]
    assert sorted(facts["following"]) == sorted(ids)
    assert [r["job_id"] for r in facts["before"]] == ids  # the saved one, then the adopted one
    assert all(r["state"] == "finished" and r["placed"] for r in facts["records"])
    placed = sorted((t["name"], t["channel"], t["start"], t["end"]) for t in takes(facts))
    assert placed == [("src take 1", 2, 6, 51), ("src take 2", 3, 6, 51)]


def open_when_file_appears(path: Path, gate: threading.Event, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    gate.set()


def test_panels_draw_every_job_state_with_this_blenders_layout_api(venv, tmp_path, media):
    source, _ = media
    facts = scenario(venv, "panels", tmp_path, source=source)
    texts = facts["texts"]
    assert texts["daemon_up"][0] == "framerelay 0.1.0 · cuda:0 · model loaded · queue empty"
    assert "Lost the framerelay daemon: nothing answers." in texts["daemon_up"]
    assert texts["daemon_down"][:2] == ["Daemon not running", "Start"]
    edit = texts["FRAMERELAY_PT_edit"]
    assert edit[:3] == ["src", "Frames 3–48 (46), clip frame 2", "Clip 24 fps · scene 29.97 fps"]
    [bar] = facts["progress"]
    assert bar["factor"] == pytest.approx(0.4)
    assert bar["text"] == "edit 3/4 · window 2/3 · ETA 0:12"
    takes_text = texts["FRAMERELAY_PT_takes"]
    for expected in (
        "Waiting for your edit",
        "Save it in the editor: frame_edit.png",
        "Queued (2)",
        "On channel 3: src take 4",
        "Preset: style (chosen by auto)",
        "the edited frame is damaged.",
        "Save it again as PNG.",
        "Cancelled.",
    ):
        assert expected in takes_text
    assert {"framerelay.cancel", "framerelay.use_edited_image", "framerelay.propagate"} <= set(
        facts["operators"]
    )
    assert {"preset", "steps", "seed", "lora_steps", "window", "output_format"} <= set(
        facts["props"]
    )


def test_refusals_say_what_to_change_and_submit_nothing(venv, tmp_path, media):
    source, edited = media
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere"
    with running_daemon(tmp_path) as (daemon, _):
        facts = scenario(venv, "refusals", tmp_path, source=source, edited=edited, outside=outside)
        status, listed = http_call(daemon.discovery, "ListJobs", {})
    answers = facts["answers"]
    missing = answers["missing edit"]
    assert missing["result"] == "ERROR"
    assert "missing.png does not exist" in missing["message"]
    assert "Choose the edited image again" in missing["message"]
    folder = answers["folder outside the roots"]
    assert folder["result"] == "ERROR"
    assert "outside the daemon's output roots" in folder["message"]
    assert "output_roots" in folder["message"]  # the daemon's hint came through
    if venv.version >= "5.1":
        retimed = answers["retimed"]
        assert retimed["result"] == "ERROR"
        assert "retimed" in retimed["message"] and "Reset Retiming" in retimed["message"]
    assert facts["records"] == []
    assert status == 200 and listed.get("jobs", []) == []


@pytest.fixture(scope="session")
def extension_zip(tmp_path_factory) -> Path:
    if not any(v.python.exists() for v in VENVS):
        pytest.skip("no bpy venv: run `bash scripts/setup-bpy-venvs`")
    return build_extension(tmp_path_factory.mktemp("dist"))


def test_built_zip_installs_starts_the_daemon_and_places_a_take(
    venv, tmp_path, media, extension_zip
):
    source, edited = media
    folders = {
        f"FRAMERELAY_{name}_DIR": str(tmp_path / name.lower()) for name in ("DATA", "LOG", "CACHE")
    }
    serve = f"{sys.executable} -m framerelay serve --fake --no-open"
    try:
        facts = scenario(
            venv,
            "install_and_run",
            tmp_path,
            env=folders,
            archive=extension_zip,
            source=source,
            edited=edited,
            serve_command=serve,
        )
    finally:
        found = discovery_path(tmp_path / "config")
        if found.exists():
            stop_process(json.loads(found.read_text())["pid"])
    installed = facts["installed"]
    assert installed["enabled"]
    assert "/extensions/user_default/framerelay_vse/" in installed["file"]
    assert installed["client"].endswith("framerelay_vse/vendor/framerelay_client/http.py")
    assert str(tmp_path / "home") in installed["file"]  # never the real user folders
    assert facts["started"]["result"] == ["FINISHED"]
    assert facts["status"]["device"] in ("auto", "cpu")
    assert facts["submitted"]["result"] == ["FINISHED"]
    [take] = takes(facts)
    assert (take["channel"], take["start"], take["end"]) == (2, 5, 49)
    assert frame_count(take["file"]) == 44
    assert Path(take["file"]).is_relative_to(source.parent)
