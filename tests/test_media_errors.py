"""Unreadable sources and bad windows fail with the right error class, a message and a hint."""

import math
import wave

import av
import pytest

from framerelay.errors import InvalidSpecError, SourceUnreadableError
from framerelay.media import video
from tests.media_factory import make_clip, pattern_frames

READERS = [video.probe, video.read_clip, video.index_frames, lambda p: video.read_frame(p, 0)]


def _assert_hinted(error: pytest.ExceptionInfo, *words: str) -> None:
    assert error.value.hint.strip()
    for word in words:
        assert word in error.value.message


@pytest.mark.parametrize("read", READERS)
def test_missing_file(tmp_path, read):
    with pytest.raises(SourceUnreadableError) as error:
        read(tmp_path / "nope.mp4")
    _assert_hinted(error, "not found", "nope.mp4")


@pytest.mark.parametrize("read", READERS)
def test_folder_instead_of_a_file(tmp_path, read):
    with pytest.raises(SourceUnreadableError) as error:
        read(tmp_path)
    _assert_hinted(error, "folder")


@pytest.mark.parametrize("read", READERS)
def test_text_file_renamed_to_mp4(tmp_path, read):
    path = tmp_path / "notes.mp4"
    path.write_text("these are my notes, not a video\n" * 20)
    with pytest.raises(SourceUnreadableError) as error:
        read(path)
    _assert_hinted(error, "notes.mp4")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.mov"
    path.touch()
    with pytest.raises(SourceUnreadableError) as error:
        video.read_clip(path)
    _assert_hinted(error, "empty")


def test_audio_only_file_has_no_video_stream(tmp_path):
    path = tmp_path / "tone.wav"
    with wave.open(str(path), "wb") as sound:
        sound.setnchannels(1)
        sound.setsampwidth(2)
        sound.setframerate(8000)
        sound.writeframes(bytes(16000))
    with pytest.raises(SourceUnreadableError) as error:
        video.probe(path)
    _assert_hinted(error, "no video stream")


def test_one_frame_clip(tmp_path):
    path = make_clip(tmp_path / "still.mp4", n=1)
    assert video.probe(path).frame_count == 1  # probing is fine
    with pytest.raises(SourceUnreadableError) as error:
        video.read_clip(path)
    _assert_hinted(error, "1 frame", "at least 2")


def test_window_with_one_frame_names_the_counts(tmp_path):
    path = make_clip(tmp_path / "clip.mp4", n=10)
    with pytest.raises(InvalidSpecError) as error:
        video.read_clip(path, 0.1, 0.11)  # only frame 3 starts in this window
    _assert_hinted(error, "selects 1 of", "10 frames")
    assert "--start/--end" in error.value.hint


def test_window_after_the_end_selects_nothing(tmp_path):
    path = make_clip(tmp_path / "clip.mp4", n=10)
    with pytest.raises(InvalidSpecError) as error:
        video.read_clip(path, start=5.0)
    _assert_hinted(error, "selects 0 of")


@pytest.mark.parametrize(
    ("start", "end"),
    [(0.3, 0.1), (0.2, 0.2), (-0.1, None), (None, -1.0), (math.nan, None), (0.0, math.inf)],
)
def test_bad_windows_are_rejected_before_reading(tmp_path, start, end):
    with pytest.raises(InvalidSpecError) as error:
        video.read_clip(tmp_path / "never-opened.mp4", start, end)
    assert error.value.hint.strip()


def test_truncated_file_is_reported_not_silently_shortened(tmp_path):
    path = tmp_path / "fast.mp4"
    with av.open(str(path), "w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=30, options={"crf": "12"})
        stream.width, stream.height, stream.pix_fmt = 160, 96, "yuv420p"
        for i, image in enumerate(pattern_frames(20, 160, 96)):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 6 // 10])  # index at the front, frames cut off
    with pytest.raises(SourceUnreadableError) as error:
        video.read_clip(path)
    _assert_hinted(error, "incomplete", "20 frames")


def test_read_frame_out_of_range(tmp_path):
    path = make_clip(tmp_path / "clip.mp4", n=4)
    for index in (4, -1):
        with pytest.raises(InvalidSpecError) as error:
            video.read_frame(path, index)
        _assert_hinted(error, "out of range", "4 frames")
