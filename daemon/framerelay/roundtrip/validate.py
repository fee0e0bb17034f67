"""Read and check the frame the user saved: PNG, TIFF, JPEG, PSD (8/16/32-bit, gray, alpha),
EXR or DPX.

Decoding is `framerelay.media.stills`, shared with the engine: the right library per format
(never Pillow for 16-bit rasters, dependencies.md §4), EXIF orientation, declared alpha only,
straight alpha, linear data encoded with the sRGB curve.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from framerelay.errors import EditUnreadableError
from framerelay.media import stills

ASPECT_TOLERANCE = 0.01  # relative; 1920×1080 vs 854×480 is the same aspect
_SAVE_AGAIN = "Save the frame again as PNG, TIFF, JPEG or PSD (in Photoshop: File > Save As)."


@dataclass(frozen=True)
class EditedFrame:
    image: np.ndarray  # float32 (H, W, 3) RGB in [0, 1], at the expected size
    path: Path
    saved_size: tuple[int, int]  # (width, height) of the file as saved
    bit_depth: int  # bits per channel as saved: 8, 16 or 32
    warnings: tuple[str, ...] = ()


class _DecodeFailure(Exception):
    """A problem that may go away when the editor finishes writing."""

    def __init__(self, message: str, hint: str = _SAVE_AGAIN):
        super().__init__(message)
        self.message = message
        self.hint = hint


@dataclass(frozen=True)
class _Pixels:
    rgba: np.ndarray  # float32 (H, W, 1..4) in [0, 1], RGB order
    bit_depth: int
    warnings: tuple[str, ...] = ()


def read_edited_frame(
    path: Path,
    expected_size: tuple[int, int],
    *,
    background: np.ndarray | None = None,
    attempts: int = 3,
    retry_delay: float = 0.25,
) -> EditedFrame:
    """Decode `path` and fit it to `expected_size` (width, height), or raise EditUnreadableError.

    A file the same size is used as is; the same aspect ratio is resized with a warning; transparent
    areas show `background` (the exported frame, RGB uint8/uint16/float, else black). A file that
    fails to decode is read again `attempts - 1` times, `retry_delay` seconds apart, in case the
    editor is still writing it.
    """
    path = Path(path)
    pixels = _read_with_retries(path, attempts, retry_delay)
    height, width = pixels.rgba.shape[:2]
    warnings = list(pixels.warnings)
    rgb = _flatten(pixels.rgba, background, path.name, warnings)
    rgb = _fit(rgb, expected_size, path.name, warnings)
    return EditedFrame(rgb, path, (width, height), pixels.bit_depth, tuple(warnings))


def _read_with_retries(path: Path, attempts: int, retry_delay: float) -> _Pixels:
    for attempt in range(max(1, attempts)):
        try:
            return _decode(path)
        except _DecodeFailure as failure:
            last = failure
        if attempt + 1 < attempts:
            time.sleep(retry_delay)
    raise EditUnreadableError(last.message, last.hint)


def _decode(path: Path) -> _Pixels:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise _DecodeFailure(f"The edited file {path.name} no longer exists.") from exc
    except OSError as exc:
        raise _DecodeFailure(f"Cannot read {path.name}: {exc.strerror or exc}.") from exc
    if not data:
        raise _DecodeFailure(f"The edited file {path.name} is empty (0 bytes).")
    try:
        still = stills.decode(data, path.name)
    except stills.StillError as failure:  # possibly still being written: read it again
        raise _DecodeFailure(failure.message, failure.hint) from failure
    rgba = still.rgb if still.alpha is None else np.dstack([still.rgb, still.alpha])
    return _Pixels(rgba, still.bit_depth, still.warnings)


def _to_float(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.uint8:
        result = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        result = array.astype(np.float32) / 65535.0
    elif array.dtype.kind == "f":
        result = np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0)
    else:
        raise _DecodeFailure(f"{name} has an unsupported pixel type {array.dtype}.", _SAVE_AGAIN)
    return result if result.ndim == 3 else result[:, :, None]


def _bit_depth(dtype: np.dtype) -> int:
    return {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(np.dtype(dtype), 32)


def _flatten(
    rgba: np.ndarray, background: np.ndarray | None, name: str, warnings: list[str]
) -> np.ndarray:
    """RGB without alpha: gray is repeated, transparent areas show the background."""
    channels = rgba.shape[2]
    color_count = 1 if channels in (1, 2) else 3
    color = rgba[:, :, :color_count]
    if color_count == 1:
        color = np.repeat(color, 3, axis=2)
    if channels in (2, 4):
        alpha = rgba[:, :, color_count : color_count + 1]
        if float(alpha.max()) <= 0.0:
            raise EditUnreadableError(
                f"The edited frame {name} is fully transparent.",
                "Make sure the edited layers are visible, or flatten the image, and save again.",
            )
        if float(alpha.min()) < 1.0:
            under = _background_like(background, color.shape[:2])
            color = color * alpha + under * (1.0 - alpha)
            shown = "the original frame" if background is not None else "black"
            warnings.append(f"{name} has transparent areas; they show {shown}.")
    if color.size == 0:
        raise EditUnreadableError(f"The edited frame {name} has no pixels.", _SAVE_AGAIN)
    return np.ascontiguousarray(color, dtype=np.float32)


def _background_like(background: np.ndarray | None, size_hw: tuple[int, int]) -> np.ndarray:
    height, width = size_hw
    if background is None:
        return np.zeros((height, width, 3), np.float32)
    under = _to_float(np.asarray(background), "the background")
    if under.shape[:2] != (height, width):
        under = cv2.resize(under, (width, height), interpolation=cv2.INTER_AREA)
    return under.reshape(height, width, -1)[:, :, :3]


def _fit(
    rgb: np.ndarray, expected_size: tuple[int, int], name: str, warnings: list[str]
) -> np.ndarray:
    expected_width, expected_height = expected_size
    height, width = rgb.shape[:2]
    if (width, height) == (expected_width, expected_height):
        return rgb
    scale_x, scale_y = expected_width / width, expected_height / height
    if abs(scale_x / scale_y - 1.0) > ASPECT_TOLERANCE:
        raise EditUnreadableError(
            f"The edited frame {name} is {width}×{height} but the exported frame is "
            f"{expected_width}×{expected_height}, a different aspect ratio.",
            f"Keep the canvas at {expected_width}×{expected_height} (don't crop or change the "
            "canvas size) and save again.",
        )
    shrinking = scale_x < 1.0
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    resized = cv2.resize(rgb, (expected_width, expected_height), interpolation=interpolation)
    warnings.append(
        f"{name} is {width}×{height}; it was resized to the exported "
        f"{expected_width}×{expected_height}."
    )
    return np.clip(resized, 0.0, 1.0)
