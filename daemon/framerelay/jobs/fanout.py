"""One running job's window analyses and where each is computed: by the job's own editing chain,
or ahead of it by a helper (another worker of the pool, or a Ray worker). See docs/scale.md.

The chain runs `run_edit` window by window; before each window it asks `claim`: a window a
helper stored is a cache hit, any window nobody has the chain computes itself, and while a helper
computes the one it needs, the chain analyses a later window (as a helper would, into the cache)
or, when none is left, waits. The anchor (window 0) is always the chain's: later windows of a
skip-interval job depend on its entry, so helpers get them only once the chain has stored it.
Not thread-safe: the pool calls it under its lock.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable

from framerelay.engine.window_tasks import WindowTask
from framerelay.errors import FramerelayError, UnavailableError

log = logging.getLogger(__name__)

READY = "ready"  # the entry is in the cache
LOCAL = "local"  # the chain computes the window itself
# READY, LOCAL, a later window to analyse meanwhile, or why the job must stop
Outcome = str | WindowTask | FramerelayError
Reply = Callable[[Outcome], None]


class Where(enum.Enum):
    pending = "pending"  # nobody has it yet
    helper = "helper"  # a helper computes it
    chain = "chain"  # the chain computes it
    stored = "stored"  # its entry is in the cache


class Coordinator:
    def __init__(self, job_id: str, tasks: list[WindowTask]):
        self.job_id = job_id
        self.tasks = {task.index: task for task in tasks}
        self.where = {task.index: Where.pending for task in tasks}
        if 0 in self.where:
            self.where[0] = Where.chain  # the anchor: the chain starts with it
        self.waiting: tuple[int, Reply] | None = None  # the chain waits for this window
        self.failure: FramerelayError | None = None  # the job cannot go on (cluster gone)
        self.failed: set[int] = set()  # windows a helper failed on: left to the chain
        self.stopped = False

    @property
    def waiting_on(self) -> int | None:
        return None if self.waiting is None else self.waiting[0]

    def demand(self) -> int:
        """Windows that helpers could still take, now or once the anchor is stored."""
        if self.stopped or self.failure is not None:
            return 0
        return sum(w is Where.pending and i not in self.failed for i, w in self.where.items())

    def take(self) -> WindowTask | None:
        """The next window for a helper: the first pending one whose anchor is stored."""
        if self.stopped or self.failure is not None:
            return None
        for index in sorted(self.tasks):
            if index in self.failed or self.where[index] is not Where.pending:
                continue
            if self._released(self.tasks[index]):
                self.where[index] = Where.helper
                return self.tasks[index]
        return None

    def _released(self, task: WindowTask) -> bool:
        if task.anchor_key is None:
            return True
        anchor = next((t for t in self.tasks.values() if t.key == task.anchor_key), None)
        return anchor is not None and self.where[anchor.index] is Where.stored

    def claim(self, index: int, key: str, reply: Reply) -> None:
        """The chain has reached window `index`: answers now, or once its helper is done."""
        if self.failure is not None:
            reply(self.failure)
            return
        task = self.tasks.get(index)
        if task is None or task.key != key:
            if task is not None:
                log.warning("job %s: window %d's key differs from its plan", self.job_id, index)
            reply(LOCAL)
            return
        where = self.where[index]
        if where is Where.stored:
            reply(READY)
        elif where is Where.helper:
            later = self.take()
            if later is not None:  # rather than wait, analyse a later window meanwhile
                reply(later)
            else:
                self.waiting = (index, reply)
        else:
            self.where[index] = Where.chain
            reply(LOCAL)

    def analysed(self, index: int) -> None:
        """The chain stored window `index` (which may release later windows)."""
        if index in self.where:
            self.where[index] = Where.stored

    def finished(self, index: int, error: BaseException | None) -> None:
        """A helper ended window `index`: stored; or failed, and then the chain computes it,
        unless the error means the job cannot go on (a cluster that went away)."""
        if index not in self.where or self.where[index] is not Where.helper:
            return
        if error is None:
            self.where[index] = Where.stored
            outcome: Outcome = READY
        elif isinstance(error, UnavailableError):
            self.where[index] = Where.pending
            self.failure = outcome = error
        else:
            log.warning(
                "job %s: a helper failed on window %d (%s); the job's worker computes it",
                self.job_id,
                index + 1,
                error,
            )
            self.where[index] = Where.pending  # the chain claims it when it gets there
            self.failed.add(index)
            outcome = LOCAL
        if self.waiting is not None and self.waiting[0] == index:
            reply, self.waiting = self.waiting[1], None
            if outcome == LOCAL:
                self.where[index] = Where.chain
            reply(outcome)

    def stop(self) -> list[WindowTask]:
        """The job ended or stops: nothing more is handed out; returns the windows its helpers
        are still computing (to cancel them)."""
        self.stopped = True
        return [self.tasks[i] for i, where in self.where.items() if where is Where.helper]
