"""One code path for Blender 4.2 LTS to 5.3: the sequencer API's renames, in one place.

* 4.2 names the strips `sequences`; 4.4 has both; 5.0 has only `strips`.
* 5.0 lets a workspace's sequencer edit a scene other than `context.scene`
  (`context.sequencer_scene`, None in bpy module mode).
* 5.3 renames the strip geometry (`frame_final_start` → `left_handle`, `frame_start` →
  `content_start`, ...) and warns that the old names go in 6.0; the new names are read when they
  exist.
* 5.3's `strips.new_movie` gains a `stream` argument; the four arguments used here are the same
  everywhere.
"""

from __future__ import annotations

from typing import Any

import bpy

# Each strip property this extension reads: (5.3+ name, name before 5.3).
GEOMETRY = {
    "left_handle": ("left_handle", "frame_final_start"),
    "right_handle": ("right_handle", "frame_final_end"),
    "duration": ("duration", "frame_final_duration"),
    "content_start": ("content_start", "frame_start"),
    "content_duration": ("content_duration", "frame_duration"),
    "left_offset": ("left_handle_offset", "frame_offset_start"),
    "right_offset": ("right_handle_offset", "frame_offset_end"),
}


def strip_value(strip: Any, what: str) -> Any:
    new, old = GEOMETRY[what]
    return getattr(strip, new) if hasattr(strip, new) else getattr(strip, old)


def set_strip_value(strip: Any, what: str, value: Any) -> None:
    new, old = GEOMETRY[what]
    setattr(strip, new if hasattr(strip, new) else old, value)


def sequencer_scene(context: Any) -> Any:
    """The scene the sequencer edits (5.0+ may differ from the window's scene)."""
    scene = getattr(context, "sequencer_scene", None)
    if scene is None:
        workspace = getattr(context, "workspace", None)
        scene = getattr(workspace, "sequencer_scene", None)
    return scene or context.scene


def top_level_strips(editor: Any) -> Any:
    """The strips of the timeline itself (not inside meta strips)."""
    return editor.strips if hasattr(editor, "strips") else editor.sequences


def active_strip(scene: Any) -> Any:
    editor = scene.sequence_editor if scene is not None else None
    return editor.active_strip if editor is not None else None


def in_meta(strip: Any) -> bool:
    parent = getattr(strip, "parent_meta", None)
    return parent is not None and parent() is not None


def channel_locked(editor: Any, channel: int) -> bool:
    channels = getattr(editor, "channels", None)
    if channels is None or channel >= len(channels):
        return False
    return bool(channels[channel].lock)


class PrefetchPaused:
    """Pauses the sequencer's prefetch thread while strips are added (a known Blender race)."""

    def __init__(self, editor: Any):
        self.editor = editor
        self.was = getattr(editor, "use_prefetch", None)

    def __enter__(self) -> PrefetchPaused:
        if self.was:
            self.editor.use_prefetch = False
        return self

    def __exit__(self, *exc: object) -> None:
        if self.was:
            self.editor.use_prefetch = True


def blender_version() -> str:
    return ".".join(str(n) for n in bpy.app.version)
