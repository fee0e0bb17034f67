"""What one job asks for: `JobSpec`, its validation, its JSON form and where its outputs go."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from framerelay import limits
from framerelay.engine.params import PRESET_NAMES, EngineParams, job_params
from framerelay.engine.request import OUTPUT_FORMATS
from framerelay.errors import (
    EditUnreadableError,
    FramerelayError,
    InvalidSpecError,
    SourceUnreadableError,
)

log = logging.getLogger(__name__)

DEFAULT_OUTPUT_FORMAT = "mov"


@dataclass(frozen=True)
class FrameRange:
    """Frames [in_frame, out_frame) of the source file."""

    in_frame: int
    out_frame: int

    @property
    def count(self) -> int:
        return self.out_frame - self.in_frame


# The engine parameters a job may set besides its preset (JobSpec.preset), in table order.
OVERRIDABLE: tuple[str, ...] = tuple(p.name for p in job_params() if p.name != "preset")


class ParamOverrides(Mapping[str, Any]):
    """Engine parameters the job sets, by their table names (engine/params.py); the others take
    the engine's defaults. Reads as a mapping of what is set, or by attribute (None: not set)."""

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, Any] | None = None, /, **named: Any):
        given = {**(values or {}), **named}
        unknown = sorted(set(given) - set(OVERRIDABLE))
        if unknown:
            raise TypeError(f"not engine parameters a job sets: {', '.join(unknown)}")
        self._values = {n: given[n] for n in OVERRIDABLE if given.get(n) is not None}

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __getattr__(self, name: str) -> Any:
        if name in OVERRIDABLE:
            return self._values.get(name)
        raise AttributeError(name)

    def __hash__(self) -> int:
        return hash(tuple(self._values.items()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self._values.items())
        return f"ParamOverrides({inner})"


@dataclass(frozen=True)
class EditSessionSpec:
    """A round trip with an image editor: the job waits for the user's edit of one frame."""

    frame_index: int = 0  # counted from the start of the frame range (or of the clip)
    sixteen_bit: bool = False  # export a 16-bit TIFF instead of an 8-bit sRGB PNG
    open_editor: bool | None = None  # None: the daemon's [editor] open_editor setting
    follow_saves: bool = False  # a save after the job started queues a new job with it


@dataclass(frozen=True)
class JobSpec:
    source: Path
    edited_frames: tuple[Path, ...]
    frame_range: FrameRange | None = None
    source_fps: Fraction | None = None
    mask: Path | None = None
    preset: str = "auto"
    params: ParamOverrides = field(default_factory=ParamOverrides)
    output_format: str = DEFAULT_OUTPUT_FORMAT
    output_folder: Path | None = None
    overwrite: bool = False  # replace outputs that already exist
    host_context: dict[str, str] = field(default_factory=dict)
    model: str = ""  # empty: the daemon's default model
    label: str = ""
    request_id: str = ""
    edit_session: EditSessionSpec | None = None
    # Footage (docs/footage-and-colour.md)
    sequence_fps: Fraction | None = None  # an image-sequence source's rate; None: source_fps/24
    input_lut: Path | None = None  # 1D .cube input transform for log footage
    keep_unedited: bool = True  # outside the mask, the source's own pixels
    audio: bool = True  # copy the source's audio into .mp4/.mov outputs

    @property
    def awaits_edit(self) -> bool:
        """A round trip that has no edited frame yet."""
        return self.edit_session is not None and not self.edited_frames

    def engine_params(self) -> EngineParams:
        return engine_params(self.preset, self.params)

    def validate(self) -> JobSpec:
        """Checks everything that can be checked without decoding media; raises catalogue errors."""
        check_texts(self)
        check_source(self.source)
        if not self.edited_frames and self.edit_session is None:
            raise InvalidSpecError(
                "the job has no edited frame.",
                "Pass at least one edited frame, or ask for a round trip with an image editor.",
            )
        limits.check_edited_count(len(self.edited_frames))
        if self.edit_session is not None:
            check_edit_session(self.edit_session, self.edited_frames, self.frame_range)
        for edited in self.edited_frames:
            check_readable_file(edited, "edited frame")
        if self.mask is not None:
            check_readable_file(self.mask, "mask")
        if self.input_lut is not None:
            check_readable_file(
                self.input_lut,
                "input LUT",
                "Give the path of a 1D LUT in .cube format (LUT_1D_SIZE), or none for footage "
                "that is not log.",
            )
        if self.sequence_fps is not None and self.sequence_fps <= 0:
            raise InvalidSpecError(f"the sequence fps must be positive, got {self.sequence_fps}.")
        check_range(self.frame_range, self.source_fps)
        if self.preset not in PRESET_NAMES:
            raise InvalidSpecError(
                f"unknown preset {self.preset!r}.", f"Choose one of {', '.join(PRESET_NAMES)}."
            )
        if self.output_format not in OUTPUT_FORMATS:
            raise InvalidSpecError(
                f"unknown output format {self.output_format!r}.",
                f"Choose one of {', '.join(OUTPUT_FORMATS)}.",
            )
        check_output_folder(self.output_folder)
        self.engine_params().validate()
        return self

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "edited_frames": [str(p) for p in self.edited_frames],
            "frame_range": asdict(self.frame_range) if self.frame_range else None,
            "source_fps": fraction_to_list(self.source_fps),
            "mask": str(self.mask) if self.mask else None,
            "preset": self.preset,
            "params": dict(self.params),
            "output_format": self.output_format,
            "output_folder": str(self.output_folder) if self.output_folder else None,
            "overwrite": self.overwrite,
            "host_context": dict(self.host_context),
            "model": self.model,
            "label": self.label,
            "request_id": self.request_id,
            "edit_session": asdict(self.edit_session) if self.edit_session else None,
            "sequence_fps": fraction_to_list(self.sequence_fps),
            "input_lut": str(self.input_lut) if self.input_lut else None,
            "keep_unedited": self.keep_unedited,
            "audio": self.audio,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        frame_range = data.get("frame_range")
        return cls(
            source=Path(data["source"]),
            edited_frames=tuple(Path(p) for p in data["edited_frames"]),
            frame_range=FrameRange(**frame_range) if frame_range else None,
            source_fps=fraction_from_list(data.get("source_fps")),
            mask=Path(data["mask"]) if data.get("mask") else None,
            preset=data.get("preset", "auto"),
            params=ParamOverrides(
                {k: v for k, v in data.get("params", {}).items() if k in OVERRIDABLE}
            ),
            output_format=data.get("output_format", DEFAULT_OUTPUT_FORMAT),
            output_folder=Path(data["output_folder"]) if data.get("output_folder") else None,
            overwrite=bool(data.get("overwrite", False)),
            host_context=dict(data.get("host_context", {})),
            model=data.get("model", ""),
            label=data.get("label", ""),
            request_id=data.get("request_id", ""),
            edit_session=EditSessionSpec(**data["edit_session"])
            if data.get("edit_session")
            else None,
            sequence_fps=fraction_from_list(data.get("sequence_fps")),
            input_lut=Path(data["input_lut"]) if data.get("input_lut") else None,
            keep_unedited=bool(data.get("keep_unedited", True)),
            audio=bool(data.get("audio", True)),
        )


def engine_params(preset: str, overrides: Mapping[str, Any]) -> EngineParams:
    """The engine's parameters for a job's preset and overrides (not validated yet)."""
    return EngineParams().with_values({"preset": preset, **overrides})


def check_texts(spec: JobSpec) -> None:
    """The limits on free text: paths, names and the host context."""
    for path, what in (
        (spec.source, "source"),
        *((p, "edited frame") for p in spec.edited_frames),
        (spec.mask, "mask"),
        (spec.input_lut, "input LUT"),
        (spec.output_folder, "output folder"),
    ):
        if path is not None:
            limits.check_path_text(path, what)
    limits.check_text(spec.model, "model", limits.MAX_MODEL_LENGTH)
    limits.check_text(spec.label, "label", limits.MAX_LABEL_LENGTH)
    limits.check_text(spec.request_id, "request id", limits.MAX_REQUEST_ID_LENGTH)
    limits.check_host_context(spec.host_context)


PSEUDO_FILE_SYSTEMS = (Path("/proc"), Path("/sys"))  # files of the kernel, not media


def file_problem(path: Path) -> str | None:
    """Why `path` cannot be an input, or None. With symlinks and `..` resolved, it must be an
    existing regular file (reading a pipe or a device could block forever) outside the kernel's
    pseudo file systems."""
    try:
        resolved = path.resolve(strict=True)
        mode = resolved.stat().st_mode
    except (OSError, RuntimeError, ValueError):  # missing, unreadable, a symlink loop
        return "does not exist or is not a regular file"
    if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
        return "is a pipe, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not a regular file"
    if stat.S_ISDIR(mode):
        return "is a folder, not a regular file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if any(resolved.is_relative_to(root) for root in PSEUDO_FILE_SYSTEMS):
        return "is a file of the operating system, not a media file"
    return None


def is_regular_file(path: Path) -> bool:
    return file_problem(path) is None


def check_absolute(path: Path, what: str) -> None:
    limits.check_path_text(path, what)
    if not str(path) or str(path) == ".":
        raise InvalidSpecError(f"the {what} path is empty.")
    if not path.is_absolute():
        raise InvalidSpecError(
            f"the {what} path must be absolute, got {str(path)!r}.",
            "Send absolute paths: the daemon does not share the client's working directory.",
        )


def check_source(path: Path) -> None:
    check_absolute(path, "source")
    if is_sequence_source(path):
        from framerelay.media.sequence import scan

        scan(path)  # a folder or pattern must name one numbered run of frames, without gaps
        return
    problem = file_problem(path)
    if problem is None and path.stat().st_size == 0:
        problem = "is empty"
    if problem is not None:
        raise SourceUnreadableError(
            f"the source {str(path)!r} {problem}.",
            "Check the path; network drives must be mounted for the daemon's user too.",
        )


def is_sequence_source(path: Path) -> bool:
    """A folder of frames, or a pattern like /shots/a_%04d.exr whose folder exists."""
    from framerelay.media.sequence import is_sequence_path

    try:
        return is_sequence_path(path) and (path.is_dir() or path.parent.is_dir())
    except OSError:
        return False


def check_readable_file(path: Path, what: str, hint: str | None = None) -> None:
    check_absolute(path, what)
    problem = file_problem(path)
    if problem is not None:
        raise EditUnreadableError(f"the {what} {str(path)!r} {problem}.", hint)


def check_range(frame_range: FrameRange | None, fps: Fraction | None) -> None:
    if fps is not None and fps <= 0:
        raise InvalidSpecError(f"the source fps must be positive, got {fps}.")
    if frame_range is None:
        return
    if fps is None:
        raise InvalidSpecError(
            "a frame range needs the source fps.", "Send source_fps, e.g. 24000/1001."
        )
    if frame_range.in_frame < 0 or frame_range.count < 2:
        raise InvalidSpecError(
            f"the frame range must hold at least two frames, got "
            f"[{frame_range.in_frame}, {frame_range.out_frame}).",
            "out_frame is exclusive: [10, 58) is 48 frames starting at frame 10.",
        )
    limits.check_frame_count(frame_range.count)


def check_clip_length(spec: JobSpec) -> None:
    """Refuses a frame range that ends after the source clip; reads the clip's header only.

    Slow on some containers (those without a frame count are indexed packet by packet), so the
    daemon calls it outside its event loop.
    """
    if spec.frame_range is None or spec.source_fps is None:
        return
    try:
        from framerelay.media import video
    except ImportError:  # a daemon without the media extra: the engine checks when it decodes
        log.debug("no media support; the frame range is checked when the job runs")
        return
    try:
        if is_sequence_source(spec.source):
            from framerelay.media import footage

            info: footage.Footage | video.VideoInfo = footage.probe(
                spec.source, spec.sequence_fps or spec.source_fps
            )
        else:
            info = video.probe(spec.source)
    except FramerelayError:
        raise
    except Exception as error:
        raise SourceUnreadableError(
            f"cannot read {spec.source.name} as a video ({type(error).__name__})."
        ) from error
    from framerelay.media.frame_range import to_source_frames

    _, out_frame = to_source_frames(  # the host may count frames at its own rate
        spec.frame_range.in_frame, spec.frame_range.out_frame, spec.source_fps, info.fps
    )
    if out_frame > info.frame_count:
        raise InvalidSpecError(
            f"the frame range [{spec.frame_range.in_frame}, {spec.frame_range.out_frame}) ends "
            f"after the clip, which has {info.frame_count} frames at {info.fps} fps.",
            "out_frame is exclusive and counts from the clip's first frame; check the host's "
            "in and out points.",
        )


def check_edit_session(
    session: EditSessionSpec, edited_frames: tuple[Path, ...], frame_range: FrameRange | None
) -> None:
    if len(edited_frames) > 1:
        raise InvalidSpecError(
            f"a round trip makes one edited frame, got {len(edited_frames)}.",
            "Submit one job per edited frame, or a job without a round trip.",
        )
    if session.frame_index < 0:
        raise InvalidSpecError(f"the frame to edit must be 0 or more, got {session.frame_index}.")
    if frame_range is not None and session.frame_index > frame_range.count - 2:
        raise InvalidSpecError(
            f"frame {session.frame_index} leaves fewer than two frames of the range "
            f"[{frame_range.in_frame}, {frame_range.out_frame}) to propagate the edit into.",
            f"Pick a frame from 0 to {frame_range.count - 2}; the edit propagates forward from it.",
        )


def check_output_folder(folder: Path | None) -> None:
    if folder is None:
        return
    check_absolute(folder, "output folder")
    try:
        is_file = folder.exists() and not folder.is_dir()
    except OSError as error:  # a name too long for the file system, a folder we cannot enter
        raise InvalidSpecError(
            f"the output folder {str(folder)!r} is unusable: {error.strerror}."
        ) from None
    if is_file:
        raise InvalidSpecError(f"the output folder {str(folder)!r} is a file.")


def fraction_to_list(value: Fraction | None) -> list[int] | None:
    return None if value is None else [value.numerator, value.denominator]


def fraction_from_list(value: list[int] | None) -> Fraction | None:
    return None if value is None else Fraction(value[0], value[1])


def plan_outputs(spec: JobSpec, job_id: str, default_root: Path) -> tuple[Path, ...]:
    """One output per edited frame: `<folder>/<source stem>_<job id[:8]>[_<n>].<ext>`.

    PNG outputs are folders of numbered frames, named without any dot (a dot would read as an
    extension).
    """
    folder = spec.output_folder or default_root / job_id
    stem = f"{spec.source.stem}_{job_id[:8]}"
    count = max(1, len(spec.edited_frames))  # a round trip awaiting its edit makes one
    names = [stem] if count == 1 else [f"{stem}_{n}" for n in range(1, count + 1)]
    if spec.output_format == "png":
        return tuple(folder / name.replace(".", "_") for name in names)
    return tuple(folder / f"{name}.{spec.output_format}" for name in names)
