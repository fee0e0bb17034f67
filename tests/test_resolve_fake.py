"""The fake Resolve behaves as Resolve was measured to (hosts.md §A): these are the pitfalls the
plugin is tested against, so the fake must really have them."""

from __future__ import annotations

from fractions import Fraction

import pytest

from tests.fake_resolve import FakeResolve, frames_to_tc, tc_to_frames
from tests.resolve_support import source_clip


@pytest.fixture
def scene(tmp_path):
    resolve = FakeResolve("19.1-studio")
    timeline = resolve.project.add_timeline("T", video_tracks=2)
    pool = resolve.project.media_pool
    clip = pool.add_media(source_clip(tmp_path, "a.mp4", 48))
    return resolve, timeline, pool, clip


def test_end_frame_is_exclusive_and_record_frames_absolute(scene):
    _, timeline, pool, clip = scene
    (item,) = pool.AppendToTimeline(
        [{"mediaPoolItem": clip, "startFrame": 4, "endFrame": 24, "trackIndex": 1,
          "recordFrame": 86400 + 10}]
    )  # fmt: skip
    assert (item.GetStart(), item.GetEnd(), item.GetDuration()) == (86410, 86430, 20)
    assert item.GetLeftOffset() == 4
    assert timeline.rendered_item_at(86410) is item
    assert timeline.rendered_item_at(86430) is None


def test_a_relative_record_frame_reads_back_as_sent_and_renders_nothing(scene):
    _, timeline, pool, clip = scene
    (item,) = pool.AppendToTimeline(
        [{"mediaPoolItem": clip, "startFrame": 0, "endFrame": 20, "trackIndex": 1,
          "recordFrame": 10}]
    )  # fmt: skip
    assert item.GetUniqueId() and item.GetStart() == 10 and item.GetDuration() == 20
    assert all(timeline.rendered_item_at(f) is None for f in range(86400, 86440))


def test_an_overlapping_append_is_dropped_silently(scene):
    _, timeline, pool, clip = scene
    info = {"mediaPoolItem": clip, "startFrame": 0, "endFrame": 20, "trackIndex": 1}
    (first,) = pool.AppendToTimeline([{**info, "recordFrame": 86400}])
    (second,) = pool.AppendToTimeline([{**info, "recordFrame": 86410}])
    assert first.GetUniqueId() and second.GetUniqueId() == ""
    assert timeline.GetItemListInTrack("video", 1) == [first]


def test_a_track_index_beyond_count_plus_one_lands_on_v1(scene):
    _, timeline, pool, clip = scene
    info = {"mediaPoolItem": clip, "startFrame": 0, "endFrame": 10}
    pool.AppendToTimeline([{**info, "trackIndex": 3, "recordFrame": 86400}])  # count + 1
    assert timeline.GetTrackCount("video") == 3
    (stray,) = pool.AppendToTimeline([{**info, "trackIndex": 5, "recordFrame": 86500}])
    assert stray.GetTrackTypeAndIndex() == ["video", 1]


def test_hasattr_is_always_true_and_dir_tells_the_truth(scene):
    resolve, timeline, _, _ = scene
    assert hasattr(timeline, "GetSelectedClips")  # only 21.0.4 has it
    assert "GetSelectedClips" not in dir(timeline)
    assert timeline.GetSelectedClips() is None
    assert resolve.phantom_calls == ["Timeline.GetSelectedClips"]
    assert "GetSelectedClips" in dir(FakeResolve("21.0.4-studio").project.add_timeline())


def test_import_media_lands_in_the_current_folder(scene, tmp_path):
    _, _, pool, _ = scene
    other = source_clip(tmp_path, "b.mp4", 12)
    folder = pool.AddSubFolder(pool.GetRootFolder(), "framerelay")
    (imported,) = pool.ImportMedia([str(other)])
    assert imported in pool.GetRootFolder().GetClipList() and folder.GetClipList() == []
    pool.SetCurrentFolder(folder)
    assert pool.ImportMedia([str(tmp_path / "missing.mov")]) == []
    (again,) = pool.ImportMedia([str(other)])
    assert folder.GetClipList() == [again]


@pytest.mark.parametrize(("profile", "expected"), [("19.1-free", 2), ("18.5-studio", 3)])
def test_add_track_inserts_from_19_and_appends_before(tmp_path, profile, expected):
    resolve = FakeResolve(profile)
    timeline = resolve.project.add_timeline(video_tracks=2)
    clip = resolve.project.media_pool.add_media(source_clip(tmp_path, "a.mp4", 12))
    marker = timeline.put(clip, 2, 86400, 0, 12)
    assert timeline.AddTrack("video", {"index": 2})
    assert timeline.GetTrackCount("video") == 3
    assert timeline.GetItemListInTrack("video", expected) == []
    assert marker in timeline.GetItemListInTrack("video", 5 - expected)


def test_a_studio_call_on_free_raises_the_modal_that_blocks_later_calls(tmp_path):
    resolve = FakeResolve("21.0.4-studio")
    assert resolve.project.add_timeline().CreateSubtitlesFromAudio() is True
    free = FakeResolve("19.1-free")
    timeline = free.project.add_timeline()
    assert timeline.CreateSubtitlesFromAudio() is False
    assert free.modal and free.refused == ["Timeline.CreateSubtitlesFromAudio"]
    assert timeline.GetName() is None  # unrelated calls fail until a person clicks it away
    free.dismiss_modal()
    assert timeline.GetName() == "Timeline 1"


def test_windows_are_refused_on_free_from_19_1(tmp_path):
    assert FakeResolve("18.5-free").fusion.RequestFile() is None  # no modal
    free = FakeResolve("19.1-free")
    assert free.fusion.RequestFile() is False and free.modal


def test_another_rate_is_floored_to_whole_timeline_frames(tmp_path):
    resolve = FakeResolve("20.3-studio")
    timeline = resolve.project.add_timeline(fps=24)
    pool = resolve.project.media_pool
    clip = pool.add_media(source_clip(tmp_path, "ntsc.mp4", 1100, Fraction(24000, 1001)))
    assert clip.GetClipProperty("FPS") == 23.976
    (item,) = pool.AppendToTimeline(
        [{"mediaPoolItem": clip, "startFrame": 0, "endFrame": 1000, "recordFrame": 86400}]
    )
    assert item.GetDuration() == 1001  # 1000 * 24 / 23.976
    (item,) = pool.AppendToTimeline(
        [{"mediaPoolItem": clip, "startFrame": 0, "endFrame": 999, "recordFrame": 90000}]
    )
    assert item.GetDuration() == 999  # floor(999.999): the last frame's time is lost
    assert timeline.GetItemListInTrack("video", 1)[0].GetSourceStartFrame() == 1  # off by one


def test_drop_frame_timecode():
    fps = Fraction(30000, 1001)
    assert tc_to_frames("01:00:00;00", fps, True) == 107892
    # 01:00 is a tenth minute (no frames dropped); 01:01;00 and ;01 do not exist.
    assert frames_to_tc(107892 + 1799, fps, True) == "01:00:59;29"
    assert frames_to_tc(107892 + 1800, fps, True) == "01:01:00;02"
    assert tc_to_frames("01:02:00;02", fps, True) == 107892 + 1800 + 1798
    resolve = FakeResolve("19.1-studio")
    timeline = resolve.project.add_timeline(fps=fps, drop_frame=True, start_timecode="01:00:00;00")
    assert timeline.GetStartFrame() == 107892
    assert timeline.GetSetting("timelineFrameRate") == "29.97 DF"
    timeline.playhead = 107892 + 1800
    assert timeline.GetCurrentTimecode() == "01:01:00;02"


def test_fusion_prefs_are_written_as_a_lua_table(tmp_path):
    from framerelay_resolve.vendor.framerelay_client.resolve_bridge import parse_prefs

    resolve = FakeResolve("21.1-free", tmp_path / "Fusion")
    fusion = resolve.Fusion()
    fusion.SetPrefs("Global.Framerelay.Bridge.State", "running")
    assert fusion.SavePrefs()
    prefs = parse_prefs(fusion.prefs_path.read_text())
    assert prefs["Global"]["Framerelay"]["Bridge"]["State"] == "running"
    assert prefs["Global"]["Paths"]["Map"]["Scripts:"] == "UserPaths:Scripts;Fusion:Scripts"
    assert prefs["Global"]["Main"]["LastFile"] == 'C:\\Comps\\a "quoted" comp.comp'
