"""The Python scripts of Workspace > Scripts (Studio, and free up to 21.0).

Each installed script is a few lines that put this package on `sys.path` and call `run(action,
globals())`. Messages go to Resolve's Console (Workspace > Console); the tray app shows the queue.

* "send": place the project's finished takes, send the selected clip (or the one under the
  playhead) as a round trip through the image editor, follow it and place its take.
* "send_image": the same with an edited frame (and an optional mask) picked in a file dialog,
  which only Studio and free builds before 19.1 may open.
* "place": place the project's finished takes and say what is still on its way.
"""

from __future__ import annotations

import sys
from typing import Any, Callable, Mapping

from .errors import NotSupported, ResolveError
from .vendor.framerelay_client.errors import ClientError, DaemonUnreachable

ACTIONS = ("send", "send_image", "place")
FOLLOW_SECONDS = 4 * 3600.0


def say(line: str) -> None:
    print("[framerelay] " + line)
    sys.stdout.flush()


def find_resolve(namespace: Mapping[str, Any]) -> Any:
    """The `resolve` object from what Resolve injects into a menu script's globals.

    Fusion's objects may leave real methods out of `dir()` (measured on Fusion tools), so their
    `GetResolve` is called rather than looked up.
    """
    resolve = namespace.get("resolve")
    if resolve is not None:
        return resolve
    for name in ("app", "fu", "fusion"):
        obj = namespace.get(name)
        if obj is None:
            continue
        try:
            resolve = obj.GetResolve()
        except Exception:  # not a Fusion object after all
            resolve = None
        if resolve is not None:
            return resolve
    bmd = namespace.get("bmd")
    if bmd is not None:
        try:
            resolve = bmd.scriptapp("Resolve")
        except Exception:
            resolve = None
        if resolve is not None:
            return resolve
    raise ResolveError(
        "this script runs inside DaVinci Resolve.",
        "Run it from Workspace > Scripts in Resolve; from a terminal use "
        "`framerelay resolve send` (Resolve Studio).",
    )


def find_fusion(namespace: Mapping[str, Any], resolve: Any) -> Any:
    for name in ("fu", "fusion"):
        if namespace.get(name) is not None:
            return namespace[name]
    return resolve.Fusion() if "Fusion" in dir(resolve) else None


def ask_files(fusion: Any, capabilities: Any) -> tuple[str, str | None]:
    """The edited frame and an optional mask, from Fusion's file dialog where it may open."""
    if not capabilities.windows:
        raise NotSupported(
            f"{capabilities.name} cannot open windows or file dialogs from a script "
            "(free Resolve 19.1 and "
            "newer).",
            "Run framerelay Send Clip instead (your image editor opens the frame), or pick the "
            "edited file in the framerelay tray app, or `framerelay resolve send --image FILE`.",
        )
    if fusion is None:
        raise NotSupported("this Resolve gives scripts no Fusion object for its file dialog.")
    image = fusion.RequestFile("", "", {"FReqS_Title": "framerelay: the edited frame"})
    if not image:
        raise ResolveError("no edited frame was chosen.", "Run the script again to choose one.")
    mask = fusion.RequestFile(
        "", "", {"FReqS_Title": "framerelay: a mask of the edit (Cancel for none)"}
    )
    return str(image), str(mask) if mask else None


def run(
    action: str,
    namespace: Mapping[str, Any],
    log: Callable[[str], None] = say,
    client: Any = None,
    follow_seconds: float = FOLLOW_SECONDS,
) -> int:
    """Perform `action` in the Resolve that injected `namespace`; 0 when it went through."""
    try:
        return _run(action, namespace, log, client, follow_seconds)
    except ResolveError as error:
        log(str(error))
    except DaemonUnreachable as error:
        log(
            f"The framerelay daemon is not running ({error.message}): start it with "
            "`framerelay serve` or the framerelay tray app, then run this script again."
        )
    except ClientError as error:
        log(str(error))
    return 1


def _run(action, namespace, log, client, follow_seconds) -> int:
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    from .flow import Flow
    from .live import LiveHost

    resolve = find_resolve(namespace)
    host = LiveHost(resolve)
    capabilities = host.capabilities()
    if not capabilities.python_menu:
        raise NotSupported(
            f"{capabilities.name} runs no Python scripts from its menu.",
            "Run Workspace > Scripts > framerelay Bridge, then use the framerelay tray app or "
            "`framerelay resolve send --via bridge`.",
        )
    image = mask = None
    if action == "send_image":
        image, mask = ask_files(find_fusion(namespace, resolve), capabilities)
    if client is None:
        from .vendor.framerelay_client.http import Client

        client = Client.discover()
    flow = Flow(host, client, log)
    flow.place_finished()
    if action == "place":
        return 0
    sent = flow.send(image=image, mask=mask)
    log(
        f"Following job {sent.job_id[:8]} here; closing the Console does not stop it "
        "(run framerelay Place "
        "Takes later to place its take)."
    )
    view = flow.follow(sent.job_id, timeout=follow_seconds)
    if view.state == "JOB_STATE_FINISHED":
        flow.place_finished()
        return 0
    return 0 if not view.ended else 1
