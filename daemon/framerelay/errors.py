"""The one catalogue of errors that users see: a code, a public message and a hint.

The CLI prints `message` and `hint` and exits with status 2; the daemon translates the code to a gRPC
status and an HTTP status. Nothing here imports grpc, so every layer can raise these.
"""

from __future__ import annotations

import enum
import errno
from dataclasses import dataclass

DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})
SQLITE_FULL = 13  # sqlite3.SQLITE_FULL: "database or disk is full"


class ErrorCode(enum.Enum):
    invalid_spec = "invalid_spec"
    source_unreadable = "source_unreadable"
    edit_unreadable = "edit_unreadable"
    model_missing = "model_missing"
    out_of_memory = "out_of_memory"
    disk_full = "disk_full"
    cancelled = "cancelled"
    internal = "internal"
    not_found = "not_found"
    unauthenticated = "unauthenticated"
    unavailable = "unavailable"
    busy = "busy"
    forbidden = "forbidden"


@dataclass(frozen=True)
class CatalogEntry:
    grpc_status: str  # name of a grpc.StatusCode member
    http_status: int
    hint: str


CATALOG: dict[ErrorCode, CatalogEntry] = {
    ErrorCode.invalid_spec: CatalogEntry(
        "INVALID_ARGUMENT", 400, "Check the job's parameters against `framerelay edit --help`."
    ),
    ErrorCode.source_unreadable: CatalogEntry(
        "FAILED_PRECONDITION",
        422,
        "Check that the source is a video file with at least two frames, or transcode it "
        "(e.g. to H.264 .mp4 or ProRes .mov).",
    ),
    ErrorCode.edit_unreadable: CatalogEntry(
        "FAILED_PRECONDITION", 422, "Save the edited frame as PNG, TIFF, JPEG or PSD and try again."
    ),
    ErrorCode.model_missing: CatalogEntry(
        "FAILED_PRECONDITION",
        424,
        "Log in with `hf auth login`, accept the licence of "
        "stabilityai/stable-video-diffusion-img2vid on the hub, or pass --model /path/to/folder.",
    ),
    ErrorCode.out_of_memory: CatalogEntry(
        "RESOURCE_EXHAUSTED",
        507,
        "Process fewer frames (--start/--end) or a lower resolution (--height/--width).",
    ),
    ErrorCode.disk_full: CatalogEntry(
        "RESOURCE_EXHAUSTED", 507, "Free disk space or run `framerelay cache gc --max-size 20GB`."
    ),
    ErrorCode.cancelled: CatalogEntry("CANCELLED", 409, "The job was cancelled; submit it again."),
    ErrorCode.internal: CatalogEntry(
        "INTERNAL", 500, "This is a bug; run again with --debug and report the log."
    ),
    ErrorCode.not_found: CatalogEntry(
        "NOT_FOUND", 404, "List the daemon's jobs with `framerelay jobs --all`."
    ),
    ErrorCode.unauthenticated: CatalogEntry(
        "UNAUTHENTICATED",
        401,
        "Send the token from the daemon's discovery file (it changes at every start) as "
        "`authorization: Bearer <token>`.",
    ),
    ErrorCode.unavailable: CatalogEntry(
        "UNAVAILABLE", 503, "Start the daemon with `framerelay serve`, then try again."
    ),
    ErrorCode.busy: CatalogEntry(
        "FAILED_PRECONDITION", 409, "Wait until the running job ends, or cancel it, then try again."
    ),
    ErrorCode.forbidden: CatalogEntry(
        "PERMISSION_DENIED",
        403,
        "Call the daemon from a local program at http://127.0.0.1:<port>, not from a web page; "
        "a web origin you trust can be listed in allowed_origins of the daemon's config.toml.",
    ),
}


class FramerelayError(Exception):
    """An error with a public message and a hint for the fix."""

    code = ErrorCode.internal

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else CATALOG[self.code].hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})"


class InvalidSpecError(FramerelayError):
    code = ErrorCode.invalid_spec


class SourceUnreadableError(FramerelayError):
    code = ErrorCode.source_unreadable


class EditUnreadableError(FramerelayError):
    code = ErrorCode.edit_unreadable


class ModelMissingError(FramerelayError):
    code = ErrorCode.model_missing


class OutOfMemoryError(FramerelayError):
    code = ErrorCode.out_of_memory


class DiskFullError(FramerelayError):
    code = ErrorCode.disk_full


class CancelledError(FramerelayError):
    code = ErrorCode.cancelled


class InternalError(FramerelayError):
    code = ErrorCode.internal


class WorkerLostError(InternalError):
    """A worker process of the daemon's pool died while it ran the job (killed, out of memory):
    the job counts one crash, as when the daemon itself dies (docs/scale.md)."""


class NotFoundError(FramerelayError):
    code = ErrorCode.not_found


class UnauthenticatedError(FramerelayError):
    code = ErrorCode.unauthenticated


class UnavailableError(FramerelayError):
    code = ErrorCode.unavailable


class BusyError(FramerelayError):
    code = ErrorCode.busy


class ForbiddenError(FramerelayError):
    code = ErrorCode.forbidden


def error_for_code(code: ErrorCode, message: str, hint: str | None = None) -> FramerelayError:
    for cls in FramerelayError.__subclasses__():
        if cls.code is code:
            return cls(message, hint)
    return InternalError(message, hint)


def is_disk_full(error: BaseException) -> bool:
    """A write that failed for want of space: ENOSPC/EDQUOT, or SQLite's SQLITE_FULL."""
    if isinstance(error, OSError):
        return error.errno in DISK_FULL_ERRNOS
    return getattr(error, "sqlite_errorcode", None) == SQLITE_FULL


def from_os_error(error: OSError) -> FramerelayError:
    """The catalogue error for a file operation that failed, naming the file."""
    where = f" ({error.filename})" if error.filename else ""
    if is_disk_full(error):
        return DiskFullError(f"the disk is full{where}.")
    if isinstance(error, PermissionError):
        return InvalidSpecError(
            f"permission denied{where}.",
            "Check that you may read the inputs and write the output folder.",
        )
    reason = error.strerror or type(error).__name__
    return InvalidSpecError(f"{reason}{where}.", "Check the paths of the inputs and the output.")
