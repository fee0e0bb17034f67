"""Footage as the editor has it: what a source is, its frames at full precision, and the bridge
between its pixels and the model's.

`probe` describes a video file or an image sequence: stored size, display rotation and pixel
aspect, colour (tags resolved as players do), bit depth, chroma layout, alpha, fields, start
timecode and audio. `select` picks frames by time or by frame number. `iter_native` decodes them
to float R'G'B' in the source's own colour space and stored geometry (deinterlaced when the
source is interlaced); `Bridge` maps them to the model's canvas (colour to BT.709 SDR, rotation,
pixel aspect, pad-to-fit) and the model's output back (`to_native`), and `compose` puts the
source's own pixels back wherever the edit region (feathered) says nothing was edited.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, cast

import av
import av.error
import cv2
import numpy as np

from framerelay.errors import InvalidSpecError, SourceUnreadableError
from framerelay.media import audio as audio_io
from framerelay.media import colour, geometry, planes, sequence, stills, timecode, video
from framerelay.media.colour import ColourSpace, Lut1D, ModelMapping
from framerelay.media.frame_range import to_source_frames
from framerelay.media.geometry import Display, View

if TYPE_CHECKING:
    from av.sidedata.sidedata import SideDataContainer

log = logging.getLogger(__name__)

DEFAULT_SEQUENCE_FPS = Fraction(24)
FEATHER_FRACTION = 1 / 64  # of the canvas' short side: 9 px at 576


@dataclass(frozen=True)
class Native:
    """One decoded frame: float32 (H, W, 3) R'G'B' in the source's space, stored geometry."""

    rgb: np.ndarray
    alpha: np.ndarray | None = None  # float32 (H, W) straight, in [0, 1]


@dataclass(frozen=True, eq=False)
class Footage:
    path: Path
    kind: str  # "video" or "sequence"
    display: Display
    colour: ColourSpace
    bit_depth: int
    chroma: str  # 420, 422, 444, rgb or grey
    alpha: bool
    fps: Fraction
    frame_count: int
    codec: str
    pix_fmt: str
    interlaced: bool = False
    top_field_first: bool = True
    timecode: str | None = None  # at the first frame of the file
    audio: audio_io.AudioInfo | None = None
    warnings: tuple[str, ...] = ()
    first_number: int = 0  # sequences: the number in the first file's name
    _video: tuple[video.VideoInfo, video.FrameIndex] | None = field(default=None, repr=False)
    _sequence: sequence.Sequence | None = field(default=None, repr=False)

    @property
    def stored_size(self) -> tuple[int, int]:
        return (self.display.stored_width, self.display.stored_height)

    @property
    def display_size(self) -> tuple[int, int]:
        return self.display.size


@dataclass(frozen=True, eq=False)
class Span:
    """The frames a job processes."""

    footage: Footage
    frames: range  # indices into the whole source
    start_time: Fraction  # seconds of frames.start on the source's timeline (for the audio)

    @property
    def frame_count(self) -> int:
        return len(self.frames)

    @property
    def duration(self) -> Fraction:
        return Fraction(len(self.frames)) / self.footage.fps

    @property
    def timecode(self) -> str | None:
        """The source's timecode at the first processed frame."""
        return timecode.shifted(self.footage.timecode, self.footage.fps, self.frames.start)


# -- probing --------------------------------------------------------------------------------------


def probe(path: str | Path, fps: Fraction | None = None) -> Footage:
    """Describe a video file or an image sequence (folder or pattern); `fps` for sequences."""
    path = Path(path)
    if sequence.is_sequence_path(path):
        return _probe_sequence(path, fps)
    return _probe_video(path)


def _probe_video(path: Path) -> Footage:
    info, index = video.scan(path)
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            first = next(container.decode(stream), None)
            metadata = _timecode_tag(container, stream)
            sar = stream.sample_aspect_ratio or stream.codec_context.sample_aspect_ratio
            field_order = int(stream.codec_context.field_order or 0)
            audio = audio_io.probe_audio(container)
    except av.error.FFmpegError as error:
        raise SourceUnreadableError(
            f"{path.name} could not be decoded: {error}", video.TRANSCODE_HINT
        ) from error
    if first is None:
        raise SourceUnreadableError(f"{path.name} has no decodable frame", video.TRANSCODE_HINT)
    layout = planes.layout_of(first.format)
    space = planes.colour_of(first)
    if _mirrored(first):
        raise SourceUnreadableError(
            f"{path.name} is displayed mirrored (its display matrix flips the picture), which "
            "framerelay does not reproduce",
            "Flip the clip in your editor (or with ffmpeg) and export it without a flip.",
        )
    rotation = geometry.normalise_rotation(first.rotation)
    interlaced = bool(first.interlaced_frame) or field_order > 1
    top_first = field_order not in (3, 4)  # AV_FIELD_BB, AV_FIELD_TB: bottom field shown first
    warnings = []
    if interlaced:
        order = "top" if top_first else "bottom"
        warnings.append(
            f"{path.name} is interlaced ({order} field first); it is deinterlaced (each frame "
            "rebuilt from its first field) and the output is progressive"
        )
    if space.assumed:
        log.info("%s is untagged; assumed %s", path.name, space.describe())
    display = Display(first.width, first.height, rotation, Fraction(sar) if sar else Fraction(1))
    return Footage(
        path=path,
        kind="video",
        display=display,
        colour=space,
        bit_depth=layout.bits,
        chroma=layout.chroma_name,
        alpha=layout.alpha,
        fps=info.fps,
        frame_count=len(index),
        codec=info.codec,
        pix_fmt=first.format.name,
        interlaced=interlaced,
        top_field_first=top_first,
        timecode=metadata,
        audio=audio,
        warnings=tuple(warnings),
        _video=(info, index),
    )


def _mirrored(frame: av.VideoFrame) -> bool:
    """Whether the frame's display matrix flips the picture (a negative determinant)."""
    sides = cast("SideDataContainer", frame.side_data)  # av's Frame stub says a TypedDict
    for side in sides:
        if "DISPLAYMATRIX" in str(side.type):
            a, b, _, c, d = np.frombuffer(bytes(side), "<i4")[:5].astype(np.int64)
            return a * d - b * c < 0
    return False


def _timecode_tag(container: av.container.InputContainer, stream: av.VideoStream) -> str | None:
    for metadata in (stream.metadata, container.metadata):
        if metadata.get("timecode"):
            return metadata["timecode"]
    for other in container.streams:
        if other.metadata.get("timecode"):
            return other.metadata["timecode"]
    return None


def _probe_sequence(path: Path, fps: Fraction | None) -> Footage:
    frames = sequence.scan(path)
    first = _read_still(frames.files[0])
    height, width = first.rgb.shape[:2]
    warnings = list(first.warnings)
    if fps is None:
        fps = DEFAULT_SEQUENCE_FPS
        warnings.append(
            f"{frames.pattern}: an image sequence has no frame rate; assumed {fps} fps (give --fps)"
        )
    if fps <= 0:
        raise InvalidSpecError(f"the frame rate must be positive, got {fps}", "Give --fps 24.")
    space = ColourSpace(
        colour.MATRIX_RGB, colour.PRIMARIES_BT709, colour.TRC_SRGB, colour.RANGE_FULL
    )
    return Footage(
        path=path,
        kind="sequence",
        display=Display(width, height),
        colour=space,
        bit_depth=first.bit_depth,
        chroma="rgb",
        alpha=first.alpha is not None,
        fps=Fraction(fps),
        frame_count=len(frames),
        codec=frames.files[0].suffix.lower().lstrip("."),
        pix_fmt="rgb",
        warnings=tuple(warnings),
        first_number=frames.first_number,
        _sequence=frames,
    )


def _read_still(path: Path) -> stills.Still:
    try:
        return stills.read(path)
    except stills.StillError as error:
        raise SourceUnreadableError(f"frame {path.name}: {error.message}", error.hint) from error
    except OSError as error:
        raise SourceUnreadableError(
            f"cannot read the frame {path}: {error.strerror}", "Check the sequence's files."
        ) from error


# -- selecting ------------------------------------------------------------------------------------


def select(
    footage: Footage,
    start: float | None = None,
    end: float | None = None,
    *,
    in_frame: int | None = None,
    out_frame: int | None = None,
    min_frames: int = video.MIN_CLIP_FRAMES,
) -> Span:
    """Frames whose time is in [start, end) seconds, or numbered [in_frame, out_frame).

    Frame numbers are those in a sequence's file names, or indices from 0 in a video file.
    """
    by_number = in_frame is not None or out_frame is not None
    if by_number and (start is not None or end is not None):
        raise InvalidSpecError(
            "give either times (--start/--end) or frame numbers (--in/--out), not both",
            "Use --in/--out for image sequences and exact frames, --start/--end for seconds.",
        )
    if footage._sequence is not None:
        if by_number:
            frames = sequence.frame_indices(footage._sequence, in_frame, out_frame)
        else:
            video.check_window(start, end)
            times = video.FrameIndex(
                tuple(range(footage.frame_count)), 1 / footage.fps, footage.fps
            )
            frames = times.select(start, end)
        start_time = frames.start / footage.fps
    else:
        assert footage._video is not None
        _info, index = footage._video
        if by_number:
            frames = _numbered(index, in_frame, out_frame, footage.path)
        else:
            video.check_window(start, end)
            frames = index.select(start, end)
        start_time = _absolute_time(index, frames.start)
    if len(frames) < min_frames:
        raise InvalidSpecError(
            f"the selection holds {len(frames)} of {footage.path.name}'s {footage.frame_count} "
            f"frames; at least {min_frames} are needed",
            "Widen --start/--end (seconds) or --in/--out (frame numbers).",
        )
    return Span(footage, frames, start_time)


def select_range(
    footage: Footage,
    first: int | None = None,
    stop: int | None = None,
    rate: Fraction | None = None,
    *,
    min_frames: int = video.MIN_CLIP_FRAMES,
) -> Span:
    """Frames [first, stop) counted from the source's first frame (0), as a job's frame range
    counts them; `rate` is the rate the host counts the clip at (None: the source's own)."""
    count = footage.frame_count
    start, end = to_source_frames(
        0 if first is None else first, count if stop is None else stop, rate, footage.fps
    )
    if not 0 <= start < end <= count:
        at = "" if rate in (None, footage.fps) else f" at {rate} fps (frames [{start}, {end}) here)"
        raise InvalidSpecError(
            f"the frame range [{first}, {stop}){at} is not in {footage.path.name}, which has "
            f"{count} frames at {footage.fps} fps",
            "out_frame is exclusive and counts from the clip's first frame (0).",
        )
    frames = range(start, end)
    if len(frames) < min_frames:
        raise InvalidSpecError(
            f"the selection holds {len(frames)} of {footage.path.name}'s {count} frames; at "
            f"least {min_frames} are needed",
            "Widen the frame range.",
        )
    if footage._sequence is not None:
        return Span(footage, frames, frames.start / footage.fps)
    assert footage._video is not None
    return Span(footage, frames, _absolute_time(footage._video[1], frames.start))


def _numbered(index: video.FrameIndex, first: int | None, stop: int | None, path: Path) -> range:
    count = len(index)
    start = 0 if first is None else first
    end = count if stop is None else stop
    if not 0 <= start < end <= count:
        raise InvalidSpecError(
            f"frames [{start}, {end}) are not in {path.name}, which has frames 0-{count - 1}",
            f"Give --in/--out between 0 and {count} (out is exclusive).",
        )
    return range(start, end)


def _absolute_time(index: video.FrameIndex, position: int) -> Fraction:
    if not index.timed:
        return position / index.fps
    return index.pts[position] * index.time_base


# -- decoding -------------------------------------------------------------------------------------


def iter_native(span: Span) -> Iterator[Native]:
    """The span's frames in order, decoded to full precision (see `Native`)."""
    footage = span.footage
    if footage._sequence is not None:
        yield from _iter_sequence(footage, span.frames)
        return
    assert footage._video is not None
    info, index = footage._video
    selection = video.FrameSelection(info=info, index=index, frames=span.frames)
    expected = (footage.display.stored_height, footage.display.stored_width)
    for frame in video.decode_selection(selection):
        if (frame.height, frame.width) != expected:
            raise SourceUnreadableError(
                f"{footage.path.name} changes its frame size mid-stream "
                f"({expected[1]}x{expected[0]} to {frame.width}x{frame.height})",
                video.TRANSCODE_HINT,
            )
        rgb, alpha = planes.to_native(planes.read_planes(frame), footage.colour)
        if footage.interlaced:
            rgb = deinterlace(rgb, footage.top_field_first)
            alpha = None if alpha is None else deinterlace(alpha, footage.top_field_first)
        yield Native(rgb, alpha)


def _iter_sequence(footage: Footage, frames: range) -> Iterator[Native]:
    assert footage._sequence is not None
    width, height = footage.stored_size
    for position in frames:
        path = footage._sequence.files[position]
        still = _read_still(path)
        if still.rgb.shape[:2] != (height, width):
            raise SourceUnreadableError(
                f"frame {path.name} is {still.rgb.shape[1]}x{still.rgb.shape[0]}, the sequence "
                f"is {width}x{height}",
                "Render every frame of the sequence at the same size.",
            )
        for warning in still.warnings:
            log.warning("%s", warning)
        yield Native(still.rgb, still.alpha)


def deinterlace(image: np.ndarray, top_field_first: bool) -> np.ndarray:
    """Keep the first field's lines and interpolate the other field's from them."""
    out = np.array(image, np.float32, copy=True)
    keep = 0 if top_field_first else 1
    height = out.shape[0]
    for row in range(1 - keep, height, 2):
        above = out[row - 1] if row - 1 >= 0 else out[row + 1]
        below = out[row + 1] if row + 1 < height else above
        out[row] = (above + below) / 2
    return out


# -- the bridge to the model ----------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Bridge:
    """One source's frames <-> the model's canvas, both ways."""

    footage: Footage
    mapping: ModelMapping
    view: View

    def to_model(self, native: Native) -> np.ndarray:
        """A decoded frame -> float32 (3, Ht, Wt) in [-1, 1]."""
        return self.view.to_model(self.mapping.to_model(native.rgb)[None])[0]

    def display_frame(self, native: Native) -> np.ndarray:
        """A decoded frame as the NLE shows it: float32 (h, w, 3) model R'G'B' in [0, 1]."""
        return self.footage.display.to_display(self.mapping.to_model(native.rgb))

    def refit(self, model_frame: np.ndarray) -> np.ndarray:
        """(3, Ht, Wt) -> the same picture after a trip to the source size and back."""
        stored = self.view.from_model(model_frame)
        return self.view.to_model(stored[None])[0]

    def to_native(self, model_frame: np.ndarray) -> np.ndarray:
        """float (3, Ht, Wt) in [-1, 1] -> float32 (H, W, 3) in the source's colour space."""
        return self.mapping.to_native(self.view.from_model(model_frame))

    def region(self, canvas_region: np.ndarray) -> np.ndarray:
        """A (Ht, Wt) edit region on the canvas -> feathered (H, W) weights in stored geometry."""
        return self.view.region_from_model(feather(canvas_region))


def bridge_for(footage: Footage, width: int, height: int, lut: Lut1D | None = None) -> Bridge:
    """The bridge for a model canvas of width x height; refuses colour it cannot map."""
    colour.check_supported(footage.colour, footage.path.name, lut is not None)
    mapping = colour.mapping_for(footage.colour, lut)
    return Bridge(footage, mapping, geometry.view_for(footage.display, width, height))


def feather(region: np.ndarray) -> np.ndarray:
    """Widen the edit region by the feather radius, then soften its edge over that radius.

    The full-weight area covers every pixel the region touched, so the model's output is used
    wherever the edit reached and the source's pixels return smoothly outside it.
    """
    height, width = region.shape
    radius = max(2, round(min(height, width) * FEATHER_FRACTION))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    grown = cv2.dilate(np.clip(region, 0, 1).astype(np.float32), kernel)
    return cv2.GaussianBlur(grown, (0, 0), sigmaX=radius / 2, borderType=cv2.BORDER_REPLICATE)


def compose(source: Native, edited: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """The model's frame where the weights say edited, the source's own pixels elsewhere.

    Returns float32 (H, W, 3), or (H, W, 4) with the source's alpha when it has one.
    """
    if weights is None:
        out = edited
    else:
        w = weights[:, :, None]
        out = source.rgb + (edited - source.rgb) * w
        out = np.where(w <= 0, source.rgb, out)  # exactly the source outside the region
    if source.alpha is not None:
        out = np.dstack([out, source.alpha])
    return out.astype(np.float32, copy=False)


def display_frame_at(footage: Footage, index: int, lut: Lut1D | None = None) -> np.ndarray:
    """Frame `index` as the NLE shows it, for an editor: float32 (h, w, 3) model R'G'B'."""
    if not 0 <= index < footage.frame_count:
        raise InvalidSpecError(
            f"frame {index} is out of range: {footage.path.name} has {footage.frame_count} frames",
            f"Pick a frame from 0 to {footage.frame_count - 1}.",
        )
    native = next(iter_native(Span(footage, range(index, index + 1), Fraction(0))))
    colour.check_supported(footage.colour, footage.path.name, lut is not None)
    mapping = colour.mapping_for(footage.colour, lut)
    return footage.display.to_display(mapping.to_model(native.rgb))
