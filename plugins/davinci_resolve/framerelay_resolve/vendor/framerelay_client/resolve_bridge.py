"""framerelay's side of the Lua mailbox bridge to DaVinci Resolve.

Where Resolve runs no Python script (the free edition from 21.1, where only sandboxed Lua runs:
no `io`, `ffi`, `require`, `package`, `os.execute` or `bmd.readdir`) or its Python cannot reach
the daemon (a Mac App Store build, sandboxed by macOS), the user starts the Lua script
"framerelay Bridge" once from Workspace > Scripts. It and framerelay talk through two files:

* framerelay writes one request at a time to `<mailbox>/request.lua`, atomically (a temporary file
  in the same folder, then a rename), as a Lua chunk: `return {v=1, id="…", created=…, op="…",
  args={…}}`. The bridge `loadfile`s it about ten times a second in an empty environment (the
  chunk can call nothing) and performs each id once.
* The bridge answers with `fusion:SetPrefs("Global.Framerelay.Bridge.Response", <hex of JSON>)`
  and `fusion:SavePrefs()`, which writes Fusion's preferences file, `Fusion.prefs` (a Lua table
  in text); framerelay reads it until the answer with its id appears, then removes the request.

The bridge also keeps `State` ("running"/"stopped"), `Mailbox`, `Session` and `LastId` next to
`Response`. One request is in flight per mailbox (a lock file serialises framerelay's callers); a
request that nobody answered in time is removed, so a bridge started later never performs it.

The folders follow Resolve's per-user Fusion folder (its `Scripts/` is where Workspace > Scripts
looks): the mailbox is `<Fusion>/framerelay/mailbox/`, readable from Resolve even when macOS
sandboxes it (the App Store build's Fusion folder lies in its container), and Fusion's
preferences are `<Fusion>/Profiles/Default/Fusion.prefs`.

Standard library only, relative imports only: this module is vendored into the host plugins.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .errors import ClientError

PROTOCOL = 1
REQUEST_FILE = "request.lua"
LOCK_FILE = "request.lock"
PREFS_KEY = "Global.Framerelay.Bridge"
SUPPORT_DIR = "framerelay"  # inside Resolve's Fusion folder
APP_STORE_PREFIX = "com.blackmagic-design."
NOT_RESOLVE_CONTAINERS = ("BlackmagicRaw", "IOXPC")  # RAW Player, the IO helper
MAC_FUSION = ("Library", "Application Support", "Blackmagic Design", "DaVinci Resolve", "Fusion")
# Inside an App Store container Resolve also scans Fusion's standalone tree.
MAC_FUSION_STANDALONE = ("Library", "Application Support", "Fusion")
REREAD_SECONDS = 0.5
START_HINT = (
    "In Resolve, run Workspace > Scripts > framerelay Bridge (once each time Resolve starts); "
    "install it with `framerelay install-resolve` if it is not listed."
)


class BridgeError(ClientError):
    """The bridge answered with an error (a Resolve call failed, or a request it cannot do)."""

    code = "RESOLVE_BRIDGE_ERROR"
    default_hint = "Look at Resolve's Console (Workspace > Console) for the bridge's messages."


class BridgeNotRunning(ClientError):
    """No bridge answered: it is not started, not installed, or Resolve is busy or closed."""

    code = "RESOLVE_BRIDGE_NOT_RUNNING"
    default_hint = START_HINT


# --- where Resolve keeps its Fusion folder ---------------------------------------------------


def fusion_dirs(
    platform: str | None = None,
    home: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> list[Path]:
    """Resolve's per-user Fusion folders on this machine, the documented one first.

    macOS adds one per App Store container (`~/Library/Containers/com.blackmagic-design.*`),
    whose builds see the container as their home. Nothing is required to exist.
    """
    platform = platform or sys.platform
    env = os.environ if env is None else env
    home_path = Path(home) if home is not None else Path.home()
    if platform == "win32":
        appdata = env.get("APPDATA") or str(home_path / "AppData" / "Roaming")
        return [Path(appdata, "Blackmagic Design", "DaVinci Resolve", "Support", "Fusion")]
    if platform == "darwin":
        return [home_path.joinpath(*MAC_FUSION)] + [
            container.joinpath("Data", *MAC_FUSION) for container in app_store_containers(home_path)
        ]
    return [home_path / ".local" / "share" / "DaVinciResolve" / "Fusion"]


def app_store_containers(home: Path) -> list[Path]:
    """The sandbox containers of Resolve builds from the Mac App Store (the free edition)."""
    root = home / "Library" / "Containers"
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [
        entry
        for entry in entries
        if entry.name.startswith(APP_STORE_PREFIX)
        and not any(marker in entry.name for marker in NOT_RESOLVE_CONTAINERS)
        and (entry / "Data").is_dir()
    ]


def standalone_fusion_dir(fusion_dir: Path) -> Path | None:
    """Fusion's standalone tree in the same App Store container, which Resolve also scans."""
    parts = fusion_dir.parts
    if len(parts) > len(MAC_FUSION) and parts[-len(MAC_FUSION) :] == MAC_FUSION:
        data = Path(*parts[: -len(MAC_FUSION)])
        if data.name == "Data" and data.parent.name.startswith(APP_STORE_PREFIX):
            return data.joinpath(*MAC_FUSION_STANDALONE)
    return None


def mailbox_dir(fusion_dir: Path) -> Path:
    return fusion_dir / SUPPORT_DIR / "mailbox"


def prefs_paths(fusion_dir: Path) -> list[Path]:
    """Where Fusion's preferences of this Fusion folder may be written (most likely first)."""
    paths = [fusion_dir / "Profiles" / "Default" / "Fusion.prefs"]
    standalone = standalone_fusion_dir(fusion_dir)
    if standalone is not None:
        paths.append(standalone / "Profiles" / "Default" / "Fusion.prefs")
    return paths


# --- Lua literals (requests) -----------------------------------------------------------------


def lua_literal(value: Any) -> str:
    """`value` as a Lua 5.1 expression: dicts and lists become tables, None nil.

    Strings are written byte by byte with decimal escapes for anything but plain ASCII, so any
    path (UTF-8, quotes, backslashes, newlines) survives `loadfile` exactly.
    """
    if value is None:
        return "nil"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot send {value} to Lua")
        return repr(value)
    if isinstance(value, str):
        return lua_string(value)
    if isinstance(value, Mapping):
        fields = (
            f"[{lua_string(str(key))}]={lua_literal(item)}"
            for key, item in value.items()
            if item is not None
        )
        return "{" + ",".join(fields) + "}"
    if isinstance(value, (list, tuple)):
        return "{" + ",".join(lua_literal(item) for item in value) + "}"
    raise TypeError(f"cannot send a {type(value).__name__} to Lua")


def lua_string(text: str) -> str:
    safe = b" !#$%&()*+,-./:;<=>?@[]^_`{|}~"
    out = []
    for byte in text.encode("utf-8"):
        if (chr(byte).isalnum() and byte < 128) or byte in safe:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


# --- Fusion's preferences (answers) ----------------------------------------------------------


class PrefsSyntaxError(ValueError):
    pass


def parse_prefs(text: str) -> Any:
    """A Fusion preferences file (one Lua table constructor) as dicts and lists.

    Takes Lua's literal syntax: `{...}` with `name =`, `["key"] =` and `[n] =` fields and
    positional items, strings in all their forms, numbers, booleans and nil, comments; and
    Fusion's constructor calls `Name { ... }` / `ordered() { ... }`, read as their table.
    A table with only positional items becomes a list.
    """
    parser = _PrefsParser(text)
    value = parser.value()
    parser.skip_space()
    if parser.pos != len(text):
        raise parser.error("text after the table")
    return value


class _PrefsParser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, what: str) -> PrefsSyntaxError:
        line = self.text.count("\n", 0, self.pos) + 1
        return PrefsSyntaxError(f"Fusion.prefs line {line}: {what}")

    def skip_space(self) -> None:
        text = self.text
        while self.pos < len(text):
            if text[self.pos].isspace():
                self.pos += 1
            elif text.startswith("--", self.pos):
                self.pos += 2
                level = self._long_bracket_level()
                if level is not None:
                    self._long_string(level)
                else:
                    end = text.find("\n", self.pos)
                    self.pos = len(text) if end < 0 else end + 1
            else:
                return

    def peek(self) -> str:
        self.skip_space()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise self.error(f"expected {char!r}")
        self.pos += 1

    def value(self) -> Any:
        char = self.peek()
        if not char:
            raise self.error("unexpected end")
        if char == "{":
            return self.table()
        if char in "\"'":
            return self.quoted()
        if char == "[" and self._long_bracket_level() is not None:
            return self._long_string(self._long_bracket_level())
        if char == "-" or char == "." or char.isdigit():
            return self.number()
        if char.isalpha() or char == "_":
            name = self.name()
            if name in ("true", "false"):
                return name == "true"
            if name == "nil":
                return None
            return self.constructor_call()
        raise self.error(f"unexpected {char!r}")

    def constructor_call(self) -> Any:
        """`Name { ... }`, `Name "text"` or `name(args) { ... }`: the last table or string."""
        while self.peek() == ".":
            self.pos += 1
            self.name()
        result: Any = None
        if self.peek() == "(":
            self.pos += 1
            while self.peek() != ")":
                result = self.value()
                if self.peek() == ",":
                    self.pos += 1
            self.pos += 1
        if self.peek() in ("{", '"', "'"):
            result = self.value()
        return result

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and (
            self.text[self.pos].isalnum() or self.text[self.pos] == "_"
        ):
            self.pos += 1
        if start == self.pos:
            raise self.error("expected a name")
        return self.text[start : self.pos]

    def number(self) -> int | float:
        start = self.pos
        text = self.text
        if text.startswith("-", self.pos):
            self.pos += 1
        if text.startswith(("0x", "0X"), self.pos):
            self.pos += 2
            while self.pos < len(text) and text[self.pos] in "0123456789abcdefABCDEF":
                self.pos += 1
            return int(text[start : self.pos].replace("0x", "").replace("0X", ""), 16) * (
                -1 if text[start] == "-" else 1
            )
        while self.pos < len(text) and (text[self.pos].isdigit() or text[self.pos] in ".eE+-"):
            if text[self.pos] in "+-" and text[self.pos - 1] not in "eE":
                break
            self.pos += 1
        literal = text[start : self.pos]
        try:
            number = float(literal)
        except ValueError:
            raise self.error(f"bad number {literal!r}") from None
        return (
            int(number) if number.is_integer() and not any(c in literal for c in ".eE") else number
        )

    def quoted(self) -> str:
        quote = self.text[self.pos]
        self.pos += 1
        out = bytearray()
        text = self.text
        escapes = {"n": 10, "t": 9, "r": 13, "a": 7, "b": 8, "f": 12, "v": 11}
        while True:
            if self.pos >= len(text):
                raise self.error("unfinished string")
            char = text[self.pos]
            self.pos += 1
            if char == quote:
                return out.decode("utf-8", "replace")
            if char == "\n":
                raise self.error("line break in a string")
            if char != "\\":
                out += char.encode("utf-8")
                continue
            code = text[self.pos] if self.pos < len(text) else ""
            self.pos += 1
            if code in escapes:
                out.append(escapes[code])
            elif code == "\n":
                out.append(10)
            elif code.isdigit():
                digits = code
                while len(digits) < 3 and self.pos < len(text) and text[self.pos].isdigit():
                    digits += text[self.pos]
                    self.pos += 1
                if int(digits) > 255:
                    raise self.error(f"bad escape \\{digits}")
                out.append(int(digits))
            elif code:
                out += code.encode("utf-8")
            else:
                raise self.error("unfinished string")

    def _long_bracket_level(self) -> int | None:
        text = self.text
        if not text.startswith("[", self.pos):
            return None
        end = self.pos + 1
        while end < len(text) and text[end] == "=":
            end += 1
        return end - self.pos - 1 if end < len(text) and text[end] == "[" else None

    def _long_string(self, level: int | None) -> str:
        assert level is not None
        start = self.pos + level + 2
        close = "]" + "=" * level + "]"
        end = self.text.find(close, start)
        if end < 0:
            raise self.error("unfinished long string")
        self.pos = end + len(close)
        body = self.text[start:end]
        return body[1:] if body.startswith("\n") else body

    def table(self) -> Any:
        self.expect("{")
        named: dict[Any, Any] = {}
        items: list[Any] = []
        while self.peek() != "}":
            if not self.peek():
                raise self.error("unfinished table")
            if self.peek() == "[" and self._long_bracket_level() is None:
                self.pos += 1
                key = self.value()
                self.expect("]")
                self.expect("=")
                named[key] = self.value()
            elif self._at_name_field():
                key = self.name()
                self.expect("=")
                named[key] = self.value()
            else:
                items.append(self.value())
            if self.peek() in (",", ";"):
                self.pos += 1
        self.pos += 1
        if not named:
            return items
        for index, item in enumerate(items, 1):
            named.setdefault(index, item)
        return named

    def _at_name_field(self) -> bool:
        """A `name = value` field (and not a positional `Name {…}` or `name == …`)."""
        save = self.pos
        try:
            if not (self.peek().isalpha() or self.peek() == "_"):
                return False
            self.name()
            if self.peek() != "=":
                return False
            return not self.text.startswith("==", self.pos)
        finally:
            self.pos = save


def prefs_get(prefs: Any, dotted: str) -> Any:
    """The value at a dotted name such as "Global.Framerelay.Bridge", or None."""
    value = prefs
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def read_bridge_prefs(path: Path) -> dict[str, Any]:
    """The bridge's table in one Fusion.prefs file; {} when absent or unreadable.

    Fusion rewrites the file whole, so a half-written file can be read: it counts as absent
    and is read again at the next poll.
    """
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        section = prefs_get(parse_prefs(text), PREFS_KEY)
    except (OSError, PrefsSyntaxError, RecursionError):
        return {}
    return section if isinstance(section, dict) else {}


def decode_response(value: Any) -> dict[str, Any] | None:
    """The bridge's hex-encoded JSON answer, or None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        data = json.loads(bytes.fromhex(value).decode("utf-8"))
    except ValueError:
        return None
    return data if isinstance(data, dict) and "id" in data else None


# --- the mailbox -----------------------------------------------------------------------------


class BridgeClient:
    """Requests to one bridge: `call(op, args)` returns its answer or raises.

    `mailbox` is the folder the bridge reads (its script names it); `prefs` the Fusion.prefs
    files it may answer in. Each call waits up to `timeout` seconds for the answer.
    """

    def __init__(
        self,
        mailbox: Path,
        prefs: Iterable[Path],
        timeout: float = 10.0,
        poll_interval: float = 0.05,
    ) -> None:
        self.mailbox = Path(mailbox)
        self.prefs = [Path(p) for p in prefs]
        self.timeout = timeout
        self.poll_interval = poll_interval

    @classmethod
    def find(
        cls, fusion_folders: Iterable[Path] | None = None, timeout: float = 10.0
    ) -> BridgeClient:
        """The bridge of the installation whose Fusion.prefs says it is running.

        Raises `BridgeNotRunning` naming what was looked at when none is installed or running.
        With several running (Studio and an App Store build), the most recently written wins.
        """
        folders = list(fusion_dirs() if fusion_folders is None else fusion_folders)
        installed = [f for f in folders if mailbox_dir(f).is_dir()]
        if not installed:
            where = ", ".join(str(mailbox_dir(f)) for f in folders) or "nowhere"
            raise BridgeNotRunning(
                f"the framerelay Bridge is not installed for DaVinci Resolve (looked in {where}).",
                "Install it with `framerelay install-resolve`, restart Resolve, then run "
                "Workspace > Scripts > framerelay Bridge.",
            )
        running = []
        for folder in installed:
            for path in prefs_paths(folder):
                section = read_bridge_prefs(path)
                if section.get("State") == "running" and _same_path(
                    section.get("Mailbox"), mailbox_dir(folder)
                ):
                    running.append((_mtime(path), folder, path))
        if not running:
            raise BridgeNotRunning("the framerelay Bridge is not running in DaVinci Resolve.")
        _, folder, path = max(running, key=lambda entry: entry[0])
        return cls(mailbox_dir(folder), [path, *prefs_paths(folder)], timeout)

    def status(self) -> dict[str, Any]:
        """What the bridge last wrote (State, Mailbox, Session, LastId) in the freshest prefs."""
        fresh = max(self.prefs, key=_mtime, default=None)
        return {} if fresh is None else read_bridge_prefs(fresh)

    def call(
        self, op: str, args: Mapping[str, Any] | None = None, timeout: float | None = None
    ) -> Any:
        """Perform `op` in Resolve: its result (JSON values), or BridgeError/BridgeNotRunning."""
        timeout = self.timeout if timeout is None else timeout
        request_id = uuid.uuid4().hex
        body = {"v": PROTOCOL, "id": request_id, "created": int(time.time()), "op": op}
        body["args"] = dict(args or {})
        with self._lock(timeout):
            seen = {path: _signature(path) for path in self.prefs}
            self._write_request("return " + lua_literal(body) + "\n")
            try:
                answer = self._wait(request_id, seen, timeout)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    _retry((self.mailbox / REQUEST_FILE).unlink)
        if answer.get("ok"):
            return answer.get("result")
        error = answer.get("error") or {}
        raise BridgeError(
            str(error.get("message") or f"the bridge could not do {op!r}."),
            str(error.get("hint") or ""),
        )

    def _wait(
        self, request_id: str, seen: dict[Path, tuple[int, int]], timeout: float
    ) -> dict[str, Any]:
        """Until an answer with `request_id` appears in one of the prefs files.

        A file is read again when its size or modification time changes, and at least every
        REREAD_SECONDS (file systems whose clock ticks in seconds may not show a second write).
        """
        deadline = time.monotonic() + timeout
        last_read = time.monotonic()
        while True:
            reread = time.monotonic() - last_read >= REREAD_SECONDS
            if reread:
                last_read = time.monotonic()
            for path in self.prefs:
                signature = _signature(path)
                if signature == seen.get(path) and not reread:
                    continue
                seen[path] = signature
                answer = decode_response(read_bridge_prefs(path).get("Response"))
                if answer is not None and answer.get("id") == request_id:
                    return answer
            if time.monotonic() >= deadline:
                raise BridgeNotRunning(
                    f"the framerelay Bridge did not answer within {timeout:g} s "
                    f"(mailbox {self.mailbox})."
                )
            time.sleep(self.poll_interval)

    def _write_request(self, text: str) -> None:
        self.mailbox.mkdir(parents=True, exist_ok=True)
        tmp = self.mailbox / f".{REQUEST_FILE}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "w", encoding="ascii", newline="\n") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            _retry(lambda: os.replace(tmp, self.mailbox / REQUEST_FILE))
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()

    @contextlib.contextmanager
    def _lock(self, timeout: float) -> Iterator[None]:
        """One request in flight per mailbox, across processes (a lock file; a stale one, older
        than two call timeouts, is broken)."""
        self.mailbox.mkdir(parents=True, exist_ok=True)
        path = self.mailbox / LOCK_FILE
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                break
            except FileExistsError:
                if time.time() - _mtime(path) > 2 * timeout + 5:
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                    continue
                if time.monotonic() >= deadline:
                    raise BridgeNotRunning(
                        "another framerelay program is talking to the Resolve bridge.",
                        "Wait for it to finish, then try again.",
                    ) from None
                time.sleep(self.poll_interval)
        try:
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            yield
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


def _signature(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, -1)
    return (stat.st_mtime_ns, stat.st_size)


def _retry(action: Callable[[], object], attempts: int = 20) -> None:
    """Windows refuses to replace or remove a file another program has open for a moment (the
    bridge reading its request): try again briefly."""
    for attempt in range(attempts):
        try:
            action()
            return
        except PermissionError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.05)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime_ns / 1e9
    except OSError:
        return 0.0


def _same_path(text: Any, path: Path) -> bool:
    if not isinstance(text, str) or not text:
        return False
    return os.path.normcase(os.path.normpath(text)) == os.path.normcase(os.path.normpath(path))
