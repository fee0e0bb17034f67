"""Read images (edited frames, masks, exported frames) at full precision; save frames for editors.

Decoding is `framerelay.media.stills` (the right library for each format, EXIF orientation,
declared alpha only, linear data encoded with the sRGB curve, CMYK through its profile). One rule
for alpha, wherever an image is read: a fully opaque alpha channel is dropped silently; transparent
areas show what lies under the picture (the frame that was exported for editing, else black), with
a warning; a fully transparent image is refused.
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


def load_image(path: str | Path, under: np.ndarray | None = None) -> np.ndarray:
    """An image file as float32 (H, W, 3) display R'G'B' in [0, 1]; warnings are logged."""
    path = Path(path)
    rgb, warnings = flatten(read_still(path), path.name, under)
    for warning in warnings:
        log.warning("%s", warning)
    return rgb


def read_still(path: str | Path) -> stills.Still:
    """An image file decoded with its alpha (if any) kept apart; EditUnreadableError if it cannot
    be read or decoded."""
    path = Path(path)
    data = _read_bytes(path)
    try:
        return stills.decode(data, path.name)
    except stills.StillError as error:
        raise EditUnreadableError(error.message, error.hint) from error


def flatten(
    still: stills.Still, name: str, under: np.ndarray | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """The picture without alpha, float32 (H, W, 3), and the warnings about it (the module's alpha
    rule). `under` shows through transparent areas: RGB uint8, uint16 or float, any size."""
    warnings = list(still.warnings)
    rgb, alpha = still.rgb, still.alpha
    if rgb.size == 0:
        raise EditUnreadableError(f"{name} has no pixels.", _SAVE_HINT)
    if alpha is not None and float(alpha.min()) < 1.0:
        if float(alpha.max()) <= 0.0:
            raise EditUnreadableError(
                f"{name} is fully transparent.",
                "Make sure the edited layers are visible, or flatten the image, and save again.",
            )
        height, width = rgb.shape[:2]
        background = (
            np.zeros_like(rgb) if under is None else _fitted(to_float(under), width, height)
        )
        weight = alpha[:, :, None]
        rgb = rgb * weight + background * (1.0 - weight)
        transparent = 100 * float(np.mean(alpha < 1.0))
        shown = "black" if under is None else "the original frame"
        warnings.append(
            f"{name} has transparent areas ({transparent:.1f}% of it); they show {shown}."
        )
    return np.ascontiguousarray(rgb, dtype=np.float32), tuple(warnings)


def to_float(image: np.ndarray) -> np.ndarray:
    """uint8, uint16 or float (values outside [0, 1] are clipped) -> float32 in [0, 1]."""
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535.0
    if image.dtype.kind == "f":
        return np.clip(np.nan_to_num(image.astype(np.float32)), 0.0, 1.0)
    raise ValueError(f"expected a uint8, uint16 or float image, got {image.dtype}")


def _fitted(image: np.ndarray, width: int, height: int) -> np.ndarray:
    if image.shape[:2] != (height, width):
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    return image.reshape(height, width, -1)[:, :, :3]


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
