"""Write the frame the user edits: an 8-bit sRGB PNG, or a 16-bit TIFF when asked."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, PngImagePlugin

from framerelay.errors import InvalidSpecError
from framerelay.files import write_atomic
from framerelay.roundtrip.records import EXPORT_STEM, ExportedFrame

_SRGB_PERCEPTUAL = b"\x00"
_SRGB_GAMMA = (45455).to_bytes(4, "big")  # the gAMA the PNG spec pairs with sRGB


def export_frame(
    frame: np.ndarray, job_dir: Path, *, sixteen_bit: bool = False, stem: str = EXPORT_STEM
) -> ExportedFrame:
    """Write `frame` (H, W, 3 RGB, uint8/uint16) as 8-bit `<stem>.png` or 16-bit `<stem>.tiff`."""
    _check_frame(frame)
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    if sixteen_bit:
        path = job_dir / f"{stem}.tiff"
        write_atomic(path, _encode_tiff16(frame))
    else:
        path = job_dir / f"{stem}.png"
        write_atomic(path, _encode_png8_srgb(frame))
    height, width = frame.shape[:2]
    return ExportedFrame(path, (width, height), path.stat().st_mtime_ns, sixteen_bit)


def _check_frame(frame: np.ndarray) -> None:
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InvalidSpecError(f"The frame to export must be H×W×3 RGB, got {frame.shape}.")
    if frame.dtype not in (np.uint8, np.uint16):
        raise InvalidSpecError(f"The frame to export must be uint8 or uint16, got {frame.dtype}.")
    if frame.shape[0] < 1 or frame.shape[1] < 1:
        raise InvalidSpecError(f"The frame to export is empty: {frame.shape}.")


def _encode_png8_srgb(frame: np.ndarray) -> bytes:
    if frame.dtype == np.uint16:
        frame = ((frame.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    info = PngImagePlugin.PngInfo()
    info.add(b"sRGB", _SRGB_PERCEPTUAL)
    info.add(b"gAMA", _SRGB_GAMMA)
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame), "RGB").save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def _encode_tiff16(frame: np.ndarray) -> bytes:
    if frame.dtype == np.uint8:
        frame = frame.astype(np.uint16) * 257
    ok, encoded = cv2.imencode(".tiff", np.ascontiguousarray(frame[:, :, ::-1]))
    if not ok:
        raise InvalidSpecError(f"OpenCV could not encode a 16-bit TIFF of shape {frame.shape}.")
    return encoded.tobytes()
