"""Synthetic media for tests: clips with a known moving pattern, VFR clips, images and PSDs.

Every file is written with PyAV/OpenCV/psd-tools directly (not with framerelay.media), so tests of
the media package read independent files.

    make_clip(tmp_path / "a.mp4", n=10, width=160, height=96)
    pattern_frame(3, 160, 96)          # what frame 3 of that clip shows, before compression
    make_vfr_clip(tmp_path / "v.mp4", durations=[1001, 2002, 3003] * 4)
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

NTSC = Fraction(30000, 1001)

# codec -> (pixel format, encoder options); the container comes from the file extension.
CODECS: dict[str, tuple[str, dict[str, str]]] = {
    "libx264": ("yuv420p", {"crf": "12", "bf": "2", "g": "4"}),
    "libx264-lossless": ("yuv444p", {"qp": "0"}),
    "prores_ks": ("yuv422p10le", {"profile": "3"}),
    "png": ("rgb24", {}),
    "ffv1": ("yuv444p", {}),
    "libvpx-vp9": ("yuv420p", {"lossless": "1"}),
    "mpeg4": ("yuv420p", {"qscale": "2"}),
}


def pattern_frame(index: int, width: int, height: int) -> np.ndarray:
    """Frame `index` of the test pattern: a gradient, a moving bright square and a frame-number bar.

    Neighbouring frames differ by several code values almost everywhere, so a wrong frame is
    obvious even after lossy compression.
    """
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frame = np.empty((height, width, 3), np.float32)
    frame[..., 0] = 40 + 150 * x / max(1, width - 1)
    frame[..., 1] = 40 + 150 * y / max(1, height - 1)
    frame[..., 2] = (30 + 17 * index) % 200 + 20
    side = max(4, min(width, height) // 4)
    left = (index * max(2, width // 12)) % max(1, width - side)
    top = (height - side) // 2
    frame[top : top + side, left : left + side] = (250, 240, 60)
    bar = max(1, height // 16)
    frame[:bar, : min(width, (index + 1) * max(1, width // 32))] = (0, 0, 0)
    return frame.round().astype(np.uint8)


def pattern_frames(n: int, width: int, height: int) -> np.ndarray:
    return np.stack([pattern_frame(i, width, height) for i in range(n)])


def make_clip(
    path: Path,
    n: int = 10,
    width: int = 160,
    height: int = 96,
    fps: Fraction = NTSC,
    codec: str = "libx264",
    frames: Sequence[np.ndarray] | np.ndarray | None = None,
) -> Path:
    """Write `n` pattern frames (or the given RGB frames) at a constant rate; returns `path`."""
    images = pattern_frames(n, width, height) if frames is None else frames
    return _encode(path, images, codec, fps, [1] * len(images), 1 / Fraction(fps))


def make_vfr_clip(
    path: Path,
    durations: Sequence[int],
    time_base: Fraction = Fraction(1, 30000),
    width: int = 160,
    height: int = 96,
    codec: str = "libx264",
) -> Path:
    """A variable-frame-rate clip: frame i lasts durations[i] ticks of time_base."""
    images = pattern_frames(len(durations), width, height)
    return _encode(path, images, codec, Fraction(1) / time_base, durations, time_base)


def vfr_timestamps(
    durations: Sequence[int], time_base: Fraction = Fraction(1, 30000)
) -> list[float]:
    """The start time in seconds of each frame of make_vfr_clip(durations=...)."""
    starts = np.concatenate([[0], np.cumsum(durations)[:-1]])
    return [float(int(s) * time_base) for s in starts]


def _encode(
    path: Path,
    images: Sequence[np.ndarray] | np.ndarray,
    codec: str,
    rate: Fraction,
    durations: Sequence[int],
    time_base: Fraction,
) -> Path:
    pix_fmt, options = CODECS[codec]
    encoder = codec.removesuffix("-lossless")
    height, width = images[0].shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(encoder, rate=rate, options=dict(options))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.time_base = time_base
        pts = 0
        for image, duration in zip(images, durations, strict=True):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame = frame.reformat(format=pix_fmt)
            frame.pts, frame.time_base = pts, time_base
            container.mux(stream.encode(frame))
            pts += duration
        container.mux(stream.encode(None))
    return path


def decode_all(path: Path) -> np.ndarray:
    """Every frame, sequentially, as (N, H, W, 3) uint8 RGB (an independent reference decoder)."""
    from framerelay.media.video import RGB_INTERPOLATION

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return np.stack(
            [
                f.to_ndarray(format="rgb24", interpolation=RGB_INTERPOLATION)
                for f in container.decode(stream)
            ]
        )


def write_image(path: Path, rgb: np.ndarray, params: Sequence[int] = ()) -> Path:
    """Write an RGB(A)/gray array of any depth OpenCV supports, converting RGB order to BGR."""
    image = rgb
    if rgb.ndim == 3 and rgb.shape[2] == 3:
        image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    elif rgb.ndim == 3 and rgb.shape[2] == 4:
        image = cv2.cvtColor(rgb, cv2.COLOR_RGBA2BGRA)
    ok, data = cv2.imencode(path.suffix, image, list(params))
    assert ok, f"cannot encode {path.suffix}"
    path.write_bytes(data.tobytes())
    return path


def make_psd(
    path: Path,
    background: tuple[int, int, int] = (30, 60, 200),
    size: tuple[int, int] = (64, 48),
    composite: bool = True,
) -> Path:
    """A two-layer RGB PSD: a flat background and an opaque red 20x10 rectangle at (10, 5).

    With composite=False the file says it has no merged image ("Maximize PSD compatibility" off)
    and its stored merged image is white, so only rendering the layers gives the right picture.
    """
    from PIL import Image
    from psd_tools import PSDImage
    from psd_tools.api import numpy_io
    from psd_tools.constants import Resource

    psd = PSDImage.new("RGB", size)
    psd.create_pixel_layer(Image.new("RGB", size, background), name="Background")
    psd.create_pixel_layer(
        Image.new("RGBA", (20, 10), (255, 0, 0, 255)), name="Red", top=5, left=10
    )
    psd.save(str(path))
    if composite:
        return path
    psd = PSDImage.open(str(path))
    psd.image_resources.get_data(Resource.VERSION_INFO).has_composite = False
    white = np.ones((size[1], size[0], 3), np.float32)
    opaque = np.ones((size[1], size[0], 1), np.float32)
    psd._record.image_data.set_data(
        numpy_io.encode_image_data(psd, white, opaque), psd._record.header
    )
    psd.save(str(path))
    return path


# -- footage as editors have it (issue 16): tagged, rotated, anamorphic, deep, HDR, alpha, ---------
# -- timecode, audio, interlaced; image sequences; PSD/TIFF/JPEG variants ------------------------

# FFmpeg's enum values (also H.273's)
BT709, UNSPECIFIED, BT601, BT2020 = 1, 2, 6, 9
TRC_HLG, TRC_PQ = 18, 16
LIMITED, FULL = 1, 2


def encode_rgb(
    path: Path,
    frames: Sequence[np.ndarray] | np.ndarray,
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    options: dict[str, str] | None = None,
    fps: Fraction = Fraction(25),
    matrix: str = "ITU709",
    tags: dict[str, int] | None = None,
    rotation: float | None = None,
    sar: Fraction | None = None,
    timecode: str | None = None,
    audio: tuple[np.ndarray, int] | None = None,
) -> Path:
    """Encode 8-bit RGB frames, converted by swscale with `matrix` (ITU709, ITU601...), limited
    range. `tags` (colorspace, color_primaries, color_trc, color_range) go on the stream and
    frames as given; leave them out for an untagged file."""

    def convert(image: np.ndarray) -> av.VideoFrame:
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        return frame.reformat(format=pix_fmt, dst_colorspace=matrix, dst_color_range="MPEG")

    return _encode_frames(
        path, [convert(f) for f in frames], codec, pix_fmt, options, fps, tags, rotation, sar,
        timecode, audio,
    )  # fmt: skip


def encode_planes(
    path: Path,
    planes: Sequence[Sequence[np.ndarray]],
    *,
    pix_fmt: str,
    codec: str = "prores_ks",
    options: dict[str, str] | None = None,
    fps: Fraction = Fraction(25),
    tags: dict[str, int] | None = None,
    **extra,
) -> Path:
    """Encode exact sample codes: per frame, one 2D array per plane of `pix_fmt` (Y, Cb, Cr[, A])."""
    frames = []
    for arrays in planes:
        height, width = arrays[0].shape
        frame = av.VideoFrame(width, height, pix_fmt)
        for plane, data in zip(frame.planes, arrays, strict=True):
            target = np.frombuffer(plane, data.dtype).reshape(plane.height, -1)
            target[:, : data.shape[1]] = data
        frames.append(frame)
    return _encode_frames(
        path, frames, codec, pix_fmt, options, fps, tags, extra.get("rotation"), extra.get("sar"),
        extra.get("timecode"), extra.get("audio"),
    )  # fmt: skip


def _encode_frames(
    path, frames, codec, pix_fmt, options, fps, tags, rotation, sar, timecode, audio
) -> Path:
    height, width = frames[0].height, frames[0].width
    with av.open(str(path), mode="w") as container:
        if audio is not None:
            samples, rate = audio
            layout = "stereo" if samples.shape[0] == 2 else "mono"
            sound = container.add_stream("pcm_s16le", rate=rate, layout=layout)
        stream = container.add_stream(codec, rate=fps, options=dict(options or {}))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.time_base = 1 / fps
        for name, value in (tags or {}).items():
            setattr(stream.codec_context, name, value)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = sar
        if timecode is not None:
            stream.metadata["timecode"] = timecode
        if audio is not None:
            pcm = np.clip(np.round(samples * 32767), -32768, 32767).astype(np.int16)
            for start in range(0, pcm.shape[1], 1024):
                chunk = np.ascontiguousarray(pcm[:, start : start + 1024].T.reshape(1, -1))
                frame = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
                frame.sample_rate, frame.pts = rate, start
                frame.time_base = Fraction(1, rate)
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
        for i, frame in enumerate(frames):
            for name, value in (tags or {}).items():
                setattr(frame, name, value)
            frame.pts, frame.time_base = i, 1 / fps
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def limited_codes(values: np.ndarray, bits: int = 10, chroma: bool = False) -> np.ndarray:
    """Normalised values -> limited-range codes (luma 16..235, chroma 16..240 at 8 bits)."""
    unit = 2 ** (bits - 8)
    scale, offset = (224 * unit, 128 * unit) if chroma else (219 * unit, 16 * unit)
    return np.round(values * scale + offset).astype(np.uint16 if bits > 8 else np.uint8)


def ramp_planes(width: int, height: int, first: int, last: int, bits: int = 10) -> list:
    """One 4:2:2 frame: a horizontal luma ramp of codes first..last, neutral chroma."""
    y = np.round(np.linspace(first, last, width))[None, :].repeat(height, axis=0)
    neutral = np.full((height, (width + 1) // 2), 2 ** (bits - 1), np.uint16)
    return [y.astype(np.uint16), neutral, neutral.copy()]


def write_still_ffmpeg(path: Path, frame: av.VideoFrame, codec: str, options=None) -> Path:
    """One image file (EXR, DPX...) written by FFmpeg's encoder."""
    context = av.CodecContext.create(codec, "w")
    context.width, context.height, context.pix_fmt = frame.width, frame.height, frame.format.name
    context.time_base = Fraction(1, 25)
    if options:
        context.options = dict(options)
    packets = context.encode(frame) + context.encode(None)
    path.write_bytes(b"".join(bytes(p) for p in packets))
    return path


def float_frame(rgb: np.ndarray, alpha: np.ndarray | None = None) -> av.VideoFrame:
    """float32 (H, W, 3) -> a gbrpf32le (or gbrapf32le) frame."""
    height, width = rgb.shape[:2]
    frame = av.VideoFrame(width, height, "gbrapf32le" if alpha is not None else "gbrpf32le")
    channels = [rgb[..., 1], rgb[..., 2], rgb[..., 0]]  # planes are G, B, R (then A)
    if alpha is not None:
        channels.append(alpha)
    for plane, data in zip(frame.planes, channels, strict=True):
        target = np.frombuffer(plane, np.float32).reshape(height, -1)
        target[:, :width] = data
    return frame


def make_sequence(
    folder: Path, frames: Sequence[np.ndarray], ext: str = "png", first: int = 1, digits: int = 4
) -> Path:
    """Numbered frames `frame.0001.png` ...: uint8/uint16 RGB(A) for png/tif, float for exr,
    uint16 (10-bit codes) for dpx."""
    import tifffile

    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(frames):
        path = folder / f"frame.{first + i:0{digits}d}.{ext}"
        if ext == "png":
            write_image(path, image)
        elif ext in ("tif", "tiff"):
            extras = ["unassoc"] if image.shape[2] == 4 else None
            tifffile.imwrite(path, image, photometric="rgb", extrasamples=extras)
        elif ext == "exr":
            write_still_ffmpeg(path, float_frame(image), "exr", {"format": "half"})
        elif ext == "dpx":
            frame = av.VideoFrame(image.shape[1], image.shape[0], "gbrp10le")
            planes = (image[..., 1], image[..., 2], image[..., 0])  # G, B, R
            for plane, data in zip(frame.planes, planes, strict=True):
                target = np.frombuffer(plane, np.uint16).reshape(image.shape[0], -1)
                target[:, : image.shape[1]] = data
            write_still_ffmpeg(path, frame, "dpx")
    return folder


def make_raw_psd(
    path: Path,
    channels: np.ndarray,
    *,
    mode: int = 3,
    depth: int = 8,
    layer_count: int = 0,
    resources: dict[int, bytes] | None = None,
) -> Path:
    """A flattened PSD written byte by byte: merged image data `channels` (C, H, W) in the
    file's sample type (uint8, uint16 or float32), raw (uncompressed).

    `mode`: 1 grayscale, 3 RGB, 4 CMYK (values are 255 - ink, as Photoshop stores them).
    `layer_count` < 0 says the first extra channel is the merged transparency (a layer section
    with that count and no layers is written). `resources`: image resource id -> data.
    """
    import struct as st

    count, height, width = channels.shape
    header = b"8BPS" + st.pack(">H6xHIIHH", 1, count, height, width, depth, mode)
    blocks = b""
    for key, data in (resources or {}).items():
        padded = data + (b"\0" if len(data) % 2 else b"")
        blocks += b"8BIM" + st.pack(">H", key) + b"\0\0" + st.pack(">I", len(data)) + padded
    if layer_count:  # |layer_count| one-pixel layers; the sign is what the test is about
        sample = {8: 1, 16: 2, 32: 4}[depth]
        name = b"\x01L\0\0"  # Pascal "L", padded to 4 bytes
        extra = st.pack(">II", 0, 0) + name
        record = st.pack(">4iH", 0, 0, 1, 1, 1) + st.pack(">hI", 0, 2 + sample)
        record += b"8BIMnorm" + bytes([255, 0, 0, 0]) + st.pack(">I", len(extra)) + extra
        pixels = (st.pack(">H", 0) + b"\0" * sample) * abs(layer_count)
        info = st.pack(">h", layer_count) + record * abs(layer_count) + pixels
        info += b"\0" * (len(info) % 2)
        section = st.pack(">I", len(info)) + info + st.pack(">I", 0)
        layers = st.pack(">I", len(section)) + section
    else:
        layers = st.pack(">I", 0)
    dtype = {8: ">u1", 16: ">u2", 32: ">f4"}[depth]
    data = st.pack(">H", 0) + np.ascontiguousarray(channels).astype(dtype).tobytes()
    path.write_bytes(
        header + st.pack(">I", 0) + st.pack(">I", len(blocks)) + blocks + layers + data
    )
    return path


def version_info(has_composite: bool = True) -> bytes:
    """Image resource 1057 (version info) saying whether the file has real merged data."""
    import struct as st

    def unicode(text: str) -> bytes:
        return st.pack(">I", len(text)) + text.encode("utf-16-be")

    return (
        st.pack(">I?", 1, has_composite)
        + unicode("Adobe Photoshop")
        + unicode("Adobe Photoshop 2026")
        + st.pack(">I", 1)
    )


def write_cube(path: Path, curve: np.ndarray, title: str = "test") -> Path:
    """A 1D .cube LUT with the same curve (N values) on R, G and B."""
    rows = "\n".join(f"{v:.6f} {v:.6f} {v:.6f}" for v in curve)
    path.write_text(f'TITLE "{title}"\nLUT_1D_SIZE {len(curve)}\n{rows}\n')
    return path


def make_psd_with_curves(path: Path, background: tuple[int, int, int], size=(16, 12)) -> Path:
    """A layered RGB PSD, written byte by byte: an opaque pixel layer of `background` and above
    it a Curves adjustment layer that inverts (points 0->255, 255->0). It says it has no merged
    image, so only rendering the layers (psd-tools' composite, with scipy) gives the picture."""
    import struct as st

    width, height = size

    def record(bounds, channels, name, blocks=b""):
        head = st.pack(">4iH", *bounds, len(channels))
        head += b"".join(st.pack(">hI", cid, len(data)) for cid, data in channels)
        pascal = bytes([len(name)]) + name.encode()
        pascal += b"\0" * (-len(pascal) % 4)
        extra = st.pack(">II", 0, 0) + pascal + blocks
        return head + b"8BIMnorm" + bytes([255, 0, 8, 0]) + st.pack(">I", len(extra)) + extra

    plane = lambda value: st.pack(">H", 0) + bytes([value]) * (width * height)  # noqa: E731
    pixel_channels = [(-1, plane(255))] + [(i, plane(v)) for i, v in enumerate(background)]
    empty = [(cid, st.pack(">H", 0)) for cid in (-1, 0, 1, 2)]
    curve = st.pack(">BHI", 0, 1, 1) + st.pack(">H2H2H", 2, 255, 0, 0, 255)  # composite only
    curve += b"Crv " + st.pack(">HI", 4, 1) + st.pack(">2H2H2H", 0, 2, 255, 0, 0, 255)
    curve += b"\0" * (len(curve) % 2)
    curves_block = b"8BIMcurv" + st.pack(">I", len(curve)) + curve
    records = record((0, 0, height, width), pixel_channels, "Background")
    records += record((0, 0, 0, 0), empty, "Curves", curves_block)
    data = b"".join(d for _, d in pixel_channels) + b"".join(d for _, d in empty)
    info = st.pack(">h", 2) + records + data
    info += b"\0" * (len(info) % 2)
    section = st.pack(">I", len(info)) + info + st.pack(">I", 0)
    header = b"8BPS" + st.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    resources = b"8BIM" + st.pack(">H", 1057) + b"\0\0"
    version = version_info(has_composite=False)
    resources += st.pack(">I", len(version)) + version + b"\0" * (len(version) % 2)
    merged = st.pack(">H", 0) + bytes([255]) * (3 * width * height)  # white: not the picture
    body = st.pack(">I", 0) + st.pack(">I", len(resources)) + resources
    path.write_bytes(header + body + st.pack(">I", len(section)) + section + merged)
    return path
