"""`job_spec`: the JobSpec body SubmitJob takes, in proto3 JSON, from host-friendly arguments.

Frames are counted in the source file's own frames, `[in_frame, out_frame)` (out exclusive), at the
source's rational frame rate; paths must be absolute paths on the daemon's machine. The daemon
checks the rest (files, ranges, output roots) and answers `InvalidSpec` & co with a hint.
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from os import PathLike, fspath
from typing import Any

from .edit_params import PARAMS as PARAMS  # EditParams: name -> JSON type, generated
from .errors import InvalidSpec
from .timecode import parse_fps

PRESETS = ("auto", "local", "style", "shape")
OUTPUT_FORMATS = ("mov", "mp4", "png")
ROUNDTRIP_OPTIONS: dict[str, type] = {
    "frame_index": int,
    "sixteen_bit": bool,
    "open_editor": bool,
    "follow_saves": bool,
}

PathText = str | PathLike[str]


def job_spec(
    source: PathText,
    edited_frames: tuple[PathText, ...] | list[PathText] = (),
    *,
    in_frame: int | None = None,
    out_frame: int | None = None,
    fps: Fraction | str | float | int | None = None,
    mask: PathText | None = None,
    preset: str | None = "auto",
    params: Mapping[str, Any] | None = None,
    output_format: str | None = None,
    output_folder: PathText | None = None,
    overwrite: bool = False,
    host_context: Mapping[str, str | int] | None = None,
    request_id: str = "",
    label: str = "",
    roundtrip: Mapping[str, Any] | None = None,
    model: str = "",
    input_lut: PathText | None = None,
    keep_unedited: bool = True,
    copy_audio: bool = True,
    sequence_fps: Fraction | str | float | int | None = None,
) -> dict[str, Any]:
    """The JobSpec dict for `Client.submit`.

    `in_frame`/`out_frame`: the range `[in, out)` of the source file, both or neither, with `fps`
    (the source's rate, e.g. "24000/1001" or Fraction(24000, 1001)). `params`: engine parameters by
    their snake_case (or lowerCamelCase) names. `roundtrip`: {"frame_index", "sixteen_bit",
    "open_editor", "follow_saves"} asks the daemon to export the frame and wait for the edit
    (leave `edited_frames` empty). `host_context` comes back untouched with the job.
    `input_lut`: a 1D `.cube` for log footage; `keep_unedited=False` takes every pixel from the
    model; `copy_audio=False` drops the source's audio; `sequence_fps`: the rate of an image
    sequence source (a folder or a `####` pattern).
    `preset`, `output_format` and `output_folder` None: the daemon's job defaults
    (`get_defaults`).
    """
    spec: dict[str, Any] = {"sourcePath": fspath(source)}
    if in_frame is not None or out_frame is not None:
        spec["frameRange"] = frame_range(in_frame, out_frame)
        if fps is None:
            raise InvalidSpec(
                "a frame range needs the source fps.", "Pass fps, e.g. fps='24000/1001'."
            )
    if fps is not None:
        rate = parse_fps(fps)
        spec["sourceFps"] = {"num": rate.numerator, "den": rate.denominator}
    if edited_frames:
        spec["editedFramePaths"] = [fspath(p) for p in edited_frames]
    if mask is not None:
        spec["maskPath"] = fspath(mask)
    edit = edit_params(preset, params or {})
    if edit:
        spec["params"] = edit
    output = output_spec(output_format, output_folder, overwrite)
    if output:
        spec["output"] = output
    if host_context:
        spec["hostContext"] = {str(k): _context_value(k, v) for k, v in host_context.items()}
    if model:
        spec["model"] = model
    if label:
        spec["label"] = label
    if request_id:
        spec["requestId"] = request_id
    if roundtrip is not None:
        spec["editSession"] = _options(roundtrip, ROUNDTRIP_OPTIONS, "round-trip option")
    if input_lut is not None:
        spec["inputLutPath"] = fspath(input_lut)
    if not keep_unedited:
        spec["keepUnedited"] = False
    if not copy_audio:
        spec["copyAudio"] = False
    if sequence_fps is not None:
        rate = parse_fps(sequence_fps)
        spec["sequenceFps"] = {"num": rate.numerator, "den": rate.denominator}
    return spec


def frame_range(in_frame: int | None, out_frame: int | None) -> dict[str, int]:
    if in_frame is None or out_frame is None:
        raise InvalidSpec(
            f"a frame range needs both in_frame and out_frame, got {in_frame} and {out_frame}.",
            "out_frame is exclusive: [10, 58) is 48 frames starting at frame 10.",
        )
    for name, value in (("in_frame", in_frame), ("out_frame", out_frame)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InvalidSpec(f"{name} must be a frame number (0 or more), got {value!r}.")
    return {"inFrame": in_frame, "outFrame": out_frame}


def job_defaults(
    preset: str | None = None,
    output_format: str | None = None,
    output_folder: PathText | None = None,
) -> dict[str, Any]:
    """The JobDefaults dict for `set_defaults`; None: the built-in default (auto, mov, the
    daemon's data folder)."""
    defaults: dict[str, Any] = {}
    if preset is not None:
        defaults["preset"] = preset_value(preset)
    output = output_spec(output_format, output_folder, False)
    if "format" in output:
        defaults["outputFormat"] = output["format"]
    if "folder" in output:
        defaults["outputFolder"] = output["folder"]
    return defaults


def preset_value(preset: str) -> str:
    """ "local" or "PRESET_LOCAL" -> "PRESET_LOCAL"."""
    name = preset.lower().removeprefix("preset_")
    if name not in PRESETS:
        raise InvalidSpec(f"unknown preset {preset!r}.", f"Choose one of {', '.join(PRESETS)}.")
    return f"PRESET_{name.upper()}"


def edit_params(preset: str | None, params: Mapping[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {} if preset is None else {"preset": preset_value(preset)}
    result.update(_options(params, PARAMS, "parameter"))
    return result


def output_spec(
    output_format: str | None, folder: PathText | None, overwrite: bool
) -> dict[str, Any]:
    output: dict[str, Any] = {}
    if output_format is not None:
        name = output_format.lower().removeprefix("output_format_").lstrip(".")
        if name not in OUTPUT_FORMATS:
            raise InvalidSpec(
                f"unknown output format {output_format!r}.",
                f"Choose one of {', '.join(OUTPUT_FORMATS)}.",
            )
        output["format"] = f"OUTPUT_FORMAT_{name.upper()}"
    if folder is not None:
        output["folder"] = fspath(folder)
    if overwrite:
        output["overwrite"] = True
    return output


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def _options(values: Mapping[str, Any], known: Mapping[str, type], what: str) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in values.items():
        name = snake(key)
        kind = known.get(name)
        if kind is None:
            raise InvalidSpec(f"unknown {what} {key!r}.", f"Known: {', '.join(known)}.")
        if value is None:
            continue
        if not _is_a(value, kind):
            raise InvalidSpec(f"the {what} {name} must be {kind.__name__}, got {value!r}.")
        result[camel(name)] = float(value) if kind is float else value
    return result


def _is_a(value: Any, kind: type) -> bool:
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, int | float)
    return isinstance(value, kind)


def _context_value(key: object, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise InvalidSpec(
        f"host context values are text, got {type(value).__name__} for {key!r}.",
        "Convert it to a string (numbers are converted for you).",
    )
