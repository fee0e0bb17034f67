"""Read and check the frame the user saved: PNG, TIFF, JPEG, PSD (8/16/32-bit, gray, alpha),
EXR or DPX.

Reading is `framerelay.media.image`, shared with the engine: the same decoders
(`framerelay.media.stills`) and the same alpha rule, with the exported frame under transparent
areas.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from framerelay.errors import EditUnreadableError
from framerelay.media import image, stills

ASPECT_TOLERANCE = 0.01  # relative; 1920×1080 vs 854×480 is the same aspect


@dataclass(frozen=True)
class EditedFrame:
    image: np.ndarray  # float32 (H, W, 3) RGB in [0, 1], at the expected size
    path: Path
    saved_size: tuple[int, int]  # (width, height) of the file as saved
    bit_depth: int  # bits per channel as saved: 8, 16 or 32
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
    still = _read_with_retries(path, attempts, retry_delay)
    height, width = still.rgb.shape[:2]
    rgb, flattened = image.flatten(still, path.name, background)
    warnings = list(flattened)
    rgb = _fit(rgb, expected_size, path.name, warnings)
    return EditedFrame(rgb, path, (width, height), still.bit_depth, tuple(warnings))


def _read_with_retries(path: Path, attempts: int, retry_delay: float) -> stills.Still:
    for attempt in range(max(1, attempts)):
        try:
            return image.read_still(path)
        except EditUnreadableError as failure:  # possibly still being written: read it again
            last = failure
        if attempt + 1 < attempts:
            time.sleep(retry_delay)
    raise last


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
