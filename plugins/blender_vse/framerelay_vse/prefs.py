"""The extension's preferences: where the daemon is, and how to start it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import bpy
from bpy.props import StringProperty

from .follow import ConnectionSettings

ADDON_ID = __package__


class FRAMERELAY_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = ADDON_ID

    daemon_url: StringProperty(
        name="Daemon Address",
        description=(
            "Leave empty to find the daemon through its discovery file (daemon.json). "
            "Otherwise http://127.0.0.1:PORT; the token is still read from the discovery file"
        ),
    )
    discovery_file: StringProperty(
        name="Discovery File",
        description="Leave empty for the daemon's default (daemon.json in framerelay's config folder)",
        subtype="FILE_PATH",
    )
    serve_command: StringProperty(
        name="Start Command",
        description=(
            "How Start runs the daemon. Empty: `framerelay serve`, with framerelay found on "
            "PATH or in ~/.local/bin"
        ),
    )

    def draw(self, context: Any) -> None:
        layout = self.layout
        layout.prop(self, "daemon_url")
        layout.prop(self, "discovery_file")
        layout.prop(self, "serve_command")


@dataclass(frozen=True)
class Preferences:
    """A plain copy, safe to hand to worker threads."""

    daemon_url: str = ""
    discovery_file: str = ""
    serve_command: str = ""

    def connection(self) -> ConnectionSettings:
        path = bpy.path.abspath(self.discovery_file) if self.discovery_file else ""
        return ConnectionSettings(url=self.daemon_url.strip(), discovery_path=path)


def current(context: Any = None) -> Preferences:
    """The preferences, or the defaults where the extension runs without being enabled as an
    add-on (scripts and tests that import and register it directly)."""
    context = context or bpy.context
    addon = context.preferences.addons.get(ADDON_ID)
    if addon is None or addon.preferences is None:
        return Preferences()
    found = addon.preferences
    return Preferences(found.daemon_url, found.discovery_file, found.serve_command)


CLASSES = (FRAMERELAY_AP_preferences,)
