"""Decode one still image to display R'G'B' at full precision: edited frames and sequence frames.

Which library reads what (each is the one that gets the format right):

- PNG, JPEG, WebP, BMP: OpenCV (`IMREAD_UNCHANGED` keeps 16 bits; Pillow would reduce them).
- TIFF: tifffile, which decodes planar ("per channel") files, every sample type and compression,
  and says whether an extra sample is associated (premultiplied) alpha, straight alpha, or just
  an extra channel.
- PSD: the merged image stored in the file, read channel by channel with psd-tools' record API;
  without one, psd-tools renders the layers (its `composite` extra draws adjustments and shapes).
- EXR and DPX: FFmpeg through PyAV.

Rules applied to every format:

- EXIF/TIFF orientation is applied, so the picture is upright as viewers show it.
- Alpha is returned straight (premultiplied files are divided back); only channels the file
  declares as transparency are alpha. Spot channels, saved selections and unspecified extra
  samples are ignored.
- Float (linear-light) data — EXR, 32-bit PSD, float TIFF — is encoded with the sRGB curve; values
  above 1.0 are clipped, with a warning.
- CMYK is converted with the file's embedded ICC profile (littleCMS via Pillow), else with the
  naive formula, with a warning.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from framerelay.media import colour

log = logging.getLogger(__name__)

PSD_SIGNATURE = b"8BPS"
_SAVE_HINT = "Save it again as an RGB PNG, TIFF, JPEG or PSD (8 or 16 bits)."
_MODE_HINT = "Convert it to RGB in the editor (Photoshop: Image > Mode > RGB Color) and save again."
_MAXIMIZE_HINT = (
    "Turn on 'Maximize PSD and PSB File Compatibility' (Photoshop: Settings > File Handling) "
    "for exact results."
)
EXTENSIONS: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".tif",
    ".tiff",
    ".psd",
    ".psb",
    ".exr",
    ".dpx",
)
EXTENSIONS += (".webp", ".bmp")


class StillError(Exception):
    """The file cannot be decoded: a message naming the problem and a hint."""

    def __init__(self, message: str, hint: str = _SAVE_HINT, *, transient: bool = False):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.transient = transient  # may go away when the writer finishes


@dataclass(frozen=True)
class Still:
    rgb: np.ndarray  # float32 (H, W, 3) display R'G'B' in [0, 1]
    alpha: np.ndarray | None  # float32 (H, W) straight alpha in [0, 1], or None
    bit_depth: int  # bits per channel as stored: 1, 8, 10, 12, 16 or 32
    warnings: tuple[str, ...] = field(default=())


def sniff(data: bytes) -> str | None:
    """The format by content: png, jpeg, tiff, psd, exr, dpx, webp, bmp; None if unknown."""
    if data.startswith(b"\x89PNG"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "tiff"
    if data.startswith(PSD_SIGNATURE):
        return "psd"
    if data.startswith(b"\x76\x2f\x31\x01"):
        return "exr"
    if data.startswith((b"SDPX", b"XPDS")):
        return "dpx"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"BM"):
        return "bmp"
    return None


def decode(data: bytes, name: str) -> Still:
    """Decode the bytes of an image file; raises StillError."""
    kind = sniff(data)
    if kind is None:
        raise StillError(
            f"cannot decode {name}: it is not a PNG, TIFF, JPEG or PSD image (nor EXR, DPX, "
            "WebP or BMP)" + ("; it is empty" if not data else ""),
            transient=True,
        )
    decoder = {"tiff": _decode_tiff, "psd": _decode_psd, "exr": _decode_ffmpeg}
    decoder |= {"dpx": _decode_ffmpeg}
    return decoder.get(kind, _decode_opencv)(data, name)


def read(path: str | Path) -> Still:
    path = Path(path)
    return decode(path.read_bytes(), path.name)


# -- PNG, JPEG, WebP, BMP -------------------------------------------------------------------------


def _decode_opencv(data: bytes, name: str) -> Still:
    try:
        array = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error:
        array = None
    if array is None:
        raise StillError(
            f"cannot decode {name}: the file is incomplete or damaged",
            "Save it again; if the editor was still writing it, wait until it has finished.",
            transient=True,
        )
    if array.ndim == 3 and array.shape[2] >= 3:
        array = np.concatenate([array[:, :, 2::-1], array[:, :, 3:]], axis=2)  # BGR(A) -> RGB(A)
    bits = 16 if array.dtype == np.uint16 else 8
    unit = _unit(array, name)
    rgb, alpha = _split_interleaved(unit, straight=True)
    rgb, alpha = _orient(rgb, alpha, _exif_orientation(data))
    return Still(rgb, alpha, bits)


def _exif_orientation(data: bytes) -> int:
    """The EXIF orientation (1..8) as Pillow reads it; 1 when there is none."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            value = image.getexif().get(0x0112, 1)
    except Exception:  # Pillow cannot open some valid files (e.g. 16-bit planar TIFF)
        return 1
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else 1


def _orient(
    rgb: np.ndarray, alpha: np.ndarray | None, orientation: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Apply an EXIF orientation, as `PIL.ImageOps.exif_transpose` does."""
    if orientation == 1:
        return rgb, alpha

    def turn(image: np.ndarray) -> np.ndarray:
        steps = {
            2: lambda a: a[:, ::-1],
            3: lambda a: a[::-1, ::-1],
            4: lambda a: a[::-1],
            5: lambda a: a.swapaxes(0, 1),
            6: lambda a: np.rot90(a, -1),
            7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
            8: lambda a: np.rot90(a, 1),
        }
        return np.ascontiguousarray(steps[orientation](image))

    return turn(rgb), None if alpha is None else turn(alpha)


# -- TIFF -----------------------------------------------------------------------------------------

_PHOTOMETRIC_MINISWHITE, _PHOTOMETRIC_MINISBLACK, _PHOTOMETRIC_RGB = 0, 1, 2
_PHOTOMETRIC_PALETTE, _PHOTOMETRIC_SEPARATED = 3, 5
_EXTRA_ASSOCIATED, _EXTRA_UNASSOCIATED = 1, 2


def _decode_tiff(data: bytes, name: str) -> Still:
    import tifffile

    try:
        with tifffile.TiffFile(io.BytesIO(data)) as tiff:
            page = tiff.pages.first
            array = page.asarray()
            axes = page.axes
            photometric = int(page.photometric)
            extras = tuple(int(x) for x in page.extrasamples)
            bits = int(page.bitspersample)
            orientation = int(page.tags.valueof(274) or 1)
            icc = page.tags.valueof(34675)
            colormap = page.colormap
    except Exception as error:  # tifffile raises many types for damaged or exotic files
        raise StillError(
            f"cannot decode {name}: the TIFF is incomplete or damaged ({error})",
            "Save it again as an uncompressed or LZW/ZIP TIFF, or as PNG.",
            transient=True,
        ) from error
    array = _samples_last(np.asarray(array), axes)
    warnings: list[str] = []
    if photometric == _PHOTOMETRIC_PALETTE and colormap is not None:
        palette = np.asarray(colormap, np.float32).T / 65535.0
        return Still(palette[array[:, :, 0]], None, bits)
    if array.dtype.kind == "f":
        array = _linear_to_display(array.astype(np.float32), name, warnings)
    else:
        array = _unit(array, name)
    colour_count = {_PHOTOMETRIC_SEPARATED: 4, _PHOTOMETRIC_RGB: 3}.get(photometric, 1)
    if photometric not in (
        _PHOTOMETRIC_MINISWHITE,
        _PHOTOMETRIC_MINISBLACK,
        _PHOTOMETRIC_RGB,
        _PHOTOMETRIC_SEPARATED,
    ):
        raise StillError(f"{name} is a TIFF with photometric {photometric}", _MODE_HINT)
    if array.shape[2] < colour_count:
        raise StillError(f"{name} has {array.shape[2]} samples per pixel", _SAVE_HINT)
    colour_part = array[:, :, :colour_count]
    alpha = None
    if extras and extras[0] in (_EXTRA_ASSOCIATED, _EXTRA_UNASSOCIATED):
        alpha = array[:, :, colour_count]
        if extras[0] == _EXTRA_ASSOCIATED:
            colour_part = _unpremultiply(colour_part, alpha)
    if photometric == _PHOTOMETRIC_MINISWHITE:
        colour_part = 1.0 - colour_part
    if photometric == _PHOTOMETRIC_SEPARATED:
        rgb = cmyk_to_rgb(colour_part, icc, name, warnings)
    elif colour_count == 1:
        rgb = np.repeat(colour_part, 3, axis=2)
    else:
        rgb = colour_part
    rgb, alpha = _orient(np.ascontiguousarray(rgb, np.float32), alpha, orientation)
    return Still(rgb, alpha, bits, tuple(warnings))


def _samples_last(array: np.ndarray, axes: str) -> np.ndarray:
    """tifffile's array with axes like 'YXS' or 'SYX' -> (H, W, samples)."""
    axes = axes.replace("Q", "")
    if array.ndim == 2:
        return array[:, :, None]
    if axes.endswith("YX") and axes.startswith("S"):
        return np.moveaxis(array, 0, -1)
    return array.reshape(array.shape[-3], array.shape[-2], -1) if array.ndim > 3 else array


# -- EXR and DPX (FFmpeg) -------------------------------------------------------------------------


def _decode_ffmpeg(data: bytes, name: str) -> Still:
    import av
    import av.error

    from framerelay.media import planes

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            frame = next(container.decode(video=0))
    except (av.error.FFmpegError, StopIteration, UnicodeDecodeError) as error:
        raise StillError(
            f"cannot decode {name}: {error}", "Save it again, uncompressed or ZIP-compressed."
        ) from error
    samples = planes.read_planes(frame)
    layout = samples.layout
    space = colour.ColourSpace(matrix=colour.MATRIX_RGB, range=colour.RANGE_FULL)
    if not layout.rgb and not layout.grey:
        space = colour.resolve(
            frame.colorspace, 2, 2, frame.color_range, width=frame.width, height=frame.height
        )
    rgb, alpha = planes.to_native(samples, space)
    warnings: list[str] = []
    if layout.floating:  # EXR: linear light, alpha premultiplied by convention
        if alpha is not None:
            rgb = _unpremultiply(rgb, alpha)
        rgb = _linear_to_display(rgb, name, warnings)
    return Still(np.clip(rgb, 0, 1).astype(np.float32), alpha, layout.bits, tuple(warnings))


# -- PSD ------------------------------------------------------------------------------------------


def _decode_psd(data: bytes, name: str) -> Still:
    from psd_tools import PSDImage

    try:
        psd = PSDImage.open(io.BytesIO(data))
        if psd.has_preview():
            return _psd_merged(psd, name)
        return _psd_render(psd, name)
    except StillError:
        raise
    except ImportError as error:
        raise StillError(
            f"rendering the layers of {name} needs a library that is not installed ({error.name})",
            "Reinstall framerelay (psd-tools[composite] provides it), or save the PSD with "
            f"maximized compatibility. {_MAXIMIZE_HINT}",
        ) from error
    except Exception as error:  # psd-tools raises many types on a truncated or unusual file
        raise StillError(
            f"cannot read {name} as a Photoshop document (PSD): {error}",
            f"Save it again as PSD or PNG. {_MAXIMIZE_HINT}",
            transient=True,
        ) from error


def _psd_colour_channels(psd) -> int:
    from psd_tools.constants import ColorMode

    modes = {
        ColorMode.RGB: 3,
        ColorMode.GRAYSCALE: 1,
        ColorMode.CMYK: 4,
        ColorMode.INDEXED: 1,
        ColorMode.BITMAP: 1,
        ColorMode.DUOTONE: 1,
    }
    if psd.color_mode not in modes:
        raise StillError(f"{psd.color_mode.name.title()} PSDs are not supported", _MODE_HINT)
    return modes[psd.color_mode]


def psd_transparency_index(psd) -> int | None:
    """The merged image's transparency channel, only when the file says it has one.

    Photoshop marks a transparent composite with a negative layer count (or a merged-transparency
    block); other extra channels are saved selections or spot colours, never alpha.
    """
    from psd_tools.constants import Tag

    count = _psd_colour_channels(psd)
    if psd.channels <= count:
        return None
    layer_info = psd._record.layer_and_mask_information.layer_info
    negative = layer_info is not None and layer_info.layer_count < 0
    keys = (
        Tag.SAVING_MERGED_TRANSPARENCY,
        Tag.SAVING_MERGED_TRANSPARENCY16,
        Tag.SAVING_MERGED_TRANSPARENCY32,
    )
    tagged = bool(psd.tagged_blocks) and any(key in psd.tagged_blocks for key in keys)
    return count if negative or tagged else None


def _psd_merged(psd, name: str) -> Still:
    from psd_tools.constants import ColorMode

    header = psd._record.header
    raw = psd._record.image_data.get_data(header, False)
    planes = _psd_planes(raw, header.depth, header.channels, header.height, header.width)
    count = _psd_colour_channels(psd)
    warnings: list[str] = []
    colour_part = planes[..., :count]
    alpha_index = psd_transparency_index(psd)
    alpha = None if alpha_index is None else planes[..., alpha_index]
    if alpha is not None:  # Photoshop stores the merged image matted on white
        colour_part = _unmatte(colour_part, alpha, 1.0)
    if header.depth == 32:
        colour_part = _linear_to_display(colour_part, name, warnings)
    if psd.color_mode == ColorMode.CMYK:
        rgb = cmyk_to_rgb(1.0 - colour_part, _psd_icc(psd), name, warnings)
    elif psd.color_mode == ColorMode.INDEXED:
        rgb = _psd_palette(psd)[np.round(planes[..., 0] * 255).astype(np.intp)]
    elif psd.color_mode == ColorMode.BITMAP:
        rgb = np.repeat(1.0 - colour_part, 3, axis=2)
    else:
        if psd.color_mode == ColorMode.DUOTONE:
            warnings.append(f"{name} is a duotone; it is read as its grayscale channel")
        rgb = np.repeat(colour_part, 3, axis=2) if count == 1 else colour_part
    extra = header.channels - count - (alpha is not None)
    if extra:
        log.info("%s: %d extra channel(s) (selections or spot colours) ignored", name, extra)
    return Still(np.clip(rgb, 0, 1).astype(np.float32), alpha, header.depth, tuple(warnings))


def _psd_planes(raw: bytes, depth: int, channels: int, height: int, width: int) -> np.ndarray:
    """The merged image data -> float32 (H, W, channels) in [0, 1] (32-bit: as stored)."""
    if depth == 1:
        row = (width + 7) // 8
        bits = np.unpackbits(np.frombuffer(raw, np.uint8).reshape(channels, height, row), axis=2)
        return np.moveaxis(bits[:, :, :width].astype(np.float32), 0, -1)
    dtypes: dict[int, np.dtype] = {8: np.dtype(np.uint8), 16: np.dtype(">u2"), 32: np.dtype(">f4")}
    dtype = dtypes[depth]
    array = np.frombuffer(raw, dtype).reshape(channels, height, width)
    scale = {8: 255.0, 16: 65535.0, 32: 1.0}[depth]
    return np.moveaxis(array.astype(np.float32) / scale, 0, -1)


def _psd_icc(psd) -> bytes | None:
    from psd_tools.constants import Resource

    return psd.image_resources.get_data(Resource.ICC_PROFILE)


def _psd_palette(psd) -> np.ndarray:
    table = np.frombuffer(psd._record.color_mode_data.value, np.uint8)[:768].reshape(3, 256)
    return table.T.astype(np.float32) / 255.0


def _psd_render(psd, name: str) -> Still:
    from psd_tools.composite import composite
    from psd_tools.constants import ColorMode

    warnings = [f"{name} has no embedded composite; its layers were rendered. {_MAXIMIZE_HINT}"]
    count = _psd_colour_channels(psd)
    color, _shape, alpha = composite(psd, force=True)
    color = np.asarray(color, np.float32)
    if color.ndim == 2:
        color = color[:, :, None]
    if psd.depth == 32:
        color = _linear_to_display(color, name, warnings)
    if psd.color_mode == ColorMode.CMYK:
        rgb = cmyk_to_rgb(1.0 - color[:, :, :count], _psd_icc(psd), name, warnings)
    elif color.shape[2] == 1:
        rgb = np.repeat(color, 3, axis=2)
    else:
        rgb = color[:, :, :3]
    alpha_plane = np.asarray(alpha, np.float32).reshape(rgb.shape[:2])
    opaque = bool(np.all(alpha_plane >= 1.0))
    return Still(
        np.clip(rgb, 0, 1).astype(np.float32),
        None if opaque else alpha_plane,
        psd.depth,
        tuple(warnings),
    )


# -- shared conversions ---------------------------------------------------------------------------


def cmyk_to_rgb(ink: np.ndarray, icc: bytes | None, name: str, warnings: list[str]) -> np.ndarray:
    """Ink amounts (H, W, 4) in [0, 1] -> sRGB, through the embedded profile when there is one."""
    if icc:
        try:
            return _cmyk_with_profile(ink, icc)
        except Exception as error:  # a damaged or unusual profile
            log.debug("ICC conversion of %s failed: %s", name, error)
    warnings.append(
        f"{name} is CMYK without a usable colour profile; converted with the naive formula, "
        "so colours are approximate"
    )
    c, m, y, k = (ink[..., i] for i in range(4))
    return np.stack([(1 - c) * (1 - k), (1 - m) * (1 - k), (1 - y) * (1 - k)], axis=-1)


def _cmyk_with_profile(ink: np.ndarray, icc: bytes) -> np.ndarray:
    from PIL import Image, ImageCms

    pixels = np.clip(np.round(ink * 255), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels, "CMYK")
    source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    target = ImageCms.createProfile("sRGB")
    converted = ImageCms.profileToProfile(
        image, source, target, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC,
        outputMode="RGB",
    )  # fmt: skip
    return np.asarray(converted, np.float32) / 255.0


def _linear_to_display(linear: np.ndarray, name: str, warnings: list[str]) -> np.ndarray:
    """Linear light -> sRGB-encoded; the clear rule for 32-bit PSD, float TIFF and EXR."""
    finite = np.nan_to_num(linear.astype(np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    over = float(np.mean(finite > 1.0))
    if over > 0:
        warnings.append(
            f"{name} holds linear light above 1.0 in {100 * over:.1f}% of its samples; those "
            "highlights are clipped to white"
        )
    return colour.srgb_encode(finite).astype(np.float32)


def _unit(array: np.ndarray, name: str) -> np.ndarray:
    if array.dtype == np.uint8:
        result = array.astype(np.float32) / 255.0
    elif array.dtype == np.uint16:
        result = array.astype(np.float32) / 65535.0
    elif array.dtype == np.uint32:
        result = (array.astype(np.float64) / 4294967295.0).astype(np.float32)
    elif array.dtype == np.bool_:
        result = array.astype(np.float32)
    elif array.dtype.kind == "f":
        result = np.clip(np.nan_to_num(array.astype(np.float32)), 0.0, 1.0)
    else:
        raise StillError(f"{name} has {array.dtype} samples, which are not supported", _SAVE_HINT)
    return result if result.ndim == 3 else result[:, :, None]


def _split_interleaved(unit: np.ndarray, straight: bool) -> tuple[np.ndarray, np.ndarray | None]:
    channels = unit.shape[2]
    if channels in (1, 2):
        rgb = np.repeat(unit[:, :, :1], 3, axis=2)
        alpha = unit[:, :, 1] if channels == 2 else None
    else:
        rgb = unit[:, :, :3]
        alpha = unit[:, :, 3] if channels >= 4 else None
    if alpha is not None and not straight:
        rgb = _unpremultiply(rgb, alpha)
    return np.ascontiguousarray(rgb, np.float32), alpha


def _unpremultiply(colour_part: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    a = alpha[..., None]
    safe = np.where(a > 0, a, 1.0)
    return np.where(a > 0, np.clip(colour_part / safe, 0, 1), 0.0).astype(np.float32)


def _unmatte(colour_part: np.ndarray, alpha: np.ndarray, matte: float) -> np.ndarray:
    """Undo compositing over a flat matte: stored = c·a + matte·(1 - a)."""
    a = alpha[..., None]
    safe = np.where(a > 0, a, 1.0)
    straight = (colour_part - matte * (1 - a)) / safe
    return np.where(a > 0, np.clip(straight, 0, 1), 0.0).astype(np.float32)
