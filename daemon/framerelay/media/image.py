"""Load edited frames (PNG, JPEG, TIFF, WebP, BMP, PSD) at full precision; save frames for editors.

- Raster files are decoded with OpenCV (IMREAD_UNCHANGED), which keeps 16-bit samples; Pillow
  would silently reduce 16-bit RGB to 8 bits.
- Alpha: a fully opaque alpha channel is dropped; otherwise the image is composited over black
  (the colour a video shows behind transparency) and a warning is logged.
- Grayscale becomes RGB. Colour profiles and EXIF orientation are ignored (pixels are taken as
  sRGB, as stored).
- PSD: the embedded merged image when the file has one ("Maximize PSD compatibility" on), otherwise
  the layers are composited with psd-tools and a warning says the result may differ from Photoshop.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from framerelay.errors import EditUnreadableError
from framerelay.media import storage

log = logging.getLogger(__name__)

PSD_SIGNATURE = b"8BPS"
_SAVE_HINT = "Save the edited frame as PNG, TIFF, JPEG or PSD and try again."


def load_image(path: str | Path) -> np.ndarray:
    """An image file as float32 (H, W, 3) RGB in [0, 1]."""
    path = Path(path)
    data = _read_bytes(path)
    if data.startswith(PSD_SIGNATURE):
        return _load_psd(path)
    return _to_rgb_unit(_decode_raster(data, path), path)


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


def _decode_raster(data: bytes, path: Path) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise EditUnreadableError(
            f"cannot decode {path.name}: not an image, an unsupported format, or a truncated file",
            "Save the edited frame again as PNG, TIFF, JPEG or PSD; if the editor was still "
            "writing it, wait until it has finished.",
        )
    return image


def _to_rgb_unit(image: np.ndarray, path: Path) -> np.ndarray:
    """OpenCV's BGR(A)/gray array of any depth -> float32 (H, W, 3) RGB in [0, 1]."""
    unit = _as_unit(image, path)
    if unit.ndim == 2:
        unit = unit[:, :, None]
    channels = unit.shape[2]
    if channels == 1:
        return np.repeat(unit, 3, axis=2)
    if channels == 2:  # gray + alpha
        return _flatten_alpha(np.repeat(unit[:, :, :1], 3, axis=2), unit[:, :, 1:], path)
    if channels == 3:
        return np.ascontiguousarray(unit[:, :, ::-1])
    if channels == 4:
        return _flatten_alpha(np.ascontiguousarray(unit[:, :, 2::-1]), unit[:, :, 3:], path)
    raise EditUnreadableError(f"{path.name} has {channels} channels", _SAVE_HINT)


def _as_unit(image: np.ndarray, path: Path) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255
    if image.dtype == np.uint16:
        return image.astype(np.float32) / 65535
    if np.issubdtype(image.dtype, np.floating):
        return np.clip(np.nan_to_num(image.astype(np.float32)), 0, 1)
    raise EditUnreadableError(
        f"{path.name} has {image.dtype} samples, which are not supported",
        "Save it as an 8- or 16-bit PNG or TIFF.",
    )


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


def _load_psd(path: Path) -> np.ndarray:
    from psd_tools import PSDImage
    from psd_tools.composite import composite
    from psd_tools.constants import ColorMode

    try:
        psd = PSDImage.open(path)
        if psd.color_mode not in (ColorMode.RGB, ColorMode.GRAYSCALE):
            return _psd_via_pil(psd, path)
        if psd.has_preview():
            merged = psd.numpy()
            rgb, alpha = _split_psd_channels(merged)
        else:
            log.warning(
                "%s has no merged image; rendering its layers, which may differ from Photoshop. "
                "Save with 'Maximize PSD compatibility' for exact results.",
                path.name,
            )
            color, _, alpha = composite(psd, force=True)
            rgb = color if color.ndim == 3 else color[:, :, None]
    except EditUnreadableError:
        raise
    except Exception as error:  # psd-tools raises many types for damaged files
        raise EditUnreadableError(
            f"cannot read the PSD {path.name}: {error}",
            "Save it again from the editor, or export the frame as PNG or TIFF.",
        ) from error
    rgb = np.asarray(rgb, np.float32)
    if rgb.shape[2] == 1:
        rgb = np.repeat(rgb, 3, axis=2)
    if alpha is not None:
        rgb = _flatten_alpha(rgb[:, :, :3], np.asarray(alpha, np.float32), path)
    return np.ascontiguousarray(np.clip(rgb[:, :, :3], 0, 1), dtype=np.float32)


def _split_psd_channels(merged: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """psd.numpy() gives colour channels, then alpha if the document has one."""
    if merged.ndim == 2:
        return merged[:, :, None], None
    if merged.shape[2] in (2, 4):
        return merged[:, :, :-1], merged[:, :, -1:]
    return merged, None


def _psd_via_pil(psd: object, path: Path) -> np.ndarray:
    log.warning("%s is not an RGB or grayscale PSD; converting it to 8-bit RGB", path.name)
    image = psd.composite().convert("RGB")  # type: ignore[attr-defined]
    return np.asarray(image, np.float32) / 255
