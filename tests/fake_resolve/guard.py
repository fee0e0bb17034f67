"""No test may reach a real DaVinci Resolve: its scripting module cannot be imported.

An import hook placed first on `sys.meta_path` refuses `DaVinciResolveScript` and `fusionscript`
wherever they are installed; a test that needs the module puts the fake one in `sys.modules`
(which Python consults before any hook). The variables that point Resolve's module at its library
are removed for the same reason.
"""

from __future__ import annotations

import importlib.abc
import os
import sys

BLOCKED = ("DaVinciResolveScript", "fusionscript", "python_get_resolve")
VARIABLES = ("RESOLVE_SCRIPT_API", "RESOLVE_SCRIPT_LIB")


class RealResolveBlocked(importlib.abc.MetaPathFinder):
    def __init__(self) -> None:
        self.attempts: list[str] = []

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            self.attempts.append(name)
            raise ImportError(f"tests may not import the real {name} (tests/fake_resolve/guard.py)")
        return None


GUARD = RealResolveBlocked()


def install() -> RealResolveBlocked:
    if GUARD not in sys.meta_path:
        sys.meta_path.insert(0, GUARD)
    for name in BLOCKED:
        module = sys.modules.get(name)
        if module is not None and not getattr(module, "FAKE", False):
            del sys.modules[name]
    for variable in VARIABLES:
        os.environ.pop(variable, None)
    return GUARD


class FakeScriptModule:
    """Stands for `DaVinciResolveScript`: `scriptapp("Resolve")` answers like Resolve does,
    the running Resolve for Studio and None for the free edition (no external scripting)."""

    FAKE = True

    def __init__(self, resolve=None) -> None:
        self.resolve = resolve

    def scriptapp(self, name: str):
        if name != "Resolve" or self.resolve is None:
            return None
        return self.resolve if self.resolve.profile.external_scripting else None
