"""The words and numbers the panel shows. No bpy here."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

WRAP = 44  # characters per label line in a default-width sidebar


def clock(seconds: float) -> str:
    """0:07, 1:05, 1:02:03."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def progress_text(phase: str, step: int, total: int, window: int, windows: int, eta: float) -> str:
    """ "edit 3/4 · window 2/3 · 45 % · ETA 1:20"."""
    parts = [f"{phase} {step}/{total}" if phase and total else (phase or "starting")]
    if windows > 1:
        parts.append(f"window {window}/{windows}")
    if eta >= 0:
        parts.append(f"ETA {clock(eta)}")
    return " · ".join(parts)


def status_line(status: Mapping[str, Any]) -> str:
    """ "framerelay 0.1.0 · cuda:0 · model loaded · 2 queued"."""
    parts = [f"framerelay {status.get('version', '')}".strip()]
    parts.append(str(status.get("device", "auto")))
    parts.append("model loaded" if status.get("modelLoaded") else "model not loaded")
    queued = int(status.get("queueLength", 0))
    parts.append(f"{queued} queued" if queued else "queue empty")
    if status.get("runningJobId"):
        parts.append("1 running")
    return " · ".join(parts)


def wrap(text: str, width: int = WRAP) -> list[str]:
    return textwrap.wrap(text, width) or [""]
