"""Limits on what one edit may ask for, shared by `framerelay edit` and the daemon. Torch-free.

The numeric engine parameters are checked by `EngineParams.validate`; this module holds the limits
on everything around them (paths, counts, free text) and the constants both use.
"""

from __future__ import annotations

from pathlib import PurePath

from framerelay.errors import InvalidSpecError

MAX_REQUEST_BYTES = 1024 * 1024  # one API request: an HTTP body or a gRPC message
MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # one gRPC response: previews and long job lists
MAX_EDITED_FRAMES = 16  # one output each
MAX_PATH_LENGTH = 4096  # characters, as Linux's PATH_MAX
MAX_FRAMES = 100_000  # frames in one job's range: over an hour at 24 fps
MAX_SIZE = 4096  # processing height and width, pixels
MAX_GUIDANCE = 20.0
MAX_SEED = 2**32 - 1
MAX_MEMORY_BUDGET_MB = 1024 * 1024
MAX_LABEL_LENGTH = 1024
MAX_REQUEST_ID_LENGTH = 256
MAX_MODEL_LENGTH = MAX_PATH_LENGTH  # a hub id or a folder
MAX_HOST_CONTEXT_ENTRIES = 64
MAX_HOST_CONTEXT_TEXT = 4096  # characters in one key or value


def check_path_text(path: str | PurePath, what: str) -> None:
    """Refuses a path no file system takes: too long, or with a NUL character."""
    text = str(path)
    if len(text) > MAX_PATH_LENGTH:
        raise InvalidSpecError(
            f"the {what} path is {len(text)} characters long; the limit is {MAX_PATH_LENGTH}.",
            "Use a shorter path: move the file or rename its folders.",
        )
    if "\x00" in text:
        raise InvalidSpecError(
            f"the {what} path contains a NUL character.", "Send the path as plain text."
        )


def check_edited_count(count: int) -> None:
    if count > MAX_EDITED_FRAMES:
        raise InvalidSpecError(
            f"the job has {count} edited frames; the limit is {MAX_EDITED_FRAMES}.",
            f"Split the edits over several jobs of at most {MAX_EDITED_FRAMES}.",
        )


def check_frame_count(count: int) -> None:
    if count > MAX_FRAMES:
        raise InvalidSpecError(
            f"the frame range holds {count} frames; the limit is {MAX_FRAMES}.",
            "Split the clip into several jobs.",
        )


def check_text(value: str, what: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidSpecError(
            f"the {what} is {len(value)} characters long; the limit is {limit}.",
            f"Send a {what} of at most {limit} characters.",
        )


def check_host_context(context: dict[str, str]) -> None:
    if len(context) > MAX_HOST_CONTEXT_ENTRIES:
        raise InvalidSpecError(
            f"the host context has {len(context)} entries; the limit is "
            f"{MAX_HOST_CONTEXT_ENTRIES}.",
            "Keep only the keys the host needs to place the result.",
        )
    for key, value in context.items():
        check_text(key, "host context key", MAX_HOST_CONTEXT_TEXT)
        check_text(value, f"host context value of {key[:64]!r}", MAX_HOST_CONTEXT_TEXT)
