"""Jobs and their events in SQLite (WAL): what survives a crash or a restart.

An event and the job state it leads to are written in one transaction, so the job row never
disagrees with its log, and a per-job `seq` is never reused: (job_id, seq) is unique and the next
seq comes from the row written with the previous event. Not thread-safe: one owner (the daemon's
event loop) calls it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from framerelay.errors import DiskFullError, is_disk_full
from framerelay.jobs.events import KIND_OF, JobEvent, Payload, payload_from_json, payload_to_json
from framerelay.jobs.job import Job, JobState, apply

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    request_id TEXT NOT NULL,
    state TEXT NOT NULL,
    rank REAL NOT NULL,
    created_at REAL NOT NULL,
    ended_at REAL,
    data TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS jobs_request_id ON jobs (request_id) WHERE request_id != '';
CREATE INDEX IF NOT EXISTS jobs_state_rank ON jobs (state, rank);
CREATE TABLE IF NOT EXISTS events (
    cursor INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT NOT NULL REFERENCES jobs (id),
    seq INTEGER NOT NULL,
    time REAL NOT NULL,
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    UNIQUE (job_id, seq)
);
"""
SESSION_KEY = "session"  # present while a daemon runs: found at start, the last one was killed
# Running first, then the queue in order, then jobs awaiting their edit, then ended jobs, latest
# first.
LIST_ORDER = (
    "CASE state WHEN 'running' THEN 0 WHEN 'queued' THEN 1 WHEN 'awaiting_edit' THEN 2 ELSE 3 END, "
    "CASE WHEN state = 'queued' THEN rank END, ended_at DESC, created_at DESC"
)


class JobStore:
    def __init__(self, path: Path | str):
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "PRAGMA synchronous=NORMAL"
        )  # WAL + NORMAL: durable across process crashes
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(SCHEMA)
        self._check_schema()

    def _check_schema(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) != SCHEMA_VERSION:
            raise ValueError(
                f"job database {self.path} has schema {row[0]}, this daemon reads {SCHEMA_VERSION}"
            )

    def close(self) -> None:
        self._db.close()

    @property
    def journal_mode(self) -> str:
        return self._db.execute("PRAGMA journal_mode").fetchone()[0]

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write; a full disk raises DiskFullError and leaves the store as it was."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite rolls back by itself on a full disk
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as error:
            if is_disk_full(error):
                raise self.disk_full() from error
            raise

    def disk_full(self) -> DiskFullError:
        folder = Path(self.path).parent
        return DiskFullError(
            f"the disk holding the daemon's data folder {folder} is full.",
            "Free space on that disk. The daemon goes on by itself once there is room; queued "
            "jobs keep their place.",
        )

    def add(self, job: Job, first: Payload, now: float) -> tuple[Job, JobEvent]:
        """Inserts a new job with its first event."""
        with self._transaction() as db:
            db.execute(
                "INSERT INTO jobs (id, request_id, state, rank, created_at, ended_at, data) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.spec.request_id, *self._columns(job)),
            )
            return self._append(db, job, first, now)

    def append(self, job_id: str, payload: Payload, now: float) -> tuple[Job, JobEvent]:
        """Appends an event to a job's log and stores the state it leads to."""
        with self._transaction() as db:
            job = self._get(db, job_id)
            if job is None:
                raise KeyError(f"no job {job_id!r}")
            return self._append(db, job, payload, now)

    def _append(
        self, db: sqlite3.Connection, job: Job, payload: Payload, now: float
    ) -> tuple[Job, JobEvent]:
        seq = job.last_seq + 1
        cursor = db.execute(
            "INSERT INTO events (job_id, seq, time, kind, data) VALUES (?, ?, ?, ?, ?)",
            (job.id, seq, now, KIND_OF[type(payload)], json.dumps(payload_to_json(payload))),
        ).lastrowid
        assert cursor is not None
        event = JobEvent(job.id, seq, cursor, now, payload)
        job = apply(job, event)
        self._write(db, job)
        return job, event

    def save(self, job: Job) -> None:
        """Stores fields that no event carries (rank, cancel_requested)."""
        with self._transaction() as db:
            self._write(db, job)

    def save_all(self, jobs: Iterable[Job]) -> None:
        with self._transaction() as db:
            for job in jobs:
                self._write(db, job)

    @staticmethod
    def _columns(job: Job) -> tuple[str, float, float, float | None, str]:
        return (
            job.state.value,
            job.rank,
            job.created_at,
            job.ended_at,
            json.dumps(job.to_json()),
        )

    def _write(self, db: sqlite3.Connection, job: Job) -> None:
        db.execute(
            "UPDATE jobs SET state = ?, rank = ?, created_at = ?, ended_at = ?, data = ? "
            "WHERE id = ?",
            (*self._columns(job), job.id),
        )

    @staticmethod
    def _get(db: sqlite3.Connection, job_id: str) -> Job | None:
        row = db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_json(json.loads(row[0])) if row else None

    def get(self, job_id: str) -> Job | None:
        return self._get(self._db, job_id)

    def by_request_id(self, request_id: str) -> Job | None:
        row = self._db.execute(
            "SELECT data FROM jobs WHERE request_id = ? AND request_id != ''", (request_id,)
        ).fetchone()
        return Job.from_json(json.loads(row[0])) if row else None

    def with_state(self, state: JobState) -> list[Job]:
        rows = self._db.execute(
            "SELECT data FROM jobs WHERE state = ? ORDER BY rank, created_at", (state.value,)
        )
        return [Job.from_json(json.loads(data)) for (data,) in rows]

    def queued(self) -> list[Job]:
        return self.with_state(JobState.queued)

    def first_queued(self) -> Job | None:
        row = self._db.execute(
            "SELECT data FROM jobs WHERE state = 'queued' ORDER BY rank, created_at LIMIT 1"
        ).fetchone()
        return Job.from_json(json.loads(row[0])) if row else None

    def queued_ids(self) -> list[str]:
        rows = self._db.execute(
            "SELECT id FROM jobs WHERE state = 'queued' ORDER BY rank, created_at"
        )
        return [job_id for (job_id,) in rows]

    def jobs_ahead(self, job: Job) -> int:
        """How many queued jobs run before `job`."""
        return self._db.execute(
            "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND "
            "(rank < ? OR (rank = ? AND created_at < ?))",
            (job.rank, job.rank, job.created_at),
        ).fetchone()[0]

    def queue_length(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()[0]

    def rank_bounds(self) -> tuple[float, float] | None:
        low, high = self._db.execute(
            "SELECT MIN(rank), MAX(rank) FROM jobs WHERE state = 'queued'"
        ).fetchone()
        return None if low is None else (low, high)

    def list_jobs(self, states: Iterable[JobState] = (), limit: int = 0) -> list[Job]:
        wanted = [s.value for s in states]
        where = f"WHERE state IN ({', '.join('?' * len(wanted))})" if wanted else ""
        sql = f"SELECT data FROM jobs {where} ORDER BY {LIST_ORDER}"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [Job.from_json(json.loads(data)) for (data,) in self._db.execute(sql, wanted)]

    def events(self, job_id: str, after_seq: int = 0, limit: int = 0) -> list[JobEvent]:
        sql = "SELECT cursor, seq, time, kind, data FROM events WHERE job_id = ? AND seq > ? "
        sql += "ORDER BY seq" + (f" LIMIT {int(limit)}" if limit else "")
        return [
            JobEvent(job_id, seq, cursor, time, payload_from_json(kind, json.loads(data)))
            for cursor, seq, time, kind, data in self._db.execute(sql, (job_id, after_seq))
        ]

    def events_since(self, cursor: int, limit: int = 0) -> list[JobEvent]:
        sql = "SELECT cursor, job_id, seq, time, kind, data FROM events WHERE cursor > ? "
        sql += "ORDER BY cursor" + (f" LIMIT {int(limit)}" if limit else "")
        return [
            JobEvent(job_id, seq, row_cursor, time, payload_from_json(kind, json.loads(data)))
            for row_cursor, job_id, seq, time, kind, data in self._db.execute(sql, (cursor,))
        ]

    def last_cursor(self) -> int:
        return self._db.execute("SELECT COALESCE(MAX(cursor), 0) FROM events").fetchone()[0]

    # --- daemon state that is not a job's: the queue's pause, the running session ---

    def setting(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str | None) -> None:
        """Stores `value` under `key`; None removes it. DiskFullError on a full disk."""
        with self._transaction() as db:
            if value is None:
                db.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))

    def begin_session(self) -> bool:
        """Marks a daemon as running on this store; True when the previous one never ended
        (it was killed, or crashed)."""
        crashed = self.setting(SESSION_KEY) is not None
        self.set_setting(SESSION_KEY, "running")
        return crashed

    def end_session(self) -> None:
        self.set_setting(SESSION_KEY, None)
