import io
import struct
import threading
import time

import cv2
import numpy as np
import pytest

from framerelay.errors import EditUnreadableError, InvalidSpecError
from framerelay.roundtrip.export import export_frame
from framerelay.roundtrip.validate import read_edited_frame
from tests.roundtrip_support import edited, make_frame, png_bytes, psd_bytes, read_rgb, tiff_bytes


def _png_chunks(data: bytes) -> list[bytes]:
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        chunks.append(data[offset + 4 : offset + 8])
        offset += 12 + length
    return chunks


def test_export_png_is_8bit_srgb_and_exact(tmp_path):
    frame = make_frame()
    exported = export_frame(frame, tmp_path / "job")
    assert exported.path == tmp_path / "job" / "frame_edit.png"
    assert exported.size == (96, 64)
    assert exported.mtime_ns == exported.path.stat().st_mtime_ns
    chunks = _png_chunks(exported.path.read_bytes())
    assert chunks[:3] == [b"IHDR", b"sRGB", b"gAMA"]
    assert chunks.index(b"sRGB") < chunks.index(b"IDAT")
    decoded = cv2.imread(str(exported.path), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded[:, :, ::-1], frame)
    assert sorted(p.name for p in exported.path.parent.iterdir()) == ["frame_edit.png"]


def test_export_tiff_is_16bit(tmp_path):
    frame = make_frame()
    exported = export_frame(frame, tmp_path, sixteen_bit=True)
    assert exported.path.name == "frame_edit.tiff"
    decoded = cv2.imread(str(exported.path), cv2.IMREAD_UNCHANGED)
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded[:, :, ::-1], frame.astype(np.uint16) * 257)


def test_export_keeps_uint16_frames_exact(tmp_path):
    frame = np.random.default_rng(1).integers(0, 65536, (8, 12, 3), dtype=np.uint16)
    exported = export_frame(frame, tmp_path, sixteen_bit=True)
    np.testing.assert_array_equal(read_rgb(exported.path), frame)


@pytest.mark.parametrize(
    "frame",
    [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 3), np.float32)],
)
def test_export_rejects_other_frames(tmp_path, frame):
    with pytest.raises(InvalidSpecError, match="frame to export"):
        export_frame(frame, tmp_path)


def test_png_of_the_same_size_is_read_exactly(tmp_path):
    frame = edited(make_frame(), 200)
    path = tmp_path / "edit.png"
    path.write_bytes(png_bytes(frame))
    result = read_edited_frame(path, (96, 64))
    assert result.image.dtype == np.float32
    assert result.image.shape == (64, 96, 3)
    assert result.bit_depth == 8
    assert result.warnings == ()
    np.testing.assert_array_equal(np.rint(result.image * 255).astype(np.uint8), frame)


@pytest.mark.parametrize("suffix", [".png", ".tiff"])
def test_16bit_rgb_keeps_16bit_precision(tmp_path, suffix):
    frame = np.random.default_rng(2).integers(0, 65536, (64, 96, 3), dtype=np.uint16)
    path = tmp_path / f"edit{suffix}"
    _ok, data = cv2.imencode(suffix, frame[:, :, ::-1].copy())
    path.write_bytes(data.tobytes())
    result = read_edited_frame(path, (96, 64))
    assert result.bit_depth == 16
    np.testing.assert_array_equal(np.rint(result.image * 65535).astype(np.uint16), frame)


def test_gray_png_becomes_rgb(tmp_path):
    gray = np.arange(64 * 96, dtype=np.uint32).reshape(64, 96).astype(np.uint8)
    path = tmp_path / "gray.png"
    cv2.imwrite(str(path), gray)
    image = read_edited_frame(path, (96, 64)).image
    for channel in range(3):
        np.testing.assert_allclose(image[:, :, channel], gray / 255.0, atol=1e-6)


def test_jpeg_is_read(tmp_path):
    ramp = np.linspace(0, 255, 96, dtype=np.float32)
    frame = np.stack(
        [np.tile(ramp, (64, 1)), np.full((64, 96), 128.0), 255 - np.tile(ramp, (64, 1))], 2
    )
    frame = frame.astype(np.uint8)
    path = tmp_path / "edit.jpg"
    cv2.imwrite(str(path), frame[:, :, ::-1].copy(), [cv2.IMWRITE_JPEG_QUALITY, 98])
    image = read_edited_frame(path, (96, 64)).image
    assert np.abs(image * 255 - frame).mean() < 3


def test_transparent_areas_show_the_background(tmp_path):
    background = make_frame(seed=7)
    rgba = np.zeros((64, 96, 4), np.uint8)
    rgba[:32] = (255, 0, 0, 255)  # top half opaque red, bottom half transparent
    path = tmp_path / "layer.png"
    cv2.imwrite(str(path), rgba[:, :, [2, 1, 0, 3]])
    result = read_edited_frame(path, (96, 64), background=background)
    np.testing.assert_allclose(result.image[:32], np.broadcast_to([1.0, 0, 0], (32, 96, 3)))
    np.testing.assert_allclose(result.image[32:] * 255, background[32:], atol=1e-3)
    assert any("transparent" in warning for warning in result.warnings)


def test_fully_transparent_image_is_refused(tmp_path):
    path = tmp_path / "empty.png"
    cv2.imwrite(str(path), np.zeros((64, 96, 4), np.uint8))
    with pytest.raises(EditUnreadableError, match="fully transparent") as caught:
        read_edited_frame(path, (96, 64))
    assert "visible" in caught.value.hint


def test_same_aspect_is_resized_with_a_warning(tmp_path):
    frame = np.full((32, 48, 3), (10, 120, 250), np.uint8)
    path = tmp_path / "half.png"
    path.write_bytes(png_bytes(frame))
    result = read_edited_frame(path, (96, 64))
    assert result.image.shape == (64, 96, 3)
    assert result.saved_size == (48, 32)
    np.testing.assert_allclose(
        result.image * 255, np.broadcast_to(frame[0, 0], (64, 96, 3)), atol=1
    )
    assert result.warnings == ("half.png is 48×32; it was resized to the exported 96×64.",)


def test_a_different_aspect_is_refused_with_a_hint(tmp_path):
    path = tmp_path / "square.png"
    path.write_bytes(png_bytes(make_frame(64, 64)))
    with pytest.raises(
        EditUnreadableError, match="64×64 but the exported frame is 96×64"
    ) as caught:
        read_edited_frame(path, (96, 64))
    assert "96×64" in caught.value.hint


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty"),
        (b"GIF89a not supported", "not a PNG, TIFF, JPEG or PSD"),
        (png_bytes(make_frame())[:1500], "incomplete or damaged"),
        (tiff_bytes(make_frame())[:3000], "incomplete or damaged"),
        (psd_bytes(make_frame(), np.zeros((8, 8, 4), np.uint8), 0, 0)[:600], "Photoshop document"),
    ],
    ids=["zero_bytes", "gif", "truncated_png", "truncated_tiff", "truncated_psd"],
)
def test_unreadable_files_are_refused_after_retries(tmp_path, content, message):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    started = time.monotonic()
    with pytest.raises(EditUnreadableError, match=message) as caught:
        read_edited_frame(path, (96, 64), attempts=3, retry_delay=0.05)
    assert time.monotonic() - started >= 0.1  # it did retry
    assert caught.value.hint


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(EditUnreadableError, match="not found"):
        read_edited_frame(tmp_path / "gone.png", (96, 64), attempts=1)


def test_a_file_completed_during_the_retries_is_read(tmp_path):
    frame = edited(make_frame(), 99)
    data = png_bytes(frame)
    path = tmp_path / "slow.png"
    path.write_bytes(data[: len(data) // 2])
    finisher = threading.Timer(0.15, path.write_bytes, args=(data,))
    finisher.start()
    try:
        result = read_edited_frame(path, (96, 64), attempts=20, retry_delay=0.05)
    finally:
        finisher.join()
    np.testing.assert_array_equal(np.rint(result.image * 255).astype(np.uint8), frame)


def _two_layer_psd() -> tuple[bytes, np.ndarray]:
    background = np.full((64, 96, 3), (30, 60, 200), np.uint8)
    overlay = np.zeros((20, 40, 4), np.uint8)
    overlay[:] = (255, 0, 0, 255)
    expected = background.copy()
    expected[10:30, 20:60] = (255, 0, 0)
    return psd_bytes(background, overlay, top=10, left=20), expected


def test_psd_uses_the_embedded_composite(tmp_path):
    data, expected = _two_layer_psd()
    path = tmp_path / "frame_edit.psd"
    path.write_bytes(data)
    result = read_edited_frame(path, (96, 64))
    assert result.warnings == ()
    assert result.bit_depth == 8
    np.testing.assert_array_equal(np.rint(result.image * 255).astype(np.uint8), expected)


def test_psd_without_composite_renders_layers_and_warns(tmp_path):
    from psd_tools import PSDImage
    from psd_tools.constants import Resource

    data, expected = _two_layer_psd()
    psd = PSDImage.open(io.BytesIO(data))
    psd.image_resources.get_data(Resource.VERSION_INFO).has_composite = False
    white = bytes([255]) * (96 * 64)
    psd._record.image_data.set_data([white] * 3, psd._record.header)  # as Photoshop leaves it
    path = tmp_path / "no_composite.psd"
    psd.save(path)
    result = read_edited_frame(path, (96, 64))
    assert len(result.warnings) == 1
    assert "Maximize PSD and PSB File Compatibility" in result.warnings[0]
    np.testing.assert_allclose(result.image * 255, expected, atol=1.0)


def test_16bit_psd_keeps_16bit_precision(tmp_path):
    from psd_tools import PSDImage

    pixels = np.random.default_rng(3).integers(0, 65536, (64, 96, 3), dtype=np.uint16)
    psd = PSDImage.new("RGB", (96, 64), depth=16)
    psd.create_pixel_layer_from_array(pixels, name="Background")
    path = tmp_path / "deep.psd"
    psd.save(path)
    result = read_edited_frame(path, (96, 64))
    assert result.bit_depth == 16
    np.testing.assert_array_equal(np.rint(result.image * 65535).astype(np.uint16), pixels)
