"""Round trip with an image editor: export a frame, open it, take the saved edit back.

The daemon drives one `EditSession` per job; the parts are usable on their own.
"""

from framerelay.roundtrip.editor import (
    PHOTOSHOP,
    EditorConfig,
    LaunchResult,
    editor_command,
    find_photoshop,
    open_in_editor,
    spawn_detached,
)
from framerelay.roundtrip.export import EXPORT_STEM, ExportedFrame, export_frame
from framerelay.roundtrip.session import (
    EDITS_FOLDER,
    AcceptedEdit,
    EditEvent,
    EditSession,
    EventKind,
    SessionState,
)
from framerelay.roundtrip.validate import EditedFrame, read_edited_frame
from framerelay.roundtrip.watch import IMAGE_SUFFIXES, SaveWatcher, is_image_name

__all__ = [
    "EDITS_FOLDER",
    "EXPORT_STEM",
    "IMAGE_SUFFIXES",
    "PHOTOSHOP",
    "AcceptedEdit",
    "EditEvent",
    "EditSession",
    "EditedFrame",
    "EditorConfig",
    "EventKind",
    "ExportedFrame",
    "LaunchResult",
    "SaveWatcher",
    "SessionState",
    "editor_command",
    "export_frame",
    "find_photoshop",
    "is_image_name",
    "open_in_editor",
    "read_edited_frame",
    "spawn_detached",
]
