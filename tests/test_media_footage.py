"""Sources as editors have them, read through `framerelay.media.footage`: rotation, pixel aspect,
colour tags, bit depth, alpha, fields, timecode, audio, image sequences. Every file is made by
PyAV (tests/media_factory.py) at small sizes."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from framerelay.errors import InvalidSpecError, SourceUnreadableError
from framerelay.media import colour, footage
from tests.media_factory import (
    BT709,
    BT2020,
    LIMITED,
    TRC_HLG,
    encode_planes,
    encode_rgb,
    make_sequence,
    pattern_frames,
    ramp_planes,
)

FPS = Fraction(25)


def _natives(path, **select):
    found = footage.probe(path, select.pop("fps", None))
    return found, [n for n in footage.iter_native(footage.select(found, **select))]


def test_phone_clip_rotation_is_read_and_shown_upright(tmp_path):
    frames = pattern_frames(3, 160, 90)
    path = encode_rgb(tmp_path / "phone.mp4", frames, options={"qp": "0"}, pix_fmt="yuv444p",
                      rotation=-90, tags={"colorspace": BT709})  # fmt: skip
    found = footage.probe(path)
    assert found.stored_size == (160, 90) and found.display.rotation == 270
    assert found.display_size == (90, 160)
    bridge = footage.bridge_for(found, 128, 64)
    shown = bridge.display_frame(next(footage.iter_native(footage.select(found))))
    expected = np.rot90(frames[0], -1) / 255  # a quarter turn clockwise
    assert shown.shape == (160, 90, 3)
    assert np.abs(shown - expected).max() < 3 / 255


def test_a_mirrored_display_matrix_is_refused_not_shown_as_a_rotation(tmp_path):
    import av

    path = tmp_path / "flip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.set_display_matrix([-65536, 0, 0, 0, 65536, 0, 64 * 65536, 0, 1 << 30])
        for i in range(2):
            frame = av.VideoFrame(64, 32, "yuv420p")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(SourceUnreadableError, match="mirrored") as error:
        footage.probe(path)
    assert "Flip" in error.value.hint


@pytest.mark.parametrize(
    ("size", "sar", "display"),
    [((320, 240), Fraction(4, 3), (427, 240)), ((240, 160), Fraction(8, 9), (240, 180))],
)
def test_anamorphic_sources_are_shown_at_their_display_aspect(tmp_path, size, sar, display):
    frames = pattern_frames(2, *size)
    path = encode_rgb(tmp_path / "ana.mov", frames, codec="prores_ks", pix_fmt="yuv422p10le",
                      options={"profile": "3"}, sar=sar)  # fmt: skip
    found = footage.probe(path)
    assert found.display.sar == sar and found.display_size == display
    bridge = footage.bridge_for(found, 128, 64)
    shown = bridge.display_frame(next(footage.iter_native(footage.select(found))))
    assert shown.shape[:2] == (display[1], display[0])


def test_untagged_hd_is_bt709_and_untagged_sd_is_bt601(tmp_path):
    red = np.zeros((2, 720, 1280, 3), np.uint8)
    red[..., 0] = 255
    hd = encode_rgb(tmp_path / "hd.mp4", red, matrix="ITU709", pix_fmt="yuv444p",
                    options={"qp": "0"})  # fmt: skip
    found, natives = _natives(hd)
    assert found.colour.matrix == colour.MATRIX_BT709 and "matrix" in found.colour.assumed
    assert np.abs(natives[0].rgb[100, 100] * 255 - (255, 0, 0)).max() < 1.5  # not (233, ...)
    sd_red = red[:, :480, :640]
    sd = encode_rgb(tmp_path / "sd.mp4", sd_red, matrix="ITU601", pix_fmt="yuv444p",
                    options={"qp": "0"})  # fmt: skip
    found, natives = _natives(sd)
    assert found.colour.matrix == colour.MATRIX_SMPTE170M
    assert np.abs(natives[0].rgb[100, 100] * 255 - (255, 0, 0)).max() < 1.5


def test_hlg_bt2020_is_read_as_hdr_and_mapped_for_the_model(tmp_path):
    width, height = 64, 32
    y = np.full((height, width), 721, np.uint16)  # HLG 75 %: reference white, 203 nits
    c = np.full((height // 2, width // 2), 512, np.uint16)
    path = encode_planes(
        tmp_path / "hlg.mp4", [[y, c, c]] * 2, pix_fmt="yuv420p10le", codec="libx265",
        options={"x265-params": "log-level=error:lossless=1:bframes=0"},
        tags={"colorspace": BT2020, "color_primaries": BT2020, "color_trc": TRC_HLG,
              "color_range": LIMITED},
    )  # fmt: skip
    found = footage.probe(path)
    assert (found.colour.primaries, found.colour.transfer) == (BT2020, TRC_HLG)
    assert found.colour.is_hdr and found.bit_depth == 10
    bridge = footage.bridge_for(found, 64, 64)
    assert "tone-mapped" in bridge.mapping.describe()
    native = next(footage.iter_native(footage.select(found)))
    model = bridge.mapping.to_model(native.rgb)
    assert 0.9 < float(model.mean()) < 0.98  # near SDR white, room left for highlights
    np.testing.assert_allclose(bridge.mapping.to_native(model), native.rgb, atol=1e-4)


def test_10_bit_prores_keeps_every_code(tmp_path):
    planes = ramp_planes(256, 8, 64, 174)  # 111 distinct codes
    path = encode_planes(tmp_path / "ramp.mov", [planes] * 2, pix_fmt="yuv422p10le",
                         options={"profile": "3"}, tags={"colorspace": BT709})  # fmt: skip
    found, natives = _natives(path)
    assert found.bit_depth == 10 and found.chroma == "422"
    grey = natives[0].rgb[:, :, 1] * 876 + 64
    assert len(np.unique(np.round(grey))) >= 110


def test_prores_4444_alpha_is_read(tmp_path):
    height, width = 16, 32
    y = np.full((height, width), 500, np.uint16)
    c = np.full((height, width), 512, np.uint16)
    a = np.tile(np.linspace(0, 1023, width).astype(np.uint16), (height, 1))
    path = encode_planes(tmp_path / "alpha.mov", [[y, c, c, a]] * 2, pix_fmt="yuva444p10le",
                         options={"profile": "4", "alpha_bits": "16"})  # fmt: skip
    found, natives = _natives(path)
    assert found.alpha and found.chroma == "444"
    np.testing.assert_allclose(natives[0].alpha[0], np.linspace(0, 1, width), atol=2e-3)


def test_interlaced_source_is_found_deinterlaced_and_warned_about(tmp_path):
    frames = pattern_frames(3, 64, 32)
    frames[:, 1::2] = 0  # the second field is black: deinterlacing must drop it
    path = encode_rgb(tmp_path / "tff.mp4", frames, pix_fmt="yuv444p",
                      options={"qp": "0", "flags": "+ilme+ildct", "x264-params": "tff=1"},
                      tags={"colorspace": BT709})  # fmt: skip
    found, natives = _natives(path)
    assert found.interlaced and found.top_field_first
    assert any("interlaced" in w and "deinterlaced" in w for w in found.warnings)
    rebuilt = natives[0].rgb
    np.testing.assert_allclose(rebuilt[1], (rebuilt[0] + rebuilt[2]) / 2, atol=1e-6)
    assert np.abs(rebuilt[0::2] * 255 - frames[0, 0::2]).max() < 3  # the first field, kept
    assert rebuilt[1::2].mean() > 0.2  # interpolated from the first field, not the black one


def test_timecode_is_read_and_moved_to_the_first_processed_frame(tmp_path):
    path = encode_rgb(tmp_path / "tc.mov", pattern_frames(6, 32, 16), codec="prores_ks",
                      pix_fmt="yuv422p10le", options={"profile": "3"},
                      timecode="01:00:00:00")  # fmt: skip
    found = footage.probe(path)
    assert found.timecode == "01:00:00:00"
    assert footage.select(found, in_frame=3).timecode == "01:00:00:03"
    assert footage.select(found, start=0.08).timecode == "01:00:00:02"


def test_audio_stream_is_found(tmp_path):
    sound = np.zeros((2, 4800), np.float32)
    path = encode_rgb(tmp_path / "a.mov", pattern_frames(3, 32, 16), codec="prores_ks",
                      pix_fmt="yuv422p10le", options={"profile": "3"},
                      audio=(sound, 48000))  # fmt: skip
    found = footage.probe(path)
    assert found.audio is not None and found.audio.sample_rate == 48000
    assert found.audio.channels == 2


@pytest.mark.parametrize("ext", ["png", "tif", "exr", "dpx"])
def test_image_sequences_are_sources(tmp_path, ext):
    rng = np.random.default_rng(4)
    if ext == "exr":
        frames = [rng.random((8, 12, 3)).astype(np.float32) for _ in range(4)]
        expected = [colour.srgb_encode(f) for f in frames]
        tolerance = 2e-3  # half floats
    elif ext == "dpx":
        frames = [rng.integers(0, 1024, (8, 12, 3)).astype(np.uint16) for _ in range(4)]
        expected = [f / 1023 for f in frames]
        tolerance = 1e-6
    else:
        frames = [rng.integers(0, 65536, (8, 12, 3)).astype(np.uint16) for _ in range(4)]
        expected = [f / 65535 for f in frames]
        tolerance = 1e-6
    folder = make_sequence(tmp_path / "shot", frames, ext, first=1001)
    for source in (folder, folder / f"frame.%04d.{ext}", folder / f"frame.####.{ext}"):
        found, natives = _natives(source, fps=Fraction(24000, 1001), in_frame=1002, out_frame=1004)
        assert found.kind == "sequence" and found.frame_count == 4
        assert found.fps == Fraction(24000, 1001) and found.first_number == 1001
        assert len(natives) == 2
        for native, want in zip(natives, expected[1:3], strict=True):
            np.testing.assert_allclose(native.rgb, want, atol=tolerance)


def test_a_sequence_without_a_rate_is_24_fps_with_a_warning(tmp_path):
    folder = make_sequence(tmp_path / "s", [np.zeros((4, 4, 3), np.uint8)] * 3)
    found = footage.probe(folder)
    assert found.fps == 24 and any("--fps" in w for w in found.warnings)
    assert footage.select(found, start=1 / 24).frames == range(1, 3)


def test_sequences_with_gaps_or_mixed_runs_are_refused(tmp_path):
    folder = make_sequence(tmp_path / "gap", [np.zeros((4, 4, 3), np.uint8)] * 4)
    (folder / "frame.0003.png").unlink()
    with pytest.raises(SourceUnreadableError, match="3 are missing") as error:
        footage.probe(folder)
    assert "folder of their own" in error.value.hint
    mixed = make_sequence(tmp_path / "mixed", [np.zeros((4, 4, 3), np.uint8)] * 2)
    make_sequence(mixed, [np.zeros((4, 4, 3), np.uint8)] * 2, ext="tif")
    with pytest.raises(SourceUnreadableError, match="several sequences") as error:
        footage.probe(mixed)
    assert "%04d" in error.value.hint


def test_a_clip_whose_name_holds_a_hash_is_a_clip(tmp_path):
    path = encode_rgb(tmp_path / "take#2 100%d.mp4", pattern_frames(3, 32, 16))
    assert footage.probe(path).kind == "video"


def test_frame_numbers_outside_the_source_are_refused(tmp_path):
    path = encode_rgb(tmp_path / "c.mp4", pattern_frames(4, 32, 16))
    found = footage.probe(path)
    with pytest.raises(InvalidSpecError, match=r"frames \[2, 9\)"):
        footage.select(found, in_frame=2, out_frame=9)
    with pytest.raises(InvalidSpecError, match="not both"):
        footage.select(found, start=0.1, in_frame=1)


def test_keeping_pixels_composes_the_source_outside_the_region():
    source = footage.Native(np.full((4, 6, 3), 0.2, np.float32), np.ones((4, 6), np.float32))
    edited = np.full((4, 6, 3), 0.9, np.float32)
    weights = np.zeros((4, 6), np.float32)
    weights[:, 3:] = 1.0
    out = footage.compose(source, edited, weights)
    assert out.shape == (4, 6, 4)  # the source's alpha rides along
    np.testing.assert_array_equal(out[:, :3, :3], source.rgb[:, :3])
    np.testing.assert_array_equal(out[:, 3:, :3], edited[:, 3:])


def test_the_round_trip_exports_the_frame_as_the_nle_shows_it(tmp_path):
    from framerelay.jobs.spec import EditSessionSpec, JobSpec
    from framerelay.roundtrip.jobs import frame_to_edit

    frames = pattern_frames(3, 160, 90)
    path = encode_rgb(tmp_path / "phone.mp4", frames, options={"qp": "0"}, pix_fmt="yuv444p",
                      rotation=-90, sar=Fraction(4, 3), tags={"colorspace": BT709})  # fmt: skip
    spec = JobSpec(source=path, edited_frames=(), edit_session=EditSessionSpec(sixteen_bit=True))
    target = frame_to_edit(spec)
    assert target.frame.shape == (213, 90, 3) and target.frame.dtype == np.uint16  # upright, wide
