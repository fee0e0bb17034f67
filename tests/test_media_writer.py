import errno
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from framerelay.errors import DiskFullError, InvalidSpecError
from framerelay.media import video, writer
from tests.media_factory import pattern_frames

FPS = Fraction(30000, 1001)


def _read_sequence(folder):
    files = sorted(folder.iterdir())
    return [f.name for f in files], np.stack(
        [cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB) for f in files]
    )


def _failing_after(frames, count, error):
    for i, frame in enumerate(frames):
        if i == count:
            raise error
        yield frame


@pytest.mark.parametrize(("width", "height"), [(160, 96), (161, 97), (96, 161)])
@pytest.mark.parametrize(("name", "codec"), [("out.mp4", "h264"), ("out.mov", "prores")])
def test_container_reads_back_with_same_count_rate_size_and_pixels(
    tmp_path, name, codec, width, height
):
    frames = pattern_frames(9, width, height)
    info = writer.write_video(frames, tmp_path / name, FPS)
    assert info == writer.OutputInfo(
        path=tmp_path / name, frame_count=9, fps=FPS, size=(width, height), format=name[-3:]
    )
    probed = video.probe(tmp_path / name)
    assert (probed.codec, probed.frame_count, probed.fps, probed.size) == (
        codec,
        9,
        FPS,
        (width, height),
    )
    clip = video.read_clip(tmp_path / name)
    assert [p * clip.time_base for p in clip.pts] == [i / FPS for i in range(9)]
    error = np.abs(clip.frames.astype(int) - frames.astype(int))
    assert error.mean() < 2.0  # lossy, but the same pictures
    assert abs((clip.frames.astype(int) - frames).mean()) < 0.5  # no brightness shift


def test_h264_uses_420_for_even_and_444_for_odd_sizes(tmp_path):
    writer.write_video(pattern_frames(3, 160, 96), tmp_path / "even.mp4", FPS)
    writer.write_video(pattern_frames(3, 161, 96), tmp_path / "odd.mp4", FPS)
    assert video.probe(tmp_path / "even.mp4").pix_fmt == "yuv420p"
    assert video.probe(tmp_path / "odd.mp4").pix_fmt == "yuv444p"


def test_mov_is_prores_422_hq_tagged_bt709(tmp_path):
    writer.write_video(pattern_frames(3, 160, 96), tmp_path / "out.mov", Fraction(24))
    with av.open(str(tmp_path / "out.mov")) as container:
        context = container.streams.video[0].codec_context
        assert (context.name, context.profile, context.pix_fmt) == ("prores", "HQ", "yuv422p10le")
        assert (context.colorspace, context.color_primaries, context.color_trc) == (1, 1, 1)


def test_png_sequence_is_lossless_and_numbered(tmp_path):
    frames = pattern_frames(4, 161, 97)
    info = writer.write_video(frames, str(tmp_path / "seq") + "/", FPS)
    assert (info.format, info.frame_count, info.size, info.fps) == ("png", 4, (161, 97), FPS)
    names, back = _read_sequence(tmp_path / "seq")
    assert names == [f"frame_{i:06d}.png" for i in range(4)]
    np.testing.assert_array_equal(back, frames)


@pytest.mark.parametrize(
    ("path", "fmt", "expected"),
    [
        ("a.mp4", None, "mp4"),
        ("a.MOV", None, "mov"),
        ("folder", None, "png"),
        ("shot_v1.2/", None, "png"),
        ("a.mov", "mov", "mov"),
        ("folder", "mp4", "mp4"),
        ("a.mp4", ".MP4", "mp4"),
    ],
)
def test_output_format_from_path_and_fmt(path, fmt, expected):
    assert writer.output_format(path, fmt) == expected


@pytest.mark.parametrize(
    ("path", "fmt"), [("a.avi", None), ("a.png", None), ("a.mp4", "mov"), ("a", "gif")]
)
def test_unsupported_or_conflicting_formats_are_refused(tmp_path, path, fmt):
    with pytest.raises(InvalidSpecError) as error:
        writer.write_video(pattern_frames(2, 32, 32), tmp_path / path, FPS, fmt)
    assert "mp4" in error.value.hint and "mov" in error.value.hint
    assert list(tmp_path.iterdir()) == []


def test_fmt_overrides_a_path_without_extension(tmp_path):
    writer.write_video(pattern_frames(3, 32, 32), tmp_path / "render", FPS, fmt="mov")
    assert video.probe(tmp_path / "render").codec == "prores"


@pytest.mark.parametrize("name", ["out.mp4", "out/"])
def test_existing_output_is_not_overwritten_unless_asked(tmp_path, name):
    target = tmp_path / name.rstrip("/")
    first = writer.write_video(pattern_frames(3, 32, 32), str(tmp_path / name), FPS)
    before = sorted(p.stat().st_mtime_ns for p in [target, *target.glob("*")])
    with pytest.raises(InvalidSpecError) as error:
        writer.write_video(pattern_frames(5, 32, 32), str(tmp_path / name), FPS)
    assert "already exists" in error.value.message and error.value.hint
    assert sorted(p.stat().st_mtime_ns for p in [target, *target.glob("*")]) == before
    second = writer.write_video(
        pattern_frames(5, 32, 32), str(tmp_path / name), FPS, overwrite=True
    )
    assert (first.frame_count, second.frame_count) == (3, 5)
    count = len(list(target.iterdir())) if target.is_dir() else video.probe(target).frame_count
    assert count == 5
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no staging leftovers


def test_overwrite_never_replaces_a_folder_with_a_file(tmp_path):
    (tmp_path / "out.mp4").mkdir()
    with pytest.raises(InvalidSpecError):
        writer.write_video(pattern_frames(2, 32, 32), tmp_path / "out.mp4", FPS, overwrite=True)
    assert (tmp_path / "out.mp4").is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


@pytest.mark.parametrize("name", ["out.mp4", "out.mov", "out/"])
def test_failure_mid_write_leaves_nothing_at_the_target(tmp_path, name):
    frames = _failing_after(pattern_frames(6, 32, 32), 3, RuntimeError("engine crashed"))
    with pytest.raises(RuntimeError, match="engine crashed"):
        writer.write_video(frames, str(tmp_path / name), FPS)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_overwrite_keeps_the_old_output(tmp_path):
    writer.write_video(pattern_frames(3, 32, 32), tmp_path / "out.mp4", FPS)
    frames = _failing_after(pattern_frames(6, 32, 32), 4, RuntimeError("cancelled"))
    with pytest.raises(RuntimeError):
        writer.write_video(frames, tmp_path / "out.mp4", FPS, overwrite=True)
    assert video.probe(tmp_path / "out.mp4").frame_count == 3
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_full_disk_raises_disk_full_and_cleans_up(tmp_path, monkeypatch):
    calls = []

    def full_after_two(*args, **kwargs):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return original(*args, **kwargs)

    original = writer._to_video_frame
    monkeypatch.setattr(writer, "_to_video_frame", full_after_two)
    with pytest.raises(DiskFullError) as error:
        writer.write_video(pattern_frames(5, 32, 32), tmp_path / "out.mp4", FPS)
    assert "out.mp4" in error.value.message and error.value.hint
    assert list(tmp_path.iterdir()) == []


def test_full_disk_while_writing_a_png_sequence(tmp_path, monkeypatch):
    def no_space(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(type(tmp_path), "write_bytes", no_space)
    with pytest.raises(DiskFullError):
        writer.write_video(pattern_frames(2, 32, 32), tmp_path / "seq", FPS)
    assert list(tmp_path.iterdir()) == []


def test_creates_missing_parent_folders(tmp_path):
    info = writer.write_video(pattern_frames(2, 32, 32), tmp_path / "a" / "b" / "out.mp4", FPS)
    assert info.path.is_file()


@pytest.mark.parametrize(
    "frames",
    [
        [np.zeros((32, 32, 3), np.int32)],
        [np.zeros((32, 32), np.uint8)],
        [np.zeros((32, 32, 3), np.uint8), np.zeros((32, 30, 3), np.uint8)],
    ],
)
def test_frames_of_the_wrong_type_or_size_are_rejected(tmp_path, frames):
    with pytest.raises(ValueError):
        writer.write_video(frames, tmp_path / "out.mp4", FPS)
    assert list(tmp_path.iterdir()) == []


def test_no_frames_is_an_error(tmp_path):
    with pytest.raises(InvalidSpecError):
        writer.write_video([], tmp_path / "out.mp4", FPS)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps", [Fraction(24000, 1001), Fraction(25), Fraction(60000, 1001), 12])
def test_rational_rates_are_kept_exactly(tmp_path, fps):
    writer.write_video(pattern_frames(4, 32, 32), tmp_path / "out.mp4", fps)
    clip = video.read_clip(tmp_path / "out.mp4")
    assert clip.fps == Fraction(fps)
    assert [p * clip.time_base for p in clip.pts] == [i / Fraction(fps) for i in range(4)]
