"""Logging for the daemon: a rotating file in the user log dir plus stderr. Entry points only."""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from framerelay.errors import is_disk_full

FILE_NAME = "daemon.log"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


MAX_BYTES = 10 * 1024 * 1024  # per file; with BACKUPS, the log never takes more than 50 MB
BACKUPS = 4


class LogFile(logging.handlers.RotatingFileHandler):
    """The rotating log, readable by its owner only (0600, whatever the umask), that drops
    records while its disk is full instead of reporting each failure, then says how many."""

    def __init__(self, path: Path):
        super().__init__(path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
        self.dropped = 0

    def _open(self):
        descriptor = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if hasattr(os, "fchmod"):  # also a file an older version left with another mode
            os.fchmod(descriptor, 0o600)
        return open(descriptor, "a", encoding=self.encoding, errors=self.errors)

    def emit(self, record: logging.LogRecord) -> None:
        dropped = self.dropped
        super().emit(record)
        if dropped and self.dropped == dropped:  # written: the disk has room again
            self.dropped = 0
            note = f"{dropped} log records were dropped while the disk was full"
            super().emit(logging.makeLogRecord({"msg": note, "levelname": "WARNING"}))

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if error is None or not is_disk_full(error):
            super().handleError(record)
            return
        if not self.dropped:
            sys.stderr.write(
                f"framerelay: the disk of {self.baseFilename} is full; log records are dropped "
                "until it has room\n"
            )
        self.dropped += 1
        stream, self.stream = self.stream, None  # reopened by the next record, without the
        if stream is not None:  # buffered text that failed
            with contextlib.suppress(OSError):
                stream.close()


def setup_logging(log_dir: Path, verbose: bool = False) -> Path:
    """Replaces the root handlers; returns the log file's path."""
    log_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = log_dir / FILE_NAME
    level = logging.DEBUG if verbose else logging.INFO
    file_handler = LogFile(path)
    stderr_handler = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in (file_handler, stderr_handler):
        handler.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("asyncio", "grpc", "PIL", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return path


class SecretScrubber(logging.Filter):
    """Replaces the daemon's tokens in every record that passes a handler, wherever it came from
    (a library's message, an echoed request line): tokens never reach a log."""

    MASK = "[token]"

    def __init__(self, secrets: Callable[[], Iterable[str]]):
        super().__init__()
        self._secrets = secrets
        self._handlers: list[logging.Handler] = []

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = [s for s in self._secrets() if s]
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: the handler reports it
            return True
        if any(s in message for s in secrets):
            record.msg, record.args = self._scrub(message, secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text and any(s in record.exc_text for s in secrets):
            record.exc_text = self._scrub(record.exc_text, secrets)
        return True

    def _scrub(self, text: str, secrets: list[str]) -> str:
        for secret in secrets:
            text = text.replace(secret, self.MASK)
        return text

    def install(self) -> None:
        """Scrubs what the root logger's current handlers write, until `remove`."""
        self._handlers = list(logging.getLogger().handlers)
        for handler in self._handlers:
            handler.addFilter(self)

    def remove(self) -> None:
        for handler in self._handlers:
            handler.removeFilter(self)
        self._handlers = []
