"""Resolve's Lua for tests: a script runs in real `lua5.1` (harness.lua: the free 21.1 sandbox)
and its Resolve objects are Lua proxies of the Python fake, so the Lua and the Python tiers meet
one fake with one set of measured behaviours. `Resolve`-side files are real: the script reads
its mailbox with `loadfile` and the fake's Fusion writes a real Fusion.prefs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from framerelay_resolve.vendor.framerelay_client.resolve_bridge import lua_string

from .model import FakeObject, FakeResolve

HARNESS = Path(__file__).with_name("harness.lua")
LUA = shutil.which("lua5.1") or shutil.which("lua5.1.exe")


class LuaError(AssertionError):
    pass


def lua_binary() -> str:
    """Resolve's Lua dialect is 5.1; the tests need the real interpreter, never a skip."""
    if LUA is None:
        raise LuaError("lua5.1 is not installed: apt-get install -y lua5.1 (Debian's package)")
    return LUA


class LuaScript:
    """`script` running in lua5.1 on a thread that answers its Resolve calls from `fake`."""

    def __init__(self, fake: FakeResolve, script: Path, wait_scale: float = 0.2) -> None:
        self.fake = fake
        self.wait_scale = wait_scale
        self.printed: list[str] = []
        self.waits = 0
        self.exit: dict[str, Any] | None = None
        self.errors: list[str] = []
        self._objects: dict[int, Any] = {1: fake, 2: fake.fusion}
        self._handles: dict[int, int] = {id(fake): 1, id(fake.fusion): 2}
        self._process = subprocess.Popen(
            [lua_binary(), str(HARNESS), str(script)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    # --- the conversation ---

    def _serve(self) -> None:
        stdout, stdin = self._process.stdout, self._process.stdin
        assert stdout is not None and stdin is not None
        try:
            for raw in stdout:
                message = json.loads(raw.decode("utf-8"))
                reply = self._answer(message)
                stdin.write(("return " + reply + "\n").encode("utf-8"))
                stdin.flush()
                if message.get("op") == "exit":
                    self.exit = message
                    break
        except (BrokenPipeError, ValueError) as error:
            self.errors.append(repr(error))

    def _answer(self, message: dict[str, Any]) -> str:
        op = message.get("op")
        if op == "wait":
            self.waits += 1
            time.sleep(float(message.get("seconds") or 0) * self.wait_scale)
            return "nil"
        if op == "print":
            self.printed.append(str(message.get("text", "")))
            return "nil"
        if op == "exit":
            return "nil"
        target = self._objects[int(message["handle"])]
        args = self._args(message.get("args"), int(message.get("n", 0)))
        try:
            result = getattr(target, message["method"])(*args)
        except Exception as error:  # a bad call into the fake: an error in the Lua caller
            self.errors.append(f"{message['method']}: {error!r}")
            return "E(" + lua_string(f"{message['method']}: {error}") + ")"
        return self._lua(result)

    def _args(self, args: Any, count: int) -> list[Any]:
        if isinstance(args, dict):  # a nil among the arguments makes Lua's list a map
            args = [args.get(str(i)) for i in range(1, count + 1)]
        return [self._python(arg) for arg in args or []]

    def _python(self, value: Any) -> Any:
        if isinstance(value, dict):
            if set(value) == {"__handle"}:
                return self._objects[int(value["__handle"])]
            return {key: self._python(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._python(item) for item in value]
        return value

    def _lua(self, value: Any) -> str:
        if isinstance(value, FakeObject):
            handle = self._handles.get(id(value))
            if handle is None:
                handle = len(self._objects) + 1
                self._objects[handle] = value
                self._handles[id(value)] = handle
            return f"H({handle})"
        if value is None:
            return "nil"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return repr(value)
        if isinstance(value, str):
            return lua_string(value)
        if isinstance(value, dict):
            fields = (f"[{self._key(k)}]={self._lua(v)}" for k, v in value.items() if v is not None)
            return "{" + ",".join(fields) + "}"
        if isinstance(value, (list, tuple)):
            return "{" + ",".join(self._lua(item) for item in value) + "}"
        raise TypeError(f"cannot hand a {type(value).__name__} to Lua")

    def _key(self, key: Any) -> str:
        return repr(key) if isinstance(key, (int, float)) else lua_string(str(key))

    # --- for tests ---

    def wait(self, timeout: float = 20.0) -> dict[str, Any]:
        """Until the script ends; its exit message ({ok, error})."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            self.kill()
            raise LuaError(f"the Lua script did not end within {timeout} s; printed {self.printed}")
        self._process.wait(5)
        if self.exit is None:
            stderr = self._process.stderr.read().decode() if self._process.stderr else ""
            raise LuaError(f"lua5.1 stopped without an exit message: {stderr}")
        return self.exit

    def kill(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait(5)
        for stream in (self._process.stdin, self._process.stdout, self._process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> LuaScript:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self._thread.join(5)
