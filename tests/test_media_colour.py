"""Colour: stored codes <-> R'G'B', untagged defaults, HDR tone mapping and the input LUT."""

from __future__ import annotations

import numpy as np
import pytest

from framerelay.errors import InvalidSpecError, SourceUnreadableError
from framerelay.media import colour as c
from framerelay.media import planes
from tests.media_factory import write_cube

HDR = {
    "pq": c.ColourSpace(c.MATRIX_BT2020_NCL, c.PRIMARIES_BT2020, c.TRC_PQ, c.RANGE_LIMITED),
    "hlg": c.ColourSpace(c.MATRIX_BT2020_NCL, c.PRIMARIES_BT2020, c.TRC_HLG, c.RANGE_LIMITED),
}


@pytest.mark.parametrize(
    ("width", "height", "matrix", "primaries"),
    [
        (1280, 720, c.MATRIX_BT709, c.PRIMARIES_BT709),
        (3840, 2160, c.MATRIX_BT709, c.PRIMARIES_BT709),
        (720, 576, c.MATRIX_SMPTE170M, c.PRIMARIES_BT470BG),
        (720, 480, c.MATRIX_SMPTE170M, c.PRIMARIES_SMPTE170M),
        (160, 90, c.MATRIX_SMPTE170M, c.PRIMARIES_SMPTE170M),
    ],
)
def test_untagged_sources_get_what_players_assume(width, height, matrix, primaries):
    space = c.resolve(2, 2, 2, 0, width=width, height=height)
    assert (space.matrix, space.primaries, space.transfer) == (matrix, primaries, c.TRC_BT709)
    assert space.range == c.RANGE_LIMITED
    assert set(space.assumed) == {"matrix", "primaries", "transfer", "range"}


def test_tags_a_file_has_are_kept():
    space = c.resolve(9, 9, 18, 1, width=1920, height=1080)
    assert (space.matrix, space.primaries, space.transfer, space.range) == (9, 9, 18, 1)
    assert space.assumed == () and space.is_hdr


def test_pure_red_decodes_as_red_with_the_right_matrix():
    """What an untagged BT.709 clip holds for pure red, read with BT.709 (not BT.601)."""
    space = c.ColourSpace()  # BT.709 limited
    y, cb, cr = c.rgb_to_yuv(np.array([[[1.0, 0.0, 0.0]]], np.float32), space, 8)
    codes = [c.quantize(v, 8) for v in (y, cb, cr)]
    assert [int(v[0, 0]) for v in codes] == [63, 102, 240]
    rgb = c.yuv_to_rgb(*codes, space, 8)[0, 0] * 255
    assert np.abs(rgb - (255, 0, 0)).max() < 1.5
    wrong = c.yuv_to_rgb(*codes, c.ColourSpace(matrix=c.MATRIX_SMPTE170M), 8)[0, 0] * 255
    assert abs(wrong[0] - 233) < 2  # what BT.601 makes of it: the 233


@pytest.mark.parametrize("pix_fmt", ["yuv422p10le", "yuv444p10le", "yuva444p10le", "gbrp16le"])
def test_codes_survive_a_trip_through_float_exactly(pix_fmt):
    rng = np.random.default_rng(3)
    rgb = rng.random((9, 14, 3)).astype(np.float32) * 0.8 + 0.1
    alpha = rng.random((9, 14)).astype(np.float32)
    space = c.ColourSpace()
    first = planes.read_planes(planes.from_native(rgb, alpha, space, pix_fmt))
    native, back_alpha = planes.to_native(first, space)
    second = planes.read_planes(planes.from_native(native, back_alpha, space, pix_fmt))
    for a, b in zip(first.channels, second.channels, strict=True):
        np.testing.assert_array_equal(a, b)
    if first.alpha is not None:
        np.testing.assert_array_equal(first.alpha, second.alpha)


def test_pq_and_hlg_curves_match_bt2100():
    assert c.pq_eotf(np.array(1.0)) == pytest.approx(10000, rel=1e-6)
    assert c.pq_eotf(np.array(0.5081)) == pytest.approx(100, rel=2e-3)  # 100 nits ~ 0.508
    assert c.pq_inverse_eotf(np.array(203.0)) == pytest.approx(0.5807, abs=2e-4)  # BT.2408
    assert c.hlg_oetf(np.array(1 / 12)) == pytest.approx(0.5)
    assert c.hlg_oetf(np.array(1.0)) == pytest.approx(1.0, abs=1e-6)
    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(c.hlg_inverse_oetf(c.hlg_oetf(x)), x, atol=1e-9)


@pytest.mark.parametrize("name", ["pq", "hlg"])
def test_hdr_maps_to_sdr_and_back_for_every_colour_in_bt709(name):
    """The documented mapping is invertible for colours inside BT.709 up to the source's peak."""
    space = HDR[name]
    mapping = c.mapping_for(space)
    rng = np.random.default_rng(5)
    peak = mapping.tone.peak
    light709 = rng.random((4000, 3)).astype(np.float32) * np.float32(peak)
    light709[0] = (1.0, 1.0, 1.0)  # reference white
    light709[1] = (0.0, 0.0, 0.0)  # black stays black
    light2020 = light709 @ c.primaries_matrix(c.PRIMARIES_BT709, c.PRIMARIES_BT2020).T
    signal = mapping._relative_to_hdr(light2020.astype(np.float32))
    model = mapping.to_model(signal)
    assert model.min() >= 0 and model.max() <= 1
    white = model[0]
    assert 0.9 < white.mean() < 1.0  # reference white is near SDR white, highlights above it
    np.testing.assert_allclose(mapping.to_native(model), signal, atol=2e-4)  # < 0.2 10-bit code


def test_the_tone_curve_is_monotonic_and_c1_at_the_knee():
    tone = c.ToneMap(peak=1000 / 203)
    m = np.linspace(0, tone.peak, 20001)
    f = tone._curve(m)
    assert np.all(np.diff(f) > 0) and f[-1] == pytest.approx(1.0)
    k = tone.knee
    slope_above = (tone._curve(np.array(k + 1e-6)) - k) / 1e-6
    assert slope_above == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(tone._inverse_curve(f), m, rtol=1e-9, atol=1e-9)


def test_sdr_bt709_is_shown_as_stored():
    mapping = c.mapping_for(c.ColourSpace())
    assert mapping.identity
    x = np.random.default_rng(0).random((5, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(mapping.to_model(x), x)
    np.testing.assert_array_equal(mapping.to_native(x), x)


def test_wide_gamut_sdr_is_converted_and_back():
    space = c.ColourSpace(c.MATRIX_BT2020_NCL, c.PRIMARIES_BT2020, c.TRC_BT2020_10)
    mapping = c.mapping_for(space)
    assert not mapping.identity
    grey = np.full((1, 1, 3), 0.5, np.float32)
    np.testing.assert_allclose(mapping.to_model(grey), grey, atol=1e-5)  # neutrals stay
    inside = np.array([[[0.6, 0.4, 0.3]]], np.float32)  # a skin tone, inside both gamuts
    np.testing.assert_allclose(mapping.to_native(mapping.to_model(inside)), inside, atol=1e-5)


def test_a_1d_cube_lut_is_applied_and_inverted(tmp_path):
    curve = np.linspace(0, 1, 33) ** 0.6  # a log-like lift
    lut = c.load_cube(write_cube(tmp_path / "log.cube", curve))
    x = np.random.default_rng(1).random((8, 8, 3)).astype(np.float32)
    shown = lut.apply(x)
    assert np.all(shown >= x - 1e-6)  # lifted
    np.testing.assert_allclose(lut.invert(shown), x, atol=1e-5)
    mapping = c.mapping_for(c.ColourSpace(), lut)
    np.testing.assert_allclose(mapping.to_native(mapping.to_model(x)), x, atol=1e-5)


def test_3d_and_non_monotonic_luts_are_refused_with_a_hint(tmp_path):
    three = tmp_path / "look.cube"
    three.write_text("LUT_3D_SIZE 2\n" + "0 0 0\n" * 8)
    with pytest.raises(InvalidSpecError, match="3D LUT") as error:
        c.load_cube(three)
    assert "1D" in error.value.hint
    flat = write_cube(tmp_path / "clip.cube", np.minimum(np.linspace(0, 1.2, 17), 1.0))
    with pytest.raises(InvalidSpecError, match="not strictly monotonic"):
        c.load_cube(flat)


@pytest.mark.parametrize(
    "text",
    [
        "LUT_1D_SIZE hf_SECRET\n",
        "LUT_1D_SIZE\n",
        "LUT_1D_SIZE 2\n0 0 0\n1 hf_SECRET 1\n",
        "DOMAIN_MIN hf_SECRET 0 0\n",
        "LUT_1D_INPUT_RANGE 0\n",
    ],
)
def test_a_malformed_cube_is_invalid_spec_without_quoting_the_file(tmp_path, text):
    # Not an internal error (HTTP 500 with a traceback in the log), and not a message or log
    # line that carries the file's words: a token holder may name any file as the input LUT.
    bad = tmp_path / "bad.cube"
    bad.write_text(text)
    with pytest.raises(InvalidSpecError, match=r"not a valid 1D \.cube LUT") as error:
        c.load_cube(bad)
    assert "SECRET" not in str(error.value)
    assert error.value.__cause__ is None and error.value.__suppress_context__


@pytest.mark.parametrize(
    ("space", "words", "hint"),
    [
        (c.ColourSpace(matrix=c.MATRIX_BT2020_CL), "BT.2020 CL", "Transcode"),
        (c.ColourSpace(matrix=c.MATRIX_ICTCP), "ICtCp", "Transcode"),
        (c.ColourSpace(transfer=9), "log or unknown", "--input-lut"),
        (c.ColourSpace(primaries=11), "DCI-P3", "Transcode"),
    ],
)
def test_unsupported_colour_is_one_clear_error(space, words, hint):
    with pytest.raises(SourceUnreadableError, match=words) as error:
        c.check_supported(space, "clip.mov", has_input_transform=False)
    assert hint in error.value.hint
