"""Fit frames into the model's canvas without stretching, and back to the exact source size.

The source is scaled by one factor (aspect ratio kept) to touch the canvas on one axis and centred;
the rest is black padding (letterbox bars top/bottom or pillarbox bars left/right). Shrinking uses
INTER_AREA, enlarging INTER_CUBIC (to the model) or INTER_LINEAR (back from the model).

Model side: `to_model` gives float32 (N, 3, H, W) in [-1, 1] (padding -1, i.e. black), the layout
the engine's VAE expects; `to_model_uint8` gives uint8 (N, H, W, 3) for previews and caching.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import cv2
import numpy as np

from framerelay.errors import InvalidSpecError


@dataclass(frozen=True)
class Fit:
    source_width: int
    source_height: int
    target_width: int
    target_height: int
    content_width: int  # the scaled source inside the canvas
    content_height: int
    left: int  # padding before the content
    top: int

    @property
    def right(self) -> int:
        return self.target_width - self.left - self.content_width

    @property
    def bottom(self) -> int:
        return self.target_height - self.top - self.content_height

    @property
    def content_box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the content in the canvas, end-exclusive."""
        return (self.left, self.top, self.left + self.content_width, self.top + self.content_height)

    @property
    def padded(self) -> bool:
        return (self.content_width, self.content_height) != (self.target_width, self.target_height)

    def to_model(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) RGB, uint8 or float in [0, 1] -> float32 (N, 3, Ht, Wt) in [-1, 1]."""
        unit = self._to_canvas(_as_unit_float(_check_frames(frames, self._source_shape)))
        return np.ascontiguousarray((unit * 2 - 1).transpose(0, 3, 1, 2))

    def to_model_uint8(self, frames: np.ndarray) -> np.ndarray:
        """(N, H, W, 3) RGB, uint8 or float in [0, 1] -> uint8 (N, Ht, Wt, 3)."""
        unit = self._to_canvas(_as_unit_float(_check_frames(frames, self._source_shape)))
        return _unit_to_uint8(unit)

    def from_model(self, frames: np.ndarray) -> np.ndarray:
        """float (N, 3, Ht, Wt) in [-1, 1] -> uint8 (N, H, W, 3) at the source size."""
        expected = (3, self.target_height, self.target_width)
        if frames.ndim != 4 or frames.shape[1:] != expected:
            raise ValueError(f"expected (N, {', '.join(map(str, expected))}), got {frames.shape}")
        unit = (np.asarray(frames, np.float32).transpose(0, 2, 3, 1) + 1) / 2
        return _unit_to_uint8(self._from_canvas(np.clip(unit, 0, 1)))

    def from_model_uint8(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (N, Ht, Wt, 3) -> uint8 (N, H, W, 3) at the source size."""
        _check_frames(frames, (self.target_height, self.target_width))
        return _unit_to_uint8(self._from_canvas(_as_unit_float(frames)))

    @property
    def _source_shape(self) -> tuple[int, int]:
        return (self.source_height, self.source_width)

    def _to_canvas(self, unit: np.ndarray) -> np.ndarray:
        canvas = np.zeros((len(unit), self.target_height, self.target_width, 3), np.float32)
        x0, y0, x1, y1 = self.content_box
        size = (self.content_width, self.content_height)
        shrinking = self.content_width < self.source_width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
        for i, frame in enumerate(unit):
            canvas[i, y0:y1, x0:x1] = _resize(frame, size, interpolation)
        return np.clip(canvas, 0, 1, out=canvas)

    def _from_canvas(self, unit: np.ndarray) -> np.ndarray:
        x0, y0, x1, y1 = self.content_box
        size = (self.source_width, self.source_height)
        shrinking = self.source_width < self.content_width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
        out = np.empty((len(unit), self.source_height, self.source_width, 3), np.float32)
        for i, frame in enumerate(unit):
            out[i] = _resize(frame[y0:y1, x0:x1], size, interpolation)
        return out


def fit_to(source_w: int, source_h: int, target_w: int, target_h: int) -> Fit:
    """The largest aspect-preserving fit of a source into a target canvas, centred."""
    sizes = {"source_w": source_w, "source_h": source_h, "target_w": target_w, "target_h": target_h}
    for name, value in sizes.items():
        _check_positive(name, value)
    scale = min(target_w / source_w, target_h / source_h)
    content_w = min(target_w, max(1, round(source_w * scale)))
    content_h = min(target_h, max(1, round(source_h * scale)))
    return Fit(
        source_width=source_w,
        source_height=source_h,
        target_width=target_w,
        target_height=target_h,
        content_width=content_w,
        content_height=content_h,
        left=(target_w - content_w) // 2,
        top=(target_h - content_h) // 2,
    )


def check_edit_aspect(
    edit_w: int,
    edit_h: int,
    src_w: int,
    src_h: int,
    tolerance: float = 0.01,
    what: str = "edited frame",
) -> None:
    """Reject an edited frame (or the `what` named) whose aspect ratio differs from the source's
    by more than `tolerance`.

    A different size with the same aspect ratio is fine: it is fitted to the model like the source.
    """
    edit_aspect, source_aspect = edit_w / edit_h, src_w / src_h
    if abs(edit_aspect / source_aspect - 1) > tolerance:
        raise InvalidSpecError(
            f"the {what} is {edit_w}x{edit_h} (aspect {edit_aspect:.4f}) but the source is "
            f"{src_w}x{src_h} (aspect {source_aspect:.4f})",
            f"Export the {what} at {src_w}x{src_h} (or the same aspect ratio) without "
            "cropping or rotating it.",
        )


def _check_positive(name: str, value: int) -> None:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")


def _check_frames(frames: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if frames.ndim != 4 or frames.shape[1:] != (*shape, 3):
        raise ValueError(f"expected (N, {shape[0]}, {shape[1]}, 3) RGB frames, got {frames.shape}")
    return frames


def _as_unit_float(frames: np.ndarray) -> np.ndarray:
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) / 255
    if np.issubdtype(frames.dtype, np.floating):
        return frames.astype(np.float32, copy=False)
    raise ValueError(f"expected uint8 or float frames, got {frames.dtype}")


def _unit_to_uint8(unit: np.ndarray) -> np.ndarray:
    return (np.clip(unit, 0, 1) * 255 + 0.5).astype(np.uint8)


def _resize(frame: np.ndarray, size: tuple[int, int], interpolation: int) -> np.ndarray:
    if (frame.shape[1], frame.shape[0]) == size:
        return frame
    return cv2.resize(frame, size, interpolation=interpolation)


# -- display geometry: rotation and pixel aspect ---------------------------------------------------


@dataclass(frozen=True)
class Display:
    """How a stored picture is shown: stretched by its sample aspect ratio, then rotated.

    `rotation` is the display matrix's angle in degrees counter-clockwise (a phone's portrait clip
    stored landscape says -90: turn it a quarter clockwise). An anamorphic picture is shown wider
    (SAR > 1: the width is multiplied) or taller (SAR < 1: the height is divided), so that no
    stored pixel is lost.
    """

    stored_width: int
    stored_height: int
    rotation: int = 0  # 0, 90, 180 or 270 after normalising
    sar: Fraction = Fraction(1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "rotation", normalise_rotation(self.rotation))
        object.__setattr__(self, "sar", Fraction(self.sar) if self.sar else Fraction(1))

    @property
    def upright_size(self) -> tuple[int, int]:
        """The stored picture rotated but not stretched: (width, height)."""
        if self.rotation in (90, 270):
            return (self.stored_height, self.stored_width)
        return (self.stored_width, self.stored_height)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) as the NLE shows it."""
        width, height = self.stored_width, self.stored_height
        if self.sar > 1:
            width = round(width * self.sar)
        elif self.sar < 1:
            height = round(height / self.sar)
        return (height, width) if self.rotation in (90, 270) else (width, height)

    @property
    def identity(self) -> bool:
        return self.rotation == 0 and self.sar == 1

    def upright(self, image: np.ndarray) -> np.ndarray:
        """(H, W, ...) stored -> rotated as displayed (not stretched)."""
        return np.rot90(image, self.rotation // 90) if self.rotation else image

    def stored(self, image: np.ndarray) -> np.ndarray:
        """(H', W', ...) upright -> the stored orientation."""
        return np.rot90(image, -(self.rotation // 90)) if self.rotation else image

    def to_display(self, image: np.ndarray) -> np.ndarray:
        """(H, W, C) stored -> (h, w, C) at the display size."""
        upright = self.upright(image)
        return _resize_any(upright, self.size)

    def from_display(self, image: np.ndarray) -> np.ndarray:
        """(h, w, C) at any size with the display aspect -> (H, W, C) stored."""
        return self.stored(_resize_any(image, self.upright_size))


def normalise_rotation(degrees: float | None) -> int:
    """A display-matrix angle -> 0, 90, 180 or 270; other angles are refused."""
    if degrees is None:
        return 0
    turned = round(float(degrees)) % 360
    if turned not in (0, 90, 180, 270) or abs(float(degrees) - round(float(degrees))) > 0.5:
        raise InvalidSpecError(
            f"the source is displayed rotated by {degrees} degrees; only quarter turns are "
            "supported",
            "Rotate the clip in your editor (or with ffmpeg) and export it upright.",
        )
    return turned


@dataclass(frozen=True)
class View:
    """Stored frames <-> the model's canvas: display geometry (rotation, SAR) then pad-to-fit.

    The stored picture is rotated exactly (quarter turns) and resized once, straight to its
    place in the canvas, so an anamorphic source is not resampled twice.
    """

    display: Display
    fit: Fit  # of the display size into the canvas

    def to_model(self, frames: np.ndarray) -> np.ndarray:
        """float (N, H, W, 3) stored, model colours in [0, 1] -> float32 (N, 3, Ht, Wt) in [-1, 1]."""
        fit = self.fit
        canvas = np.zeros((len(frames), fit.target_height, fit.target_width, 3), np.float32)
        x0, y0, x1, y1 = fit.content_box
        for i, frame in enumerate(frames):
            upright = self.display.upright(np.asarray(frame, np.float32))
            canvas[i, y0:y1, x0:x1] = _resize_any(upright, (fit.content_width, fit.content_height))
        np.clip(canvas, 0, 1, out=canvas)
        return np.ascontiguousarray((canvas * 2 - 1).transpose(0, 3, 1, 2))

    def from_model(self, frame: np.ndarray) -> np.ndarray:
        """float (3, Ht, Wt) in [-1, 1] -> float32 (H, W, 3) in [0, 1], stored geometry."""
        x0, y0, x1, y1 = self.fit.content_box
        content = (np.asarray(frame, np.float32)[:, y0:y1, x0:x1].transpose(1, 2, 0) + 1) / 2
        upright = _resize_any(np.clip(content, 0, 1), self.display.upright_size)
        return np.ascontiguousarray(self.display.stored(upright))

    def region_from_model(self, region: np.ndarray) -> np.ndarray:
        """float (Ht, Wt) canvas mask -> float32 (H, W) in stored geometry."""
        x0, y0, x1, y1 = self.fit.content_box
        content = np.asarray(region, np.float32)[y0:y1, x0:x1]
        upright = _resize_any(content, self.display.upright_size, cv2.INTER_LINEAR)
        return np.ascontiguousarray(np.clip(self.display.stored(upright), 0, 1))


def view_for(display: Display, target_w: int, target_h: int) -> View:
    width, height = display.size
    return View(display, fit_to(width, height, target_w, target_h))


def _resize_any(
    image: np.ndarray, size: tuple[int, int], interpolation: int | None = None
) -> np.ndarray:
    """Resize (H, W[, C]) float to `size` (width, height): area when shrinking, cubic else."""
    width, height = size
    if (image.shape[1], image.shape[0]) == (width, height):
        return image
    if interpolation is None:
        shrinking = width * height < image.shape[0] * image.shape[1]
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return cv2.resize(np.ascontiguousarray(image), (width, height), interpolation=interpolation)
