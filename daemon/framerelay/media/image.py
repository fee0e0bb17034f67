"""Load edited frames (PNG, JPEG, TIFF, PSD, EXR, DPX, WebP, BMP) at full precision; save frames
for editors.

Decoding is `framerelay.media.stills` (the right library for each format, EXIF orientation,
declared alpha only, linear data encoded with the sRGB curve, CMYK through its profile).
A transparent image is composited over black (the colour a video shows behind transparency) with
a warning; a fully opaque alpha channel is dropped silently.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from framerelay.errors import EditUnreadableError
from framerelay.media import stills, storage

log = logging.getLogger(__name__)

PSD_SIGNATURE = stills.PSD_SIGNATURE
_SAVE_HINT = "Save the edited frame as PNG, TIFF, JPEG or PSD and try again."


def load_image(path: str | Path) -> np.ndarray:
    """An image file as float32 (H, W, 3) display R'G'B' in [0, 1]."""
    path = Path(path)
    still = load_still(path)
    if still.alpha is None:
        return still.rgb
    return _flatten_alpha(still.rgb, still.alpha[:, :, None], path)


def load_still(path: str | Path) -> stills.Still:
    """An image file decoded with its alpha (if any) kept apart; warnings are logged."""
    path = Path(path)
    data = _read_bytes(path)
    try:
        still = stills.decode(data, path.name)
    except stills.StillError as error:
        raise EditUnreadableError(error.message, error.hint) from error
    for warning in still.warnings:
        log.warning("%s", warning)
    return still


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float in [0, 1] (values outside are clipped) or uint8 -> uint8, rounding to nearest."""
    if image.dtype == np.uint8:
        return image
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def to_uint16(image: np.ndarray) -> np.ndarray:
    """float in [0, 1], uint8 or uint16 -> uint16 (uint8 v becomes v * 257, so 255 -> 65535)."""
    if image.dtype == np.uint16:
        return image
    if image.dtype == np.uint8:
        return image.astype(np.uint16) * 257
    return (np.clip(image, 0, 1) * 65535 + 0.5).astype(np.uint16)


def save_png(image: np.ndarray, path: str | Path, *, overwrite: bool = False) -> Path:
    """Save an (H, W, 3) RGB image as an 8-bit PNG, atomically."""
    return _save(to_uint8(_check_rgb(image)), Path(path), ".png", overwrite)


def save_tiff16(image: np.ndarray, path: str | Path, *, overwrite: bool = False) -> Path:
    """Save an (H, W, 3) RGB image as a 16-bit TIFF, atomically."""
    return _save(to_uint16(_check_rgb(image)), Path(path), ".tiff", overwrite)


def _save(image: np.ndarray, path: Path, extension: str, overwrite: bool) -> Path:
    ok, data = cv2.imencode(extension, cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} {image.dtype} image as {extension}")
    storage.write_bytes_atomic(data.tobytes(), path, overwrite)
    return path


def _check_rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got {image.shape}")
    return image


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise EditUnreadableError(
            f"edited frame is a folder, not an image: {path}", "Give the image file's path."
        )
    try:
        data = path.read_bytes()
    except FileNotFoundError as error:
        raise EditUnreadableError(
            f"edited frame not found: {path}", "Check the path; the file may have moved."
        ) from error
    except OSError as error:
        raise EditUnreadableError(f"cannot read {path}: {error.strerror}", _SAVE_HINT) from error
    if not data:
        raise EditUnreadableError(
            f"edited frame is empty (0 bytes): {path}",
            "Wait until the editor has finished saving, or save it again.",
        )
    return data


def _flatten_alpha(rgb: np.ndarray, alpha: np.ndarray, path: Path) -> np.ndarray:
    if np.all(alpha >= 1):
        return rgb
    transparent = float(np.mean(alpha < 1))
    log.warning(
        "%s has transparency (%.1f%% of pixels); compositing it over black",
        path.name,
        100 * transparent,
    )
    return rgb * alpha
