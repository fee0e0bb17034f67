"""A job's append-only event log: the payload kinds, the envelope and their JSON form.

Events are the only record of what happened to a job; `job.apply` folds them into the job's state.
RPC streams are views on this log.
"""

from __future__ import annotations

import base64
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any

from framerelay.engine.presets import PresetChoice
from framerelay.errors import CATALOG, ErrorCode, FramerelayError


@dataclass(frozen=True)
class ErrorInfo:
    code: ErrorCode
    message: str
    hint: str

    @classmethod
    def from_error(cls, error: FramerelayError) -> ErrorInfo:
        return cls(error.code, error.message, error.hint)

    @classmethod
    def of(cls, code: ErrorCode, message: str) -> ErrorInfo:
        return cls(code, message, CATALOG[code].hint)


@dataclass(frozen=True)
class Queued:
    position: int  # 1 = runs next
    reason: str = (
        "submitted"  # submitted | moved | recovered | edit_received | follow_save | paused
    )


@dataclass(frozen=True)
class Started:
    attempt: int


@dataclass(frozen=True)
class ProgressUpdate:
    phase: str
    step: int
    total: int
    clip: int = 1
    clips: int = 1
    eta_seconds: float | None = None  # left in this phase
    message: str = ""


@dataclass(frozen=True)
class Preview:
    png: bytes
    width: int
    height: int
    phase: str = ""


@dataclass(frozen=True)
class Finished:
    """What the job did (jobs.executor.ExecutionResult, field for field)."""

    outputs: tuple[str, ...]
    frame_count: int
    fps: Fraction
    width: int
    height: int
    preset: str = ""  # resolved when the job asked for auto; one per output, comma-separated
    preset_choices: tuple[PresetChoice, ...] = ()  # one per output: the preset and why
    seed: int = 0
    phase_seconds: dict[str, float] = field(default_factory=dict)
    windows: int = 1
    cache_hits: int = 0
    lora_steps_run: int = 0
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Failed:
    error: ErrorInfo


@dataclass(frozen=True)
class Cancelled:
    reason: str  # dequeued | interrupted
    error: ErrorInfo
    phase: str = ""


@dataclass(frozen=True)
class EditUpdate:
    """A step of the round trip with the image editor (`framerelay.roundtrip.EventKind`, plus
    `watch_resumed` after a restart)."""

    kind: str  # exported | editor_opened | open_skipped | editor_failed | edit_received |
    # validation_problem | save_ignored | watch_resumed
    message: str
    hint: str = ""
    path: str = ""  # exported: the file to edit; edit_received: the accepted copy
    source: str = ""  # the file the user saved or picked
    version: int = 0
    warnings: tuple[str, ...] = ()
    follow_job_id: str = ""  # edit_received after the job started: the new job that uses it
    width: int = 0  # exported
    height: int = 0
    source_frame: int = 0


Payload = Queued | Started | ProgressUpdate | Preview | Finished | Failed | Cancelled | EditUpdate
TERMINAL = (Finished, Failed, Cancelled)
KINDS: dict[str, type[Payload]] = {
    "queued": Queued,
    "started": Started,
    "progress": ProgressUpdate,
    "preview": Preview,
    "finished": Finished,
    "failed": Failed,
    "cancelled": Cancelled,
    "edit": EditUpdate,
}
KIND_OF = {cls: kind for kind, cls in KINDS.items()}


@dataclass(frozen=True)
class JobEvent:
    job_id: str
    seq: int  # 1, 2, 3... within the job
    cursor: int  # position in the daemon-wide log
    time: float  # unix seconds
    payload: Payload

    @property
    def kind(self) -> str:
        return KIND_OF[type(self.payload)]

    @property
    def terminal(self) -> bool:
        return isinstance(self.payload, TERMINAL)


def payload_to_json(payload: Payload) -> dict[str, Any]:
    data = asdict(payload)
    match payload:
        case Preview():
            data["png"] = base64.b64encode(payload.png).decode("ascii")
        case Finished():
            data["fps"] = [payload.fps.numerator, payload.fps.denominator]
        case Failed() | Cancelled():
            data["error"] = error_to_json(payload.error)
    return data


def payload_from_json(kind: str, data: dict[str, Any]) -> Payload:
    cls = KINDS[kind]
    if cls is Preview:
        data = {**data, "png": base64.b64decode(data["png"])}
    elif cls is Finished:
        data = {
            **data,
            "fps": Fraction(*data["fps"]),
            "outputs": tuple(data["outputs"]),
            "preset_choices": tuple(PresetChoice(**c) for c in data.get("preset_choices", ())),
            "warnings": tuple(data.get("warnings", ())),
        }
    elif cls in (Failed, Cancelled):
        data = {**data, "error": error_from_json(data["error"])}
    elif cls is EditUpdate:
        data = {**data, "warnings": tuple(data.get("warnings", ()))}
    return cls(**data)


def error_to_json(error: ErrorInfo) -> dict[str, str]:
    return {"code": error.code.value, "message": error.message, "hint": error.hint}


def error_from_json(data: dict[str, str]) -> ErrorInfo:
    return ErrorInfo(ErrorCode(data["code"]), data["message"], data["hint"])
