"""One exception type per code of the daemon's error catalogue, plus the two a client meets alone.

The daemon answers every failed call with its catalogue's HTTP status and
`{"error": {"code": "ERROR_CODE_…", "message": "…", "hint": "…"}}`; `error_from_reply` turns that
into the matching `ClientError` subclass. `str(error)` is "message (hint)", one line a host can
show as it is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar


class ClientError(Exception):
    """An error with the daemon's code, a public message and a hint for the fix."""

    code: ClassVar[str] = "ERROR_CODE_UNSPECIFIED"
    status: ClassVar[int] = 0  # the HTTP status the daemon answers this code with
    default_hint: ClassVar[str] = "Try again; if it keeps failing, look at the daemon's log."

    def __init__(self, message: str, hint: str = "", http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint
        self.http_status = self.status if http_status is None else http_status

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message

    def to_dict(self) -> dict[str, str]:
        """The error as the API's ErrorInfo JSON."""
        return {"code": self.code, "message": self.message, "hint": self.hint}


class InvalidSpec(ClientError):
    code = "ERROR_CODE_INVALID_SPEC"
    status = 400
    default_hint = "Check the job's parameters against `framerelay edit --help`."


class SourceUnreadable(ClientError):
    code = "ERROR_CODE_SOURCE_UNREADABLE"
    status = 422
    default_hint = (
        "Check that the source is a video file with at least two frames, or transcode it "
        "(e.g. to H.264 .mp4 or ProRes .mov)."
    )


class EditUnreadable(ClientError):
    code = "ERROR_CODE_EDIT_UNREADABLE"
    status = 422
    default_hint = "Save the edited frame as PNG, TIFF, JPEG or PSD and try again."


class ModelMissing(ClientError):
    code = "ERROR_CODE_MODEL_MISSING"
    status = 424
    default_hint = (
        "Log in with `hf auth login`, accept the licence of "
        "stabilityai/stable-video-diffusion-img2vid on the hub, or pass --model /path/to/folder."
    )


class OutOfMemory(ClientError):
    code = "ERROR_CODE_OUT_OF_MEMORY"
    status = 507
    default_hint = "Process fewer frames (--start/--end) or a lower resolution (--height/--width)."


class DiskFull(ClientError):
    code = "ERROR_CODE_DISK_FULL"
    status = 507
    default_hint = "Free disk space or run `framerelay cache gc --max-size 20GB`."


class Cancelled(ClientError):
    code = "ERROR_CODE_CANCELLED"
    status = 409
    default_hint = "The job was cancelled; submit it again."


class Internal(ClientError):
    code = "ERROR_CODE_INTERNAL"
    status = 500
    default_hint = "This is a bug; run again with --debug and report the log."


class NotFound(ClientError):
    code = "ERROR_CODE_NOT_FOUND"
    status = 404
    default_hint = "List the daemon's jobs with `framerelay jobs --all`."


class Unauthenticated(ClientError):
    code = "ERROR_CODE_UNAUTHENTICATED"
    status = 401
    default_hint = (
        "Send the token from the daemon's discovery file (it changes at every start) as "
        "`authorization: Bearer <token>`."
    )


class Unavailable(ClientError):
    code = "ERROR_CODE_UNAVAILABLE"
    status = 503
    default_hint = "Start the daemon with `framerelay serve`, then try again."


class Busy(ClientError):
    code = "ERROR_CODE_BUSY"
    status = 409
    default_hint = "Wait until the running job ends, or cancel it, then try again."


class Forbidden(ClientError):
    code = "ERROR_CODE_FORBIDDEN"
    status = 403
    default_hint = (
        "Call the daemon from a local program at http://127.0.0.1:<port>, not from a web page; "
        "a web origin you trust can be listed in allowed_origins of the daemon's config.toml."
    )


class DaemonUnreachable(Unavailable):
    """No answer: the connection was refused, dropped or timed out (no HTTP status)."""

    status = 0
    default_hint = (
        "Start the daemon with `framerelay serve` (it may have stopped or crashed), then try again."
    )


class DaemonNotRunning(DaemonUnreachable):
    """No usable discovery file: the daemon has not started (or stopped cleanly)."""

    default_hint = "start it with `framerelay serve`"


CATALOG: tuple[type[ClientError], ...] = (
    InvalidSpec,
    SourceUnreadable,
    EditUnreadable,
    ModelMissing,
    OutOfMemory,
    DiskFull,
    Cancelled,
    Internal,
    NotFound,
    Unauthenticated,
    Unavailable,
    Busy,
    Forbidden,
)
BY_CODE: dict[str, type[ClientError]] = {cls.code: cls for cls in CATALOG}
# An answer without a catalogue code (a proxy, a truncated body): the best guess from the status.
BY_STATUS: dict[int, type[ClientError]] = {
    400: InvalidSpec,
    401: Unauthenticated,
    403: Forbidden,
    404: NotFound,
    405: InvalidSpec,
    409: Busy,
    413: InvalidSpec,
    422: SourceUnreadable,
    424: ModelMissing,
    503: Unavailable,
    507: DiskFull,
}


def error_for_code(
    code: str, message: str, hint: str = "", http_status: int | None = None
) -> ClientError:
    """The exception for a catalogue code ("ERROR_CODE_NOT_FOUND" or "not_found")."""
    name = code if code.startswith("ERROR_CODE_") else f"ERROR_CODE_{code.upper()}"
    cls = BY_CODE.get(name, Internal)
    return cls(message, hint, http_status)


def error_from_info(info: Mapping[str, Any], http_status: int | None = None) -> ClientError:
    """The exception for an ErrorInfo dict (a reply's "error", or a failed event's)."""
    return error_for_code(
        str(info.get("code", "")),
        str(info.get("message", "")) or "the daemon reported an error without a message.",
        str(info.get("hint", "")),
        http_status,
    )


def error_from_reply(status: int, body: bytes | str | Mapping[str, Any] | None) -> ClientError:
    """The exception for a non-2xx answer: by the body's catalogue code, else by the status (a
    code this client does not know yet, or a body that is not the daemon's)."""
    data: Any = body
    if isinstance(body, bytes | str):
        try:
            data = json.loads(body)
        except ValueError:
            data = None
    info = data.get("error") if isinstance(data, Mapping) else None
    fallback = BY_STATUS.get(status, Internal if status >= 500 else InvalidSpec)
    if isinstance(info, Mapping):
        cls = BY_CODE.get(str(info.get("code", "")), fallback)
        message = str(info.get("message", "")) or f"the daemon answered HTTP {status}."
        return cls(message, str(info.get("hint", "")), status)
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else str(body or "")
    message = f"the daemon answered HTTP {status}" + (f": {text.strip()[:200]}" if text else ".")
    return fallback(message, "", status)
