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
