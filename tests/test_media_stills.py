"""Edited frames as editors save them: PSD extra channels, CMYK with spot colours, 32-bit PSDs,
adjustment layers, planar and premultiplied TIFFs, EXIF orientation, EXR. Each decoded picture is
compared with an independent reader (psd-tools, Pillow, tifffile) or with the known pixels."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps

from framerelay.cli import main
from framerelay.errors import EditUnreadableError
from framerelay.media import colour, image, stills
from framerelay.roundtrip.validate import read_edited_frame
from tests.media_factory import (
    float_frame,
    make_psd_with_curves,
    make_raw_psd,
    version_info,
    write_still_ffmpeg,
)

H, W = 12, 16


def _rgb_planes(values=(200, 100, 50)) -> np.ndarray:
    planes = np.zeros((3, H, W), np.uint8)
    for i, v in enumerate(values):
        planes[i] = v
    planes[0, :, : W // 2] = 20  # a left half of another colour
    return planes


def _selection() -> np.ndarray:
    mask = np.zeros((1, H, W), np.uint8)
    mask[0, 2:6, 3:9] = 255  # a saved selection: mostly black
    return mask


def test_psd_selection_channel_is_not_alpha(tmp_path):
    """An RGB PSD with a fourth channel that is a saved selection: colours as stored."""
    path = make_raw_psd(
        tmp_path / "sel.psd",
        np.concatenate([_rgb_planes(), _selection()]),
        resources={1057: version_info()},
    )
    still = stills.read(path)
    assert still.alpha is None
    np.testing.assert_array_equal(np.round(still.rgb * 255), _rgb_planes().transpose(1, 2, 0))
    assert image.load_image(path).max() > 0.7  # not all black


def test_psd_transparency_is_alpha_when_the_file_says_so(tmp_path):
    """A negative layer count: the first extra channel is the merged transparency."""
    alpha = _selection()
    colour_planes = _rgb_planes().astype(np.float32)
    matted = colour_planes * (alpha / 255.0) + 255 * (1 - alpha / 255.0)  # stored on white
    path = make_raw_psd(
        tmp_path / "alpha.psd",
        np.concatenate([np.round(matted), alpha]).astype(np.uint8),
        layer_count=-1,
        resources={1057: version_info()},
    )
    still = stills.read(path)
    np.testing.assert_array_equal(still.alpha, alpha[0] / 255.0)
    inside = still.rgb[3, 4] * 255
    np.testing.assert_allclose(inside, (20, 100, 50), atol=0.5)  # unmatted where opaque


def test_cmyk_psd_with_a_spot_channel_matches_psd_tools_without_it(tmp_path):
    """A CMYK PSD plus a spot channel: the spot is ignored; the CMYK composite is what
    psd-tools (through Pillow) renders for the same file without the spot channel."""
    ink = np.zeros((4, H, W), np.float32)
    ink[0, :, :8] = 0.8  # cyan on the left
    ink[1, :, 8:] = 0.6  # magenta on the right
    ink[3] = 0.1
    stored = np.round((1 - ink) * 255).astype(np.uint8)
    spot = np.zeros((1, H, W), np.uint8)  # 255 - ink: a spot colour covering everything
    display_info = struct.pack(">I", 1) + bytes(13) + b"\x02" + b"\x00"  # kind 2: spot
    with_spot = make_raw_psd(
        tmp_path / "spot.psd",
        np.concatenate([stored, spot]),
        mode=4,
        resources={1057: version_info(), 1077: display_info},
    )
    plain = make_raw_psd(tmp_path / "plain.psd", stored, mode=4, resources={1057: version_info()})
    from psd_tools import PSDImage

    reference = np.asarray(PSDImage.open(plain).composite().convert("RGB"), np.float32)
    still = stills.read(with_spot)
    assert still.rgb.max() < 0.95  # not the pure white
    np.testing.assert_allclose(still.rgb * 255, reference, atol=2)
    assert any("CMYK" in w for w in still.warnings)  # no profile: the naive formula, said so


def test_32_bit_psd_is_linear_light_encoded_with_the_srgb_curve(tmp_path):
    linear = colour.srgb_decode(np.float32(178 / 255))
    planes = np.full((3, H, W), linear, np.float32)
    planes[:, 0, 0] = 4.0  # a highlight above white
    path = make_raw_psd(tmp_path / "float.psd", planes, depth=32, resources={1057: version_info()})
    still = stills.read(path)
    assert still.bit_depth == 32
    np.testing.assert_allclose(still.rgb[5, 5] * 255, (178, 178, 178), atol=0.01)
    np.testing.assert_allclose(still.rgb[0, 0], 1.0, atol=1e-6)
    assert any("above 1.0" in w for w in still.warnings)


def test_adjustment_layers_render_with_the_composite_extra(tmp_path):
    """Curves needs scipy (psd-tools[composite]); it is installed, so the layers render."""
    import aggdraw  # noqa: F401  the other half of the extra
    import scipy  # noqa: F401

    path = make_psd_with_curves(tmp_path / "curves.psd", (30, 60, 200))
    still = stills.read(path)
    np.testing.assert_allclose(still.rgb[4, 4] * 255, (225, 195, 55), atol=1)
    assert any("no embedded composite" in w for w in still.warnings)


def test_a_missing_render_library_names_the_extra_not_save_again(tmp_path, monkeypatch):
    import psd_tools.composite.adjustments as adjustments

    def needs_scipy(*args, **kwargs):
        raise ImportError("Gradient fills require: scipy", name="scipy")

    monkeypatch.setitem(adjustments.ADJUSTMENT_FUNC, "curves", needs_scipy)
    path = make_psd_with_curves(tmp_path / "curves.psd", (30, 60, 200))
    with pytest.raises(stills.StillError) as error:
        stills.read(path)
    assert "scipy" in error.value.message and "psd-tools[composite]" in error.value.hint


def test_16_bit_planar_tiff_decodes_exactly_every_time(tmp_path):
    import tifffile

    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 65536, (H, W, 3), dtype=np.uint16)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, pixels.transpose(2, 0, 1), photometric="rgb", planarconfig="separate")
    first, second = stills.read(path), stills.read(path)
    np.testing.assert_array_equal(first.rgb, second.rgb)
    np.testing.assert_array_equal(np.round(first.rgb * 65535).astype(np.uint16), pixels)
    lzw = tmp_path / "planar-lzw.tif"
    tifffile.imwrite(
        lzw, pixels.transpose(2, 0, 1), photometric="rgb", planarconfig="separate",
        compression="lzw", predictor=True,
    )  # fmt: skip
    np.testing.assert_array_equal(stills.read(lzw).rgb, first.rgb)


def test_8_bit_planar_tiff_agrees_with_pillow(tmp_path):
    import tifffile

    pixels = np.random.default_rng(8).integers(0, 256, (H, W, 3), dtype=np.uint8)
    path = tmp_path / "planar8.tif"
    tifffile.imwrite(path, pixels.transpose(2, 0, 1), photometric="rgb", planarconfig="separate")
    pillow = np.asarray(Image.open(path).convert("RGB"))
    np.testing.assert_array_equal(np.round(stills.read(path).rgb * 255).astype(np.uint8), pillow)


def test_associated_alpha_is_divided_out_once(tmp_path):
    import tifffile

    straight = np.zeros((H, W, 3), np.float32)
    straight[:] = (0.8, 0.4, 0.2)
    alpha = np.tile(np.linspace(0.25, 1.0, W, dtype=np.float32), (H, 1))
    premultiplied = straight * alpha[..., None]
    data = np.round(np.dstack([premultiplied, alpha]) * 65535).astype(np.uint16)
    path = tmp_path / "assoc.tif"
    tifffile.imwrite(path, data, photometric="rgb", extrasamples=["assocalpha"])
    still = stills.read(path)
    np.testing.assert_allclose(still.rgb, straight, atol=1e-4)
    np.testing.assert_allclose(still.alpha, alpha, atol=1e-4)
    over_black = image.load_image(path)  # the premultiplied values, not multiplied twice
    np.testing.assert_allclose(over_black, premultiplied, atol=1e-4)


def test_tiff_extra_sample_without_meaning_is_not_alpha(tmp_path):
    import tifffile

    data = np.zeros((H, W, 4), np.uint8)
    data[..., :3] = (10, 200, 30)
    path = tmp_path / "extra.tif"
    tifffile.imwrite(path, data, photometric="rgb", extrasamples=["unspecified"])
    still = stills.read(path)
    assert still.alpha is None and np.allclose(still.rgb * 255, (10, 200, 30))


def _jpeg_with_orientation(pixels: np.ndarray, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=100, subsampling=0, exif=exif)
    return buffer.getvalue()


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_honoured_like_pillow(tmp_path, orientation):
    pixels = np.zeros((H, W, 3), np.uint8)
    pixels[:4, :6] = (255, 0, 0)  # a red corner shows which way is up
    pixels[-3:, -2:] = (0, 0, 255)
    data = _jpeg_with_orientation(pixels, orientation)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    still = stills.decode(data, "phone.jpg")
    assert still.rgb.shape == upright.shape
    assert np.abs(still.rgb * 255 - upright).max() <= 2  # two JPEG decoders


def test_exif_orientation_makes_an_upright_edit_fit_a_portrait_source(tmp_path):
    """A phone JPEG stored landscape with orientation 6 is a portrait picture."""
    data = _jpeg_with_orientation(np.zeros((90, 160, 3), np.uint8), 6)
    path = tmp_path / "portrait.jpg"
    path.write_bytes(data)
    frame = read_edited_frame(path, (90, 160))  # the source is displayed 90x160
    assert frame.image.shape == (160, 90, 3)


def test_exr_edit_is_linear_light_encoded_with_the_srgb_curve(tmp_path):
    linear = np.zeros((H, W, 3), np.float32)
    linear[:] = colour.srgb_decode(np.float32(0.5))
    path = write_still_ffmpeg(
        tmp_path / "edit.exr", float_frame(linear), "exr", {"format": "float"}
    )
    still = stills.read(path)
    np.testing.assert_allclose(still.rgb, 0.5, atol=1e-5)


def test_lab_psd_is_refused_with_a_hint(tmp_path):
    path = make_raw_psd(tmp_path / "lab.psd", _rgb_planes(), mode=9)
    with pytest.raises(EditUnreadableError, match="Lab") as error:
        image.load_image(path)
    assert "RGB" in error.value.hint


def test_cli_refuses_an_unreadable_edit_with_status_2(tmp_path, capsys):
    bad = make_raw_psd(tmp_path / "lab.psd", _rgb_planes(), mode=9)
    source = tmp_path / "missing.mp4"
    status = main(["edit", str(source), str(bad), "-o", str(tmp_path / "o.mp4"), "--quiet"])
    assert status == 2
    assert capsys.readouterr().err.startswith("framerelay: error:")


def test_a_file_that_is_no_image_is_refused_without_quoting_its_bytes(tmp_path):
    # A token holder may name any file as an edited frame (AttachEdit answers at once, and the
    # message is logged): the refusal must not carry the file's first bytes (a token, a key).
    secret = tmp_path / "token"
    secret.write_bytes(b"hf_SECRETSECRET\n")
    with pytest.raises(EditUnreadableError) as error:
        image.load_image(secret)
    assert "not a PNG" in str(error.value)
    assert "hf_" not in str(error.value) and "SECRET" not in str(error.value)
