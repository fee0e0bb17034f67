"""Fans newly stored events out to the watchers waiting in the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager

from framerelay.jobs.events import JobEvent


class EventHub:
    def __init__(self) -> None:
        self._by_job: dict[str, set[asyncio.Queue[JobEvent]]] = {}
        self._all: set[asyncio.Queue[JobEvent]] = set()

    def publish(self, event: JobEvent) -> None:
        for inbox in self._by_job.get(event.job_id, ()):
            inbox.put_nowait(event)
        for inbox in self._all:
            inbox.put_nowait(event)

    @contextmanager
    def subscribe(self, job_id: str | None) -> Iterator[asyncio.Queue[JobEvent]]:
        """Events of one job, or of every job when job_id is None, until the block ends."""
        inbox: asyncio.Queue[JobEvent] = asyncio.Queue()
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
