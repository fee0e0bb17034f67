"""Fans newly stored events out to the watchers waiting in the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from framerelay.jobs.events import JobEvent


class EventHub:
    """Watchers get JobEvents, then None once the hub closes (the daemon is stopping)."""

    def __init__(self) -> None:
        self._by_job: dict[str, set[asyncio.Queue[JobEvent | None]]] = {}
        self._all: set[asyncio.Queue[JobEvent | None]] = set()
        self.closed = False

    def publish(self, event: JobEvent) -> None:
        for inbox in self._by_job.get(event.job_id, ()):
            inbox.put_nowait(event)
        for inbox in self._all:
            inbox.put_nowait(event)

    def close(self) -> None:
        self.closed = True
        for inbox in (*self._all, *(i for group in self._by_job.values() for i in group)):
            inbox.put_nowait(None)

    @contextmanager
    def subscribe(self, job_id: str | None) -> Iterator[asyncio.Queue[JobEvent | None]]:
        """Events of one job, or of every job when job_id is None, until the block ends."""
        inbox: asyncio.Queue[JobEvent | None] = asyncio.Queue()
        if self.closed:
            inbox.put_nowait(None)
        group = self._all if job_id is None else self._by_job.setdefault(job_id, set())
        group.add(inbox)
        try:
            yield inbox
        finally:
            group.discard(inbox)
            if job_id is not None and not group:
                self._by_job.pop(job_id, None)

    @property
    def watcher_count(self) -> int:
        return len(self._all) + sum(len(group) for group in self._by_job.values())
