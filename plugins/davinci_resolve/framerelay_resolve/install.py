"""Installing the scripts into Resolve's Workspace > Scripts (`framerelay install-resolve`).

For each of Resolve's per-user Fusion folders on this machine (`resolve_bridge.fusion_dirs`:
Linux `~/.local/share/DaVinciResolve/Fusion`, macOS `~/Library/Application Support/Blackmagic
Design/DaVinci Resolve/Fusion` and the same inside each Mac App Store container, Windows
`%APPDATA%\\Blackmagic Design\\DaVinci Resolve\\Support\\Fusion`):

* `Scripts/Utility/` gets the menu scripts (listed on every page): three Python scripts and the
  Lua bridge; inside an App Store container also Fusion's standalone `Scripts/Utility`, which
  some of those builds scan instead;
* `framerelay/` gets this package (with its vendored client) for the Python scripts, and the
  bridge's `mailbox/`: Resolve reads both even when macOS sandboxes it.

The installed files name those folders, so nothing depends on where framerelay itself lives.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import __version__
from .vendor.framerelay_client import resolve_bridge

PACKAGE_DIR = Path(__file__).resolve().parent
MENU_SCRIPTS = {
    "framerelay Send Clip.py": (
        "send",
        "send the clip to framerelay (edit its frame in your image editor) and place its take",
    ),
    "framerelay Send Clip with Image.py": (
        "send_image",
        "send the clip with an edited frame picked in a file dialog",
    ),
    "framerelay Place Takes.py": ("place", "place every finished take of this project"),
}
BRIDGE_SCRIPT = "framerelay Bridge.lua"
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "tests")

MENU_TEMPLATE = """# framerelay: {summary}.
# Installed by `framerelay install-resolve` {version}; removed by `framerelay install-resolve
# --uninstall`. Runs in DaVinci Resolve: Workspace > Scripts > {title}.
import sys

FRAMERELAY = {support!r}
if FRAMERELAY not in sys.path:
    sys.path.insert(0, FRAMERELAY)

from framerelay_resolve import menu  # noqa: E402

menu.run({action!r}, globals())
"""


@dataclass(frozen=True)
class Target:
    fusion_dir: Path
    scripts_dirs: list[Path]

    @property
    def support_dir(self) -> Path:
        return self.fusion_dir / resolve_bridge.SUPPORT_DIR

    @property
    def mailbox(self) -> Path:
        return resolve_bridge.mailbox_dir(self.fusion_dir)


def targets(fusion_dirs: Iterable[Path] | None = None) -> list[Target]:
    """Where to install on this machine (or in the given Fusion folders)."""
    folders = resolve_bridge.fusion_dirs() if fusion_dirs is None else list(fusion_dirs)
    found = []
    for folder in folders:
        scripts = [Path(folder) / "Scripts" / "Utility"]
        standalone = resolve_bridge.standalone_fusion_dir(Path(folder))
        if standalone is not None:
            scripts.append(standalone / "Scripts" / "Utility")
        found.append(Target(Path(folder), scripts))
    return found


def render_menu_script(name: str, support_dir: Path) -> str:
    action, summary = MENU_SCRIPTS[name]
    return MENU_TEMPLATE.format(
        summary=summary,
        version=__version__,
        title=name[: -len(".py")],
        support=str(support_dir),
        action=action,
    )


def render_bridge(mailbox: Path) -> str:
    template = (PACKAGE_DIR / "lua" / "framerelay_bridge.lua").read_text(encoding="utf-8")
    text = mailbox.as_posix() if os.sep == "/" else str(mailbox).replace("\\", "/")
    if "]==]" in text:
        raise ValueError(f"the mailbox path {mailbox} cannot be written into Lua")
    return template.replace("@MAILBOX@", text).replace("@VERSION@", __version__)


def install(found: list[Target], log: Callable[[str], None] = print) -> list[Path]:
    """Copy the scripts, the package and the mailbox into each target; the paths written."""
    written = []
    for target in found:
        package = target.support_dir / "framerelay_resolve"
        if package.exists():
            shutil.rmtree(package)
        target.support_dir.mkdir(parents=True, exist_ok=True)
        shutil.copytree(PACKAGE_DIR, package, ignore=IGNORED)
        target.mailbox.mkdir(parents=True, exist_ok=True)
        written += [package, target.mailbox]
        for scripts in target.scripts_dirs:
            scripts.mkdir(parents=True, exist_ok=True)
            for name in MENU_SCRIPTS:
                written.append(_write(scripts / name, render_menu_script(name, target.support_dir)))
            written.append(_write(scripts / BRIDGE_SCRIPT, render_bridge(target.mailbox)))
    for path in written:
        log("  " + str(path))
    return written


def uninstall(found: list[Target], log: Callable[[str], None] = print) -> list[Path]:
    """Remove what `install` wrote; the paths removed."""
    removed = []
    for target in found:
        for scripts in target.scripts_dirs:
            for name in [*MENU_SCRIPTS, BRIDGE_SCRIPT]:
                path = scripts / name
                if path.exists():
                    path.unlink()
                    removed.append(path)
        removed += _remove_support_dir(target, log)
    for path in removed:
        log("  " + str(path))
    return removed


def _remove_support_dir(target: Target, log: Callable[[str], None]) -> list[Path]:
    """Remove the package and the mailbox `install` wrote, and the folder when nothing else is
    in it: a wrong --fusion-dir (a home folder holding a `framerelay` checkout) loses nothing."""
    support = target.support_dir
    package, mailbox = support / "framerelay_resolve", target.mailbox
    removed = []
    if package.is_dir() and (package / "install.py").is_file():
        shutil.rmtree(package)
        removed.append(package)
    if mailbox.is_dir():
        for entry in mailbox.iterdir():
            if entry.name in (resolve_bridge.REQUEST_FILE, resolve_bridge.LOCK_FILE) or (
                entry.name.startswith("." + resolve_bridge.REQUEST_FILE) and entry.is_file()
            ):
                entry.unlink()
        if not any(mailbox.iterdir()):
            mailbox.rmdir()
            removed.append(mailbox)
    if support.is_dir() and not any(support.iterdir()):
        support.rmdir()
        return [support]  # the whole folder, as install made it
    if support.is_dir():
        log(f"  (kept {support}: it holds files framerelay did not install)")
    return removed


def _write(path: Path, text: str) -> Path:
    tmp = path.with_name("." + path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8", newline="\n")
    os.replace(tmp, path)
    return path
