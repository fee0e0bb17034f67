import logging

import numpy as np
import pytest

from framerelay.errors import EditUnreadableError, InvalidSpecError
from framerelay.media.image import load_image, save_png, save_tiff16, to_uint8, to_uint16
from tests.media_factory import make_psd, pattern_frame, write_image

RED_BOX = (slice(5, 15), slice(10, 30))  # rows, columns of make_psd's red layer


@pytest.fixture
def rgb8():
    return pattern_frame(2, 64, 48)


def test_png_8bit_loads_as_float_rgb(tmp_path, rgb8):
    image = load_image(write_image(tmp_path / "a.png", rgb8))
    assert image.dtype == np.float32 and image.shape == (48, 64, 3)
    np.testing.assert_allclose(image, rgb8 / 255, atol=1e-7)


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_16bit_rgb_keeps_precision_beyond_8_bits(tmp_path, suffix):
    image16 = np.zeros((4, 6, 3), np.uint16)
    image16[:, :3] = (1000, 20000, 65535)
    image16[:, 3:] = (1001, 20001, 65534)  # differs only in the lowest bit
    loaded = load_image(write_image(tmp_path / f"deep{suffix}", image16))
    np.testing.assert_allclose(loaded * 65535, image16, atol=1e-2)
    assert loaded[0, 3, 0] > loaded[0, 0, 0]  # an 8-bit reader would make these equal


def test_rgba_is_composited_over_black_with_a_warning(tmp_path, caplog):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = 255
    rgba[:4, :, 3] = 0  # top half transparent
    rgba[4:6, :, 3] = 128
    with caplog.at_level(logging.WARNING, logger="framerelay.media.image"):
        image = load_image(write_image(tmp_path / "alpha.png", rgba))
    np.testing.assert_allclose(image[:4], 0)
    colour = np.broadcast_to(np.array([200, 100, 50]) / 255, (2, 8, 3))
    np.testing.assert_allclose(image[4:6], colour * 128 / 255, atol=1e-6)
    np.testing.assert_allclose(image[6:], colour, atol=1e-6)
    assert "transparent areas" in caplog.text and "they show black" in caplog.text


def test_opaque_alpha_is_dropped_silently(tmp_path, caplog, rgb8):
    rgba = np.dstack([rgb8, np.full(rgb8.shape[:2], 255, np.uint8)])
    with caplog.at_level(logging.WARNING):
        image = load_image(write_image(tmp_path / "opaque.png", rgba))
    np.testing.assert_allclose(image, rgb8 / 255, atol=1e-7)
    assert caplog.text == ""


def test_16bit_rgba_png(tmp_path):
    rgba = np.full((4, 4, 4), 65535, np.uint16)
    rgba[..., 0] = 40001
    loaded = load_image(write_image(tmp_path / "deep_alpha.png", rgba))
    np.testing.assert_allclose(loaded[..., 0] * 65535, 40001, atol=1e-2)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_grayscale_becomes_rgb(tmp_path, dtype):
    top = np.iinfo(dtype).max
    gray = np.linspace(0, top, 40, dtype=dtype).reshape(5, 8)
    image = load_image(write_image(tmp_path / "gray.png", gray))
    assert image.shape == (5, 8, 3)
    for channel in range(3):
        np.testing.assert_allclose(image[..., channel], gray / top, atol=1e-6)


@pytest.mark.parametrize(
    ("suffix", "params", "tolerance"),
    [(".jpg", (1, 95), 0.03), (".webp", (64, 101), 0.0), (".bmp", (), 0.0), (".tif", (), 0.0)],
)
def test_other_formats(tmp_path, rgb8, suffix, params, tolerance):
    image = load_image(write_image(tmp_path / f"a{suffix}", rgb8, params))
    assert image.shape == (48, 64, 3)
    assert np.abs(image - rgb8 / 255).mean() <= tolerance + 1e-7


def test_psd_with_embedded_composite(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        image = load_image(make_psd(tmp_path / "edit.psd"))
    assert image.shape == (48, 64, 3)
    np.testing.assert_allclose(image[RED_BOX] * 255, np.broadcast_to((255, 0, 0), (10, 20, 3)))
    np.testing.assert_allclose(image[30, 40] * 255, (30, 60, 200), atol=1e-4)
    assert caplog.text == ""


def test_psd_without_composite_renders_the_layers_and_warns(tmp_path, caplog):
    path = make_psd(tmp_path / "edit.psd", composite=False)
    from psd_tools import PSDImage

    assert not PSDImage.open(path).has_preview()  # the helper really made one without a composite
    with caplog.at_level(logging.WARNING):
        image = load_image(path)
    np.testing.assert_allclose(image[RED_BOX] * 255, np.broadcast_to((255, 0, 0), (10, 20, 3)))
    np.testing.assert_allclose(
        image[30, 40] * 255, (30, 60, 200), atol=1e-4
    )  # not the white preview
    assert "Maximize PSD and PSB File Compatibility" in caplog.text


def test_16bit_psd_keeps_precision(tmp_path):
    from psd_tools import PSDImage

    deep = np.zeros((4, 6, 3), np.uint16)
    deep[:, :3], deep[:, 3:] = (1000, 2000, 3000), (1001, 2001, 3001)
    psd = PSDImage.new("RGB", (6, 4), depth=16)
    psd.create_pixel_layer_from_array(deep, name="deep")
    psd.save(str(tmp_path / "deep.psd"))
    image = load_image(tmp_path / "deep.psd")
    np.testing.assert_allclose(image * 65535, deep, atol=0.05)


def test_psd_is_detected_by_content_not_extension(tmp_path):
    path = make_psd(tmp_path / "edit.psd")
    renamed = path.rename(tmp_path / "edit.png")
    assert load_image(renamed)[10, 20, 0] == 1.0


def _truncated_png(tmp_path, rgb8):
    data = write_image(tmp_path / "full.png", rgb8).read_bytes()
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d, _: d / "missing.png", "not found"),
        (lambda d, _: d, "folder"),
        (lambda d, _: (d / "empty.png", (d / "empty.png").touch())[0], "empty"),
        (lambda d, _: (d / "t.png", (d / "t.png").write_text("hello " * 50))[0], "cannot decode"),
        (_truncated_png, "cannot decode"),
        (lambda d, _: (d / "x.psd", (d / "x.psd").write_bytes(b"8BPS" + bytes(40)))[0], "PSD"),
    ],
    ids=["missing", "folder", "empty", "text", "truncated-png", "damaged-psd"],
)
def test_unreadable_edits(tmp_path, rgb8, make, words):
    with pytest.raises(EditUnreadableError) as error:
        load_image(make(tmp_path, rgb8))
    assert words in error.value.message
    assert error.value.hint.strip()


def test_to_uint8_rounds_and_clips():
    image = np.array([[[-0.5, 0.0, 0.5 / 255], [0.499 / 255, 1.0, 7.0]]], np.float32)
    np.testing.assert_array_equal(to_uint8(image), [[[0, 0, 1], [0, 255, 255]]])
    as_bytes = np.array([[[1, 2, 3]]], np.uint8)
    assert to_uint8(as_bytes) is as_bytes


def test_to_uint16_scales_each_input_type():
    np.testing.assert_array_equal(to_uint16(np.array([0, 128, 255], np.uint8)), [0, 32896, 65535])
    np.testing.assert_array_equal(to_uint16(np.array([0.0, 0.5, 2.0])), [0, 32768, 65535])


def test_save_png_round_trips_8bit(tmp_path, rgb8):
    path = save_png(rgb8 / 255, tmp_path / "frame.png")
    np.testing.assert_array_equal(to_uint8(load_image(path)), rgb8)


def test_save_tiff16_keeps_16bit_precision(tmp_path):
    image = np.linspace(0, 1, 4 * 6 * 3, dtype=np.float32).reshape(4, 6, 3)
    path = save_tiff16(image, tmp_path / "frame.tiff")
    np.testing.assert_allclose(load_image(path), image, atol=0.6 / 65535)


def test_saving_refuses_to_overwrite_and_leaves_no_temp_files(tmp_path, rgb8):
    save_png(rgb8, tmp_path / "frame.png")
    with pytest.raises(InvalidSpecError):
        save_png(np.zeros_like(rgb8), tmp_path / "frame.png")
    np.testing.assert_array_equal(to_uint8(load_image(tmp_path / "frame.png")), rgb8)
    save_png(np.zeros_like(rgb8), tmp_path / "frame.png", overwrite=True)
    assert load_image(tmp_path / "frame.png").max() == 0
    assert [p.name for p in tmp_path.iterdir()] == ["frame.png"]


def test_saving_checks_the_shape(tmp_path):
    with pytest.raises(ValueError):
        save_png(np.zeros((4, 4), np.uint8), tmp_path / "frame.png")
    assert list(tmp_path.iterdir()) == []


def test_the_engine_and_the_round_trip_read_an_edit_with_one_alpha_rule(tmp_path):
    """The engine's reader and the round trip's validator: the same pixels, the same warning,
    and a fully transparent frame refused by both."""
    from framerelay.roundtrip.validate import read_edited_frame

    rgba = np.zeros((6, 8, 4), np.uint16)
    rgba[..., :3] = (60000, 30000, 1000)
    rgba[..., 3] = 65535
    rgba[:2, :, 3] = 16384  # a quarter opaque
    path = write_image(tmp_path / "edit.png", rgba)
    under = np.full((3, 4, 3), 128, np.uint8)  # the exported frame, at another size
    engine = load_image(path, under)
    round_trip = read_edited_frame(path, (8, 6), background=under)
    np.testing.assert_array_equal(engine, round_trip.image)
    quarter = 16384 / 65535
    expected = np.array([60000, 30000, 1000]) / 65535 * quarter + 128 / 255 * (1 - quarter)
    np.testing.assert_allclose(engine[:2], np.broadcast_to(expected, (2, 8, 3)), atol=1e-6)
    np.testing.assert_allclose(engine[2:] * 65535, rgba[2:, :, :3], atol=1e-2)
    assert round_trip.warnings == (
        "edit.png has transparent areas (33.3% of it); they show the original frame.",
    )

    clear = write_image(tmp_path / "clear.png", np.zeros((6, 8, 4), np.uint8))
    for read in (load_image, lambda p: read_edited_frame(p, (8, 6), attempts=1)):
        with pytest.raises(EditUnreadableError, match="fully transparent"):
            read(clear)
