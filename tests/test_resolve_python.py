"""The Python tiers (menu scripts, Studio's external scripting) against the fake Resolve and a real
daemon on loopback with the fake executor: real clips in, real takes out, placed and read back."""

from __future__ import annotations

import sys
import threading
import time
from fractions import Fraction

import pytest

from framerelay.errors import OutOfMemoryError
from framerelay.jobs.fake_executor import FakeExecutor
from framerelay_resolve import external, menu
from framerelay_resolve.errors import ClipRefused, NoClip, NotSupported, PlacementFailed
from framerelay_resolve.live import LiveHost
from framerelay_resolve.placement import TakePlan, verify
from framerelay_resolve.vendor.framerelay_client.http import Client
from tests.daemon_harness import wait_for
from tests.fake_resolve import PYTHON_PROFILES, FakeResolve
from tests.fake_resolve.guard import FakeScriptModule
from tests.resolve_support import NTSC_24, Scene, edited_frame, resolve_scene

START = 86400  # 01:00:00:00 at 24 fps


def takes(scene: Scene) -> list[tuple[int, object]]:
    """(track, item) of every clip on the timeline that is not a source clip."""
    found = []
    for index, track in enumerate(scene.timeline.tracks["video"], 1):
        for item in track.items:
            if not item.media.path.startswith(str(scene.media)):
                found.append((index, item))
    return found


def bin_clips(scene: Scene) -> list[str]:
    pool = scene.resolve.project.media_pool
    folders = [f for f in pool.root.folders if f.name == "framerelay"]
    return [clip.path for folder in folders for clip in folder.clips]


def send_and_finish(scene: Scene, **options):
    flow = scene.flow()
    sent = flow.send(**options)
    job = scene.finish_round_trip(sent.job_id) if sent.exported_path else None
    return flow, sent, job or scene.wait_ended(sent.job_id)


@pytest.mark.parametrize("profile", PYTHON_PROFILES)
def test_the_take_lands_on_a_new_track_above_at_the_absolute_record_frame(tmp_path, profile):
    with resolve_scene(tmp_path, profile, video_tracks=3) as scene:
        source = scene.clip("a.mp4", 48)
        other = scene.clip("b.mp4", 24)
        clip = scene.timeline.put(source, 1, START + 10, source_in=5, duration=20)
        scene.timeline.put(other, 3, START + 100, 0, 24)
        before = scene.timeline.video_layout()
        scene.timeline.playhead = START + 15
        flow, sent, job = send_and_finish(scene)

        spec = job["spec"]
        assert spec["frameRange"] == {"inFrame": 5, "outFrame": 25}
        assert spec["sourceFps"] == {"num": 24, "den": 1}
        assert job["edit"]["sourceFrame"] == 5  # the frame the editor opened: the clip's first
        assert spec["hostContext"]["record_frame"] == str(START + 10)
        report = flow.place_finished()

        inserted = profile.split("-")[0] >= "19"
        track = 2 if inserted else 4  # directly above V1 from 19.0, on top before
        ((where, take),) = takes(scene)
        assert where == track and report.placed[0].exact and report.placed[0].track == track
        assert (take.GetStart(), take.GetDuration(), take.GetLeftOffset()) == (START + 10, 20, 0)
        assert all(
            scene.timeline.rendered_item_at(f) is take for f in range(START + 10, START + 30)
        )
        assert scene.timeline.rendered_item_at(START + 30) is None
        layout = scene.timeline.video_layout()
        assert [t for i, t in enumerate(layout, 1) if i != track] == before  # nothing moved
        assert bin_clips(scene) == job["outputPaths"]
        assert scene.timeline.GetTrackName("video", track) == "framerelay " + sent.job_id[:8]
        assert clip in scene.timeline.GetItemListInTrack("video", 1)


@pytest.mark.parametrize(("profile", "track"), [("19.1-studio", 2), ("18.5-studio", 3)])
def test_an_occupied_track_above_is_never_overwritten(tmp_path, profile, track):
    with resolve_scene(tmp_path, profile, video_tracks=2) as scene:
        source = scene.clip("a.mp4", 48)
        # On V2, overlapping where the take goes (but not under the playhead).
        overlay = scene.timeline.put(scene.clip("logo.mp4", 48), 2, START + 20, 0, 48)
        scene.timeline.put(source, 1, START + 4, 0, 24)
        scene.timeline.playhead = START + 4
        flow, _, _ = send_and_finish(scene)
        flow.place_finished()
        ((where, take),) = takes(scene)
        assert where == track and take.GetStart() == START + 4 and take.GetDuration() == 24
        # the overlay kept its place, on the track it moved to when one was inserted under it
        assert overlay in scene.timeline.GetItemListInTrack("video", 3 if track == 2 else 2)
        assert (overlay.GetStart(), overlay.GetDuration()) == (START + 20, 48)


@pytest.mark.parametrize(
    ("profile", "sent"), [("21.0.4-studio", "selection"), ("19.1-studio", "playhead")]
)
def test_the_selection_wins_where_resolve_reports_it(tmp_path, profile, sent):
    with resolve_scene(tmp_path, profile) as scene:
        media = scene.clip("a.mp4", 48)
        under_playhead = scene.timeline.put(media, 1, START, 0, 20)
        selected = scene.timeline.put(media, 1, START + 30, 10, 12)
        scene.timeline.playhead = START + 5
        scene.timeline.selection = [selected]
        flow = scene.flow()
        item, how = flow.source(flow.timeline())
        assert how == sent
        expected = selected if sent == "selection" else under_playhead
        assert (item.start, item.left_offset) == (expected.start, expected.GetLeftOffset())
        scene.timeline.selection = [under_playhead, selected]
        if sent == "selection":
            with pytest.raises(NoClip, match="2 video clips are selected"):
                flow.send()
        scene.timeline.selection = []
        assert flow.source(flow.timeline())[1] == "playhead"


def test_the_topmost_enabled_track_under_the_playhead(tmp_path):
    with resolve_scene(tmp_path, "20.3-studio", video_tracks=3) as scene:
        media = scene.clip("a.mp4", 48)
        scene.timeline.put(media, 1, START, 0, 40)
        wanted = scene.timeline.put(media, 2, START + 5, 3, 30)
        scene.timeline.put(media, 3, START, 0, 40)
        scene.timeline.SetTrackEnable("video", 3, False)
        scene.timeline.playhead = START + 10
        flow = scene.flow()
        item, how = flow.source(flow.timeline())
        assert (item.track, item.start, how) == (2, wanted.start, "playhead")
        scene.timeline.playhead = START + 45
        with pytest.raises(NoClip, match="no clip under the playhead") as error:
            flow.send()
        assert "playhead" in error.value.hint
        assert scene.client.list_jobs().get("jobs", []) == []


def test_a_clip_trimmed_at_its_head_sends_its_source_in_point(tmp_path):
    with resolve_scene(tmp_path, "19.1-free") as scene:
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START + 2, source_in=17, duration=13)
        scene.timeline.playhead = START + 2
        flow, _, job = send_and_finish(scene)
        assert job["spec"]["frameRange"] == {"inFrame": 17, "outFrame": 30}
        assert job["edit"]["sourceFrame"] == 17 and job["result"]["frameCount"] == 13
        flow.place_finished()
        ((_, take),) = takes(scene)
        assert (take.GetStart(), take.GetDuration(), take.GetLeftOffset()) == (START + 2, 13, 0)


def test_23976_media_on_a_24_fps_timeline(tmp_path):
    with resolve_scene(tmp_path, "20.3-studio") as scene:
        media = scene.clip("ntsc.mp4", 1010, NTSC_24)
        # 1000 source frames play for 1001 frames of the 24 fps timeline.
        scene.timeline.put(media, 1, START + 24, source_in=3, duration=1001)
        scene.timeline.playhead = START + 500
        flow, _, job = send_and_finish(scene)
        assert job["spec"]["frameRange"] == {"inFrame": 3, "outFrame": 1003}
        assert job["spec"]["sourceFps"] == {"num": 24000, "den": 1001}
        assert job["spec"]["hostContext"]["media_fps"] == "24000/1001"
        report = flow.place_finished()
        ((_, take),) = takes(scene)
        assert take.media.fps == NTSC_24 and take.media.frames == 1000
        assert (take.GetStart(), take.GetDuration()) == (START + 24, 1001)
        assert report.placed[0].exact


def test_a_mixed_rate_clip_no_source_count_fits_is_refused_before_sending(tmp_path):
    with resolve_scene(tmp_path, "20.3-studio") as scene:
        media = scene.clip("ntsc.mp4", 1010, NTSC_24)
        scene.timeline.put(media, 1, START, source_in=0, duration=1000)
        with pytest.raises(ClipRefused, match="one frame short or long"):
            scene.flow().send()
        assert scene.client.list_jobs().get("jobs", []) == []


def test_a_retimed_clip_is_refused_where_resolve_reports_source_times(tmp_path):
    with resolve_scene(tmp_path, "19.1-studio") as scene:
        scene.timeline.put(scene.clip("a.mp4", 96), 1, START, source_in=10, duration=20, speed=2.0)
        with pytest.raises(ClipRefused, match="speed is not 100%"):
            scene.flow().send()
        assert scene.client.list_jobs().get("jobs", []) == []


def test_drop_frame_timeline(tmp_path):
    fps = Fraction(30000, 1001)
    with resolve_scene(
        tmp_path, "19.1-studio", fps=fps, drop_frame=True, start_timecode="01:00:00;00"
    ) as scene:
        start = scene.timeline.GetStartFrame()
        assert start == 107892
        scene.timeline.put(scene.clip("df.mp4", 60, fps), 1, start + 1790, 0, 30)
        scene.timeline.SetCurrentTimecode("01:01:00;02")  # just past the dropped labels
        flow, sent, job = send_and_finish(scene)
        context = job["spec"]["hostContext"]
        assert context["record_timecode"] == "01:00:59;20" and context["drop_frame"] == "1"
        assert context["record_frame"] == str(start + 1790)
        assert sent.plan.label == "df.mp4 @ 01:00:59;20 V1"
        flow.place_finished()
        ((_, take),) = takes(scene)
        assert (take.GetStart(), take.GetDuration()) == (start + 1790, 30)


def test_png_takes_are_imported_as_image_sequences(tmp_path):
    with resolve_scene(tmp_path, "21.0.4-studio") as scene:
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START, 8, 16)
        flow, _, job = send_and_finish(scene, output_format="png")
        assert flow.place_finished().placed[0].exact
        ((_, take),) = takes(scene)
        assert take.media.path == job["outputPaths"][0] + "/frame_[000001-000016].png"
        assert (take.GetStart(), take.GetDuration()) == (START, 16)


def test_a_png_take_resolve_would_play_at_the_project_rate_is_refused(tmp_path):
    with resolve_scene(tmp_path, "21.0.4-studio") as scene:
        scene.timeline.put(scene.clip("ntsc.mp4", 60, NTSC_24), 1, START, 0, 30)
        layout = scene.timeline.video_layout()
        flow, _, job = send_and_finish(scene, output_format="png")
        report = flow.place_finished()
        ((job_id, error),) = report.failed
        assert job_id == job["id"] and isinstance(error, PlacementFailed)
        assert "MOV" in error.hint
        assert takes(scene) == [] and bin_clips(scene) == []  # the next run tries again
        assert scene.timeline.video_layout() == layout


def test_a_take_placed_by_a_later_run_of_the_script(tmp_path):
    with resolve_scene(tmp_path, "19.1-free") as scene:
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START + 10, 0, 24)
        scene.timeline.playhead = START + 12
        first_run = scene.flow()
        sent = first_run.send()
        # The user closed the Console; the edit is saved and the job runs without anyone watching.
        scene.finish_round_trip(sent.job_id)

        logs: list[str] = []
        assert menu.run("place", {"resolve": scene.resolve}, logs.append, scene.client) == 0
        ((track, take),) = takes(scene)
        assert track == 2 and take.GetStart() == START + 10
        assert any("Placed the take" in line for line in logs)

        again: list[str] = []
        menu.run("place", {"resolve": scene.resolve}, again.append, scene.client)
        assert len(takes(scene)) == 1 and not any("Placed" in line for line in again)
        scene.timeline.DeleteClips([take])  # the editor removed it: it stays removed
        scene.flow().place_finished()
        assert takes(scene) == []


def test_a_take_waits_for_its_timeline(tmp_path):
    with resolve_scene(tmp_path, "20.3-studio") as scene:
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START, 0, 24)
        flow, sent, _ = send_and_finish(scene)
        other = scene.resolve.project.add_timeline("Edit 2")
        scene.resolve.project.SetCurrentTimeline(other)
        report = flow.place_finished()
        assert report.waiting == [(sent.job_id, "Edit 1")] and report.placed == []
        assert any("waits for its timeline 'Edit 1'" in line for line in scene.logs)
        scene.resolve.project.SetCurrentTimeline(scene.timeline)
        assert len(flow.place_finished().placed) == 1


def test_pending_and_failed_jobs_are_reported_and_nothing_is_placed(tmp_path):
    executor = FakeExecutor(fail=lambda run: OutOfMemoryError("the GPU ran out of memory."))
    with resolve_scene(tmp_path, "19.1-studio", executor=executor) as scene:
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START, 0, 24)
        flow = scene.flow()
        waiting = flow.send()
        report = flow.place_finished()
        assert report.pending == [(waiting.job_id, "awaiting the edit")]
        started = time.monotonic()
        view = flow.follow(waiting.job_id, timeout=1.0)  # nobody saves: the deadline holds
        assert view.awaiting_edit and not view.ended and time.monotonic() - started < 10
        job = scene.finish_round_trip(waiting.job_id)
        assert job["state"] == "JOB_STATE_FAILED"
        view = flow.follow(waiting.job_id)
        assert view.state == "JOB_STATE_FAILED"
        report = flow.place_finished()
        assert report.job_errors == [(waiting.job_id, "the GPU ran out of memory.")]
        assert takes(scene) == [] and bin_clips(scene) == []
        assert scene.timeline.GetTrackCount("video") == 1


def test_the_daemon_down(tmp_path, monkeypatch):
    resolve = FakeResolve("19.1-free")
    timeline = resolve.project.add_timeline(video_tracks=1)
    monkeypatch.setenv("FRAMERELAY_CONFIG_DIR", str(tmp_path / "nowhere"))
    logs: list[str] = []
    assert menu.run("send", {"resolve": resolve}, logs.append) == 1
    assert "daemon is not running" in logs[-1] and "framerelay serve" in logs[-1]
    gone = Client("http://127.0.0.1:9", "token", timeout=2)  # nothing listens there
    assert menu.run("place", {"resolve": resolve}, logs.append, gone) == 1
    assert "framerelay serve" in logs[-1]
    assert timeline.GetTrackCount("video") == 1 and resolve.phantom_calls == []


def test_the_send_script_follows_the_round_trip_and_places_the_take(tmp_path):
    with resolve_scene(tmp_path, "18.5-free") as scene:
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START, 0, 12)

        def photoshop_saves() -> None:
            job = wait_for(
                lambda: [j for j in scene.client.list_jobs().get("jobs", []) if "edit" in j],
                timeout=30,
            )[0]
            scene.client.attach_edit(job["id"], edited_frame(tmp_path))

        saver = threading.Thread(target=photoshop_saves)
        saver.start()
        logs: list[str] = []
        status = menu.run("send", {"fu": scene.resolve.fusion}, logs.append, scene.client, 60)
        saver.join(30)
        assert status == 0, logs
        assert any("Edit this frame" in line for line in logs)
        assert any(line.endswith("Finished") for line in logs)
        assert any("Placed the take" in line for line in logs)
        ((track, take),) = takes(scene)
        assert track == 2 and take.GetStart() == START  # 18.5: appended on top (V2 here)


@pytest.mark.parametrize("profile", ["19.1-studio", "18.5-free"])
def test_send_with_an_image_opens_a_file_dialog_where_resolve_allows_it(tmp_path, profile):
    with resolve_scene(tmp_path, profile) as scene:
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START, 0, 12)
        image, mask = edited_frame(tmp_path), edited_frame(tmp_path, "mask.png")
        scene.resolve.fusion.requested_files = [str(image), str(mask)]
        logs: list[str] = []
        status = menu.run("send_image", {"resolve": scene.resolve}, logs.append, scene.client, 60)
        assert status == 0
        (job,) = scene.client.list_jobs()["jobs"]
        assert job["spec"]["editedFramePaths"] == [str(image)]
        assert job["spec"]["maskPath"] == str(mask) and "editSession" not in job["spec"]
        assert len(takes(scene)) == 1


def test_version_gates_say_what_this_resolve_cannot_do(tmp_path):
    with resolve_scene(tmp_path, "19.1-free") as scene:
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START, 0, 12)
        logs: list[str] = []
        assert menu.run("send_image", {"resolve": scene.resolve}, logs.append, scene.client) == 1
        assert "cannot open windows" in logs[-1] and "framerelay Send Clip" in logs[-1]
        assert scene.client.list_jobs().get("jobs", []) == []
    free_21_1 = FakeResolve("21.1-free")
    free_21_1.project.add_timeline()
    logs = []
    assert menu.run("place", {"resolve": free_21_1}, logs.append, scene.client) == 1
    assert "runs no Python scripts" in logs[-1] and "framerelay Bridge" in logs[-1]


def test_studio_is_driven_from_outside(tmp_path, monkeypatch):
    with resolve_scene(tmp_path, "21.0.4-studio") as scene:
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START, 4, 12)
        monkeypatch.setitem(sys.modules, "DaVinciResolveScript", FakeScriptModule(scene.resolve))
        sent = external.send_current_clip(via="external", client=scene.client)
        scene.finish_round_trip(sent.job_id)
        report = external.place_finished_takes(via="external", client=scene.client)
        assert [p.track for p in report.placed] == [2] and len(takes(scene)) == 1


def test_external_scripting_refuses_the_free_edition_with_a_way_out(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # no framerelay Bridge installed here
    free = FakeResolve("19.1-free")
    monkeypatch.setitem(sys.modules, "DaVinciResolveScript", FakeScriptModule(free))
    with pytest.raises(NotSupported, match="did not answer external scripting") as error:
        external.open_host("external")
    assert (
        "framerelay Bridge" in error.value.hint and "External scripting using" in error.value.hint
    )
    with pytest.raises(NotSupported, match="not installed") as error:
        external.open_host("auto")
    assert "did not answer external scripting" in error.value.message


def test_a_take_that_lands_elsewhere_is_taken_back_and_reported(tmp_path, monkeypatch):
    with resolve_scene(tmp_path, "19.1-studio") as scene:
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START, 0, 12)
        flow, _, _ = send_and_finish(scene)
        layout = scene.timeline.video_layout()
        place = type(scene.timeline).place_clip_info

        def misplaced(self, info, pool):  # Resolve's V1 pitfall, whatever we asked
            return place(self, {**info, "trackIndex": 99, "recordFrame": START + 100}, pool)

        monkeypatch.setattr(type(scene.timeline), "place_clip_info", misplaced)
        report = flow.place_finished()
        ((_, error),) = report.failed
        assert "landed elsewhere and was taken back" in error.message
        assert scene.timeline.video_layout() == layout and bin_clips(scene) == []
        monkeypatch.setattr(type(scene.timeline), "place_clip_info", place)
        assert flow.place_finished().placed[0].exact  # the next run places it


def test_read_back_differences_are_reported():
    plan = TakePlan(
        job_id="j", label="A001", path="/t.mov", key={"path": "/t.mov", "prefix": False},
        sequence=None, record_frame=100, source_frames=20, duration=20, media_fps=Fraction(24),
        track_mode="insert", track=2, track_name="framerelay j",
    )  # fmt: skip
    good = {"start": 100, "duration": 20, "track": 2, "items_on_track": 1, "left_offset": 0}
    assert verify(plan, {"placed": True, "track": 2, "readback": good}).exact
    bad = {**good, "start": 101, "duration": 19, "track": 3}
    placed = verify(plan, {"placed": True, "track": 2, "readback": bad})
    assert placed.mismatches == [
        "starts at frame 101, not 100",
        "lasts 19 frames, not 20",
        "is on V3, not V2",
    ]
    with pytest.raises(PlacementFailed, match="did not place"):
        verify(plan, {"placed": False, "track": 2, "readback": {}})


def test_no_project_or_timeline_is_a_clear_message():
    resolve = FakeResolve("20.3-studio")
    with pytest.raises(NoClip, match="no timeline is open"):
        LiveHost(resolve).describe()


def test_the_take_follows_a_new_timeline_start_and_notes_a_moved_clip(tmp_path):
    with resolve_scene(tmp_path, "20.3-studio") as scene:
        clip = scene.timeline.put(scene.clip("a.mp4", 48), 1, START + 10, 0, 12)
        scene.timeline.playhead = START + 10
        flow, _, _ = send_and_finish(scene)
        scene.timeline.restart_at("00:59:50:00")  # 240 frames earlier, clips and all
        report = flow.place_finished()
        ((_, take),) = takes(scene)
        assert take.GetStart() == clip.GetStart() == START - 230
        assert "now starts at 00:59:50:00" in report.lines()[0]

        scene.timeline.playhead = clip.GetStart()
        scene.timeline.SetTrackEnable("video", 2, False)  # hide the first take: send the clip
        flow, sent, _ = send_and_finish(scene)
        assert sent.plan.source.endswith("a.mp4")
        clip.start += 100  # the editor slid the clip after sending it
        report = flow.place_finished()
        (placed,) = report.placed
        assert placed.plan.record_frame == START - 230
        assert "is now at 00:59:54:14" in report.lines()[0]


def test_no_test_can_reach_a_real_resolve(tmp_path, monkeypatch):
    modules = tmp_path / "Developer" / "Scripting" / "Modules"
    modules.mkdir(parents=True)
    (modules / "DaVinciResolveScript.py").write_text("raise SystemExit('the real one')\n")
    monkeypatch.syspath_prepend(str(modules))
    with pytest.raises(ImportError, match="tests may not import the real"):
        import DaVinciResolveScript  # noqa: F401
    monkeypatch.setenv("RESOLVE_SCRIPT_API", str(modules.parent))
    with pytest.raises(NotSupported, match="did not load"):
        external.scripting_module()


def test_a_send_without_a_preset_takes_the_daemons_default_preset(tmp_path, monkeypatch):
    # README: jobs that leave the preset unset get the daemon's defaults, so every host offers
    # the same ones (`framerelay defaults --preset style`, the tray's Settings).
    from framerelay.cli import build_parser
    from framerelay_resolve.vendor.framerelay_client import job_defaults

    with resolve_scene(tmp_path, "21.0.4-studio") as scene:
        scene.client.set_defaults(job_defaults("style", "mp4"))
        scene.timeline.put(scene.clip("a.mp4", 48), 1, START, 4, 12)
        monkeypatch.setitem(sys.modules, "DaVinciResolveScript", FakeScriptModule(scene.resolve))
        sent = external.send_current_clip(via="external", client=scene.client)
        job = scene.client.get_job(sent.job_id)
        assert job["spec"]["params"]["preset"] == "PRESET_STYLE"
        assert job["spec"]["output"]["format"] == "OUTPUT_FORMAT_MP4"
        _, sent, _ = send_and_finish(scene)
        assert scene.client.get_job(sent.job_id)["spec"]["params"]["preset"] == "PRESET_STYLE"
    assert build_parser().parse_args(["resolve", "send"]).preset is None
