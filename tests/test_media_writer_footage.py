"""Outputs that keep what the source had: more than 8 bits, colour tags, HDR, rotation, pixel
aspect, timecode, alpha and audio. Read back with PyAV and OpenCV, not with framerelay."""

from __future__ import annotations

import struct
from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from framerelay.media import audio, colour, writer
from tests.media_factory import encode_rgb, pattern_frames

FPS = Fraction(25)
HLG = colour.ColourSpace(colour.MATRIX_BT2020_NCL, colour.PRIMARIES_BT2020, colour.TRC_HLG)


def _luma_codes(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        out = []
        for frame in container.decode(video=0):
            plane = frame.planes[0]
            row = plane.line_size // 2
            out.append(
                np.frombuffer(plane, np.uint16).reshape(-1, row)[: frame.height, : frame.width]
            )
        return out


def _grey_for_codes(codes: np.ndarray) -> np.ndarray:
    """R'G'B' grey whose BT.709 limited-range 10-bit luma is `codes`."""
    return np.repeat(((codes.astype(np.float32) - 64) / 876)[..., None], 3, axis=2)


@pytest.mark.parametrize("name", ["flat", "ramp"])
def test_10_bit_grey_and_ramp_keep_every_code_in_prores(tmp_path, name):
    width, height = 222, 16
    if name == "flat":
        codes = np.full((height, width), 517, np.uint16)
    else:
        codes = np.tile(np.arange(64, 64 + width // 2).repeat(2).astype(np.uint16), (height, 1))
    frames = [_grey_for_codes(codes)] * 3
    path = tmp_path / f"{name}.mov"
    writer.write_video(frames, path, FPS, encoding=writer.Encoding(bits=10))
    for decoded in _luma_codes(path):
        assert np.abs(decoded.astype(int) - codes).max() <= 1
        assert len(np.unique(decoded)) == len(np.unique(codes))  # 111 codes, not 33


def test_deep_sources_get_hevc_10_bit_in_mp4(tmp_path):
    codes = np.tile(np.arange(64, 64 + 128).astype(np.uint16), (16, 1))
    encoding, _ = writer.for_source(colour.ColourSpace(), 10, "422", False, "mp4")
    path = tmp_path / "deep.mp4"
    writer.write_video([_grey_for_codes(codes)] * 3, path, FPS, encoding=encoding)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "hevc"
        assert stream.codec_context.pix_fmt == "yuv420p10le"
    decoded = _luma_codes(path)[0]
    assert len(np.unique(decoded)) > 64  # 8 bits hold 32 codes of this ramp; lossy HEVC keeps ~100
    assert np.abs(decoded.astype(int) - codes).max() <= 3


def test_16_bit_png_keeps_the_float_precision(tmp_path):
    values = np.linspace(0, 1, 1000, dtype=np.float32)[None, :, None].repeat(3, axis=2)
    encoding, _ = writer.for_source(colour.ColourSpace(), 12, "444", False, "png")
    assert encoding.bits == 16
    writer.write_video([values] * 2, tmp_path / "seq", FPS, encoding=encoding)
    image = cv2.imread(str(tmp_path / "seq" / "frame_000000.png"), cv2.IMREAD_UNCHANGED)
    assert image.dtype == np.uint16
    np.testing.assert_allclose(image[0, :, 0], values[0, :, 0] * 65535, atol=0.51)


@pytest.mark.parametrize("fmt", ["mov", "mp4"])
def test_hdr_is_written_back_at_10_bits_with_its_tags(tmp_path, fmt):
    encoding, _ = writer.for_source(HLG, 10, "420", False, fmt)
    path = tmp_path / f"hlg.{fmt}"
    writer.write_video([np.full((32, 64, 3), 0.6, np.float32)] * 2, path, FPS, encoding=encoding)
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    tags = (frame.colorspace, frame.color_primaries, frame.color_trc, frame.color_range)
    assert tags == (9, 9, 18, 1)
    assert "10" in frame.format.name


def test_hdr_png_says_so_in_a_cicp_chunk(tmp_path):
    encoding, _ = writer.for_source(HLG, 10, "420", False, "png")
    writer.write_video([np.full((8, 8, 3), 0.5, np.float32)] * 2, tmp_path / "seq", FPS,
                       encoding=encoding)  # fmt: skip
    data = (tmp_path / "seq" / "frame_000001.png").read_bytes()
    at = data.index(b"cICP")
    assert data[at + 4 : at + 8] == bytes([9, 18, 0, 1])
    assert cv2.imread(str(tmp_path / "seq" / "frame_000001.png"), cv2.IMREAD_UNCHANGED) is not None


@pytest.mark.parametrize("fmt", ["mov", "mp4"])
def test_rotation_pixel_aspect_and_timecode_are_written(tmp_path, fmt):
    encoding = writer.Encoding(rotation=270, sar=Fraction(4, 3), timecode="01:00:00:12")
    path = tmp_path / f"out.{fmt}"
    writer.write_video(pattern_frames(3, 160, 90), path, FPS, encoding=encoding)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        assert frame.rotation == -90 and stream.sample_aspect_ratio == Fraction(4, 3)
        assert stream.metadata.get("timecode") == "01:00:00:12"
        assert (frame.width, frame.height) == (160, 90)  # the stored size, as the source


def test_alpha_is_carried_by_prores_4444_and_png_and_refused_by_mp4(tmp_path):
    rgba = np.zeros((16, 32, 4), np.float32)
    rgba[..., :3] = 0.5
    rgba[..., 3] = np.linspace(0, 1, 32)[None]
    encoding, warnings = writer.for_source(colour.ColourSpace(), 12, "444", True, "mov")
    assert encoding.alpha and not warnings
    writer.write_video([rgba] * 2, tmp_path / "a.mov", FPS, encoding=encoding)
    with av.open(str(tmp_path / "a.mov")) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name.startswith("yuva444p")
        alpha = np.frombuffer(frame.planes[3], np.uint16).reshape(16, -1)[:, :32] / 4095
    np.testing.assert_allclose(alpha[0], np.linspace(0, 1, 32), atol=2e-3)
    encoding, _ = writer.for_source(colour.ColourSpace(), 8, "rgb", True, "png")
    writer.write_video([rgba] * 2, tmp_path / "seq", FPS, encoding=encoding)
    png = cv2.imread(str(tmp_path / "seq" / "frame_000000.png"), cv2.IMREAD_UNCHANGED)
    assert png.shape == (16, 32, 4)
    encoding, warnings = writer.for_source(colour.ColourSpace(), 12, "444", True, "mp4")
    assert not encoding.alpha and "alpha" in warnings[0] and ".mov" in warnings[0]


def _source_with_audio(tmp_path, seconds=1.0, rate=48000):
    n = int(seconds * rate)
    t = np.arange(n) / rate
    sound = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.2 * np.sin(2 * np.pi * 220 * t)])
    sound[:, 12000:12010] = 0.9  # a click at 0.25 s
    sound = np.round(sound * 32767) / 32767
    path = encode_rgb(tmp_path / "src.mov", pattern_frames(25, 32, 16), codec="prores_ks",
                      pix_fmt="yuv422p10le", options={"profile": "3"},
                      audio=(sound.astype(np.float32), rate))  # fmt: skip
    return path, sound


def _decoded_audio(path) -> tuple[np.ndarray, int | None]:
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        channels = stream.codec_context.channels
        chunks = []
        for frame in container.decode(stream):
            array = frame.to_ndarray().astype(np.float64)
            if not frame.format.is_planar:  # interleaved samples in one row
                array = array.reshape(-1, channels).T
            chunks.append(array)
        duration = stream.duration
    data = np.concatenate(chunks, axis=1)
    if data.dtype.kind != "f" or np.abs(data).max() > 2:
        data = data / 32768
    return data, duration


def test_audio_range_is_copied_sample_exact_into_mov(tmp_path):
    source, sound = _source_with_audio(tmp_path)
    clip = audio.read_range(source, Fraction(1, 5), Fraction(10, 25))  # frames 5..14
    assert clip is not None and clip.count == 19200
    out = tmp_path / "out.mov"
    writer.write_video(pattern_frames(10, 32, 16), out, FPS, audio=clip)
    data, duration = _decoded_audio(out)
    assert duration == 19200 and data.shape[1] == 19200
    np.testing.assert_allclose(data, sound[:, 9600:28800], atol=1 / 32768)


def test_audio_range_in_mp4_is_aac_cut_on_the_sample(tmp_path):
    source, sound = _source_with_audio(tmp_path)
    clip = audio.read_range(source, Fraction(1, 5), Fraction(10, 25))
    out = tmp_path / "out.mp4"
    writer.write_video(pattern_frames(10, 32, 16), out, FPS, audio=clip)
    with av.open(str(out)) as container:
        assert container.streams.audio[0].codec_context.name == "aac"
    data, duration = _decoded_audio(out)
    assert duration == 19200  # the edit list declares exactly the range
    click = int(np.argmax(np.abs(data[0]) > 0.6))
    assert click == 12000 - 9600  # the encoder delay is compensated to the sample
    expected = sound[0, 9600:28800]

    def misfit(lag: int) -> float:  # away from the click's pre-echo and the ends
        return float(
            np.sqrt(np.mean((data[0, 3000 + lag : 18000 + lag] - expected[3000:18000]) ** 2))
        )

    assert min(range(-2, 3), key=misfit) == 0  # the content lines up on the exact sample
    assert misfit(0) < 0.03 * float(np.sqrt(np.mean(expected**2)))  # and AAC is transparent
    assert _elst_durations(out.read_bytes())  # every track has an exact edit list


def _elst_durations(data: bytes) -> list[int]:
    found, at = [], data.find(b"elst")
    while at >= 0:
        found.append(struct.unpack(">I", data[at + 12 : at + 16])[0])
        at = data.find(b"elst", at + 1)
    return found


def test_no_audio_in_the_range_is_silence_of_the_right_length(tmp_path):
    source, _ = _source_with_audio(tmp_path, seconds=0.5)
    clip = audio.read_range(source, Fraction(2, 5), Fraction(2, 5))  # runs past the audio
    assert clip is not None and clip.count == 19200
    assert np.abs(clip.samples[:, 9600:]).max() == 0
