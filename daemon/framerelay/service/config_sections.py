"""One table of the daemon's config file (`config.toml`, next to `daemon.json`) that the daemon
both reads and writes: read at start, again whenever the file changes (a hand edit applies from
then on), and written on request with the other tables kept as they are. Thread-safe."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

from framerelay.errors import InvalidSpecError
from framerelay.files import write_atomic
from framerelay.service.editor_settings import dump_toml, read_document

log = logging.getLogger(__name__)
T = TypeVar("T")


def file_stamp(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


class SectionSettings(Generic[T]):
    def __init__(
        self,
        path: Path,
        section: str,
        parse: Callable[[dict[str, Any]], T],
        dump: Callable[[T], dict[str, Any]],
        hint: str,
    ):
        self.path = path
        self.section = section
        self._parse, self._dump, self._hint = parse, dump, hint
        self._lock = threading.Lock()
        self._stamp = file_stamp(path)
        self._value = self.read()  # a broken section stops the start, naming it

    def read(self) -> T:
        table = read_document(self.path).get(self.section, {})
        if not isinstance(table, dict):
            raise InvalidSpecError(f"{self.path}: [{self.section}] must be a table.", self._hint)
        try:
            return self._parse(table)
        except InvalidSpecError as error:
            raise InvalidSpecError(f"{self.path}: {error.message}", error.hint) from None

    def current(self) -> T:
        """The settings, read again when the file changed; a broken file keeps the last good ones."""
        with self._lock:
            stamp = file_stamp(self.path)
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._value = self.read()
                except InvalidSpecError as error:
                    log.warning("%s %s Keeping the previous [%s].", error, error.hint, self.section)
            return self._value

    def update(self, value: T) -> T:
        """Writes `value` as the section and uses it from now on."""
        with self._lock:
            document = read_document(self.path)
            document[self.section] = self._dump(value)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, dump_toml(document).encode("utf-8"))
            self._stamp = file_stamp(self.path)
            self._value = value
            log.info("[%s] written to %s: %s", self.section, self.path, document[self.section])
            return value
