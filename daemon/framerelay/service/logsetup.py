"""Logging for the daemon: a rotating file in the user log dir plus stderr. Entry points only."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

FILE_NAME = "daemon.log"
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(log_dir: Path, verbose: bool = False) -> Path:
    """Replaces the root handlers; returns the log file's path."""
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / FILE_NAME
    level = logging.DEBUG if verbose else logging.INFO
    file_handler = logging.handlers.RotatingFileHandler(
        path, maxBytes=10 * 1024 * 1024, backupCount=4, encoding="utf-8"
    )
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
