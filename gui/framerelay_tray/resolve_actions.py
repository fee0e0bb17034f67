"""DaVinci Resolve Studio entries of the tray menu: "Send current Resolve clip" and "Place
finished takes".

They call the Resolve integration's external-scripting module,
`framerelay_resolve.external` (`send_current_clip()`, `place_finished_takes()`), which drives a
running Resolve Studio from outside it. The entries exist only when that module imports and
Resolve's own scripting module, `DaVinciResolveScript`, can be found: external scripting is a
Studio feature, so on the free edition (or without Resolve) they stay hidden.

Where the module is looked for, besides sys.path: `$FRAMERELAY_RESOLVE_PLUGIN_DIR`, and the
repository's `plugins/davinci_resolve/` next to this package when running from a checkout.
Resolve's scripting module is looked for where Blackmagic installs it, or under
`$RESOLVE_SCRIPT_API/Modules`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger(__name__)

MODULE = "framerelay_resolve.external"
FUNCTIONS = ("send_current_clip", "place_finished_takes")
SCRIPTING_MODULE = "DaVinciResolveScript"
PLUGIN_DIR_ENV = "FRAMERELAY_RESOLVE_PLUGIN_DIR"
CHECKOUT_PLUGIN_DIR = Path(__file__).resolve().parents[2] / "plugins" / "davinci_resolve"


def resolve_module_dirs() -> list[Path]:
    """Where Resolve keeps DaVinciResolveScript.py (its scripting README, by platform)."""
    dirs = []
    api = os.environ.get("RESOLVE_SCRIPT_API")
    if api:
        dirs.append(Path(api) / "Modules")
    if sys.platform == "darwin":
        dirs.append(
            Path("/Library/Application Support/Blackmagic Design/DaVinci Resolve")
            / "Developer/Scripting/Modules"
        )
    elif sys.platform == "win32":
        program_data = os.environ.get("PROGRAMDATA", r"C:\ProgramData")
        dirs.append(
            Path(program_data)
            / "Blackmagic Design/DaVinci Resolve/Support/Developer/Scripting/Modules"
        )
    else:
        dirs.append(Path("/opt/resolve/Developer/Scripting/Modules"))
    return dirs


def plugin_dirs() -> list[Path]:
    dirs = []
    override = os.environ.get(PLUGIN_DIR_ENV)
    if override:
        dirs.append(Path(override))
    dirs.append(CHECKOUT_PLUGIN_DIR)
    return dirs


def _add_to_path(folders: list[Path], first: bool = False) -> None:
    """Appends the folders to sys.path; `first`: puts them before everything, in their order."""
    found = [str(folder) for folder in folders if folder.is_dir()]
    if first:
        sys.path[:] = found + [entry for entry in sys.path if entry not in found]
        return
    sys.path.extend(folder for folder in found if folder not in sys.path)


def scripting_available() -> bool:
    _add_to_path(resolve_module_dirs())
    try:
        return importlib.util.find_spec(SCRIPTING_MODULE) is not None
    except (ImportError, ValueError):
        return False


def load_external() -> ModuleType | None:
    """The integration's module when it and Resolve Studio's scripting module are there."""
    _add_to_path(plugin_dirs(), first=True)  # the user's override wins over a checkout
    try:
        module = importlib.import_module(MODULE)
    except Exception as error:  # absent, or broken: either way the entries stay hidden
        log.debug("no Resolve integration: %s", error)
        return None
    if not all(callable(getattr(module, name, None)) for name in FUNCTIONS):
        log.warning("%s lacks %s; the Resolve entries stay hidden", MODULE, " or ".join(FUNCTIONS))
        return None
    if not scripting_available():
        log.debug("Resolve Studio's scripting module is not found; the Resolve entries stay hidden")
        return None
    return module


@dataclass(frozen=True)
class ResolveActions:
    module: ModuleType

    def send_current_clip(self) -> Any:
        return self.module.send_current_clip()

    def place_finished_takes(self) -> Any:
        return self.module.place_finished_takes()


def find_resolve_actions() -> ResolveActions | None:
    module = load_external()
    return None if module is None else ResolveActions(module)


def describe(result: Any, fallback: str) -> str:
    """One line for the status bar from whatever the integration returned."""
    if isinstance(result, str) and result:
        return result
    if isinstance(result, list | tuple):
        return f"{fallback}: {len(result)}"
    return fallback
