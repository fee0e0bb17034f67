"""proto3 JSON as the daemon reads and writes it, for `FakeDaemon`.

`parse_message` checks a request like `json_format.Parse` (field names, types, enum names, integer
ranges) from a copy of the request messages' schema that a test keeps equal to the .proto files;
`echo_spec` gives a JobSpec back as the daemon's Job carries it; `rfc3339` writes timestamps as
protobuf does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

from .api import JOB_STATES, JsonDict
from .edit_params import PARAMS
from .errors import InvalidSpec
from .spec import camel

ENUMS: dict[str, tuple[str, ...]] = {
    "Preset": tuple(f"PRESET_{n}" for n in ("UNSPECIFIED", "AUTO", "LOCAL", "STYLE", "SHAPE")),
    "OutputFormat": tuple(f"OUTPUT_FORMAT_{n}" for n in ("UNSPECIFIED", "MP4", "MOV", "PNG")),
    "JobState": ("JOB_STATE_UNSPECIFIED", *JOB_STATES),
}
_PARAM_TYPES = {int: "uint32", float: "double", bool: "bool"}
# message -> field (lowerCamelCase) -> type: a scalar, "enum:X", "message:X", "[]" + a type for a
# repeated field, "map" for map<string, string>. A test checks this against the .proto files.
MESSAGES: dict[str, dict[str, str]] = {
    "JobSpec": {
        "requestId": "string",
        "label": "string",
        "sourcePath": "string",
        "frameRange": "message:FrameRange",
        "sourceFps": "message:Rational",
        "editedFramePaths": "[]string",
        "maskPath": "string",
        "params": "message:EditParams",
        "output": "message:OutputSpec",
        "hostContext": "map",
        "model": "string",
        "editSession": "message:EditSessionSpec",
        "sequenceFps": "message:Rational",
        "inputLutPath": "string",
        "keepUnedited": "bool",
        "copyAudio": "bool",
    },
    "FrameRange": {"inFrame": "uint32", "outFrame": "uint32"},
    "Rational": {"num": "int32", "den": "int32"},
    "EditParams": {
        "preset": "enum:Preset",
        **{camel(name): _PARAM_TYPES[kind] for name, kind in PARAMS.items()},
    },
    "OutputSpec": {"format": "enum:OutputFormat", "folder": "string", "overwrite": "bool"},
    "EditSessionSpec": {
        "frameIndex": "uint32",
        "sixteenBit": "bool",
        "openEditor": "bool",
        "followSaves": "bool",
    },
    "EditorConfig": {
        "application": "string",
        "arguments": "[]string",
        "openEditor": "bool",
        "pollSaves": "bool",
    },
    "SubmitJobRequest": {"spec": "message:JobSpec"},
    "GetJobRequest": {"jobId": "string"},
    "ListJobsRequest": {"states": "[]enum:JobState", "limit": "uint32"},
    "CancelJobRequest": {"jobId": "string"},
    "MoveJobRequest": {"jobId": "string", "position": "uint32"},
    "WatchJobRequest": {"jobId": "string", "afterSeq": "uint32"},
    "PollJobRequest": {
        "jobId": "string",
        "afterSeq": "uint32",
        "waitSeconds": "double",
        "maxEvents": "uint32",
    },
    "WatchQueueRequest": {"afterCursor": "uint64"},
    "GetCacheInfoRequest": {},
    "ClearCacheRequest": {},
    "GetStatusRequest": {},
    "AttachEditRequest": {"jobId": "string", "path": "string"},
    "GetEditorConfigRequest": {},
    "SetEditorConfigRequest": {"config": "message:EditorConfig"},
    "JobDefaults": {
        "preset": "enum:Preset",
        "outputFormat": "enum:OutputFormat",
        "outputFolder": "string",
    },
    "PauseQueueRequest": {"interruptRunning": "bool"},
    "ResumeQueueRequest": {},
    "UnloadModelRequest": {},
    "GcCacheRequest": {"maxBytes": "uint64"},
    "GetDefaultsRequest": {},
    "SetDefaultsRequest": {"defaults": "message:JobDefaults"},
}
# proto3 `optional` fields: present even when they hold the default value.
OPTIONAL = {("EditParams", camel(name)) for name in PARAMS} | {
    ("EditSessionSpec", "openEditor"),
    ("EditorConfig", "openEditor"),
    ("WatchQueueRequest", "afterCursor"),
    ("JobSpec", "keepUnedited"),
    ("JobSpec", "copyAudio"),
}
_INT_RANGES = {"uint32": (0, 2**32 - 1), "int32": (-(2**31), 2**31 - 1), "uint64": (0, 2**64 - 1)}


def parse_message(message: str, value: Any, where: str = "") -> JsonDict:
    """A request message in proto3 JSON, checked field by field; keys become lowerCamelCase and
    fields holding their default value are left out (unless `optional`). InvalidSpec when
    json_format.Parse would refuse it."""
    where = where or message
    if not isinstance(value, Mapping):
        raise _malformed(message, f"{where} is not a JSON object")
    fields = MESSAGES[message]
    result: JsonDict = {}
    for key, raw in value.items():
        name = key if key in fields else camel(key)
        kind = fields.get(name)
        if kind is None:
            raise _malformed(
                message,
                f'Message type "framerelay.proto.v1.{message}" has no field named "{key}" at '
                f'"{where}"',
            )
        if raw is None:
            continue
        parsed = _parse_value(kind, raw, f"{where}.{name}")
        if parsed != _default(kind) or (message, name) in OPTIONAL or kind.startswith("message:"):
            result[name] = parsed
    return result


def _parse_value(kind: str, raw: Any, where: str) -> Any:
    if kind.startswith("[]"):
        if not isinstance(raw, list):
            raise _malformed("", f"{where} must be a list")
        return [_parse_value(kind[2:], item, where) for item in raw]
    if kind == "map":
        if not isinstance(raw, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in raw.items()
        ):
            raise _malformed("", f"{where} must map strings to strings")
        return dict(raw)
    if kind.startswith("message:"):
        return parse_message(kind.removeprefix("message:"), raw, where)
    if kind.startswith("enum:"):
        values = ENUMS[kind.removeprefix("enum:")]
        if isinstance(raw, int) and not isinstance(raw, bool) and 0 <= raw < len(values):
            return values[raw]
        if raw not in values:
            raise _malformed("", f"invalid enum value {raw!r} for {where}")
        return raw
    if kind == "string":
        if not isinstance(raw, str):
            raise _malformed("", f"{where} must be a string, got {raw!r}")
        return raw
    if kind == "bool":
        if not isinstance(raw, bool):
            raise _malformed("", f"{where} must be true or false, got {raw!r}")
        return raw
    if kind == "double":
        if isinstance(raw, bool) or not isinstance(raw, int | float | str):
            raise _malformed("", f"{where} must be a number, got {raw!r}")
        try:
            return float(raw)
        except ValueError:
            raise _malformed("", f"{where} must be a number, got {raw!r}") from None
    low, high = _INT_RANGES[kind]
    number = _integer(raw)
    if number is None or not low <= number <= high:
        raise _malformed("", f"{where} must be an integer from {low} to {high}, got {raw!r}")
    return number


def _integer(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    if isinstance(raw, str) and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    return None


def _default(kind: str) -> Any:
    if kind.startswith("[]"):
        return []
    return {"string": "", "bool": False, "double": 0.0, "map": {}}.get(
        kind, None if kind.startswith(("message:", "enum:")) else 0
    )


def _malformed(message: str, detail: str) -> InvalidSpec:
    name = f"{message} " if message else ""
    return InvalidSpec(
        f"malformed {name}JSON: {detail}.",
        "Send the request message in proto3 JSON, e.g. "
        '{"spec": {"sourcePath": "/clips/a.mov", "editedFramePaths": ["/edits/a.png"]}}.',
    )


def echo_spec(spec: Mapping[str, Any]) -> JsonDict:
    """A parsed JobSpec as the daemon returns it in a Job: paths normalised, the fps reduced,
    the preset and the output format always named."""
    echo: JsonDict = {}
    for key in ("requestId", "label"):
        if spec.get(key):
            echo[key] = spec[key]
    echo["sourcePath"] = normal_path(spec.get("sourcePath", ""))
    if "frameRange" in spec:
        echo["frameRange"] = drop_zeros(dict(spec["frameRange"]))
    fps = spec.get("sourceFps")
    if fps is not None:
        num, den = fps.get("num", 0), fps.get("den", 0)
        if num <= 0 or den <= 0:
            raise InvalidSpec(
                f"the source fps must be a positive fraction, got {num}/{den}.",
                "Send the host's frame rate, e.g. 24000/1001 for 23.976.",
            )
        echo["sourceFps"] = rational(Fraction(num, den))
    if spec.get("editedFramePaths"):
        echo["editedFramePaths"] = [normal_path(p) for p in spec["editedFramePaths"]]
    if spec.get("maskPath"):
        echo["maskPath"] = normal_path(spec["maskPath"])
    params = dict(spec.get("params", {}))
    preset = params.get("preset", "PRESET_UNSPECIFIED")
    params["preset"] = "PRESET_AUTO" if preset == "PRESET_UNSPECIFIED" else preset
    echo["params"] = {"preset": params.pop("preset"), **params}
    output = dict(spec.get("output", {}))
    fmt = output.get("format", "OUTPUT_FORMAT_UNSPECIFIED")
    echo["output"] = {"format": "OUTPUT_FORMAT_MOV" if fmt == "OUTPUT_FORMAT_UNSPECIFIED" else fmt}
    if output.get("folder"):
        echo["output"]["folder"] = normal_path(output["folder"])
    if output.get("overwrite"):
        echo["output"]["overwrite"] = True
    for key in ("hostContext", "model"):
        if spec.get(key):
            echo[key] = spec[key]
    sequence_fps = spec.get("sequenceFps")
    if sequence_fps is not None:
        echo["sequenceFps"] = rational(Fraction(sequence_fps["num"], sequence_fps["den"]))
    if spec.get("inputLutPath"):
        echo["inputLutPath"] = normal_path(spec["inputLutPath"])
    for key in ("keepUnedited", "copyAudio"):
        if spec.get(key) is False:
            echo[key] = False
    if "editSession" in spec:
        echo["editSession"] = {
            k: v for k, v in spec["editSession"].items() if v or k == "openEditor"
        }
    return echo


def normal_path(text: str) -> str:
    return str(Path(text))


def rational(fps: Fraction) -> JsonDict:
    return {"num": fps.numerator, "den": fps.denominator}


def drop_zeros(data: JsonDict, keep: tuple[str, ...] = ()) -> JsonDict:
    """proto3 JSON leaves out fields holding their default value."""
    return {k: v for k, v in data.items() if k in keep or v not in (0, "", False, None, [], {})}


def rfc3339(seconds: float) -> str:
    """A timestamp as protobuf's JSON writes it: UTC, 0, 3, 6 or 9 fraction digits."""
    total = int(seconds * 1e9)
    whole, nanos = divmod(total, 10**9)
    text = datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos == 0:
        return f"{text}Z"
    if nanos % 10**6 == 0:
        return f"{text}.{nanos // 10**6:03d}Z"
    if nanos % 10**3 == 0:
        return f"{text}.{nanos // 10**3:06d}Z"
    return f"{text}.{nanos:09d}Z"
