"""Frame-accurate video reading with PyAV.

Every frame is found through a presentation-timestamp (pts) index built by demuxing the packets
(no decoding), never through `index / fps`, so variable-frame-rate sources are read exactly.
Times (`start`, `end`, `Clip.timestamps`) are seconds from the first frame of the video stream;
a frame is selected when its timestamp lies in [start, end) (with a 1 µs tolerance for hosts that
compute times in floating point).

Variable frame rate: every frame is kept, and `fps` is the stream's average rate as a Fraction;
outputs are written at that constant rate, so their duration matches the source but individual
frame times may shift.

Colour: `read_clip`, `iter_frames` and `read_frame` give 8-bit R'G'B' in stored geometry,
converted with the matrix and range the stream is tagged with (untagged: BT.709 for HD, BT.601 for
SD, as players assume), with accurate rounding and full-resolution chroma interpolation so a
write/read round trip has no brightness bias. The engine reads through `framerelay.media.footage`,
which keeps full precision, honours rotation and pixel aspect, and maps HDR for the model;
`decode_selection` gives it the decoded frames untouched.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import NoReturn

import av
import av.error
import numpy as np
from av.video.reformatter import Interpolation

from framerelay.errors import InvalidSpecError, SourceUnreadableError
from framerelay.media import colour, planes

# Default swscale yuv->rgb takes a fast path that darkens by about 1 code value on average.
RGB_INTERPOLATION = (
    Interpolation.BILINEAR | Interpolation.FULL_CHR_H_INT | Interpolation.ACCURATE_RND
)
# swscale's names for the matrices it knows; BT.601's 625- and 525-line matrices are the same
_SWS_MATRIX = {colour.MATRIX_SMPTE170M: colour.MATRIX_BT470BG}
TIME_TOLERANCE = Fraction(1, 1_000_000)  # seconds
MIN_CLIP_FRAMES = 2
_INCOMPLETE_HINT = "Wait until the file has finished copying or rendering, or export it again."
TRANSCODE_HINT = "Transcode it to H.264 .mp4 or ProRes .mov (e.g. with ffmpeg or your editor)."


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    width: int
    height: int
    fps: Fraction  # average rate
    frame_count: int
    codec: str
    duration: float  # seconds
    pix_fmt: str

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)


@dataclass(frozen=True)
class FrameIndex:
    """Presentation timestamps of every frame of the video stream, sorted.

    `timed` is False for streams without timestamps (raw .h264 and the like); their frames are
    then placed at `index / fps` and decoded sequentially.
    """

    pts: tuple[int, ...]
    time_base: Fraction
    fps: Fraction
    timed: bool = True

    def __len__(self) -> int:
        return len(self.pts)

    def time_of(self, index: int) -> Fraction:
        """Seconds from the first frame to frame `index`."""
        if not self.timed:
            return index / self.fps
        return (self.pts[index] - self.pts[0]) * self.time_base

    def timestamps(self) -> tuple[float, ...]:
        return tuple(float(self.time_of(i)) for i in range(len(self)))

    def select(self, start: float | None, end: float | None) -> range:
        """Indices of the frames whose time is in [start, end)."""
        first = 0 if start is None else self._count_before(Fraction(start) - TIME_TOLERANCE)
        stop = len(self) if end is None else self._count_before(Fraction(end) - TIME_TOLERANCE)
        return range(first, max(first, stop))

    def index_at(self, seconds: float) -> int:
        """The frame on screen at `seconds`: the last one starting at or before it."""
        return max(0, self._count_before(Fraction(seconds) + TIME_TOLERANCE, inclusive=True) - 1)

    def _count_before(self, seconds: Fraction, inclusive: bool = False) -> int:
        """How many frames start before `seconds` (or at it, when inclusive)."""
        search = bisect.bisect_right if inclusive else bisect.bisect_left
        return search(range(len(self)), seconds, key=self.time_of)


@dataclass(frozen=True)
class FrameSelection:
    """Which frames of a source a clip covers, known before decoding."""

    info: VideoInfo
    index: FrameIndex
    frames: range  # indices into the whole video

    @property
    def first_index(self) -> int:
        return self.frames.start

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    @property
    def pts(self) -> tuple[int, ...]:
        return self.index.pts[self.frames.start : self.frames.stop]

    @property
    def timestamps(self) -> tuple[float, ...]:
        return tuple(float(self.index.time_of(i)) for i in self.frames)


@dataclass(frozen=True, eq=False)
class Clip:
    frames: np.ndarray  # (N, H, W, 3) uint8 RGB
    fps: Fraction  # the source's average rate, e.g. 30000/1001
    first_index: int  # index of frames[0] in the whole video
    pts: tuple[int, ...]  # presentation timestamps, in units of time_base
    time_base: Fraction
    timestamps: tuple[float, ...]  # seconds from the first frame of the video

    @property
    def frame_count(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        return (int(self.frames.shape[2]), int(self.frames.shape[1]))


def probe(path: str | Path) -> VideoInfo:
    """Size, rate, exact frame count and codec of a video, without decoding when possible."""
    path = Path(path)
    with _open(path) as container:
        stream = _video_stream(container, path)
        frame_count = stream.frames or len(_index_stream(container, stream, path))
        return _info(path, container, stream, frame_count)


def index_frames(path: str | Path) -> FrameIndex:
    """The pts index of every frame, from demuxed packets (decodes only streams without pts)."""
    path = Path(path)
    with _open(path) as container:
        return _index_stream(container, _video_stream(container, path), path)


def select_frames(
    path: str | Path,
    start: float | None = None,
    end: float | None = None,
    *,
    min_frames: int = MIN_CLIP_FRAMES,
) -> FrameSelection:
    """Validate a time window and find the frames in it, without decoding them."""
    check_window(start, end)
    info, index = _scan(Path(path))
    _require_frames(len(index), min_frames, info.path, None)
    frames = index.select(start, end)
    _require_frames(len(frames), min_frames, info.path, (start, end, len(index)))
    return FrameSelection(info=info, index=index, frames=frames)


def read_clip(
    path: str | Path,
    start: float | None = None,
    end: float | None = None,
    *,
    min_frames: int = MIN_CLIP_FRAMES,
) -> Clip:
    """Decode exactly the frames whose time is in [start, end); the whole video by default."""
    selection = select_frames(path, start, end, min_frames=min_frames)
    info = selection.info
    frames = np.empty((selection.frame_count, info.height, info.width, 3), np.uint8)
    for slot, frame in enumerate(_decode_selection(selection)):
        frames[slot] = frame
    return Clip(
        frames=frames,
        fps=info.fps,
        first_index=selection.first_index,
        pts=selection.pts,
        time_base=selection.index.time_base,
        timestamps=selection.timestamps,
    )


def iter_frames(
    path: str | Path,
    start: float | None = None,
    end: float | None = None,
    *,
    min_frames: int = MIN_CLIP_FRAMES,
) -> Iterator[np.ndarray]:
    """Like read_clip, one (H, W, 3) uint8 RGB frame at a time; checks the window up front."""
    return _decode_selection(select_frames(path, start, end, min_frames=min_frames))


def read_frame(path: str | Path, index: int) -> np.ndarray:
    """Frame `index` (0-based, in presentation order) as (H, W, 3) uint8 RGB, by exact seek."""
    info, frame_index = _scan(Path(path))
    if not 0 <= index < len(frame_index):
        raise InvalidSpecError(
            f"frame {index} is out of range: {info.path.name} has {len(frame_index)} frames",
            f"Pick a frame from 0 to {len(frame_index) - 1}.",
        )
    selection = FrameSelection(info=info, index=frame_index, frames=range(index, index + 1))
    return next(_decode_selection(selection))


def check_window(start: float | None, end: float | None) -> None:
    """Reject negative, non-finite or empty time windows."""
    for name, value in (("start", start), ("end", end)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise InvalidSpecError(
                f"{name} must be a finite time >= 0 seconds, got {value}",
                "Give --start/--end in seconds from the beginning of the clip.",
            )
    if start is not None and end is not None and start >= end:
        raise InvalidSpecError(
            f"start ({start} s) must be before end ({end} s)",
            "Give --start smaller than --end.",
        )


def scan(path: str | Path) -> tuple[VideoInfo, FrameIndex]:
    """The stream's description and its pts index (demuxes every packet, decodes nothing)."""
    return _scan(Path(path))


def _scan(path: Path) -> tuple[VideoInfo, FrameIndex]:
    with _open(path) as container:
        stream = _video_stream(container, path)
        index = _index_stream(container, stream, path)
        return _info(path, container, stream, len(index)), index


def _open(path: Path) -> av.container.InputContainer:
    if not path.exists():
        raise SourceUnreadableError(
            f"source video not found: {path}", "Check the path; the file may have moved."
        )
    if path.is_file() and path.stat().st_size == 0:
        raise SourceUnreadableError(f"source video is empty (0 bytes): {path}", _INCOMPLETE_HINT)
    if path.is_dir():
        raise SourceUnreadableError(
            f"source is a folder, not a video file: {path}", "Give the path of a video file."
        )
    try:
        return av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError) as error:
        raise SourceUnreadableError(
            f"cannot read {path.name} as a video: {_reason(error)}", TRANSCODE_HINT
        ) from error


def _video_stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    streams = [
        s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic
    ]
    if not streams:
        raise SourceUnreadableError(f"{path.name} has no video stream", TRANSCODE_HINT)
    stream = streams[0]
    if stream.codec_context is None or not stream.width or not stream.height:
        raise SourceUnreadableError(
            f"{path.name}: no decoder for its video codec ({stream.codec_context})", TRANSCODE_HINT
        )
    return stream


def _info(
    path: Path, container: av.container.InputContainer, stream: av.VideoStream, frame_count: int
) -> VideoInfo:
    fps = _average_rate(stream)
    return VideoInfo(
        path=path,
        width=stream.width,
        height=stream.height,
        fps=fps,
        frame_count=frame_count,
        codec=stream.codec_context.name,
        duration=_duration(container, stream, frame_count, fps),
        pix_fmt=stream.codec_context.pix_fmt or "",
    )


def _average_rate(stream: av.VideoStream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    raise SourceUnreadableError("the video stream has no frame rate", TRANSCODE_HINT)


def _duration(
    container: av.container.InputContainer, stream: av.VideoStream, frame_count: int, fps: Fraction
) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return float(frame_count / fps)


def _index_stream(
    container: av.container.InputContainer, stream: av.VideoStream, path: Path
) -> FrameIndex:
    fps = _average_rate(stream)
    pts: list[int] = []
    untimed = discarded = 0
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if packet.is_discard:
                discarded += 1
            elif packet.pts is None:
                untimed += 1
            else:
                pts.append(packet.pts)
    except av.error.FFmpegError as error:
        raise SourceUnreadableError(
            f"{path.name} is damaged: {_reason(error)}", TRANSCODE_HINT
        ) from error
    present = len(pts) + untimed + discarded
    if stream.frames and present < stream.frames:
        raise SourceUnreadableError(
            f"{path.name} is incomplete: its header lists {stream.frames} frames "
            f"but only {present} are in the file",
            _INCOMPLETE_HINT,
        )
    if untimed:
        return _index_by_decoding(path, fps)
    if stream.time_base is None:
        raise SourceUnreadableError(f"{path.name} has no time base for its frames", TRANSCODE_HINT)
    return FrameIndex(pts=tuple(sorted(pts)), time_base=Fraction(stream.time_base), fps=fps)


def _index_by_decoding(path: Path, fps: Fraction) -> FrameIndex:
    count = sum(1 for _ in _decoded_frames(path, seek_pts=None))
    return FrameIndex(pts=tuple(range(count)), time_base=1 / fps, fps=fps, timed=False)


def _decode_selection(selection: FrameSelection) -> Iterator[np.ndarray]:
    return (_to_rgb(frame) for frame in decode_selection(selection))


def decode_selection(selection: FrameSelection) -> Iterator[av.VideoFrame]:
    """The selected frames as decoded by FFmpeg, in presentation order (no conversion)."""
    path, index, frames = selection.info.path, selection.index, selection.frames
    if not index.timed:
        count = 0
        for position, frame in enumerate(_decoded_frames(path, seek_pts=None)):
            if position >= frames.stop:
                return
            if position >= frames.start:
                yield frame
                count += 1
        if count < len(frames):
            _raise_short(path, frames, count)
        return
    yield from _decode_by_pts(path, index, frames)


def _decode_by_pts(path: Path, index: FrameIndex, frames: range) -> Iterator[av.VideoFrame]:
    """Seek to the keyframe before the first wanted frame and decode forward, matching pts.

    If the seek lands after the wanted frame (some demuxers seek by decode time), seek earlier.
    """
    wanted = index.pts[frames.start : frames.stop]
    for seek_pts in _seek_candidates(index, frames.start):
        decoded = _decoded_frames(path, seek_pts)
        first = next((f for f in decoded if f.pts is None or f.pts >= wanted[0]), None)
        landed = first is not None and first.pts in (None, wanted[0])
        if not landed and seek_pts is not None:
            decoded.close()
            continue
        yield from _match_pts(path, first, decoded, wanted, frames)
        return


def _seek_candidates(index: FrameIndex, first: int) -> Iterator[int | None]:
    step = 0
    while first - step > 0:
        yield index.pts[first - step]
        step = max(1, step * 4)
    yield None  # decode from the beginning


def _match_pts(
    path: Path,
    first: av.VideoFrame | None,
    decoded: Iterator[av.VideoFrame],
    wanted: Sequence[int],
    frames: range,
) -> Iterator[av.VideoFrame]:
    position = 0
    frame = first
    while frame is not None and position < len(wanted):
        if frame.pts is not None and frame.pts != wanted[position]:
            if frame.pts > wanted[position]:
                raise SourceUnreadableError(
                    f"{path.name}: frame {frames.start + position} (pts {wanted[position]}) "
                    f"could not be decoded",
                    TRANSCODE_HINT,
                )
        else:
            yield frame
            position += 1
        frame = next(decoded, None)
    if position < len(wanted):
        _raise_short(path, frames, position)


def _decoded_frames(path: Path, seek_pts: int | None) -> Generator[av.VideoFrame]:
    with _open(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = "AUTO"
        try:
            if seek_pts is not None:
                container.seek(seek_pts, stream=stream, backward=True)
            yield from container.decode(stream)
        except av.error.FFmpegError as error:
            raise SourceUnreadableError(
                f"{path.name} could not be decoded: {_reason(error)}", TRANSCODE_HINT
            ) from error


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """8-bit R'G'B' as stored (no rotation, no tone mapping), with the matrix the frame is tagged
    with or, untagged, the one players assume (BT.709 for HD, BT.601 for SD)."""
    if frame.format.is_rgb or frame.format.name.startswith(("gray", "pal")):
        return frame.to_ndarray(format="rgb24", interpolation=RGB_INTERPOLATION)
    space = planes.colour_of(frame)
    return frame.to_ndarray(
        format="rgb24",
        interpolation=RGB_INTERPOLATION,
        src_colorspace=_SWS_MATRIX.get(space.matrix, space.matrix),
        src_color_range=space.range,
        dst_color_range=colour.RANGE_FULL,
    )


def _raise_short(path: Path, frames: range, decoded: int) -> NoReturn:
    raise SourceUnreadableError(
        f"{path.name}: decoded only {decoded} of the {len(frames)} frames "
        f"{frames.start}..{frames.stop - 1}; the file may be truncated or damaged",
        TRANSCODE_HINT,
    )


def _require_frames(
    count: int, minimum: int, path: Path, window: tuple[float | None, float | None, int] | None
) -> None:
    if count >= minimum:
        return
    if window is None:
        raise SourceUnreadableError(
            f"{path.name} has {count} frame(s); at least {minimum} are needed",
            "Use a video with at least two frames.",
        )
    start, end, total = window
    raise InvalidSpecError(
        f"the window start={_seconds(start)} end={_seconds(end)} selects {count} of "
        f"{path.name}'s {total} frames; at least {minimum} are needed",
        "Widen --start/--end (times are in seconds from the first frame of the clip).",
    )


def _seconds(value: float | None) -> str:
    return "none" if value is None else f"{value}s"


def _reason(error: BaseException) -> str:
    return getattr(error, "strerror", None) or str(error) or type(error).__name__
