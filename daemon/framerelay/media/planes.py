"""Decoded video frames <-> numpy, at full precision, with our own chroma resampling.

Reading: planar Y'CbCr and R'G'B' formats (8 to 16 bits, float) are read straight from the frame's
planes; anything else (semi-planar, packed, paletted) is first converted by swscale to a planar
format of the same family and depth, which changes no matrix.

Chroma siting follows the defaults of H.264/HEVC/ProRes: horizontally co-sited with the even luma
samples, vertically (4:2:0) between rows. Upsampling is linear; downsampling takes the co-sited
samples horizontally and averages row pairs vertically, so 4:2:2 and 4:4:4 sources come back
bit-exact when nothing changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import av
import numpy as np

from framerelay.media import colour
from framerelay.media.colour import ColourSpace


@dataclass(frozen=True)
class Layout:
    """How a pixel format stores a picture."""

    rgb: bool  # R'G'B' components (else Y'CbCr or grey)
    grey: bool
    alpha: bool
    bits: int  # bits per component (16 or 32 for float)
    chroma: tuple[int, int]  # (horizontal, vertical) subsampling factors, (1, 1) for 4:4:4
    floating: bool = False
    full_range_format: bool = False  # yuvj*

    @property
    def chroma_name(self) -> str:
        if self.rgb:
            return "rgb"
        if self.grey:
            return "grey"
        return {(1, 1): "444", (2, 1): "422", (2, 2): "420"}.get(self.chroma, "other")


def layout_of(fmt: av.VideoFormat) -> Layout:
    components = fmt.components
    name = fmt.name
    has_alpha = any(c.is_alpha for c in components)
    colour_components = len(components) - (1 if has_alpha else 0)
    chroma = (1, 1)
    if colour_components >= 3 and not fmt.is_rgb:
        luma, blue = components[0], components[1]
        chroma = (
            max(1, round(luma.width / max(1, blue.width))),
            max(1, round(luma.height / max(1, blue.height))),
        )
    return Layout(
        rgb=bool(fmt.is_rgb),
        grey=colour_components == 1,
        alpha=has_alpha,
        bits=max(c.bits for c in components),
        chroma=chroma,
        floating=name.startswith(("gbrpf", "gbrapf", "grayf")),
        full_range_format=name.startswith("yuvj"),
    )


def colour_of(frame: av.VideoFrame) -> ColourSpace:
    """The frame's colour tags, unspecified ones resolved as players do (`colour.resolve`)."""
    layout = layout_of(frame.format)
    return colour.resolve(
        frame.colorspace,
        frame.color_primaries,
        frame.color_trc,
        frame.color_range,
        width=frame.width,
        height=frame.height,
        rgb=layout.rgb,
        full_range_format=layout.full_range_format,
    )


@dataclass(frozen=True)
class Planes:
    """A frame's samples: full-resolution colour channels and chroma at its stored resolution."""

    layout: Layout
    channels: tuple[np.ndarray, ...]  # Y, Cb, Cr (or R, G, B, or grey), each 2D
    alpha: np.ndarray | None  # 2D, codes or float


_DIRECT_PREFIXES = ("yuv4", "yuva4", "yuvj4", "gbrp", "gbrap", "gray")


def read_planes(frame: av.VideoFrame) -> Planes:
    """The frame's samples, converting only unusual layouts through swscale."""
    name = frame.format.name
    if not name.startswith(_DIRECT_PREFIXES) or name.endswith("be"):
        frame = frame.reformat(format=_planar_equivalent(frame.format))
    layout = layout_of(frame.format)
    dtype = _dtype(layout)
    arrays = []
    for component in frame.format.components:
        plane = frame.planes[component.plane]
        row = plane.line_size // dtype.itemsize
        data = np.frombuffer(plane, dtype)  # type: ignore[call-overload]  # a plane is a buffer
        data = data.reshape(-1, row)[: component.height, : component.width]
        arrays.append(data.astype(np.float32) if layout.floating else data)
    alpha = arrays.pop() if layout.alpha else None  # components are listed R, G, B (or Y, Cb, Cr)
    return Planes(layout, tuple(arrays), alpha)


def _dtype(layout: Layout) -> np.dtype:
    if layout.floating:
        return np.dtype("<f2") if layout.bits == 16 else np.dtype("<f4")
    return np.dtype(np.uint8) if layout.bits <= 8 else np.dtype("<u2")


def _planar_equivalent(fmt: av.VideoFormat) -> str:
    layout = layout_of(fmt)
    if fmt.name in ("pal8", "monob", "monow"):
        return "gbrp"
    deep = layout.bits > 8
    if layout.grey and not layout.alpha:
        return "gray16le" if deep else "gray"
    if layout.rgb or layout.grey:
        if layout.floating:
            return "gbrapf32le" if layout.alpha else "gbrpf32le"
        if deep:
            return "gbrap16le" if layout.alpha else "gbrp16le"
        return "gbrap" if layout.alpha else "gbrp"
    suffix = "16le" if deep else ""
    if layout.alpha:
        return f"yuva444p{suffix}"
    return {(2, 2): "yuv420p", (2, 1): "yuv422p"}.get(layout.chroma, "yuv444p") + suffix


def to_native(planes: Planes, space: ColourSpace) -> tuple[np.ndarray, np.ndarray | None]:
    """Samples -> float32 (H, W, 3) native R'G'B' and float32 alpha in [0, 1] (or None)."""
    layout = planes.layout
    alpha = None
    if planes.alpha is not None:
        alpha = _unit(planes.alpha, layout.bits)
    if layout.grey:
        grey = _grey_to_unit(planes.channels[0], layout, space)
        return np.repeat(grey[..., None], 3, axis=2), alpha
    if layout.rgb:
        if layout.floating:
            rgb = np.stack(planes.channels, axis=-1).astype(np.float32)
        else:
            offset, scale = colour.rgb_levels(layout.bits, True)  # R'G'B' formats are full range
            rgb = (np.stack(planes.channels, axis=-1).astype(np.float32) - offset) / scale
        return rgb, alpha
    y, cb, cr = planes.channels
    height, width = y.shape
    cb = upsample_chroma(cb, layout.chroma, (height, width))
    cr = upsample_chroma(cr, layout.chroma, (height, width))
    return colour.yuv_to_rgb(y, cb, cr, space, layout.bits), alpha


def _unit(codes: np.ndarray, bits: int) -> np.ndarray:
    if codes.dtype.kind == "f":
        return np.clip(codes.astype(np.float32), 0, 1)
    return codes.astype(np.float32) / (2**bits - 1)


def _grey_to_unit(codes: np.ndarray, layout: Layout, space: ColourSpace) -> np.ndarray:
    if codes.dtype.kind == "f":
        return codes.astype(np.float32)
    offset, scale = colour.rgb_levels(layout.bits, space.full_range or space.is_rgb)
    return (codes.astype(np.float32) - offset) / scale


def upsample_chroma(
    plane: np.ndarray, factors: tuple[int, int], shape: tuple[int, int]
) -> np.ndarray:
    """Chroma at its stored resolution -> full resolution (linear; see the module docstring)."""
    plane = plane.astype(np.float32)
    fx, fy = factors
    height, width = shape
    if fx > 1:
        plane = _interpolate(plane, width, fx, cosited=True, axis=1)
    if fy > 1:
        plane = _interpolate(plane, height, fy, cosited=False, axis=0)
    return plane


def _interpolate(plane: np.ndarray, size: int, factor: int, cosited: bool, axis: int) -> np.ndarray:
    count = plane.shape[axis]
    positions = np.arange(size, dtype=np.float64)
    source = positions / factor if cosited else (positions + 0.5) / factor - 0.5
    source = np.clip(source, 0, count - 1)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, count - 1)
    weight = (source - low).astype(np.float32)
    if axis == 1:
        return plane[:, low] * (1 - weight) + plane[:, high] * weight
    return plane[low, :] * (1 - weight)[:, None] + plane[high, :] * weight[:, None]


def downsample_chroma(plane: np.ndarray, factors: tuple[int, int]) -> np.ndarray:
    """Full-resolution chroma -> subsampled: co-sited samples across, row pairs averaged down."""
    fx, fy = factors
    if fx > 1:
        plane = plane[:, ::fx]
    if fy > 1:
        height = plane.shape[0]
        pairs = height // fy
        out = np.empty((-(-height // fy), plane.shape[1]), np.float32)
        out[:pairs] = plane[: pairs * fy].reshape(pairs, fy, -1).mean(axis=1)
        if height % fy:
            out[pairs:] = plane[pairs * fy :].mean(axis=0, keepdims=True)
        plane = out
    return plane


def from_native(
    rgb: np.ndarray,
    alpha: np.ndarray | None,
    space: ColourSpace,
    pix_fmt: str,
) -> av.VideoFrame:
    """float (H, W, 3) native R'G'B' (and alpha in [0, 1]) -> a frame of a planar `pix_fmt`."""
    height, width = rgb.shape[:2]
    frame = av.VideoFrame(width, height, pix_fmt)
    layout = layout_of(frame.format)
    if layout.rgb:
        offset, scale = colour.rgb_levels(layout.bits, True)
        values = [rgb[..., c] * scale + offset for c in range(3)]
    else:
        y, cb, cr = colour.rgb_to_yuv(rgb, space, layout.bits)
        values = [y, downsample_chroma(cb, layout.chroma), downsample_chroma(cr, layout.chroma)]
    if layout.alpha:
        opaque = np.ones((height, width), np.float32) if alpha is None else alpha
        values.append(np.clip(opaque, 0, 1) * (2**layout.bits - 1))
    for component, value in zip(frame.format.components, values, strict=True):
        _write_plane(frame.planes[component.plane], colour.quantize(value, layout.bits))
    return frame


def _write_plane(plane: av.video.plane.VideoPlane, codes: np.ndarray) -> None:
    row = plane.line_size // codes.itemsize
    target = np.frombuffer(plane, codes.dtype)  # type: ignore[call-overload]  # a buffer
    target = target.reshape(-1, row)
    target[: codes.shape[0], : codes.shape[1]] = codes
