"""The `[editor]` section of the daemon's config file, `config.toml` next to `daemon.json`.

The daemon reads it at start, again whenever the file changes (a hand edit, or `framerelay
editor`, applies to the next round trip), and writes it for SetEditorConfig. Other sections of the
file are kept as they are.

Whoever holds the token must not be able to make the daemon run a program of their choosing, so
SetEditorConfig (`update_over_api`) chooses the editor only among the image editors the daemon
detects, or keeps the one set locally, and never changes its arguments; with --allow-remote it
changes nothing at all. Any other program is set in the file, on the daemon's machine.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import threading
import tomllib
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from framerelay.errors import ForbiddenError, InvalidSpecError
from framerelay.files import write_atomic
from framerelay.roundtrip.editor import DetectedEditor, EditorConfig, detect_editors

log = logging.getLogger(__name__)

CONFIG_FILE = "config.toml"
SECTION = "editor"
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def config_file(config_dir: Path) -> Path:
    return config_dir / CONFIG_FILE


Detect = Callable[[], list[DetectedEditor]]


class EditorSettings:
    """The editor settings of one config file; thread-safe.

    `locked`: SetEditorConfig changes nothing (the daemon runs with --allow-remote).
    """

    def __init__(self, path: Path, *, locked: bool = False, detect: Detect = detect_editors):
        self.path = path
        self.locked = locked
        self.detect = detect
        self._lock = threading.Lock()
        self._stamp = _stamp(path)
        self._config = read_editor_config(path)

    def current(self) -> EditorConfig:
        """The settings, read again when the file changed; a broken file keeps the last good ones."""
        with self._lock:
            stamp = _stamp(self.path)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._config = read_editor_config(self.path)
                except InvalidSpecError as error:
                    log.warning("%s %s Keeping the previous editor settings.", error, error.hint)
            return self._config

    def update_over_api(self, wanted: EditorConfig) -> EditorConfig:
        """SetEditorConfig: stores `wanted` if a token holder may ask for it (see the module)."""
        if self.locked:
            raise ForbiddenError(
                "the editor settings cannot be changed over the API while the daemon accepts "
                "remote connections (--allow-remote).",
                f"Change them in {self.path} on the daemon's machine.",
            )
        return self.update(self.allowed_over_api(self.current(), wanted))

    def allowed_over_api(self, current: EditorConfig, wanted: EditorConfig) -> EditorConfig:
        """`wanted` as the API may set it; ForbiddenError for a program or arguments of its own.

        The application may become the system default, a detected editor (by name), or stay what
        it is. Arguments are set only in the file: a request must send the current ones (or
        none); they are dropped when the application changes.
        """
        application = wanted.application or None
        changed = (application or "").lower() != (current.application or "").lower()
        detected = {editor.name: editor for editor in self.detect()}
        if changed and application is not None and application.lower() not in detected:
            choices = ", ".join(detected) or "none was found on this machine"
            raise ForbiddenError(
                f"{application[:200]!r} is not an image editor the daemon detected; over the API "
                f"the editor is the system default or a detected one ({choices}).",
                f"To use another program, set application under [editor] in {self.path} on the "
                "daemon's machine (or run `framerelay editor --application PATH` there).",
            )
        if wanted.arguments and wanted.arguments != current.arguments:
            raise ForbiddenError(
                "the editor's arguments cannot be changed over the API.",
                f"Set arguments under [editor] in {self.path} on the daemon's machine (or run "
                "`framerelay editor --argument=ARG` there).",
            )
        if not changed:
            application = current.application
        elif application is not None:
            application = application.lower()
        arguments = () if changed else current.arguments
        return replace(wanted, application=application, arguments=arguments)

    def update(self, config: EditorConfig) -> EditorConfig:
        """Writes `config` as the `[editor]` section and uses it from now on (local callers: the
        API goes through `update_over_api`)."""
        with self._lock:
            document = read_document(self.path)
            document[SECTION] = config.to_dict()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, dump_toml(document).encode("utf-8"))
            self._stamp = _stamp(self.path)
            self._config = config
            log.info("editor settings written to %s: %s", self.path, config.to_dict())
            return config


def read_editor_config(path: Path) -> EditorConfig:
    return check_editor_section(read_document(path).get(SECTION, {}), path)


def check_editor_section(section: Any, path: Path) -> EditorConfig:
    if not isinstance(section, dict):
        raise InvalidSpecError(f"{path}: [{SECTION}] must be a table.", _fix_hint(path))
    try:
        return EditorConfig.from_dict(section)
    except InvalidSpecError as error:
        raise InvalidSpecError(f"{path}: {error.message}", error.hint) from None


def read_document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidSpecError(f"cannot read the config file {path}: {error}.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise InvalidSpecError(
            f"the config file {path} is not valid TOML: {error}.", _fix_hint(path)
        ) from None


def dump_toml(document: dict[str, Any]) -> str:
    """TOML for what tomllib reads from a simple config: scalars, arrays of scalars, tables."""
    lines: list[str] = []
    _dump_table(lines, (), document)
    return "\n".join(lines).lstrip("\n") + "\n"


def _dump_table(lines: list[str], name: tuple[str, ...], table: dict[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if name and (scalars or not tables):
        lines += ["", f"[{'.'.join(_key(part) for part in name)}]"]
    lines += [f"{_key(key)} = {_value(value)}" for key, value in scalars.items()]
    for key, value in tables.items():
        _dump_table(lines, (*name, key), value)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, list) and not any(isinstance(item, dict | list) for item in value):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    raise InvalidSpecError(
        f"cannot write the config value {value!r} back.",
        "Edit the [editor] section of config.toml by hand instead.",
    )


def _string(text: str) -> str:
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


def _fix_hint(path: Path) -> str:
    return f"Fix {path} (see docs/roundtrip.md, 'Choosing the editor'), or delete it."
