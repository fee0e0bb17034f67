"""A ProgressSink that draws one tqdm bar per phase on stderr."""

from __future__ import annotations

import sys

from tqdm import tqdm

from framerelay.progress import Progress

PHASE_LABELS = {
    "decode": "decode",
    "load": "load model",
    "lora": "motion LoRA",
    "invert": "invert",
    "edit": "edit",
    "encode": "encode",
}


class PhaseBars:
    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._key: tuple[str, int] | None = None
        self._bar: tqdm | None = None

    def __call__(self, progress: Progress) -> None:
        if not self.enabled:
            return
        key = (progress.phase, progress.clip)
        if key != self._key or self._bar is None or self._bar.total != progress.total:
            self.close()
            label = PHASE_LABELS.get(progress.phase, progress.phase)
            if progress.clips > 1:
                label = f"{label} {progress.clip}/{progress.clips}"
            self._bar = tqdm(total=progress.total, desc=label, file=sys.stderr, leave=True)
            self._key = key
        self._bar.n = progress.step
        if progress.message:
            self._bar.set_postfix_str(progress.message, refresh=False)
        self._bar.refresh()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
            self._key = None
