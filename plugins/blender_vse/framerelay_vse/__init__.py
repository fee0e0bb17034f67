"""framerelay for Blender's Video Sequencer.

Paint one frame of a movie strip in your image editor and the framerelay daemon propagates the
edit through the clip; each take lands on a free channel above the strip, frame-exact.

This file imports nothing from Blender, so that the extension's Blender-free modules (planning,
parameters, the job follower) can be imported and tested outside Blender; `addon` holds the
Blender side.
"""


def register() -> None:
    from . import addon

    addon.register()


def unregister() -> None:
    from . import addon

    addon.unregister()
