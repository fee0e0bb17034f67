"""Open the exported frame in the user's image editor, with no shell and without waiting.

`detect_editors` lists the known image editors installed here; over the daemon's API the editor
is chosen among those (see `service/editor_settings.py`), while any other program can only be set
by hand in the local config file.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from framerelay.errors import InvalidSpecError

log = logging.getLogger(__name__)

PHOTOSHOP = "photoshop"  # the configured name that means "find Photoshop where Adobe installs it"

ExitCallback = Callable[[int], None]
Spawner = Callable[[Sequence[str], ExitCallback | None], int | None]
Which = Callable[[str], str | None]


@dataclass(frozen=True)
class EditorConfig:
    """How the daemon opens the exported frame; the `[editor]` section of the daemon config."""

    application: str | None = None  # None: the OS default; "photoshop"; an app name or a path
    arguments: tuple[str, ...] = ()  # put before the file path (executables only)
    open_editor: bool = True  # False: the --no-open mode, only report the path
    poll_saves: bool = False  # poll the folder instead of OS notifications (network drives)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EditorConfig:
        unknown = sorted(set(data) - {"application", "arguments", "open_editor", "poll_saves"})
        if unknown:
            raise InvalidSpecError(
                f"Unknown editor settings: {', '.join(unknown)}.",
                "Use application, arguments, open_editor and poll_saves.",
            )
        application = data.get("application") or None
        arguments = data.get("arguments", ())
        if application is not None and not isinstance(application, str):
            raise InvalidSpecError(
                f"editor.application must be a string, got {application!r}.", SETTINGS_HINT
            )
        if isinstance(arguments, str) or not all(isinstance(a, str) for a in arguments):
            raise InvalidSpecError(
                f"editor.arguments must be a list of strings, got {arguments!r}.", SETTINGS_HINT
            )
        return cls(
            application=application,
            arguments=tuple(arguments),
            open_editor=_read_bool(data, "open_editor", True),
            poll_saves=_read_bool(data, "poll_saves", False),
        )

    def to_dict(self) -> dict[str, Any]:
        """TOML/JSON-ready; the OS default is written as an empty application."""
        return {
            "application": self.application or "",
            "arguments": list(self.arguments),
            "open_editor": self.open_editor,
            "poll_saves": self.poll_saves,
        }


SETTINGS_HINT = (
    'Write it as in docs/roundtrip.md, "Choosing the editor": application = "gimp", '
    'arguments = ["--new-instance"], open_editor = true.'
)


def _read_bool(data: Mapping[str, Any], key: str, default: bool) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        raise InvalidSpecError(f"editor.{key} must be true or false, got {value!r}.", SETTINGS_HINT)
    return value


@dataclass(frozen=True)
class KnownEditor:
    """An image editor framerelay can find by itself, per platform."""

    name: str  # how config.toml and SetEditorConfig name it
    label: str
    commands: tuple[str, ...] = ()  # executables looked up on PATH (any platform)
    mac_bundles: tuple[str, ...] = ()  # globs under /Applications and ~/Applications
    windows_programs: tuple[str, ...] = ()  # globs under the Program Files folders


KNOWN_EDITORS: tuple[KnownEditor, ...] = (
    KnownEditor(
        PHOTOSHOP,
        "Adobe Photoshop",
        mac_bundles=("Adobe Photoshop*/Adobe Photoshop*.app",),
        windows_programs=("Adobe/Adobe Photoshop*/Photoshop.exe",),
    ),
    KnownEditor(
        "gimp",
        "GIMP",
        commands=("gimp", "gimp-3.0", "gimp-2.10"),
        mac_bundles=("GIMP*.app",),
        windows_programs=("GIMP*/bin/gimp-*.exe",),
    ),
    KnownEditor(
        "krita",
        "Krita",
        commands=("krita",),
        mac_bundles=("krita.app",),
        windows_programs=("Krita*/bin/krita.exe",),
    ),
    KnownEditor(
        "affinity-photo",
        "Affinity Photo",
        mac_bundles=("Affinity Photo*.app",),
        windows_programs=("Affinity/Photo*/Photo.exe", "Affinity/Affinity Photo*/Photo.exe"),
    ),
    KnownEditor("pixelmator-pro", "Pixelmator Pro", mac_bundles=("Pixelmator Pro.app",)),
    KnownEditor("paint.net", "Paint.NET", windows_programs=("paint.net/paintdotnet.exe",)),
    KnownEditor("pinta", "Pinta", commands=("pinta",)),
    KnownEditor("mypaint", "MyPaint", commands=("mypaint",)),
)
KNOWN_BY_NAME = {known.name: known for known in KNOWN_EDITORS}


@dataclass(frozen=True)
class DetectedEditor:
    name: str  # a KnownEditor's name
    label: str
    path: Path  # the executable, or the .app bundle on macOS


def detect_editors(
    platform: str | None = None,
    which: Which = shutil.which,
    search_roots: Sequence[Path] | None = None,
) -> list[DetectedEditor]:
    """The known image editors installed here, in KNOWN_EDITORS order."""
    platform = platform or sys.platform
    found = (detect_editor(known, platform, which, search_roots) for known in KNOWN_EDITORS)
    return [editor for editor in found if editor is not None]


def detect_editor(
    known: KnownEditor,
    platform: str,
    which: Which = shutil.which,
    search_roots: Sequence[Path] | None = None,
) -> DetectedEditor | None:
    """Where `known` is installed: its newest install in the usual folders, else on PATH."""
    patterns = {"darwin": known.mac_bundles, "win32": known.windows_programs}.get(platform, ())
    if patterns:
        roots = list(search_roots) if search_roots is not None else _default_search_roots(platform)
        installs = [
            path for root in roots for pattern in patterns for path in Path(root).glob(pattern)
        ]
        if installs:
            return DetectedEditor(known.name, known.label, max(installs, key=_install_rank))
    for command in known.commands:
        executable = which(command)
        if executable is not None:
            return DetectedEditor(known.name, known.label, Path(executable))
    return None


@dataclass(frozen=True)
class LaunchResult:
    argv: tuple[str, ...]  # the command run; () for Windows' default handler (os.startfile)
    description: str  # for messages: "Adobe Photoshop 2025", "the default application", ...
    pid: int | None = None


Launcher = Callable[..., LaunchResult]  # open_in_editor, or a test's stand-in


def open_in_editor(
    path: Path,
    config: EditorConfig,
    *,
    platform: str | None = None,
    spawn: Spawner | None = None,
    startfile: Callable[[str], None] | None = None,
    which: Which = shutil.which,
    search_roots: Sequence[Path] | None = None,
    on_exit: ExitCallback | None = None,
) -> LaunchResult:
    """Start the editor on `path` and return at once; `on_exit(status)` runs when the command ends.

    Raises InvalidSpecError when the configured editor cannot be found or started.
    """
    platform = platform or sys.platform
    path = Path(path).absolute()
    if config.application is None and platform == "win32":
        _start_with_default_handler(path, startfile)
        return LaunchResult((), "the default application")
    argv, description = editor_command(
        path, config, platform=platform, which=which, search_roots=search_roots
    )
    try:
        pid = (spawn or spawn_detached)(argv, on_exit)
    except OSError as exc:
        raise InvalidSpecError(
            f"Could not start {description} ({argv[0]}): {exc.strerror or exc}.",
            "Set the editor in the daemon config or the tray app to an installed application, "
            "or use --no-open and open the file yourself.",
        ) from exc
    return LaunchResult(tuple(argv), description, pid)


def editor_command(
    path: Path,
    config: EditorConfig,
    *,
    platform: str,
    which: Which = shutil.which,
    search_roots: Sequence[Path] | None = None,
) -> tuple[list[str], str]:
    """The argv that opens `path` on `platform`, and a description of the editor."""
    file = str(path)
    application = config.application
    if application is None:
        if platform == "darwin":
            return ["open", file], "the default application"
        return ["xdg-open", file], "the default application"
    if application.lower() == PHOTOSHOP:
        return _photoshop_command(file, config, platform, search_roots)
    known = KNOWN_BY_NAME.get(application.lower())
    detected = known and detect_editor(known, platform, which, search_roots)
    if detected:
        if platform == "darwin" and detected.path.suffix == ".app":
            return _open_app_command(str(detected.path), file, config.arguments), detected.label
        return [str(detected.path), *config.arguments, file], detected.label
    if platform == "darwin" and _is_mac_app(application, which):
        return _open_app_command(application, file, config.arguments), Path(application).stem
    executable = _find_executable(application, which)
    return [executable, *config.arguments, file], Path(application).name


def find_photoshop(platform: str, search_roots: Sequence[Path] | None = None) -> Path | None:
    """The newest Photoshop in the usual folders (.app on macOS, Photoshop.exe on Windows)."""
    if platform not in ("darwin", "win32"):
        return None
    found = detect_editor(KNOWN_BY_NAME[PHOTOSHOP], platform, lambda _: None, search_roots)
    return found.path if found else None


def spawn_detached(argv: Sequence[str], on_exit: ExitCallback | None = None) -> int:
    """Start `argv` in its own session with no console I/O; a daemon thread reaps it."""
    options: dict[str, Any] = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
        "close_fds": True,
    }
    if sys.platform == "win32":
        options["creationflags"] = subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP
    else:
        options["start_new_session"] = True
    process = subprocess.Popen(list(argv), **options)
    threading.Thread(
        target=_reap, args=(process, on_exit), name="framerelay-editor-reaper", daemon=True
    ).start()
    return process.pid


def _reap(process: subprocess.Popen, on_exit: ExitCallback | None) -> None:
    status = process.wait()
    if status != 0:
        log.warning("editor command %s exited with status %d", process.args, status)
    if on_exit is not None:
        try:
            on_exit(status)
        except Exception:
            log.exception("editor exit callback failed")


def _start_with_default_handler(path: Path, startfile: Callable[[str], None] | None) -> None:
    start = startfile or getattr(os, "startfile", None)
    if start is None:
        raise InvalidSpecError("os.startfile is only available on Windows.")
    try:
        start(str(path))
    except OSError as exc:
        raise InvalidSpecError(
            f"Windows could not open {path.name}: {exc.strerror or exc}.",
            "Associate .png/.tiff files with your image editor, or set the editor in the tray app.",
        ) from exc


def _photoshop_command(
    file: str, config: EditorConfig, platform: str, search_roots: Sequence[Path] | None
) -> tuple[list[str], str]:
    if platform not in ("darwin", "win32"):
        raise InvalidSpecError(
            f"Photoshop is not available on {platform}.",
            "Set the editor to an executable such as gimp or krita, or leave it empty for "
            "xdg-open.",
        )
    found = find_photoshop(platform, search_roots)
    if found is None:
        where = "/Applications" if platform == "darwin" else r"C:\Program Files\Adobe"
        raise InvalidSpecError(
            f"Photoshop was not found under {where}.",
            "Set the editor to the full path of Photoshop, or leave it empty for the default "
            "application.",
        )
    if platform == "darwin":
        return _open_app_command(str(found), file, config.arguments), found.stem
    return [str(found), *config.arguments, file], found.parent.name


def _open_app_command(application: str, file: str, arguments: Sequence[str]) -> list[str]:
    argv = ["open", "-a", application, file]
    return [*argv, "--args", *arguments] if arguments else argv


def _is_mac_app(application: str, which: Which) -> bool:
    if application.rstrip("/").endswith(".app"):
        return True
    looks_like_path = os.sep in application or "/" in application
    return not looks_like_path and which(application) is None  # a name for `open -a`, e.g. "GIMP"


def _find_executable(application: str, which: Which) -> str:
    candidate = Path(application).expanduser()
    if candidate.is_file():
        return str(candidate)
    found = which(application)
    if found is None:
        raise InvalidSpecError(
            f"The editor {application!r} was not found.",
            "Set the editor to the full path of an executable, or leave it empty for the default "
            "application.",
        )
    return found


def _default_search_roots(platform: str) -> list[Path]:
    if platform == "darwin":
        return [Path("/Applications"), Path.home() / "Applications"]
    names = ("ProgramW6432", "ProgramFiles", "ProgramFiles(x86)")
    roots = {os.environ[name] for name in names if os.environ.get(name)}
    return [Path(root) for root in sorted(roots)] or [Path(r"C:\Program Files")]


def _install_rank(path: Path) -> tuple[bool, tuple[int, ...], str]:
    if (
        path.suffix.lower() == ".exe"
    ):  # Adobe Photoshop 2025/Photoshop.exe, GIMP 2/bin/gimp-2.10.exe
        folder = " ".join((path.parent.parent.name, path.parent.name, path.stem))
    else:
        folder = path.stem
    numbers = tuple(int(n) for n in re.findall(r"\d+", folder))
    return ("beta" not in folder.lower(), numbers, folder)
