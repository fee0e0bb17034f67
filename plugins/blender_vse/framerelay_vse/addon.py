"""Registering the extension: classes, scene properties, the drain timer and the file handlers."""

from __future__ import annotations

from typing import Any

import bpy
from bpy.app.handlers import persistent

from . import operators, panel, prefs, props, tracker


@persistent
def on_load_pre(*_: Any) -> None:
    tracker.forget_all()


@persistent
def on_load_post(*_: Any) -> None:
    tracker.resume()


def resume_once() -> None:
    """After the extension is enabled in an open file: follow its jobs again."""
    tracker.resume()


HANDLERS = ((bpy.app.handlers.load_pre, on_load_pre), (bpy.app.handlers.load_post, on_load_post))


def register() -> None:
    for cls in prefs.CLASSES:
        bpy.utils.register_class(cls)
    props.register()
    for cls in (*operators.CLASSES, *panel.CLASSES):
        bpy.utils.register_class(cls)
    for handlers, handler in HANDLERS:
        if handler not in handlers:
            handlers.append(handler)
    if not bpy.app.timers.is_registered(tracker.drain):
        bpy.app.timers.register(tracker.drain, first_interval=0.5, persistent=True)
    bpy.app.timers.register(resume_once, first_interval=0.1)


def unregister() -> None:
    for timer in (tracker.drain, resume_once):
        if bpy.app.timers.is_registered(timer):
            bpy.app.timers.unregister(timer)
    for handlers, handler in HANDLERS:
        if handler in handlers:
            handlers.remove(handler)
    tracker.forget_all()
    for cls in reversed((*operators.CLASSES, *panel.CLASSES)):
        bpy.utils.unregister_class(cls)
    props.unregister()
    for cls in reversed(prefs.CLASSES):
        bpy.utils.unregister_class(cls)
