"""`framerelay edit` on footage as editors have it, end to end on the tiny real components.

Pixel exactness is tested on a path that passes the source through: `passthrough` makes the
model's output its input (the windows' own frames), so what comes out is what the media pipeline
alone does to the pixels. The 4K test uses the real (random) tiny model: only the mask keeps the
source's pixels there.
"""

from __future__ import annotations

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from framerelay.cli import main
from framerelay.media import colour
from tests.media_factory import (
    BT709,
    BT2020,
    LIMITED,
    TRC_HLG,
    encode_planes,
    encode_rgb,
    make_raw_psd,
    make_sequence,
    pattern_frames,
    ramp_planes,
    version_info,
    write_cube,
    write_image,
)

FAST = ["--steps", "2", "--quiet", "--device", "cpu", "--lora-steps", "0", "--no-cache"]
PRORES = {"codec": "prores_ks", "pix_fmt": "yuv422p10le", "options": {"profile": "3"}}


@pytest.fixture
def passthrough(monkeypatch):
    """The model returns the frames it was given; the frames it saw are recorded."""
    from framerelay.engine import run

    seen = []

    def same_frames(pipe, window, *args, **kwargs):
        seen.append(window.frames.clone())
        return window.frames

    monkeypatch.setattr(run, "_edit_window", same_frames)
    monkeypatch.setattr(run, "decode_video_latents", lambda pipe, latents, chunk: latents)
    return seen


def _edit(source, edited, output, model, *extra) -> int:
    args = ["edit", str(source), str(edited), "-o", str(output), "--model", str(model)]
    return main([*args, *FAST, *extra])


def _luma10(path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        out = []
        for frame in container.decode(video=0):
            plane = frame.planes[0]
            rows = np.frombuffer(plane, np.uint16).reshape(-1, plane.line_size // 2)
            out.append(rows[: frame.height, : frame.width].astype(int))
        return out


def _rgb(path, matrix: str = "ITU709") -> np.ndarray:
    """An independent decode: swscale with the matrix named, 8-bit RGB."""
    from av.video.reformatter import Interpolation

    accurate = Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND
    with av.open(str(path)) as container:
        return np.stack(
            [
                f.to_ndarray(
                    format="rgb24",
                    src_colorspace=matrix,
                    src_color_range="MPEG",
                    interpolation=accurate,
                )
                for f in container.decode(video=0)
            ]
        ).astype(np.int16)


def test_10_bit_grey_and_ramp_pass_through_without_banding(tmp_path, tiny_model_dir, passthrough):
    flat = [np.full((64, 128), 517, np.uint16), *ramp_planes(128, 64, 0, 0)[1:]]
    ramp = ramp_planes(128, 64, 64, 174)  # 111 codes across the width
    for name, planes in (("flat", flat), ("ramp", ramp)):
        source = encode_planes(tmp_path / f"{name}.mov", [planes] * 3, pix_fmt="yuv422p10le",
                               options={"profile": "3"}, tags={"colorspace": BT709})  # fmt: skip
        edited = write_image(tmp_path / "e.png", np.full((64, 128, 3), 128, np.uint8))
        output = tmp_path / f"{name}_out.mov"
        status = _edit(source, edited, output, tiny_model_dir, "--width", "128", "--height", "64")
        assert status == 0
        want = planes[0].astype(int)
        for got in _luma10(output):
            assert np.abs(got - want).max() <= 1  # no banding beyond one 10-bit code
            assert len(np.unique(got)) == len(np.unique(want))


def test_hlg_comes_back_hlg_at_10_bits(tmp_path, tiny_model_dir, passthrough):
    y = np.tile(np.linspace(64, 940, 128).round().astype(np.uint16), (64, 1))  # black to peak
    cb = np.full((32, 64), 512, np.uint16)
    cr = np.full((32, 64), 512, np.uint16)
    cb[:, 20:30], cr[:, 20:30] = 500, 530  # a warm, in-gamut tint in the mid-tones
    tags = {"colorspace": BT2020, "color_primaries": BT2020, "color_trc": TRC_HLG,
            "color_range": LIMITED}  # fmt: skip
    source = encode_planes(tmp_path / "hlg.mp4", [[y, cb, cr]] * 3, pix_fmt="yuv420p10le",
                           codec="libx265", tags=tags,
                           options={"x265-params": "log-level=error:lossless=1:bframes=0"})  # fmt: skip
    edited = write_image(tmp_path / "e.png", np.full((64, 128, 3), 200, np.uint8))
    for fmt in ("mov", "mp4"):
        output = tmp_path / f"out.{fmt}"
        assert (
            _edit(source, edited, output, tiny_model_dir, "--width", "128", "--height", "64") == 0
        )
        with av.open(str(output)) as container:
            frame = next(container.decode(video=0))
            assert (frame.color_primaries, frame.color_trc, frame.colorspace) == (9, 18, 9)
            assert "10" in frame.format.name
        got = _luma10(output)[0]
        assert np.abs(got - y).max() <= 2  # tone-mapped for the model, and back
    row = passthrough[0][0].numpy()[1, 0, 30:]  # green, along the neutral part of the ramp
    assert np.all(np.diff(row) > 0)  # SDR for the model, every HDR level still distinct


def test_phone_clip_comes_back_rotated_and_an_upright_edit_is_accepted(
    tmp_path, tiny_model_dir, passthrough
):
    frames = pattern_frames(3, 160, 90)
    source = encode_rgb(tmp_path / "phone.mp4", frames, pix_fmt="yuv444p", options={"qp": "0"},
                        rotation=-90, tags={"colorspace": BT709})  # fmt: skip
    upright = np.ascontiguousarray(np.rot90(frames[0], -1))  # 90x160, as the phone shows it
    edited = write_image(tmp_path / "upright.png", upright)
    output = tmp_path / "out.mp4"
    assert _edit(source, edited, output, tiny_model_dir, "--width", "64", "--height", "128") == 0
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        frame = next(container.decode(stream))
        assert (frame.width, frame.height, frame.rotation) == (160, 90, -90)
    restored = _rgb(output)
    assert np.abs(restored - frames).mean() < 6  # the same picture, stored the same way


def test_anamorphic_clip_keeps_its_pixel_aspect_and_takes_a_display_size_edit(
    tmp_path, tiny_model_dir, passthrough
):
    frames = pattern_frames(3, 320, 240)
    source = encode_rgb(tmp_path / "ana.mov", frames, sar=Fraction(4, 3),
                        tags={"colorspace": BT709}, **PRORES)  # fmt: skip
    shown = cv2.resize(frames[0], (427, 240), interpolation=cv2.INTER_AREA)  # as displayed
    edited = write_image(tmp_path / "shown.png", shown)
    output = tmp_path / "out.mov"
    assert _edit(source, edited, output, tiny_model_dir, "--width", "128", "--height", "64") == 0
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height) == (320, 240)
        assert stream.sample_aspect_ratio == Fraction(4, 3)


def test_untagged_720p_red_stays_red_and_is_tagged_bt709(tmp_path, tiny_model_dir, passthrough):
    red = np.zeros((3, 720, 1280, 3), np.uint8)
    red[..., 0] = 255
    source = encode_rgb(tmp_path / "red.mp4", red, matrix="ITU709", pix_fmt="yuv444p",
                        options={"qp": "0"})  # fmt: skip
    edited = write_image(tmp_path / "e.png", red[0])
    output = tmp_path / "out.mp4"
    assert _edit(source, edited, output, tiny_model_dir, "--width", "128", "--height", "64") == 0
    with av.open(str(output)) as container:
        frame = next(container.decode(video=0))
        assert (frame.colorspace, frame.color_primaries, frame.color_trc) == (1, 1, 1)
    got = _rgb(output)[:, 200:520, 300:900]
    assert np.abs(got - (255, 0, 0)).max() <= 3  # not (233, 0, 2)


@pytest.mark.slow
def test_4k_outside_the_mask_is_the_source_at_full_resolution(tmp_path, tiny_model_dir):
    """The real tiny model (random weights) re-renders the frame at 64x128; with the mask,
    everything outside the feathered region is the 4K source's own pixels."""
    width, height = 3840, 2160
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([40 + 150 * x / width, 40 + 150 * y / height, 90 + 0 * x], axis=-1)
    fine = (np.sin(x / 3.0) * 20)[..., None]  # detail a 64x128 re-render cannot hold
    frames = np.stack([np.clip(base + fine + 3 * i, 0, 255) for i in range(2)]).astype(np.uint8)
    source = encode_rgb(tmp_path / "uhd.mp4", frames, pix_fmt="yuv420p", options={"crf": "8"},
                        tags={"colorspace": BT709})  # fmt: skip
    mask = np.zeros((216, 384), np.uint8)
    mask[20:100, 30:150] = 255  # top left, in display coordinates at a tenth of the size
    mask_path = write_image(tmp_path / "mask.png", mask)
    edited = frames[0][::10, ::10].copy()
    edited[20:100, 30:150] = (255, 0, 0)
    edited_path = write_image(tmp_path / "e.png", edited)
    outside = np.ones((height, width), bool)
    outside[: 100 * 10 + 200, : 150 * 10 + 200] = False  # the region, widened by the feather
    reference = _rgb(source)
    for keep in (True, False):
        output = tmp_path / f"keep{keep}.mov"
        extra = [] if keep else ["--no-keep-unedited"]
        status = _edit(source, edited_path, output, tiny_model_dir, "--mask", str(mask_path),
                       "--width", "128", "--height", "64", *extra)  # fmt: skip
        assert status == 0
        got = _rgb(output)
        assert got.shape == reference.shape  # full 4K
        error = np.abs(got - reference)[:, outside]
        if keep:
            assert error.max() <= 2 and error.mean() < 0.1  # ProRes's precision, nothing more
        else:
            assert error.mean() > 5  # the model's re-render, upscaled
        inside = np.abs(got - reference)[:, 300:700, 400:1300].mean()
        assert inside > 5  # the edit region is the model's either way


def test_timecode_audio_and_frame_numbers_reach_the_output(tmp_path, tiny_model_dir, passthrough):
    rate = 48000
    t = np.arange(rate) / rate
    sound = np.stack([0.3 * np.sin(2 * np.pi * 330 * t)] * 2).astype(np.float32)
    source = encode_rgb(tmp_path / "tc.mov", pattern_frames(25, 128, 64), timecode="01:00:00:00",
                        audio=(sound, rate), tags={"colorspace": BT709}, **PRORES)  # fmt: skip
    edited = write_image(tmp_path / "e.png", pattern_frames(4, 128, 64)[3])
    output = tmp_path / "out.mov"
    args = ["--in", "3", "--out", "13", "--width", "128", "--height", "64"]
    assert _edit(source, edited, output, tiny_model_dir, *args) == 0
    with av.open(str(output)) as container:
        video_stream = container.streams.video[0]
        assert video_stream.frames == 10
        assert video_stream.metadata.get("timecode") == "01:00:00:03"
        sound_stream = container.streams.audio[0]
        samples = np.concatenate(
            [f.to_ndarray().reshape(-1, 2).T for f in container.decode(sound_stream)], axis=1
        )
    expected = np.round(sound[:, 5760:24960] * 32767) / 32768  # frames 3..12 at 25 fps
    assert samples.shape[1] == 19200
    np.testing.assert_allclose(samples / 32768, expected, atol=2 / 32768)
    quiet = tmp_path / "quiet.mov"
    assert _edit(source, edited, quiet, tiny_model_dir, *args, "--no-audio") == 0
    with av.open(str(quiet)) as container:
        assert not container.streams.audio


def test_alpha_is_carried_to_prores_4444_and_dropped_from_mp4_with_a_warning(
    tmp_path, tiny_model_dir, passthrough, caplog
):
    y = np.full((64, 128), 500, np.uint16)
    c = np.full((64, 128), 512, np.uint16)
    a = np.tile(np.linspace(0, 1023, 128).astype(np.uint16), (64, 1))
    source = encode_planes(tmp_path / "a.mov", [[y, c, c, a]] * 3, pix_fmt="yuva444p10le",
                           options={"profile": "4", "alpha_bits": "16"})  # fmt: skip
    edited = write_image(tmp_path / "e.png", np.full((64, 128, 3), 100, np.uint8))
    output = tmp_path / "out.mov"
    assert _edit(source, edited, output, tiny_model_dir, "--width", "128", "--height", "64") == 0
    with av.open(str(output)) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name.startswith("yuva444p")
        rows = np.frombuffer(frame.planes[3], np.uint16).reshape(64, -1)[:, :128]
    np.testing.assert_allclose(rows[0] / (2**frame.format.components[3].bits - 1),
                               np.linspace(0, 1, 128), atol=2e-3)  # fmt: skip
    caplog.clear()
    assert _edit(source, edited, tmp_path / "out.mp4", tiny_model_dir, "--width", "128",
                 "--height", "64") == 0  # fmt: skip
    assert "alpha" in caplog.text and "dropped" in caplog.text


def test_interlaced_source_is_deinterlaced_with_a_warning(
    tmp_path, tiny_model_dir, passthrough, caplog
):
    frames = pattern_frames(3, 128, 64)
    source = encode_rgb(tmp_path / "i.mp4", frames, pix_fmt="yuv444p",
                        options={"qp": "0", "flags": "+ilme+ildct", "x264-params": "tff=1"},
                        tags={"colorspace": BT709})  # fmt: skip
    edited = write_image(tmp_path / "e.png", frames[0])
    output = tmp_path / "out.mov"
    assert _edit(source, edited, output, tiny_model_dir, "--width", "128", "--height", "64") == 0
    assert "interlaced" in caplog.text and "progressive" in caplog.text
    with av.open(str(output)) as container:
        assert not next(container.decode(video=0)).interlaced_frame


def test_an_image_sequence_is_a_source_with_its_rate_and_frame_numbers(
    tmp_path, tiny_model_dir, passthrough
):
    frames = [f.astype(np.uint16) * 257 for f in pattern_frames(8, 128, 64)]
    folder = make_sequence(tmp_path / "shot", frames, "png", first=1001)
    edited = write_image(tmp_path / "e.png", frames[2])
    output = tmp_path / "out.mov"
    args = ["--fps", "24000/1001", "--in", "1003", "--out", "1008"]
    assert _edit(folder / "frame.####.png", edited, output, tiny_model_dir, *args,
                 "--width", "128", "--height", "64") == 0  # fmt: skip
    with av.open(str(output)) as container:
        stream = container.streams.video[0]
        assert stream.frames == 5 and stream.average_rate == Fraction(24000, 1001)
        first = next(container.decode(stream)).to_ndarray(format="rgb48le")
    assert np.abs(first.astype(int) - frames[2]).max() < 3 * 257  # 10-bit ProRes of frame 1003


def test_a_log_source_uses_the_input_lut_both_ways(tmp_path, tiny_model_dir, passthrough):
    frames = pattern_frames(3, 128, 64)
    source = encode_rgb(tmp_path / "log.mov", frames, tags={"colorspace": BT709}, **PRORES)
    lut = write_cube(tmp_path / "log2rec709.cube", np.linspace(0, 1, 64) ** 0.5)
    edited = write_image(tmp_path / "e.png", frames[0])
    output = tmp_path / "out.mov"
    args = ["--input-lut", str(lut), "--width", "128", "--height", "64"]
    assert _edit(source, edited, output, tiny_model_dir, *args) == 0
    error = np.abs(_rgb(output) - _rgb(source))  # written back in the log encoding:
    assert error.max() <= 5 and error.mean() < 0.5  # one more ProRes generation, no more
    seen = (passthrough[0][0].numpy() + 1) / 2
    plain = frames[0].transpose(2, 0, 1) / 255
    assert seen.mean() > plain.mean() + 0.05  # the model saw the LUT's display rendering


def test_a_psd_with_a_saved_selection_is_used_as_edited(
    tmp_path, tiny_model_dir, passthrough, monkeypatch
):
    from framerelay.engine import run

    frames = pattern_frames(3, 128, 64)
    source = encode_rgb(tmp_path / "s.mov", frames, tags={"colorspace": BT709}, **PRORES)
    selection = np.zeros((1, 64, 128), np.uint8)  # a saved selection, mostly black
    psd = make_raw_psd(tmp_path / "edit.psd",
                       np.concatenate([frames[0].transpose(2, 0, 1), selection]),
                       resources={1057: version_info()})  # fmt: skip
    prepared = []
    original = run._prepare_edit

    def keep(*args, **kwargs):
        prepared.append(original(*args, **kwargs))
        return prepared[-1]

    monkeypatch.setattr(run, "_prepare_edit", keep)
    output = tmp_path / "out.mov"
    assert _edit(source, psd, output, tiny_model_dir, "--width", "128", "--height", "64") == 0
    edit_frame = (prepared[0].frame[0].numpy().transpose(1, 2, 0) + 1) / 2 * 255
    assert np.abs(edit_frame - frames[0]).mean() < 2  # the picture, not black


def test_colour_the_engine_cannot_map_is_refused_with_a_hint(tmp_path, tiny_model_dir, capsys):
    source = encode_rgb(tmp_path / "ictcp.mov", pattern_frames(3, 128, 64),
                        tags={"colorspace": colour.MATRIX_ICTCP}, **PRORES)  # fmt: skip
    edited = write_image(tmp_path / "e.png", pattern_frames(1, 128, 64)[0])
    status = _edit(source, edited, tmp_path / "o.mov", tiny_model_dir)
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and "ICtCp" in err[0] and err[1].startswith("hint: ")
