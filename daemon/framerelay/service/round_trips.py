"""The daemon's round trips (`framerelay.roundtrip.jobs`), bound to the [editor] table of its
config file, which GetEditorConfig and SetEditorConfig read and write."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from framerelay.jobs.queue import JobQueue
from framerelay.roundtrip.jobs import RoundTrips
from framerelay.service.editor_settings import EditorSettings


class EditSessions(RoundTrips):
    def __init__(
        self,
        queue: JobQueue,
        root: Path,
        settings: EditorSettings,
        *,
        no_open: bool = False,
        **options: Any,
    ):
        super().__init__(queue, root, settings.current, no_open=no_open, **options)
        self.settings = settings
