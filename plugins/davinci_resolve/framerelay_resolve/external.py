"""Resolve driven from another process: the tray app and `framerelay resolve send|place`.

Two ways in, chosen by `via`:

* "external": Resolve Studio's external scripting (`DaVinciResolveScript.scriptapp("Resolve")`,
  with Preferences > System > General > External scripting using: Local). The free edition
  refuses it.
* "bridge": the Lua "framerelay Bridge" the user started in Resolve (every edition; the only way
  on free 21.1+).
* "auto" (the default): external scripting when it connects to Studio, else a running bridge.

    from framerelay_resolve import external
    sent = external.send_current_clip()          # round trip through the image editor
    report = external.place_finished_takes()     # every finished take of the open project
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from .errors import NotSupported, ResolveError

VIAS = ("auto", "external", "bridge")

# Where Resolve installs its scripting module (Resolve's scripting README).
SCRIPT_API = {
    "darwin": "/Library/Application Support/Blackmagic Design/DaVinci Resolve/Developer/Scripting",
    "win32": os.path.join(
        os.environ.get("PROGRAMDATA", r"C:\ProgramData"),
        "Blackmagic Design",
        "DaVinci Resolve",
        "Support",
        "Developer",
        "Scripting",
    ),
    "linux": "/opt/resolve/Developer/Scripting",
}
SCRIPT_LIB = {
    "darwin": "/Applications/DaVinci Resolve/DaVinci Resolve.app/Contents/Libraries/Fusion/"
    "fusionscript.so",
    "win32": r"C:\Program Files\Blackmagic Design\DaVinci Resolve\fusionscript.dll",
    "linux": "/opt/resolve/libs/Fusion/fusionscript.so",
}
EXTERNAL_HINT = (
    "Start DaVinci Resolve Studio and set Preferences > System > General > External scripting "
    "using: Local. The free edition has no external scripting: run Workspace > Scripts > "
    "framerelay Bridge in Resolve and use the bridge."
)


def scripting_module():
    """Resolve's `DaVinciResolveScript`, found where Resolve installs it (RESOLVE_SCRIPT_API
    and RESOLVE_SCRIPT_LIB override the places)."""
    try:
        import DaVinciResolveScript  # type: ignore[import-not-found]

        return DaVinciResolveScript
    except ImportError:
        pass
    platform = "linux" if sys.platform.startswith("linux") else sys.platform
    api = os.environ.get("RESOLVE_SCRIPT_API") or SCRIPT_API.get(platform, "")
    modules = os.path.join(api, "Modules")
    if not api or not os.path.isfile(os.path.join(modules, "DaVinciResolveScript.py")):
        raise NotSupported(
            "DaVinci Resolve's scripting module is not in {}.".format(modules or "this system"),
            "Install DaVinci Resolve Studio, or set RESOLVE_SCRIPT_API to its "
            "Developer/Scripting folder.",
        )
    os.environ.setdefault("RESOLVE_SCRIPT_API", api)
    os.environ.setdefault("RESOLVE_SCRIPT_LIB", SCRIPT_LIB.get(platform, ""))
    if modules not in sys.path:
        sys.path.append(modules)
    try:
        import DaVinciResolveScript  # type: ignore[import-not-found]
    except ImportError as error:
        raise NotSupported(
            f"DaVinci Resolve's scripting module did not load: {error}.",
            "Set RESOLVE_SCRIPT_LIB to Resolve's fusionscript library.",
        ) from None
    return DaVinciResolveScript


def connect_external() -> Any:
    """The running Resolve Studio, through external scripting."""
    resolve = scripting_module().scriptapp("Resolve")
    if resolve is None:
        raise NotSupported(
            "DaVinci Resolve Studio did not answer external scripting.", EXTERNAL_HINT
        )
    from .capabilities import Capabilities

    capabilities = Capabilities.from_version(resolve.GetProductName(), resolve.GetVersion())
    if not capabilities.external:
        raise NotSupported(
            f"{capabilities.name} has no external scripting (Studio only).",
            EXTERNAL_HINT,
        )
    return resolve


def open_host(via: str = "auto") -> Any:
    """A host for `flow.Flow`: `live.LiveHost` over external scripting, or the bridge's."""
    if via not in VIAS:
        raise ValueError("via must be one of {}, got {!r}".format(", ".join(VIAS), via))
    from .bridged import BridgeHost
    from .live import LiveHost
    from .vendor.framerelay_client.resolve_bridge import BridgeClient, BridgeNotRunning

    problems: list[Any] = []
    if via in ("auto", "external"):
        try:
            return LiveHost(connect_external())
        except NotSupported as error:
            if via == "external":
                raise
            problems.append(error)
    try:
        return BridgeHost(BridgeClient.find())
    except BridgeNotRunning as error:
        if via == "bridge":
            raise ResolveError(error.message, error.hint) from None
        problems.append(error)
    reasons = "; ".join(str(p.message).rstrip(".") for p in problems)
    raise NotSupported(
        f"framerelay cannot reach DaVinci Resolve ({reasons}).",
        EXTERNAL_HINT + " Install the scripts with `framerelay install-resolve`.",
    )


def open_client(client: Any = None) -> Any:
    if client is not None:
        return client
    from .vendor.framerelay_client.http import Client

    return Client.discover()


def send_current_clip(
    image: str | None = None,
    mask: str | None = None,
    preset: str | None = None,
    output_format: str | None = None,
    output_folder: str | None = None,
    params: dict | None = None,
    via: str = "auto",
    client: Any = None,
    host: Any = None,
    log: Callable[[str], None] | None = None,
):
    """Send the clip selected in Resolve (or under its playhead); returns a `flow.Sent`.

    Without `image`, a round trip: the daemon opens the frame in the user's image editor and the
    job waits for the save. Finished takes of the project are placed first."""
    from .flow import Flow

    flow = Flow(host or open_host(via), open_client(client), log)
    flow.place_finished()
    return flow.send(image, mask, preset, output_format, output_folder, params)


def place_finished_takes(
    via: str = "auto",
    client: Any = None,
    host: Any = None,
    log: Callable[[str], None] | None = None,
):
    """Place every finished take of the open project on a new track; returns a `PlaceReport`."""
    from .flow import Flow

    return Flow(host or open_host(via), open_client(client), log).place_finished()


def stop_bridge(timeout: float = 10.0) -> bool:
    """Ask a running framerelay Bridge to stop; False when none was running."""
    from .vendor.framerelay_client.resolve_bridge import BridgeClient, BridgeNotRunning

    try:
        BridgeClient.find(timeout=timeout).call("quit")
    except BridgeNotRunning:
        return False
    return True
