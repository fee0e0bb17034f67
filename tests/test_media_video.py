from fractions import Fraction

import av
import numpy as np
import pytest

from framerelay.errors import InvalidSpecError
from framerelay.media import video
from tests.media_factory import (
    decode_all,
    make_clip,
    make_vfr_clip,
    pattern_frames,
    vfr_timestamps,
)

FRAME = Fraction(1001, 30000)  # seconds per frame at 30000/1001


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory):
    """10 frames, 160x96, H.264 with B-frames and a keyframe every 4 frames."""
    return make_clip(tmp_path_factory.mktemp("video") / "clip.mp4", n=10, width=160, height=96)


@pytest.fixture(scope="module")
def reference(clip_path):
    return decode_all(clip_path)


def test_probe_reports_exact_count_rational_rate_and_size(clip_path):
    info = video.probe(clip_path)
    assert (info.width, info.height, info.size) == (160, 96, (160, 96))
    assert info.fps == Fraction(30000, 1001)
    assert isinstance(info.fps, Fraction)
    assert info.frame_count == 10
    assert info.codec == "h264"
    assert info.duration == pytest.approx(float(10 * FRAME))


def test_probe_counts_frames_by_demuxing_when_the_header_has_no_count(tmp_path):
    path = make_clip(tmp_path / "clip.mkv", n=12, codec="ffv1")
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == 0  # Matroska stores no frame count
    assert video.probe(path).frame_count == 12


def test_read_clip_decodes_every_frame_in_order(clip_path, reference):
    clip = video.read_clip(clip_path)
    assert clip.frames.shape == (10, 96, 160, 3)
    assert clip.frames.dtype == np.uint8
    assert clip.fps == Fraction(30000, 1001)
    assert clip.first_index == 0
    assert clip.frame_count == 10 and clip.size == (160, 96)
    np.testing.assert_array_equal(clip.frames, reference)
    assert clip.timestamps == tuple(float(i * FRAME) for i in range(10))
    assert [p * clip.time_base for p in clip.pts] == [i * FRAME for i in range(10)]


def test_frames_are_rgb_and_match_the_pattern(tmp_path):
    path = make_clip(tmp_path / "lossless.mp4", n=6, codec="libx264-lossless")
    frames = video.read_clip(path).frames.astype(int)
    expected = pattern_frames(6, 160, 96).astype(int)
    assert np.abs(frames - expected).max() <= 3  # only YUV rounding
    # each frame is closest to its own pattern frame, not a neighbour
    for i, frame in enumerate(frames):
        distances = [np.abs(frame - e).mean() for e in expected]
        assert int(np.argmin(distances)) == i


@pytest.mark.parametrize(
    ("start", "end", "first", "count"),
    [
        (None, None, 0, 10),
        (float(3 * FRAME), None, 3, 7),
        (None, float(4 * FRAME), 0, 4),
        (0.1, 0.25, 3, 5),  # frames 3..7 start at 0.1001 .. 0.2336 s
        (float(5 * FRAME), float(7 * FRAME), 5, 2),
        (0.0, 10.0, 0, 10),
    ],
)
def test_window_selects_the_frames_whose_time_is_in_start_end(
    clip_path, reference, start, end, first, count
):
    clip = video.read_clip(clip_path, start, end)
    assert (clip.first_index, clip.frame_count) == (first, count)
    np.testing.assert_array_equal(clip.frames, reference[first : first + count])
    assert clip.timestamps[0] == pytest.approx(float(first * FRAME))


def test_window_bounds_computed_in_floating_point_hit_the_intended_frame(clip_path):
    start = 3 * (1001 / 30000)  # a host computing frame 3's time in floats
    end = 6 * 1001 / 30000
    clip = video.read_clip(clip_path, start, end)
    assert (clip.first_index, clip.frame_count) == (3, 3)


def test_iter_frames_yields_the_same_frames_as_read_clip(clip_path, reference):
    frames = list(video.iter_frames(clip_path, 0.1, 0.25))
    np.testing.assert_array_equal(np.stack(frames), reference[3:8])


def test_iter_frames_checks_the_window_before_iterating(clip_path):
    with pytest.raises(InvalidSpecError):
        video.iter_frames(clip_path, 0.3, 0.1)


def test_select_frames_reports_the_window_without_decoding(clip_path):
    selection = video.select_frames(clip_path, 0.1, 0.25)
    assert selection.frames == range(3, 8)
    assert (selection.first_index, selection.frame_count) == (3, 5)
    assert selection.timestamps == tuple(float(i * FRAME) for i in range(3, 8))
    assert selection.info.frame_count == 10


@pytest.mark.parametrize("index", [0, 1, 3, 4, 6, 9])
def test_read_frame_equals_the_nth_sequential_frame(clip_path, reference, index):
    np.testing.assert_array_equal(video.read_frame(clip_path, index), reference[index])


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("prores.mov", "prores_ks"),
        ("png.mov", "png"),
        ("ffv1.mkv", "ffv1"),
        ("vp9.webm", "libvpx-vp9"),
    ],
)
def test_other_codecs_and_containers_read_frame_accurately(tmp_path, name, codec):
    path = make_clip(tmp_path / name, n=8, codec=codec)
    reference = decode_all(path)
    assert video.probe(path).frame_count == 8
    clip = video.read_clip(path, 0.1, None)  # frames 3..7 (Matroska has millisecond times)
    assert clip.first_index == 3
    np.testing.assert_array_equal(clip.frames, reference[3:])
    np.testing.assert_array_equal(video.read_frame(path, 5), reference[5])


def test_variable_frame_rate_keeps_every_frame_at_its_own_time(tmp_path):
    durations = [1001, 2002, 3003] * 4
    path = make_vfr_clip(tmp_path / "vfr.mp4", durations)
    reference = decode_all(path)
    clip = video.read_clip(path)
    assert clip.frame_count == len(durations) == len(reference)
    assert clip.timestamps == pytest.approx(vfr_timestamps(durations))
    np.testing.assert_array_equal(clip.frames, reference)
    with av.open(str(path)) as container:
        assert clip.fps == container.streams.video[0].average_rate  # documented: average rate
    assert Fraction(30000, 3003) < clip.fps < Fraction(30000, 1001)


def test_variable_frame_rate_window_and_seek_use_true_timestamps(tmp_path):
    durations = [1001, 2002, 3003] * 4
    path = make_vfr_clip(tmp_path / "vfr.mp4", durations)
    reference = decode_all(path)
    times = vfr_timestamps(durations)
    expected = [i for i, t in enumerate(times) if 0.2 <= t < 0.6]
    clip = video.read_clip(path, 0.2, 0.6)
    assert list(range(clip.first_index, clip.first_index + clip.frame_count)) == expected
    np.testing.assert_array_equal(clip.frames, reference[expected[0] : expected[-1] + 1])
    for index in (2, 7, 11):
        np.testing.assert_array_equal(video.read_frame(path, index), reference[index])


def test_stream_without_timestamps_is_indexed_by_decoding(tmp_path):
    path = make_clip(tmp_path / "raw.h264", n=8)
    reference = decode_all(path)
    index = video.index_frames(path)
    assert not index.timed and len(index) == 8
    clip = video.read_clip(path, float(2 / index.fps), float(5 / index.fps))
    assert (clip.first_index, clip.frame_count) == (2, 3)
    np.testing.assert_array_equal(clip.frames, reference[2:5])
    np.testing.assert_array_equal(video.read_frame(path, 7), reference[7])


def test_index_at_finds_the_frame_on_screen(clip_path):
    index = video.index_frames(clip_path)
    assert len(index) == 10
    assert index.index_at(0.0) == 0
    assert index.index_at(float(4 * FRAME)) == 4
    assert index.index_at(float(4 * FRAME) + 0.01) == 4
    assert index.index_at(100.0) == 9
