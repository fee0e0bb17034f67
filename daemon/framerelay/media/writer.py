"""Write frames as H.264/HEVC .mp4, ProRes .mov or a PNG sequence folder, atomically.

- Frames are float R'G'B' in [0, 1] (uint8 is accepted and scaled), in the colour space the
  `Encoding` names, optionally with a fourth (straight alpha) channel. Conversion to Y'CbCr and
  rounding happen once, here, at the output's bit depth (`framerelay.media.planes`).
- Exactly the given frames at exactly the given rational rate: frame i has pts i, time base 1/fps.
- .mp4: H.264 (libx264, crf 16) for 8-bit outputs, HEVC Main 10 (libx265, crf 16) for 10-bit ones
  (HDR or deeper-than-8-bit sources); 4:2:0, or 4:4:4 for odd sizes (4:2:0 needs even sizes).
- .mov: ProRes 422 HQ (10-bit 4:2:2); ProRes 4444 (10-bit 4:4:4) for odd widths (prores_ks
  garbles the right edge of odd-width 4:2:2), 4:4:4 or R'G'B' sources, and alpha (16-bit alpha).
- PNG sequence: a folder of `frame_000000.png`, ... : 8-bit, or 16-bit for deeper sources; RGBA
  with alpha; HDR and wide-gamut outputs carry a cICP chunk naming their primaries and transfer.
- Colour tags (matrix, primaries, transfer, range), display rotation, pixel aspect and start
  timecode come from the `Encoding`; the default is SDR BT.709 limited range, upright, square.
- Audio (`framerelay.media.audio`) is muxed into .mp4/.mov when given.
- The output is staged under a hidden name next to the target, read back (frame count and size),
  and renamed into place only when complete; on any error, the staged output is deleted.
"""

from __future__ import annotations

import itertools
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from framerelay.errors import InternalError, InvalidSpecError
from framerelay.media import audio as audio_io
from framerelay.media import colour, planes, storage
from framerelay.media.colour import ColourSpace
from framerelay.media.video import probe

FORMATS = ("mp4", "mov", "png")
SEQUENCE_PATTERN = "frame_{:06d}.png"
H264_CRF = 16
HEVC_CRF = 16
PRORES_HQ_PROFILE = 3
PRORES_4444_PROFILE = 4
BT709 = colour.MATRIX_BT709
_FORMAT_HINT = (
    "Use an .mp4 path (H.264), a .mov path (ProRes 422 HQ) or a folder path ending in / "
    "(PNG sequence)."
)


@dataclass(frozen=True)
class Encoding:
    """What an output must say about its pixels, taken from the source (see `for_source`)."""

    colour: ColourSpace = field(default_factory=ColourSpace)
    bits: int = 8  # 8, or 10 (mp4: HEVC; mov is always 10), or 16 (png)
    chroma: str = "420"  # 420, 422 or 444: the source's, to pick the output's layout
    alpha: bool = False
    rotation: int = 0  # display matrix, degrees counter-clockwise
    sar: Fraction = Fraction(1)
    timecode: str | None = None


def for_source(
    space: ColourSpace,
    bit_depth: int,
    chroma: str,
    alpha: bool,
    fmt: str,
    *,
    rotation: int = 0,
    sar: Fraction = Fraction(1),
    timecode: str | None = None,
) -> tuple[Encoding, list[str]]:
    """The encoding that writes a source's pixels back as it had them; plus warnings."""
    warnings = []
    deep = bit_depth > 8 or space.is_hdr
    if fmt == "png":
        bits = 16 if deep else 8
    elif fmt == "mov":
        bits = 10
    else:
        bits = 10 if deep else 8
    if space.is_rgb:  # an R'G'B' source written to Y'CbCr video: the matrix players assume
        matrix = colour.MATRIX_BT709 if space.primaries != colour.PRIMARIES_BT2020 else 9
        space = replace(space, matrix=matrix, range=colour.RANGE_LIMITED)
    if fmt == "mov" and space.full_range:
        space = replace(space, range=colour.RANGE_LIMITED)  # ProRes is limited range
    if alpha and fmt == "mp4":
        warnings.append(
            "the source has an alpha channel, which .mp4 cannot hold; it was dropped "
            "(write .mov for ProRes 4444 with alpha, or a PNG sequence)"
        )
        alpha = False
    encoding = Encoding(
        colour=replace(space, assumed=()),
        bits=bits,
        chroma=chroma,
        alpha=alpha,
        rotation=rotation,
        sar=Fraction(sar) if sar else Fraction(1),
        timecode=timecode,
    )
    return encoding, warnings


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
    encoding: Encoding | None = None,
    audio: audio_io.AudioClip | None = None,
) -> OutputInfo:
    """Write (H, W, 3 or 4) frames, all the same size, at `fps`; return what was written.

    Frames are float in [0, 1] or uint8, in `encoding.colour`'s R'G'B'; a fourth channel is
    straight alpha (written when `encoding.alpha`).
    """
    fmt = output_format(path, fmt)
    fps = _as_rate(fps)
    encoding = encoding or Encoding()
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
            count = _write_sequence(all_frames, staged, (height, width), encoding)
        else:
            count = _write_container(all_frames, staged, fmt, fps, (height, width), encoding, audio)
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
    good_type = frame.dtype == np.uint8 or np.issubdtype(frame.dtype, np.floating)
    if not good_type or frame.ndim != 3 or frame.shape[2] not in (3, 4):
        raise ValueError(
            f"frame {position}: expected (H, W, 3 or 4) uint8 or float R'G'B', got "
            f"{frame.shape} {frame.dtype}"
        )
    if shape is not None and frame.shape[:2] != shape:
        raise ValueError(f"frame {position} is {frame.shape[:2]}, expected {shape} like frame 0")
    return int(frame.shape[0]), int(frame.shape[1])


def _unit(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """A frame -> float32 R'G'B' and straight alpha (or None)."""
    values = frame.astype(np.float32) / 255 if frame.dtype == np.uint8 else frame
    values = np.asarray(values, np.float32)
    alpha = values[:, :, 3] if values.shape[2] == 4 else None
    return values[:, :, :3], alpha


def _encoder(fmt: str, height: int, width: int, encoding: Encoding) -> tuple[str, str, dict]:
    """(codec, pixel format, options) for a container format, frame size and encoding."""
    if fmt == "mov":
        full_chroma = encoding.alpha or encoding.chroma in ("444", "rgb") or width % 2
        if encoding.alpha:
            options = {"profile": str(PRORES_4444_PROFILE), "alpha_bits": "16"}
            return "prores_ks", "yuva444p10le", options
        if full_chroma:
            return "prores_ks", "yuv444p10le", {"profile": str(PRORES_4444_PROFILE)}
        return "prores_ks", "yuv422p10le", {"profile": str(PRORES_HQ_PROFILE)}
    even = width % 2 == 0 and height % 2 == 0
    if encoding.bits > 8:
        pix_fmt = "yuv420p10le" if even else "yuv444p10le"
        options = {"crf": str(HEVC_CRF), "preset": "medium", "x265-params": "log-level=error"}
        options["tag"] = "hvc1"  # the HEVC tag QuickTime and NLEs expect in mp4
        return "libx265", pix_fmt, options
    pix_fmt = "yuv420p" if even else "yuv444p"
    return "libx264", pix_fmt, {"crf": str(H264_CRF), "preset": "medium"}


def _write_container(
    frames: Iterable[np.ndarray],
    staged: Path,
    fmt: str,
    fps: Fraction,
    shape: tuple[int, int],
    encoding: Encoding,
    audio: audio_io.AudioClip | None,
) -> int:
    height, width = shape
    codec, pix_fmt, options = _encoder(fmt, height, width, encoding)
    tag = options.pop("tag", None)
    time_base = 1 / fps
    space = encoding.colour
    count = 0
    container_options = {}
    if audio is not None:
        container_options["movie_timescale"] = str(audio_io.movie_timescale(audio.sample_rate, fps))
    with av.open(str(staged), mode="w", format=fmt, options=container_options) as container:
        audio_stream = audio_io.add_stream(container, audio, fmt) if audio is not None else None
        stream = container.add_stream(codec, rate=fps, options=options)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        context = stream.codec_context
        if tag:
            context.codec_tag = tag
        context.time_base = time_base
        context.colorspace, context.color_range = space.matrix, space.range
        context.color_primaries, context.color_trc = space.primaries, space.transfer
        if encoding.sar != 1:
            context.sample_aspect_ratio = encoding.sar
        if encoding.rotation:
            stream.set_display_rotation(encoding.rotation)
        if encoding.timecode:
            stream.metadata["timecode"] = encoding.timecode
        if audio is not None and audio_stream is not None:  # all first: muxed in time order
            audio_io.mux(container, audio_stream, audio)
        for count, frame in enumerate(frames):
            _check_frame(frame, shape, count)
            packets = stream.encode(_to_video_frame(frame, pix_fmt, space, count, time_base))
            container.mux(_sane_dts(packets))
        container.mux(_sane_dts(stream.encode(None)))
    return count + 1


def _sane_dts(packets: list[av.Packet]) -> list[av.Packet]:
    """libx265 leaves the dts uninitialised in streams shorter than its lookahead (one or two
    frames), which the mp4 muxer refuses; such packets are not reordered, so dts = pts."""
    for packet in packets:
        pts, dts = packet.pts, packet.dts
        if pts is not None and dts is not None and not pts - 64 <= dts <= pts:
            packet.dts = pts
    return packets


def _to_video_frame(
    frame: np.ndarray, pix_fmt: str, space: ColourSpace, pts: int, time_base: Fraction
) -> av.VideoFrame:
    rgb, alpha = _unit(frame)
    video_frame = planes.from_native(rgb, alpha, space, pix_fmt)
    video_frame.colorspace, video_frame.color_range = space.matrix, space.range
    video_frame.color_primaries, video_frame.color_trc = space.primaries, space.transfer
    video_frame.pts, video_frame.time_base = pts, time_base
    return video_frame


def _write_sequence(
    frames: Iterable[np.ndarray], folder: Path, shape: tuple[int, int], encoding: Encoding
) -> int:
    folder.mkdir()
    count = 0
    for count, frame in enumerate(frames):
        _check_frame(frame, shape, count)
        (folder / SEQUENCE_PATTERN.format(count)).write_bytes(_png_bytes(frame, encoding))
    return count + 1


def _png_bytes(frame: np.ndarray, encoding: Encoding) -> bytes:
    rgb, alpha = _unit(frame)
    bits = 16 if encoding.bits > 8 else 8
    top = 2**bits - 1
    channels = [rgb[:, :, 2], rgb[:, :, 1], rgb[:, :, 0]]  # OpenCV writes BGR(A)
    if encoding.alpha and alpha is not None:
        channels.append(alpha)
    image = colour.quantize(np.stack(channels, axis=-1) * top, bits)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise InternalError(f"PNG encoding failed for a {frame.shape} frame")
    space = encoding.colour
    if space.is_hdr or space.primaries in colour.WIDE_PRIMARIES:
        return _with_cicp(data.tobytes(), space)
    return data.tobytes()


def _with_cicp(png: bytes, space: ColourSpace) -> bytes:
    """Insert a cICP chunk (PNG 3rd edition) after IHDR: primaries, transfer, RGB, full range."""
    body = bytes([space.primaries, space.transfer, 0, 1])
    chunk = struct.pack(">I", len(body)) + b"cICP" + body
    chunk += struct.pack(">I", zlib.crc32(b"cICP" + body) & 0xFFFFFFFF)
    ihdr_end = 8 + 8 + 13 + 4
    return png[:ihdr_end] + chunk + png[ihdr_end:]


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
