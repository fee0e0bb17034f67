import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from framerelay.errors import InvalidSpecError
from framerelay.media.geometry import Fit, check_edit_aspect, fit_to

TARGET = (256, 192)  # (width, height), multiples of 64


def smooth_frames(n: int, width: int, height: int) -> np.ndarray:
    """Low-frequency content, so resizing errors measure the geometry, not aliasing."""
    y, x = np.mgrid[0:height, 0:width] / max(width, height)
    frames = np.empty((n, height, width, 3), np.uint8)
    for i in range(n):
        frames[i, ..., 0] = 128 + 100 * np.sin(3 * x + i)
        frames[i, ..., 1] = 128 + 100 * np.cos(2 * y - i)
        frames[i, ..., 2] = 40 + 150 * x * y
    return frames


@pytest.mark.parametrize(
    ("source", "box"),
    [
        ((320, 240), (0, 0, 256, 192)),  # 4:3 into 4:3: no padding
        ((320, 180), (0, 24, 256, 168)),  # 16:9: letterbox, 24 px bars
        ((108, 192), (74, 0, 182, 192)),  # 9:16: pillarbox
        ((161, 97), (0, 19, 256, 173)),  # odd size
        ((1920, 1080), (0, 24, 256, 168)),
    ],
)
def test_fit_keeps_aspect_and_centres(source, box):
    fit = fit_to(*source, *TARGET)
    assert fit.content_box == box
    assert fit.left + fit.content_width + fit.right == TARGET[0]
    assert fit.top + fit.content_height + fit.bottom == TARGET[1]
    assert abs(fit.left - fit.right) <= 1 and abs(fit.top - fit.bottom) <= 1
    aspect = source[0] / source[1]
    assert fit.content_width / fit.content_height == pytest.approx(aspect, rel=0.02)
    assert fit.padded == (box != (0, 0, *TARGET))


@given(
    st.integers(1, 4000),
    st.integers(1, 4000),
    st.sampled_from([64, 128, 576, 1024]),
    st.sampled_from([64, 320, 576, 1024]),
)
def test_fit_touches_one_side_and_never_stretches(source_w, source_h, target_w, target_h):
    fit = fit_to(source_w, source_h, target_w, target_h)
    assert 1 <= fit.content_width <= target_w and 1 <= fit.content_height <= target_h
    assert fit.content_width == target_w or fit.content_height == target_h
    assert min(fit.left, fit.right, fit.top, fit.bottom) >= 0
    # the scale on both axes agrees to within one pixel of rounding
    scale = min(target_w / source_w, target_h / source_h)
    assert abs(fit.content_width - source_w * scale) <= 1
    assert abs(fit.content_height - source_h * scale) <= 1


@pytest.mark.parametrize("source", [(320, 240), (320, 180), (108, 192), (161, 97), (97, 161)])
def test_to_model_layout_range_and_black_padding(source):
    fit = fit_to(*source, *TARGET)
    model = fit.to_model(smooth_frames(2, *source))
    assert model.shape == (2, 3, TARGET[1], TARGET[0]) and model.dtype == np.float32
    assert model.min() >= -1 and model.max() <= 1
    x0, y0, x1, y1 = fit.content_box
    padding = np.ones(model.shape[2:], bool)
    padding[y0:y1, x0:x1] = False
    assert np.all(model[:, :, padding] == -1)  # black
    assert model[:, :, y0:y1, x0:x1].mean() > -0.5  # the content is there


@pytest.mark.parametrize("source", [(320, 240), (320, 180), (108, 192), (161, 97), (97, 161)])
def test_round_trip_returns_the_exact_source_shape_and_close_content(source):
    fit = fit_to(*source, *TARGET)
    frames = smooth_frames(3, *source)
    back = fit.from_model(fit.to_model(frames))
    assert back.shape == frames.shape and back.dtype == np.uint8
    error = np.abs(back.astype(int) - frames.astype(int))
    assert error.mean() < 1.5 and error.max() <= 12


def test_same_size_round_trip_is_exact():
    fit = fit_to(*TARGET, *TARGET)
    frames = smooth_frames(2, *TARGET)
    np.testing.assert_array_equal(fit.from_model(fit.to_model(frames)), frames)
    np.testing.assert_array_equal(fit.from_model_uint8(fit.to_model_uint8(frames)), frames)


def test_padding_content_never_reaches_the_output():
    fit = fit_to(320, 180, *TARGET)
    model = fit.to_model(smooth_frames(1, 320, 180))
    noisy = model.copy()
    _, y0, _, y1 = fit.content_box
    noisy[:, :, :y0] = 1.0
    noisy[:, :, y1:] = np.random.default_rng(0).uniform(-1, 1, noisy[:, :, y1:].shape)
    np.testing.assert_array_equal(fit.from_model(noisy), fit.from_model(model))


def test_uint8_and_float_paths_agree():
    fit = fit_to(161, 97, *TARGET)
    frames = smooth_frames(2, 161, 97)
    as_uint8 = fit.to_model_uint8(frames)
    as_float = fit.to_model(frames)
    assert as_uint8.shape == (2, TARGET[1], TARGET[0], 3)
    recovered = (as_float.transpose(0, 2, 3, 1) + 1) / 2 * 255
    assert np.abs(recovered - as_uint8).max() <= 0.5 + 1e-3
    assert np.abs(fit.from_model_uint8(as_uint8).astype(int) - fit.from_model(as_float)).max() <= 1


def test_to_model_accepts_float_images_in_unit_range():
    fit = fit_to(320, 240, *TARGET)
    frames = smooth_frames(1, 320, 240)
    np.testing.assert_allclose(fit.to_model(frames / 255.0), fit.to_model(frames), atol=1e-5)


def test_shape_mismatches_are_rejected():
    fit = fit_to(320, 180, *TARGET)
    with pytest.raises(ValueError):
        fit.to_model(np.zeros((1, 180, 321, 3), np.uint8))
    with pytest.raises(ValueError):
        fit.from_model(np.zeros((1, TARGET[1], TARGET[0], 3), np.float32))  # NHWC, not NCHW
    with pytest.raises(ValueError):
        fit_to(0, 180, *TARGET)


def test_fit_is_a_frozen_value():
    fit = fit_to(320, 180, *TARGET)
    assert fit == fit_to(320, 180, *TARGET)
    assert isinstance(fit, Fit)
    with pytest.raises(AttributeError):
        fit.left = 3


@pytest.mark.parametrize(
    ("edit", "source"),
    [((1920, 1080), (1920, 1080)), ((1024, 576), (1920, 1080)), ((1920, 1088), (1920, 1080))],
)
def test_edit_with_the_same_aspect_is_accepted(edit, source):
    check_edit_aspect(*edit, *source)  # 1920x1088 is 0.7% off: within the 1% tolerance


@pytest.mark.parametrize(
    ("edit", "source"),
    [((1440, 1080), (1920, 1080)), ((1080, 1920), (1920, 1080)), ((1920, 1110), (1920, 1080))],
)
def test_edit_with_another_aspect_is_rejected_with_a_hint(edit, source):
    with pytest.raises(InvalidSpecError) as error:
        check_edit_aspect(*edit, *source)
    assert f"{edit[0]}x{edit[1]}" in error.value.message
    assert f"{source[0]}x{source[1]}" in error.value.hint


def test_aspect_tolerance_is_adjustable():
    check_edit_aspect(1920, 1110, 1920, 1080, tolerance=0.05)
    with pytest.raises(InvalidSpecError):
        check_edit_aspect(1920, 1088, 1920, 1080, tolerance=0.001)
