"""framerelay for DaVinci Resolve: send the timeline clip, get each take on a new track above.

Three ways in, one flow (`flow`) and one set of placement rules (`placement`):

* Studio and free up to 21.0: Python scripts in Workspace > Scripts > Utility (`menu`);
* Studio from another process, through Resolve's external scripting (`external`, used by the
  tray app and `framerelay resolve send|place`);
* free 21.1+ (and any build whose Python cannot reach framerelay): the Lua "framerelay Bridge"
  (`lua/framerelay_bridge.lua`), driven through a file mailbox (`bridged`).

Only the standard library and Resolve's own modules are used; the daemon's client package is
vendored in `vendor/`. The modules here keep to Python 3.7 syntax (Resolve up to 21.0 runs the
Python 3 the user installed).
"""

__version__ = "0.1.0"
BIN_NAME = "framerelay"  # the Media Pool bin that takes are imported into
