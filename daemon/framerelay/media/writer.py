"""Write RGB frames as H.264 .mp4, ProRes 422 HQ .mov or a PNG sequence folder, atomically.

- Exactly the given frames at exactly the given rational rate: frame i has pts i, time base 1/fps.
- .mp4: libx264, crf 16, yuv420p; sizes with an odd width or height use yuv444p (High 4:4:4) so the
  output keeps the exact source size (4:2:0 needs even sizes; some players cannot play 4:4:4).
- .mov: ProRes 422 HQ (prores_ks profile 3, yuv422p10le); an odd width uses ProRes 4444
  (profile 4, yuv444p10le), because prores_ks garbles the right edge of odd-width 4:2:2.
- Both are tagged BT.709 (matrix, primaries, transfer) and limited range.
- PNG sequence: a folder of `frame_000000.png`, ... (8-bit RGB, lossless; a folder has no rate).
- The output is staged under a hidden name next to the target, read back (frame count and size),
  and renamed into place only when complete; on any error, the staged output is deleted.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import Interpolation

from framerelay.errors import InternalError, InvalidSpecError
from framerelay.media import storage
from framerelay.media.video import probe

FORMATS = ("mp4", "mov", "png")
SEQUENCE_PATTERN = "frame_{:06d}.png"
H264_CRF = 16
PRORES_HQ_PROFILE = 3
PRORES_4444_PROFILE = 4
WRITE_INTERPOLATION = (
    Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INP
)
BT709 = 1  # the value of BT.709 in FFmpeg's colour-space, primaries and transfer enums
_FORMAT_HINT = (
    "Use an .mp4 path (H.264), a .mov path (ProRes 422 HQ) or a folder path ending in / "
    "(PNG sequence)."
)


@dataclass(frozen=True)
class OutputInfo:
    path: Path
    frame_count: int
    fps: Fraction
    size: tuple[int, int]  # (width, height)
    format: str  # mp4 | mov | png


def output_format(path: str | Path, fmt: str | None = None) -> str:
    """The output format for a path: .mp4 -> mp4, .mov -> mov, a folder path -> png.

    A folder path has no extension or ends in a slash. `fmt` overrides the guess but must agree
    with the path's extension, if it has one.
    """
    text = str(path)
    suffix = "" if text.endswith(("/", "\\")) else Path(text).suffix.lower().lstrip(".")
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        if fmt not in FORMATS:
            raise InvalidSpecError(
                f"unsupported output format {fmt!r}; expected one of {', '.join(FORMATS)}",
                _FORMAT_HINT,
            )
        if suffix and suffix != fmt:
            raise InvalidSpecError(
                f"output format {fmt!r} does not match the extension of {Path(text).name}",
                _FORMAT_HINT,
            )
        return fmt
    if suffix in ("mp4", "mov"):
        return suffix
    if not suffix:
        return "png"
    raise InvalidSpecError(
        f"unsupported output extension .{suffix} ({Path(text).name})", _FORMAT_HINT
    )


def write_video(
    frames: Iterable[np.ndarray],
    path: str | Path,
    fps: Fraction,
    fmt: str | None = None,
    *,
    overwrite: bool = False,
) -> OutputInfo:
    """Write (H, W, 3) uint8 RGB frames, all the same size, at `fps`; return what was written."""
    fmt = output_format(path, fmt)
    fps = _as_rate(fps)
    target = Path(path)
    storage.check_target(target, overwrite)
    frame_iter = iter(frames)
    first = next(frame_iter, None)
    if first is None:
        raise InvalidSpecError(f"no frames to write to {target}")
    height, width = _check_frame(first, None, 0)
    all_frames = itertools.chain([first], frame_iter)
    with storage.staged_output(target, overwrite) as staged:
        if fmt == "png":
            count = _write_sequence(all_frames, staged, (height, width))
        else:
            count = _write_container(all_frames, staged, fmt, fps, (height, width))
        _verify(staged, fmt, count, (width, height))
    return OutputInfo(path=target, frame_count=count, fps=fps, size=(width, height), format=fmt)


def _as_rate(fps: Fraction | int | float) -> Fraction:
    rate = Fraction(fps)
    if isinstance(fps, float):
        rate = rate.limit_denominator(100_000)
    if rate <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    return rate


def _check_frame(
    frame: np.ndarray, shape: tuple[int, int] | None, position: int
) -> tuple[int, int]:
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError(
            f"frame {position}: expected (H, W, 3) uint8 RGB, got {frame.shape} {frame.dtype}"
        )
    if shape is not None and frame.shape[:2] != shape:
        raise ValueError(f"frame {position} is {frame.shape[:2]}, expected {shape} like frame 0")
    return int(frame.shape[0]), int(frame.shape[1])


def _encoder(fmt: str, height: int, width: int) -> tuple[str, str, dict[str, str]]:
    """(codec, pixel format, options) for a container format and frame size."""
    if fmt == "mov" and width % 2:
        return "prores_ks", "yuv444p10le", {"profile": str(PRORES_4444_PROFILE)}
    if fmt == "mov":
        return "prores_ks", "yuv422p10le", {"profile": str(PRORES_HQ_PROFILE)}
    pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    return "libx264", pix_fmt, {"crf": str(H264_CRF), "preset": "medium"}


def _write_container(
    frames: Iterable[np.ndarray], staged: Path, fmt: str, fps: Fraction, shape: tuple[int, int]
) -> int:
    height, width = shape
    codec, pix_fmt, options = _encoder(fmt, height, width)
    time_base = 1 / fps
    count = 0
    with av.open(str(staged), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        context = stream.codec_context
        context.time_base = time_base
        context.colorspace = context.color_primaries = context.color_trc = BT709
        context.color_range = 1  # limited ("MPEG") range
        for count, frame in enumerate(frames):
            _check_frame(frame, shape, count)
            container.mux(stream.encode(_to_video_frame(frame, pix_fmt, count, time_base)))
        container.mux(stream.encode(None))
    return count + 1


def _to_video_frame(rgb: np.ndarray, pix_fmt: str, pts: int, time_base: Fraction) -> av.VideoFrame:
    source = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
    frame = source.reformat(
        format=pix_fmt,
        dst_colorspace="ITU709",
        dst_color_range="MPEG",
        interpolation=WRITE_INTERPOLATION,
    )
    frame.color_primaries = frame.color_trc = BT709
    frame.pts, frame.time_base = pts, time_base
    return frame


def _write_sequence(frames: Iterable[np.ndarray], folder: Path, shape: tuple[int, int]) -> int:
    folder.mkdir()
    count = 0
    for count, frame in enumerate(frames):
        _check_frame(frame, shape, count)
        (folder / SEQUENCE_PATTERN.format(count)).write_bytes(_png_bytes(frame))
    return count + 1


def _png_bytes(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    if not ok:
        raise InternalError(f"PNG encoding failed for a {rgb.shape} frame")
    return data.tobytes()


def _verify(staged: Path, fmt: str, count: int, size: tuple[int, int]) -> None:
    """Read the staged output back; a short or misshapen output is never published."""
    if fmt == "png":
        found = sum(1 for _ in _sequence_files(staged))
        found_size = size
    else:
        info = probe(staged)
        found, found_size = info.frame_count, info.size
    if found != count or found_size != size:
        raise InternalError(
            f"the written {fmt} holds {found} frames of {found_size}, expected {count} of {size}"
        )


def _sequence_files(folder: Path) -> Iterator[Path]:
    return (p for p in sorted(folder.iterdir()) if p.suffix == ".png")
