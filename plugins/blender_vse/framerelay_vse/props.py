"""What the extension keeps in the .blend: each scene's job settings and its jobs.

`scene.framerelay` holds the panel's settings (built from the `params` tables), a key that
identifies the scene in the jobs' host context, and `jobs`: one record per take, with its frozen
insertion point and the latest state the daemon reported, so a reopened file shows its jobs and
follows the unfinished ones again.
"""

from __future__ import annotations

from typing import Any

import bpy
from bpy.props import (
    BoolProperty,
    CollectionProperty,
    EnumProperty,
    FloatProperty,
    IntProperty,
    PointerProperty,
    StringProperty,
)

from .params import OUTPUT_FORMATS, PARAMS, PRESETS, Param

OUTPUT_LOCATIONS = (
    ("SOURCE", "Next to the Clip", "A framerelay folder beside the source clip"),
    ("DAEMON", "framerelay's Folder", "The daemon's outputs folder, one sub-folder per job"),
    ("FOLDER", "Folder", "A folder you choose (it must be one of the daemon's output roots)"),
)

ENDED = ("finished", "failed", "cancelled", "lost")


def param_property(param: Param) -> Any:
    common = {"name": param.label, "description": param.description, "default": param.default}
    if param.kind is bool:
        return BoolProperty(**common)
    if param.kind is int:
        return IntProperty(**common, min=param.low, max=param.high)
    return FloatProperty(**common, min=param.low, max=param.high, precision=2, step=10)


class FRAMERELAY_PG_job(bpy.types.PropertyGroup):
    """One take: `name` is the take's strip name ("<source> take <n>")."""

    job_id: StringProperty(name="Job")
    source_name: StringProperty(name="Source Strip")
    take: IntProperty(name="Take", default=1)
    channel: IntProperty(name="Source Channel")
    record_start: IntProperty(name="Record Frame")
    duration: IntProperty(name="Duration")
    media_fps: StringProperty(name="Clip Rate")
    scene_fps: StringProperty(name="Scene Rate")
    output_format: StringProperty(name="Format")
    requested_preset: StringProperty(name="Requested Preset")
    state: StringProperty(name="State", default="submitting")
    phase: StringProperty(name="Phase")
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    step: IntProperty()
    total: IntProperty()
    window: IntProperty()
    windows: IntProperty()
    eta: FloatProperty(default=-1.0)
    position: IntProperty()
    message: StringProperty()
    hint: StringProperty()
    preset: StringProperty(name="Preset")
    exported_path: StringProperty(name="Frame to Edit", subtype="FILE_PATH")
    output_path: StringProperty(name="Output", subtype="FILE_PATH")
    placed: BoolProperty()
    result_strip: StringProperty(name="Take Strip")
    result_channel: IntProperty()
    error: StringProperty()
    connection_lost: BoolProperty()

    @property
    def ended(self) -> bool:
        return self.state in ENDED


def settings_annotations() -> dict[str, Any]:
    annotations: dict[str, Any] = {
        "scene_key": StringProperty(name="Scene Key", options={"HIDDEN"}),
        "preset": EnumProperty(name="Preset", items=PRESETS, default=PRESETS[0][0]),
        "output_format": EnumProperty(
            name="Output", items=OUTPUT_FORMATS, default=OUTPUT_FORMATS[0][0]
        ),
        "output_location": EnumProperty(name="Write To", items=OUTPUT_LOCATIONS, default="SOURCE"),
        "output_folder": StringProperty(name="Folder", subtype="DIR_PATH"),
        "edited_image": StringProperty(
            name="Edited Image",
            description="Your edit of the strip's first visible frame (PNG, TIFF, JPEG, PSD)",
            subtype="FILE_PATH",
        ),
        "mask_image": StringProperty(
            name="Mask",
            description="Optional: white where the frame was edited",
            subtype="FILE_PATH",
        ),
        "model": StringProperty(
            name="Model",
            description="Hub id or diffusers folder; empty: the daemon's default model",
        ),
        "sixteen_bit": BoolProperty(
            name="16-bit TIFF", description="Export the frame to edit as a 16-bit TIFF"
        ),
        "follow_saves": BoolProperty(
            name="Follow Saves",
            description="A save made while the take renders starts another take",
        ),
        "show_advanced": BoolProperty(name="Advanced"),
        "jobs": CollectionProperty(type=FRAMERELAY_PG_job),
        "active_job": IntProperty(),
    }
    annotations.update({param.name: param_property(param) for param in PARAMS})
    return annotations


FRAMERELAY_PG_settings = type(
    "FRAMERELAY_PG_settings",
    (bpy.types.PropertyGroup,),
    {"__annotations__": settings_annotations(), "__doc__": "framerelay settings of a scene"},
)

CLASSES = (FRAMERELAY_PG_job, FRAMERELAY_PG_settings)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.framerelay = PointerProperty(type=FRAMERELAY_PG_settings)


def unregister() -> None:
    del bpy.types.Scene.framerelay
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
