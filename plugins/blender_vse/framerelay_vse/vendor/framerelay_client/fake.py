"""`FakeDaemon`: the daemon in memory, for host tests. Same methods and exceptions as `Client`.

It encodes what `framerelay serve --fake` does, measured: the same checks at submit (paths, files,
ranges, output roots, existing outputs), the same queue (positions, move, "cancel queued" and
"interrupt running" as two outcomes), the same event log (seq 1, 2, 3… per job, a daemon-wide
cursor) and the same event sequence, field for field in proto3 JSON: queued → started →
progress (load once per model load; decode 2, lora 4, invert 3, edit 4, encode 2 steps; no ETA on a
phase's first step; a preview of 64×64 after the edit phase) → finished (naming the preset `auto`
chose: local) / failed / cancelled; round trips: exported → editor opened (or open skipped) → edit
received → queued → … The real daemon reports at most 10 progress events a second; the fake
reports every step, as a daemon with `progress_interval_s = 0` does.

Queue control as the daemon does it: a paused queue starts nothing until resumed (the pause
outlives `restart()`); a pause that interrupts stops the running job at its next step and queues it
first again (reason QUEUED_REASON_PAUSED), and its next run reports the phases it had finished as
"cached"; unloading the model is refused (BUSY) while a job runs; job defaults fill a submitted
spec's unset preset, output format and folder; a job running at two crashes (`restart(crashed=
True)`) is failed instead of run again.

Time does not pass by itself. `advance()` moves the worker one step; a blocking call (`watch`,
`watch_queue`, `poll` with a wait) advances the fake itself until it has something to return,
and raises `Stalled` when nothing could ever change (a round trip nobody edits) unless another
thread changes the fake within `stall_timeout` seconds.

What it does not do: decode media (clips are 8 frames of 64×64 at 24 fps unless `add_clip` says
otherwise; only a registered clip's length is checked against a frame range), check engine
parameter ranges (the daemon's parameter table is their one home: script a refusal with
`fail_next`), open an editor or read images. It writes no file unless a script's `output_writer`
does.
"""

from __future__ import annotations

import base64
import os
import re
import struct
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass, field, replace
from fractions import Fraction
from functools import partial
from pathlib import Path, PurePath
from typing import Any, Literal

from .api import MAX_POLL_SECONDS, DaemonApi, JsonDict, is_terminal
from .errors import (
    Busy,
    Cancelled,
    ClientError,
    DaemonNotRunning,
    DaemonUnreachable,
    DiskFull,
    EditUnreadable,
    Internal,
    InvalidSpec,
    NotFound,
    SourceUnreadable,
    Unauthenticated,
    error_for_code,
)
from .protojson import drop_zeros, echo_spec, normal_path, parse_message, rational, rfc3339

VERSION = "0.1.0"
DEFAULT_PHASES: tuple[tuple[str, int], ...] = (
    ("decode", 2),
    ("lora", 4),
    ("invert", 3),
    ("edit", 4),
    ("encode", 2),
)
PREPARE_PHASES = ("load", "decode")
EXPORT_STEM = "frame_edit"
MAX_EDITED_FRAMES = 16
MAX_PATH_LENGTH = 4096
MAX_FRAMES = 100_000
MAX_LABEL_LENGTH = 1024
MAX_REQUEST_ID_LENGTH = 256
MAX_HOST_CONTEXT_ENTRIES = 64
MAX_HOST_CONTEXT_TEXT = 4096
JOB_ID = re.compile(r"[0-9a-f]{1,32}")
DEFAULT_SEED = 23  # the engine's default seed (EngineParams.seed)
LOCAL_AREA = 0.35  # auto's rule: an edit of less than this much of the frame is local
MAX_CRASHES = 2  # a job running at this many daemon crashes is failed instead of run again
PREVIEW_SIZE = (64, 64)  # serve --fake's frames, whatever the clip
BUILT_IN_DEFAULTS: JsonDict = {"preset": "PRESET_AUTO", "outputFormat": "OUTPUT_FORMAT_MOV"}
ABSOLUTE_HINT = "Send absolute paths: the daemon does not share the client's working directory."


STATUS_ORDER = (
    "version",
    "device",
    "modelLoaded",
    "model",
    "vramUsedBytes",
    "vramTotalBytes",
    "queueLength",
    "runningJobId",
    "uptimeSeconds",
    "pid",
    "queuePaused",
    "waitingOn",
)


class Stalled(RuntimeError):
    """A blocking call would wait forever: nothing in the fake can move on by itself."""


@dataclass(frozen=True)
class FakeClip:
    """What the fake assumes about a source file it cannot decode."""

    frame_count: int = 8
    fps: Fraction = Fraction(24)
    width: int = 64
    height: int = 64


@dataclass(frozen=True)
class Script:
    """How the jobs submitted from now on run.

    `job_outcome` "failed" fails the job just before the first step of `fail_phase` with `error`:
    a `ClientError`, or a catalogue code such as "out_of_memory" (default: an internal error, as
    any unexpected exception in the engine gives). "cancelled" interrupts it there, as a cancel
    from another client would. `windows` > 1 runs lora/invert/edit/encode once per window, as the
    engine does for long clips (serve --fake always runs one). `preview_phase`: a preview follows
    the last step of that phase (serve --fake: "edit"; None: no previews). `cached_phases`: these
    phases come from the cache (one progress report at total, message "cached"), as the engine
    reports lora and invert for a clip an earlier job made them for. `output_writer(path, job)` is
    called for each output just before the job finishes, to write whatever file a host test needs
    there.
    """

    job_outcome: Literal["finished", "failed", "cancelled"] = "finished"
    phases: tuple[tuple[str, int], ...] = DEFAULT_PHASES
    error: ClientError | str | None = None
    fail_phase: str = "edit"
    windows: int = 1
    preview_phase: str | None = "edit"
    cached_phases: tuple[str, ...] = ()
    output_writer: Callable[[str, JsonDict], None] | None = None

    def failure(self) -> ClientError:
        if isinstance(self.error, ClientError):
            return self.error
        if self.error is None:
            return Internal("the job failed with an internal error (RuntimeError).")
        code = error_for_code(self.error, "").code
        return error_for_code(code, SCRIPTED_MESSAGES.get(code, "the job failed."))


SCRIPTED_MESSAGES = {  # what the worker says for the engine's usual failures
    "ERROR_CODE_OUT_OF_MEMORY": "the job ran out of memory.",
    "ERROR_CODE_DISK_FULL": "the disk is full.",
    "ERROR_CODE_MODEL_MISSING": "the model could not be loaded.",
    "ERROR_CODE_SOURCE_UNREADABLE": "the source could not be decoded.",
}


class _Interrupted(Exception):
    pass


@dataclass
class CacheEntry:
    """One finished artifact of the fake's cache (the daemon's are a window's LoRA and
    inversion); the cache lists them least recently used first."""

    clip: str
    bytes: int


@dataclass
class _RoundTrip:
    folder: str
    follow_saves: bool
    job_id: str  # the job it feeds now
    jobs: list[str]
    version: int = 0
    started: bool = False  # its job has started: later saves follow or are ignored
    closed: bool = False


@dataclass
class _Job:
    id: str
    spec: JsonDict  # as the daemon echoes it
    outputs: list[str]
    created: float
    script: Script
    state: str = "queued"
    rank: float = 0.0
    started: float | None = None
    ended: float | None = None
    attempt: int = 0
    cancel_requested: bool = False
    pause_requested: bool = False  # a pause interrupts it: it goes back to the queue
    crashes: int = 0  # daemon crashes while it ran
    progress: JsonDict | None = None
    result: JsonDict | None = None
    error: JsonDict | None = None
    edit: JsonDict | None = None
    events: list[JsonDict] = field(default_factory=list)
    done_phases: list[str] = field(default_factory=list)  # the executor's checkpoint
    phase_steps: dict[str, int] = field(default_factory=dict)  # steps run, this attempt
    run: Generator[tuple[str, JsonDict], None, JsonDict] | None = None
    round_trip: _RoundTrip | None = None

    @property
    def is_ended(self) -> bool:
        return self.state in ("finished", "failed", "cancelled")


class FakeDaemon(DaemonApi):
    """An in-memory daemon with `Client`'s methods; see the module's documentation."""

    def __init__(
        self,
        *,
        root: str | os.PathLike[str] | None = None,
        output_roots: tuple[str | os.PathLike[str], ...] = (),
        outputs_next_to_source: bool = True,
        check_files: bool = True,
        no_open: bool = False,
        step_seconds: float = 0.05,
        stall_timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        base = Path(root) if root is not None else Path(tempfile.gettempdir()) / "framerelay-fake"
        self.config_dir = base / "config"
        self.data_dir = base / "data"
        self.cache_dir = base / "cache"
        self.output_roots = tuple(Path(r) for r in output_roots)
        self.outputs_next_to_source = outputs_next_to_source
        self.check_files = check_files  # False: paths need not exist (made-up paths in tests)
        self.no_open = no_open
        self.step_seconds = step_seconds  # the simulated time of a step, for the ETAs
        self.stall_timeout = stall_timeout
        self.down = False  # True: every call fails as with a daemon that is not there
        self.down_reason: Literal["unreachable", "not_running"] = "unreachable"
        self.token_ok = True  # False: every call is refused as with a wrong token
        # The cache's entries, least recently used first (`add_cache_entry`), and the bytes of
        # unfinished work in it (LoRA checkpoints an interrupted job resumes from).
        self.cache: list[CacheEntry] = []
        self.cache_unfinished_bytes = 0
        self.defaults: JsonDict = dict(BUILT_IN_DEFAULTS)  # a JobDefaults dict, as GetDefaults
        self.editor: JsonDict = {"openEditor": True}
        # The image editors "installed" on the fake's machine (DetectedEditor dicts: name, label,
        # path); over the API only these (or the system default) may be chosen, as on the daemon.
        self.detected_editors: list[JsonDict] = []
        self.editor_read_only = False  # True: like a daemon started with --allow-remote
        self.default_script = Script()
        self._clock = clock
        self._started_at = clock()
        self._jobs: dict[str, _Job] = {}
        self._log: list[JsonDict] = []  # every event, in cursor order
        self._clips: dict[str, FakeClip] = {}
        self._failures: dict[str, list[ClientError]] = {}
        self._running: str | None = None
        self._paused = False  # PauseQueue; kept across restart()
        self._disk_full = False  # the data folder's disk (fill_data_disk)
        self._waiting_on: JsonDict | None = None  # GetStatus.waitingOn: the worker holds
        self._loaded = False
        self._clock_phase = ""  # the worker's PhaseClock: ETAs restart with each phase
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)

    # --- scripting ---

    def script(self, **changes: Any) -> FakeDaemon:
        """Sets how jobs submitted from now on run (the fields of `Script`)."""
        with self._lock:
            self.default_script = replace(self.default_script, **changes)
        return self

    def script_job(self, job_id: str, **changes: Any) -> None:
        """Changes how one job runs (before it starts)."""
        with self._lock:
            job = self._job(job_id)
            job.script = replace(job.script, **changes)

    def add_clip(
        self,
        path: str | os.PathLike[str],
        frame_count: int,
        fps: Fraction | int = 24,
        width: int = 64,
        height: int = 64,
    ) -> None:
        """What the clip at `path` holds: frame ranges beyond its end are refused, as the daemon
        does after reading the clip's header."""
        self._clips[str(Path(path))] = FakeClip(frame_count, Fraction(fps), width, height)

    def add_cache_entry(self, clip: str | os.PathLike[str], size: int) -> None:
        """A finished cache entry of `size` bytes made from the clip at `clip`, used just now.
        (serve --fake's jobs make none; the engine makes one per window of a clip.)"""
        with self._lock:
            self.cache.append(CacheEntry(os.fspath(clip), size))

    def fill_data_disk(self) -> None:
        """The disk of the daemon's data folder (its job database, round-trip frames) is full,
        as a daemon meets it: what would store something is refused with DISK_FULL (submit,
        cancel, move, pause, resume of a pause, attach, a save in the editor); reads are
        answered. The running job stops with DISK_FULL at its next report (its end is stored
        from the daemon's reserve) and the worker holds the queue: `status()["waitingOn"]`.
        Queued jobs keep their place and run once `free_data_disk()` is called."""
        with self._lock:
            self._disk_full = True

    def free_data_disk(self) -> None:
        """There is room again: the queue goes on by itself."""
        with self._lock:
            self._disk_full, self._waiting_on = False, None
            self._changed.notify_all()

    def fail_next(self, method: str, error: ClientError) -> None:
        """The next call of `method` ("SubmitJob", "ClearCache"…) raises `error`."""
        with self._lock:
            self._failures.setdefault(method, []).append(error)

    def advance(self) -> list[JsonDict]:
        """Moves the worker one step; returns the events it recorded (none when idle)."""
        with self._lock:
            before = len(self._log)
            self._tick()
            return list(self._log[before:])

    def run_until_ended(self, job_id: str, max_steps: int = 100_000) -> JsonDict:
        """Advances until the job has ended; returns the Job dict."""
        with self._lock:
            for _ in range(max_steps):
                if self._job(job_id).is_ended:
                    return self._job_json(self._job(job_id))
                if not self._tick():
                    raise Stalled(self._stall_message(job_id))
            raise Stalled(f"job {job_id} did not end within {max_steps} steps.")

    def run_until_idle(self, max_steps: int = 100_000) -> list[JsonDict]:
        """Advances until no job is queued or running; returns the events recorded."""
        with self._lock:
            before = len(self._log)
            for _ in range(max_steps):
                if not self._tick():
                    break
            return list(self._log[before:])

    def events(self, job_id: str) -> list[JsonDict]:
        """Every event of the job so far."""
        with self._lock:
            return list(self._job(job_id).events)

    def save_edit(self, job_id: str, path: str | os.PathLike[str]) -> None:
        """The user saved `path` in the round trip's folder (what the daemon's watcher sees)."""
        with self._lock:
            job = self._job(job_id)
            round_trip = job.round_trip
            if round_trip is None or round_trip.closed or self._disk_full:
                return  # a full disk takes neither the copy nor an event
            current = self._job(round_trip.job_id)
            if round_trip.started and not round_trip.follow_saves:
                name = Path(path).name
                self._record(
                    current,
                    "edit",
                    _edit_event(
                        "SAVE_IGNORED",
                        f"{name} was saved after the job started; the running job keeps its edit.",
                        hint="Turn on 'follow saves' to start a new job for each save.",
                        source=os.fspath(path),
                    ),
                )
                return
            self._accept_edit(current, os.fspath(path))

    def restart(self, crashed: bool = False) -> None:
        """The daemon stops and starts again: a running job is interrupted and queued again first
        (it re-runs, skipping its finished phases), the model is unloaded, a pause holds, and
        round trips that have not ended watch their folders again. `crashed`: the daemon died
        (killed, out of memory) instead of stopping; a job running at its second such death is
        failed instead of run again (the crash-loop guard)."""
        with self._lock:
            running = self._jobs.get(self._running or "")
            self._running = None
            if running is not None:
                running.run = None
                running.pause_requested = False  # the interrupting pause lived in memory
                if running.cancel_requested:
                    payload = self._cancelled_payload(running, "INTERRUPTED")
                    self._record(running, "cancelled", payload)
                elif crashed:
                    running.crashes += 1
            self._loaded = False
            self._clock_phase = ""
            self._started_at = self._clock()
            for job in list(self._jobs.values()):
                round_trip = job.round_trip
                if round_trip is not None and round_trip.job_id == job.id and not round_trip.closed:
                    message = f"The daemon restarted; watching {round_trip.folder} for saves again."
                    self._record(job, "edit", _edit_event("WATCH_RESUMED", message))
            if running is not None and running.state == "running":
                if running.crashes >= MAX_CRASHES:
                    self._record(running, "failed", {"error": crash_loop_error(running.crashes)})
                else:
                    self._requeue_first(running, "QUEUED_REASON_RECOVERED")

    # --- the primitives ---

    def call(self, method: str, body: Mapping[str, Any] | None = None) -> JsonDict:
        handler = self._handlers().get(method)
        with self._lock:
            self._check_reachable()
            if handler is None:
                raise NotFound(
                    f"no method at /v1/{method[:200]}.",
                    f"POST to /v1/<Method>, one of {', '.join(self._handlers())}.",
                )
            failures = self._failures.get(method)
            if failures:
                raise failures.pop(0)
            request = parse_message(f"{method}Request", dict(body or {}))
            return handler(request)

    def _stream(self, method: str, body: JsonDict) -> Generator[JsonDict, None, None]:
        if method not in ("WatchJob", "WatchQueue"):
            raise NotFound(f"no stream at /v1/{method[:200]}.", "Stream WatchJob or WatchQueue.")
        with self._lock:
            self._check_reachable()
            request = parse_message(f"{method}Request", body)
            if method == "WatchJob":
                events = self._watch_job(request)
            else:
                events = self._watch_queue(request)
        yield from events

    # --- handlers (the lock held) ---

    def _handlers(self) -> dict[str, Callable[[JsonDict], JsonDict]]:
        return {
            "SubmitJob": self._submit_job,
            "GetJob": self._get_job,
            "ListJobs": self._list_jobs,
            "CancelJob": self._cancel_job,
            "MoveJob": self._move_job,
            "PollJob": self._poll_job,
            "GetCacheInfo": self._get_cache_info,
            "ClearCache": self._clear_cache,
            "GetStatus": self._get_status,
            "AttachEdit": self._attach_edit,
            "GetEditorConfig": self._get_editor_config,
            "SetEditorConfig": self._set_editor_config,
            "PauseQueue": self._pause_queue,
            "ResumeQueue": self._resume_queue,
            "UnloadModel": self._unload_model,
            "GcCache": self._gc_cache,
            "GetDefaults": self._get_defaults,
            "SetDefaults": self._set_defaults,
        }

    def _submit_job(self, request: JsonDict) -> JsonDict:
        spec = echo_spec(self._with_defaults(request.get("spec", {})))
        self._validate(spec)
        existing = self._by_request_id(spec)
        if "editSession" in spec:
            if spec.get("editedFramePaths"):
                raise InvalidSpec(
                    "a round-trip job starts without an edited frame.",
                    "Leave edited_frame_paths empty; the edit comes from the editor or AttachEdit.",
                )
            job = existing or self._submit_round_trip(spec)
            response = {"job": self._job_json(job)}
            exported = (job.edit or {}).get("exportedPath")
            return {**response, "exportedPath": exported} if exported else response
        if existing is None:
            self._refuse_on_a_full_disk()
        job = existing or self._enqueue_new(spec, "QUEUED_REASON_SUBMITTED")
        return {"job": self._job_json(job)}

    def _get_job(self, request: JsonDict) -> JsonDict:
        return {"job": self._job_json(self._job(request.get("jobId", "")))}

    def _list_jobs(self, request: JsonDict) -> JsonDict:
        states = request.get("states", [])
        if "JOB_STATE_UNSPECIFIED" in states:
            raise InvalidSpec("JOB_STATE_UNSPECIFIED is not a state to filter by.")
        wanted = {s.removeprefix("JOB_STATE_").lower() for s in states}
        jobs = [j for j in self._ordered() if not wanted or j.state in wanted]
        limit = int(request.get("limit", 0))
        response: JsonDict = {}
        listed = [self._job_json(j) for j in (jobs[:limit] if limit else jobs)]
        if listed:
            response["jobs"] = listed
        if self._log:
            response["cursor"] = str(len(self._log))
        return response

    def _cancel_job(self, request: JsonDict) -> JsonDict:
        job = self._job(request.get("jobId", ""))
        if not job.is_ended:
            self._refuse_on_a_full_disk()  # a cancel is stored before it is acted on
        if job.state in ("queued", "awaiting_edit"):
            self._record(job, "cancelled", self._cancelled_payload(job, "DEQUEUED"))
            outcome = "CANCEL_OUTCOME_DEQUEUED"
        elif job.state == "running":
            job.cancel_requested = True
            outcome = "CANCEL_OUTCOME_INTERRUPT_REQUESTED"
        else:
            outcome = "CANCEL_OUTCOME_ALREADY_ENDED"
        self._changed.notify_all()
        return {"job": self._job_json(job), "outcome": outcome}

    def _move_job(self, request: JsonDict) -> JsonDict:
        position = int(request.get("position", 0))
        job_id = request.get("jobId", "")
        if position < 1:
            raise InvalidSpec(f"queue positions start at 1, got {position}.", "1 runs next.")
        job = self._job(job_id)
        if job.state != "queued":
            raise InvalidSpec(
                f"job {job_id} is {job.state}; only queued jobs move.",
                "List the queue with `framerelay jobs`.",
            )
        self._refuse_on_a_full_disk()
        order = [j for j in self._queued() if j.id != job_id]
        order.insert(min(position - 1, len(order)), job)
        for rank, queued in enumerate(order, start=1):
            queued.rank = float(rank)
        new_position = order.index(job) + 1
        self._record(job, "queued", {"position": new_position, "reason": "QUEUED_REASON_MOVED"})
        return {"job": self._job_json(job, new_position), "queue": [j.id for j in order]}

    def _poll_job(self, request: JsonDict) -> JsonDict:
        job = self._job(request.get("jobId", ""))
        after = int(request.get("afterSeq", 0))
        limit = int(request.get("maxEvents", 0))
        wait = min(max(float(request.get("waitSeconds", 0.0)), 0.0), MAX_POLL_SECONDS)
        if wait > 0 and not job.is_ended and len(job.events) <= after:
            self._wait_for(
                lambda: len(job.events) > after or job.is_ended, min(wait, self.stall_timeout)
            )
        events = job.events[after:]
        events = events[:limit] if limit else events
        last = int(events[-1]["seq"]) if events else after
        response: JsonDict = {}
        if events:
            response["events"] = list(events)
        if job.is_ended and last >= len(job.events):
            response["ended"] = True
        return response

    def _get_cache_info(self, request: JsonDict) -> JsonDict:
        clips: dict[str, list[int]] = {}
        for entry in self.cache:
            clips.setdefault(entry.clip, []).append(entry.bytes)
        usage = sorted(clips.items(), key=lambda item: (-sum(item[1]), item[0]))
        response = self._cache_counts()
        response["root"] = str(self.cache_dir)
        if self.cache_unfinished_bytes:
            response["unfinishedBytes"] = str(self.cache_unfinished_bytes)
        if usage:
            response["clips"] = [
                drop_zeros(
                    {"sourcePath": clip, "entries": str(len(sizes)), "bytes": str(sum(sizes))}
                )
                for clip, sizes in usage
            ]
        return response

    def _cache_counts(self) -> JsonDict:
        """`entries` and `bytes` (the entries and the unfinished bytes) as GetCacheInfo says."""
        total = sum(entry.bytes for entry in self.cache) + self.cache_unfinished_bytes
        counts: JsonDict = {}
        if self.cache:
            counts["entries"] = str(len(self.cache))
        if total:
            counts["bytes"] = str(total)
        return counts

    def _clear_cache(self, request: JsonDict) -> JsonDict:
        self._refuse_while_running("and may be using the cache.")
        freed = sum(entry.bytes for entry in self.cache) + self.cache_unfinished_bytes
        self.cache, self.cache_unfinished_bytes = [], 0
        return {"freedBytes": str(freed)} if freed else {}

    def _gc_cache(self, request: JsonDict) -> JsonDict:
        self._refuse_while_running("and may be using the cache.")
        limit = int(request.get("maxBytes", 0))
        total = sum(entry.bytes for entry in self.cache)
        freed = 0
        while self.cache and total > limit:
            oldest = self.cache.pop(0)
            total -= oldest.bytes
            freed += oldest.bytes
        response: JsonDict = {"freedBytes": str(freed)} if freed else {}
        return {**response, **self._cache_counts()}

    def _refuse_while_running(self, why: str, hint: str | None = None) -> None:
        if self._running is not None:
            message = f"job {self._running} is running {why}"
            raise Busy(message) if hint is None else Busy(message, hint)

    def _get_status(self, request: JsonDict) -> JsonDict:
        queued = len(self._queued())
        response: JsonDict = {
            "version": VERSION,
            "device": "cpu" if self._loaded else "auto",
            "model": "fake",
        }
        if self._loaded:
            response["modelLoaded"] = True
        if queued:
            response["queueLength"] = queued
        if self._running:
            response["runningJobId"] = self._running
        response["uptimeSeconds"] = max(self._clock() - self._started_at, 0.0)
        response["pid"] = os.getpid()
        if self._paused:
            response["queuePaused"] = True
        if self._waiting_on is not None:
            response["waitingOn"] = dict(self._waiting_on)
        return {k: response[k] for k in STATUS_ORDER if k in response}

    # --- queue control, model and defaults ---

    def _pause_queue(self, request: JsonDict) -> JsonDict:
        self._refuse_on_a_full_disk()  # the pause is stored first
        self._paused = True
        response: JsonDict = {"paused": True}
        if request.get("interruptRunning") and self._running is not None:
            self._jobs[self._running].pause_requested = True
            response["interruptedJobId"] = self._running
        self._changed.notify_all()
        return response

    def _resume_queue(self, request: JsonDict) -> JsonDict:
        if self._paused:  # removing the stored pause (none stored: nothing to write)
            self._refuse_on_a_full_disk()
        was_paused, self._paused = self._paused, False
        self._changed.notify_all()
        return {"wasPaused": True} if was_paused else {}

    def _unload_model(self, request: JsonDict) -> JsonDict:
        self._refuse_while_running(
            "on the model.",
            "Pause the queue, interrupting the running job, then unload; or wait for it.",
        )
        was_loaded, self._loaded = self._loaded, False
        return {"wasLoaded": True} if was_loaded else {}

    def _get_defaults(self, request: JsonDict) -> JsonDict:
        return self._defaults_response()

    def _set_defaults(self, request: JsonDict) -> JsonDict:
        given = request.get("defaults", {})
        defaults = {
            "preset": _named(given.get("preset"), BUILT_IN_DEFAULTS["preset"]),
            "outputFormat": _named(given.get("outputFormat"), BUILT_IN_DEFAULTS["outputFormat"]),
        }
        folder = given.get("outputFolder", "")
        if folder:
            _check_texts({"output": {"folder": folder}})
            _check_absolute(folder, "output folder")
            if self.check_files and os.path.exists(folder) and not os.path.isdir(folder):
                raise InvalidSpec(f"the output folder {folder!r} is a file.")
            self._check_folder(folder, None)  # a default applies to every clip
            defaults["outputFolder"] = normal_path(folder)
        self.defaults = defaults
        return self._defaults_response()

    def _defaults_response(self) -> JsonDict:
        return {"defaults": dict(self.defaults), "configPath": self._config_path()}

    def _config_path(self) -> str:
        return str(self.config_dir / "config.toml")

    def _with_defaults(self, spec: JsonDict) -> JsonDict:
        """The spec with the job defaults in its unset preset, output format and folder."""
        params = dict(spec.get("params", {}))
        output = dict(spec.get("output", {}))
        params["preset"] = _named(params.get("preset"), self.defaults["preset"])
        output["format"] = _named(output.get("format"), self.defaults["outputFormat"])
        if not output.get("folder") and self.defaults.get("outputFolder"):
            output["folder"] = self.defaults["outputFolder"]
        return {**spec, "params": params, "output": output}

    def _get_editor_config(self, request: JsonDict) -> JsonDict:
        return self._editor_response()

    def _set_editor_config(self, request: JsonDict) -> JsonDict:
        given = request.get("config", {})
        path = self.config_dir / "config.toml"
        if self.editor_read_only:
            raise error_for_code(
                "ERROR_CODE_FORBIDDEN",
                "the editor settings cannot be changed over the API while the daemon accepts "
                "remote connections (--allow-remote).",
                f"Change them in {path} on the daemon's machine.",
            )
        current = self.editor.get("application", "")
        application = str(given.get("application") or "")
        changed = application.lower() != current.lower()
        detected = [editor["name"] for editor in self.detected_editors]
        if changed and application and application.lower() not in detected:
            choices = ", ".join(detected) or "none was found on this machine"
            raise error_for_code(
                "ERROR_CODE_FORBIDDEN",
                f"{application[:200]!r} is not an image editor the daemon detected; over the API "
                f"the editor is the system default or a detected one ({choices}).",
                f"To use another program, set application under [editor] in {path} on the "
                "daemon's machine (or run `framerelay editor --application PATH` there).",
            )
        arguments = list(given.get("arguments") or [])
        if arguments and arguments != self.editor.get("arguments", []):
            raise error_for_code(
                "ERROR_CODE_FORBIDDEN",
                "the editor's arguments cannot be changed over the API.",
                f"Set arguments under [editor] in {path} on the daemon's machine (or run "
                "`framerelay editor --argument=ARG` there).",
            )
        config: JsonDict = {}
        if application:
            config["application"] = application.lower() if changed else current
        if not changed and self.editor.get("arguments"):
            config["arguments"] = list(self.editor["arguments"])
        config["openEditor"] = bool(given.get("openEditor", True))
        if given.get("pollSaves"):
            config["pollSaves"] = True
        self.editor = config
        response: JsonDict = {"config": dict(self.editor), "configPath": self._config_path()}
        return {**response, "noOpen": True} if self.no_open else response

    def _editor_response(self) -> JsonDict:
        response: JsonDict = {"config": dict(self.editor), "configPath": self._config_path()}
        if self.no_open:
            response["noOpen"] = True
        if self.detected_editors:
            response["detected"] = [dict(editor) for editor in self.detected_editors]
        if self.editor_read_only:
            response["readOnly"] = True
        return response

    def _attach_edit(self, request: JsonDict) -> JsonDict:
        path = request.get("path", "")
        self._check_readable(path, "edited frame")
        job = self._job(request.get("jobId", ""))
        round_trip = self._round_trip_of(job)
        if not _takes_edit(job) and not round_trip.follow_saves:
            raise InvalidSpec(
                f"job {job.id} has started; it keeps its edited frame.",
                "Submit a new job with this frame, or ask for 'follow saves' in the round trip.",
            )
        copy = Path(round_trip.folder) / "edits" / f"edit_v{round_trip.version + 1:03d}.png"
        self._refuse_on_a_full_disk(str(copy))
        taker, version = self._accept_edit(job, path)
        return {"job": self._job_json(taker), "version": version}

    # --- streams (the lock held until the first event is asked for) ---

    def _watch_job(self, request: JsonDict) -> Iterator[JsonDict]:
        job = self._job(request.get("jobId", ""))
        return self._follow(job, int(request.get("afterSeq", 0)))

    def _follow(self, job: _Job, after: int) -> Iterator[JsonDict]:
        last = after
        while True:
            fresh = self._after(job.events, last, self._stall_message(job.id), job)
            if not fresh:
                return
            for event in fresh:
                last = int(event["seq"])
                yield event
                if is_terminal(event):
                    return

    def _watch_queue(self, request: JsonDict) -> Iterator[JsonDict]:
        after = request.get("afterCursor")
        last = len(self._log) if after is None else int(after)
        if last > len(self._log):
            raise InvalidSpec(
                f"after_cursor {last} is beyond the last event's cursor, {len(self._log)}.",
                "Resume from a cursor the daemon gave (ListJobs, or an event), or omit it.",
            )
        return self._follow_log(last)

    def _follow_log(self, last: int) -> Iterator[JsonDict]:
        message = "watch_queue would wait forever: no job can move on."
        while True:
            for event in self._after(self._log, last, message):
                last = int(event["cursor"])
                yield event

    def _after(
        self, log: list[JsonDict], seen: int, stalled: str, job: _Job | None = None
    ) -> list[JsonDict]:
        """The entries of `log` after the first `seen`, advancing the fake for them; [] once
        `job` has ended with nothing more to read."""
        with self._lock:
            self._check_reachable()
            if len(log) <= seen and not (job and job.is_ended):
                self._wait_for(partial(_longer, log, seen), self.stall_timeout)
            fresh = log[seen:]
            if not fresh and not (job and job.is_ended):
                raise Stalled(stalled)
            return fresh

    def _wait_for(self, ready: Callable[[], bool], timeout: float) -> None:
        """Advances the fake until `ready()`; when nothing can move, waits up to `timeout`
        seconds for another thread to change something."""
        deadline = time.monotonic() + timeout
        while not ready():
            if self._tick():
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._changed.wait(left)

    # --- the queue ---

    def _validate(self, spec: JsonDict) -> None:
        """JobSpec.validate, the output policy and the clip-length check of the daemon."""
        _check_texts(spec)
        source = spec.get("sourcePath", "")
        _check_absolute(source, "source")
        if self.check_files and not _is_file(source):
            raise SourceUnreadable(
                f"the source {source!r} does not exist or is not a regular file.",
                "Check the path; network drives must be mounted for the daemon's user too.",
            )
        edited = list(spec.get("editedFramePaths", []))
        session = spec.get("editSession")
        if not edited and session is None:
            raise InvalidSpec(
                "the job has no edited frame.",
                "Pass at least one edited frame, or ask for a round trip with an image editor.",
            )
        if len(edited) > MAX_EDITED_FRAMES:
            raise InvalidSpec(
                f"the job has {len(edited)} edited frames; the limit is {MAX_EDITED_FRAMES}.",
                f"Split the edits over several jobs of at most {MAX_EDITED_FRAMES}.",
            )
        frame_range = spec.get("frameRange")
        if session is not None:
            _check_session(session, edited, frame_range)
        for path in edited:
            self._check_readable(path, "edited frame")
        if "maskPath" in spec:
            self._check_readable(spec["maskPath"], "mask")
        if spec.get("inputLutPath"):
            self._check_readable(spec["inputLutPath"], "input LUT")
        _check_range(frame_range, spec.get("sourceFps"))
        folder = spec.get("output", {}).get("folder")
        if folder:
            _check_absolute(folder, "output folder")
            if self.check_files and os.path.exists(folder) and not os.path.isdir(folder):
                raise InvalidSpec(f"the output folder {folder!r} is a file.")
            self._check_folder(folder, source)
        self._check_clip_length(spec)

    def _check_readable(self, path: str, what: str) -> None:
        _check_absolute(path, what)
        if self.check_files and not _is_file(path):
            raise EditUnreadable(f"the {what} {path!r} does not exist or is not a regular file.")

    def _check_clip_length(self, spec: JsonDict) -> None:
        clip = self._clips.get(spec["sourcePath"])
        frame_range, fps = spec.get("frameRange"), spec.get("sourceFps")
        if clip is None or frame_range is None or fps is None:
            return
        in_frame, out_frame = frame_range.get("inFrame", 0), frame_range.get("outFrame", 0)
        rate = Fraction(fps["num"], fps["den"])
        end = out_frame if rate == clip.fps else round(out_frame / rate * clip.fps)
        if end > clip.frame_count:
            raise InvalidSpec(
                f"the frame range [{in_frame}, {out_frame}) ends after the clip, which has "
                f"{clip.frame_count} frames at {clip.fps} fps.",
                "out_frame is exclusive and counts from the clip's first frame; check the host's "
                "in and out points.",
            )

    def _roots(self, source: str | None) -> list[str]:
        """The output roots for a job on `source`; None: for every clip (job defaults)."""
        roots = [self.data_dir / "outputs", *self.output_roots]
        if self.outputs_next_to_source and source is not None:
            roots.append(Path(source).parent)
        return [os.path.realpath(r) for r in roots]

    def _check_folder(self, folder: str, source: str | None) -> None:
        target = os.path.realpath(folder)
        roots = self._roots(source)
        if not any(target == r or PurePath(target).is_relative_to(r) for r in roots):
            raise InvalidSpec(
                f"the output folder {folder!r} (resolved: {target!r}) is outside the daemon's "
                f"output roots ({', '.join(roots)}).",
                "Write next to the source clip or under one of the roots, or add the folder to "
                f"output_roots in {self.config_dir / 'config.toml'}.",
            )

    def _check_outputs(self, outputs: list[str], source: str, overwrite: bool) -> None:
        for output in outputs:
            self._check_folder(str(Path(output).parent), source)
            if not overwrite and self.check_files and os.path.lexists(output):
                raise InvalidSpec(
                    f"the output {output!r} already exists.",
                    "Set output.overwrite to replace it, or choose another output folder.",
                )

    def _plan_outputs(self, spec: JsonDict, job_id: str) -> list[str]:
        output = spec.get("output", {})
        folder = Path(output.get("folder") or self.data_dir / "outputs" / job_id)
        stem = f"{Path(spec['sourcePath']).stem}_{job_id[:8]}"
        count = max(1, len(spec.get("editedFramePaths", [])))
        names = [stem] if count == 1 else [f"{stem}_{n}" for n in range(1, count + 1)]
        ext = output.get("format", "OUTPUT_FORMAT_MOV").removeprefix("OUTPUT_FORMAT_").lower()
        if ext == "png":
            return [str(folder / name.replace(".", "_")) for name in names]
        return [str(folder / f"{name}.{ext}") for name in names]

    def _new_job(self, spec: JsonDict, state: str, job_id: str = "") -> _Job:
        job_id = job_id or uuid.uuid4().hex
        outputs = self._plan_outputs(spec, job_id)
        overwrite = bool(spec.get("output", {}).get("overwrite", False))
        self._check_outputs(outputs, spec["sourcePath"], overwrite)
        job = _Job(job_id, spec, outputs, self._clock(), self.default_script, state=state)
        self._jobs[job_id] = job
        return job

    def _enqueue_new(self, spec: JsonDict, reason: str) -> _Job:
        job = self._new_job(spec, "new")
        self._enqueue(job, reason)
        return job

    def _enqueue(self, job: _Job, reason: str) -> None:
        ranks = [j.rank for j in self._queued()]
        job.rank = max(ranks) + 1 if ranks else 1.0
        self._record(job, "queued", {"position": len(ranks) + 1, "reason": reason})

    def _by_request_id(self, spec: JsonDict) -> _Job | None:
        request_id = spec.get("requestId")
        if not request_id:
            return None
        return next((j for j in self._jobs.values() if j.spec.get("requestId") == request_id), None)

    def _queued(self) -> list[_Job]:
        queued = [j for j in self._jobs.values() if j.state == "queued"]
        return sorted(queued, key=lambda j: (j.rank, j.created))

    def _ordered(self) -> list[_Job]:
        """ListJobs' order: running, the queue, awaiting their edit, then ended, latest first."""
        running = [j for j in self._jobs.values() if j.state == "running"]
        awaiting = [j for j in self._jobs.values() if j.state == "awaiting_edit"]
        ended = [j for j in self._jobs.values() if j.is_ended]
        awaiting.sort(key=lambda j: j.created, reverse=True)
        ended.sort(key=lambda j: (j.ended or 0.0, j.created), reverse=True)
        return [*running, *self._queued(), *awaiting, *ended]

    def _position(self, job: _Job) -> int:
        if job.state != "queued":
            return 0
        return self._queued().index(job) + 1

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            if JOB_ID.fullmatch(job_id):
                raise NotFound(f"no job {job_id!r}.")
            raise NotFound("no job with the id given; job ids are 32 hexadecimal digits.")
        return job

    # --- round trips ---

    def _submit_round_trip(self, spec: JsonDict) -> _Job:
        clip = self._clips.get(spec["sourcePath"], FakeClip())
        session = dict(spec["editSession"])
        index = int(session.get("frameIndex", 0))
        frame_range = spec.get("frameRange")
        count = (
            frame_range.get("outFrame", 0) - frame_range.get("inFrame", 0)
            if frame_range
            else clip.frame_count
        )
        if index > count - 2:
            raise InvalidSpec(
                f"frame {index} leaves fewer than two of the clip's {count} frames to propagate "
                "the edit into.",
                f"Pick a frame from 0 to {count - 2}.",
            )
        first = frame_range.get("inFrame", 0) if frame_range else 0
        if index:  # the range now starts at the edited frame: its frame 0
            end = frame_range.get("outFrame", 0) if frame_range else clip.frame_count
            spec = dict(spec)
            spec["frameRange"] = drop_zeros({"inFrame": first + index, "outFrame": end})
            spec.setdefault("sourceFps", rational(clip.fps))
            session.pop("frameIndex", None)
            spec["editSession"] = session
            spec = echo_spec(spec)
        job_id = uuid.uuid4().hex
        suffix = "tiff" if session.get("sixteenBit") else "png"
        folder = str(self.data_dir / "edits" / job_id)
        exported = str(Path(folder) / f"{EXPORT_STEM}.{suffix}")
        self._refuse_on_a_full_disk(exported)  # the frame is written first
        job = self._new_job(spec, "awaiting_edit", job_id)
        job.round_trip = _RoundTrip(folder, bool(session.get("followSaves")), job.id, [job.id])
        message = f"Exported the frame ({clip.width}×{clip.height}) to {Path(exported).name}."
        self._record(
            job,
            "edit",
            _edit_event(
                "EXPORTED",
                message,
                path=exported,
                width=clip.width,
                height=clip.height,
                source_frame=first + index,
            ),
        )
        self._open_editor(job, session, exported)
        return job

    def _open_editor(self, job: _Job, session: JsonDict, exported: str) -> None:
        wanted = session.get("openEditor", self.editor.get("openEditor", True))
        if not wanted or self.no_open:
            message = (
                f"Open {exported} in your image editor, edit the frame and save it in the same "
                "folder (PNG, TIFF, JPEG or PSD)."
            )
            self._record(job, "edit", _edit_event("OPEN_SKIPPED", message, path=exported))
            return
        application = self.editor.get("application") or "the default application"
        message = f"Opened {Path(exported).name} in {application}."
        self._record(job, "edit", _edit_event("EDITOR_OPENED", message, path=exported))

    def _round_trip_of(self, job: _Job) -> _RoundTrip:
        round_trip = job.round_trip
        if round_trip is not None and not round_trip.closed and round_trip.job_id == job.id:
            return round_trip
        if "editSession" not in job.spec:
            raise InvalidSpec(
                f"job {job.id} is not a round trip with an image editor.",
                "Submit a new job with the edited frame, or one with edit_session.",
            )
        if round_trip is not None and round_trip.job_id != job.id and not round_trip.closed:
            later = round_trip.job_id
            raise InvalidSpec(
                f"job {job.id} has handed its round trip to job {later}.",
                f"Attach the edit to job {later}.",
            )
        raise InvalidSpec(
            f"job {job.id} is {job.state}; its round trip has ended.",
            "Submit a new round trip, or a new job with the edited frame.",
        )

    def _accept_edit(self, job: _Job, source: str) -> tuple[_Job, int]:
        """A save or a picked file becomes the round trip's next version; returns the job that
        takes it and the version."""
        round_trip = job.round_trip
        assert round_trip is not None
        round_trip.version += 1
        version = round_trip.version
        copy = str(Path(round_trip.folder) / "edits" / f"edit_v{version:03d}.png")
        message = f"Received the edited frame (version {version}) from {Path(source).name}."
        received = _edit_event("EDIT_RECEIVED", message, path=copy, source=source, version=version)
        if _takes_edit(job):
            self._record(job, "edit", received)
            if job.state == "awaiting_edit":
                self._enqueue(job, "QUEUED_REASON_EDIT_RECEIVED")
            return job, version
        spec = {**job.spec, "editedFramePaths": [copy]}
        spec.pop("requestId", None)
        follow = self._enqueue_new(spec, "QUEUED_REASON_FOLLOW_SAVE")
        follow.round_trip = round_trip
        if job.edit is not None:
            follow.edit = {k: v for k, v in job.edit.items() if k != "followJobId"}
        self._record(follow, "edit", received)
        self._record(job, "edit", {**received, "followJobId": follow.id})
        round_trip.job_id = follow.id
        round_trip.jobs.append(follow.id)
        round_trip.started = False
        return follow, version

    # --- the worker ---

    def _tick(self) -> bool:
        """One step of the worker; False when there was nothing to do."""
        if self._disk_full:
            return self._stop_for_the_full_disk()
        if self._running is None:
            queued = [] if self._paused else self._queued()
            if not queued:
                return False
            job = queued[0]
            self._running = job.id
            self._clock_phase = ""
            self._record(job, "started", {"attempt": job.attempt + 1})
            if job.round_trip is not None and job.round_trip.job_id == job.id:
                job.round_trip.started = True
            job.run = self._execution(job)
            return True
        job = self._jobs[self._running]
        assert job.run is not None
        try:
            kind, payload = next(job.run)
        except StopIteration as done:
            self._end(job, "finished", done.value)
        except _Interrupted:
            if job.pause_requested and not job.cancel_requested:
                self._running, job.run = None, None
                self._requeue_first(job, "QUEUED_REASON_PAUSED")  # keeps its finished phases
            else:
                self._end(job, "cancelled", self._cancelled_payload(job, "INTERRUPTED"))
        except ClientError as error:
            self._end(job, "failed", {"error": error.to_dict()})
        else:
            self._record(job, kind, payload)
        return True

    def _stop_for_the_full_disk(self) -> bool:
        """The worker on a full data disk: the running job's next report cannot be stored, so
        it stops with DISK_FULL; a queued job cannot be started. Either way the queue is held."""
        stored = self._full_disk_error()
        if self._running is not None:
            job = self._jobs[self._running]
            stopped = DiskFull(
                f"the job stopped: {stored.message}",
                "Free space on that disk, then submit the job again. Queued jobs run by "
                "themselves once there is room.",
            )
            self._end(job, "failed", {"error": stopped.to_dict()})
            self._waiting_on = stored.to_dict()
            return True
        if self._queued() and not self._paused:
            self._waiting_on = stored.to_dict()
        return False

    def _full_disk_error(self) -> DiskFull:
        return DiskFull(
            f"the disk holding the daemon's data folder {self.data_dir} is full.",
            "Free space on that disk. The daemon goes on by itself once there is room; queued "
            "jobs keep their place.",
        )

    def _refuse_on_a_full_disk(self, writing: str = "") -> None:
        """A call that stores something fails on a full data disk: the job database's error, or
        the file's (`writing`)."""
        if not self._disk_full:
            return
        if writing:
            raise DiskFull(f"No space left on the disk to write {writing}.")
        raise self._full_disk_error()

    def _end(self, job: _Job, kind: str, payload: JsonDict) -> None:
        self._running = None
        job.run = None
        self._record(job, kind, payload)

    def _requeue_first(self, job: _Job, reason: str) -> None:
        """A job that was running goes back to the front of the queue."""
        job.pause_requested = False
        ranks = [j.rank for j in self._queued()]
        job.rank = min(ranks) - 1 if ranks else 1.0
        self._record(job, "queued", {"position": 1, "reason": reason})

    def _execution(self, job: _Job) -> Generator[tuple[str, JsonDict], None, JsonDict]:
        """FakeExecutor.execute, a step per `next`: checks before each step whether the job was
        asked to stop."""
        script = job.script
        overwrite = bool(job.spec.get("output", {}).get("overwrite")) or job.attempt > 1
        self._check_outputs(job.outputs, job.spec["sourcePath"], overwrite)
        job.phase_steps = {}
        if not self._loaded:
            if job.cancel_requested or job.pause_requested:
                raise _Interrupted
            self._loaded = True
            job.phase_steps["load"] = 1
            yield "progress", self._progress("load", 1, 1, 1, 1)
        for phase, total, window, windows in _plan(script):
            key = phase if windows == 1 else f"{phase}#{window}"
            job.phase_steps.setdefault(phase, 0)
            if key in job.done_phases or phase in script.cached_phases:
                yield "progress", self._progress(phase, total, total, window, windows, "cached")
                continue
            for step in range(1, total + 1):
                job.phase_steps[phase] += 1
                if job.cancel_requested or job.pause_requested:
                    raise _Interrupted
                if step == 1 and window == 1 and phase == script.fail_phase:
                    if script.job_outcome == "failed":
                        raise script.failure()
                    if script.job_outcome == "cancelled":
                        job.cancel_requested = True
                        raise _Interrupted
                yield "progress", self._progress(phase, step, total, window, windows)
            if phase == script.preview_phase:
                width, height = PREVIEW_SIZE
                preview = {"png": _preview_png(PREVIEW_SIZE), "width": width, "height": height}
                yield "preview", {**preview, "phase": phase}
            job.done_phases.append(key)
        return self._finished(job)

    def _progress(
        self, phase: str, step: int, total: int, window: int, windows: int, message: str = ""
    ) -> JsonDict:
        progress: JsonDict = {"phase": phase, "clip": window, "clips": windows}
        progress["step"], progress["total"] = step, total
        if phase == self._clock_phase:
            progress["etaSeconds"] = float(self.step_seconds * (total - step))
        self._clock_phase = phase
        if message:
            progress["message"] = message
        return drop_zeros(progress, keep=("etaSeconds",))

    def _finished(self, job: _Job) -> JsonDict:
        frame_range = job.spec.get("frameRange")
        frames = (
            frame_range.get("outFrame", 0) - frame_range.get("inFrame", 0) if frame_range else 8
        )
        fps = job.spec.get("sourceFps") or rational(Fraction(24))
        writer = job.script.output_writer
        if writer is not None:
            for output in job.outputs:
                writer(output, self._job_json(job))
        params = job.spec["params"]
        choices = [_preset_choice(params["preset"]) for _ in job.outputs]
        script = job.script
        finished: JsonDict = {
            "outputPaths": list(job.outputs),
            "frameCount": frames,
            "fps": dict(fps),
            "width": 64,
            "height": 64,
            "preset": ",".join(choice["preset"] for choice in choices),
            "presetChoices": choices,
            "seed": int(params.get("seed", DEFAULT_SEED)),
            "phaseSeconds": {
                phase: self.step_seconds * steps for phase, steps in job.phase_steps.items()
            },
            "windows": script.windows,
            "cacheHits": script.windows if "invert" in script.cached_phases else 0,
            "loraStepsRun": job.phase_steps.get("lora", 0),
        }
        return drop_zeros(finished)

    def _cancelled_payload(self, job: _Job, reason: str) -> JsonDict:
        if reason == "DEQUEUED":
            message, phase = "The job was cancelled before it ran.", ""
        else:
            message, phase = "The job was cancelled while it ran.", self._clock_phase
        payload: JsonDict = {"reason": f"CANCEL_REASON_{reason}"}
        if phase:
            payload["phase"] = phase
        payload["error"] = Cancelled(message).to_dict()
        return payload

    # --- the event log ---

    def _record(self, job: _Job, kind: str, payload: JsonDict) -> None:
        now = self._clock()
        event: JsonDict = {
            "jobId": job.id,
            "seq": len(job.events) + 1,
            "cursor": str(len(self._log) + 1),
            "time": rfc3339(now),
            kind: payload,
        }
        self._apply(job, kind, payload, now)
        job.events.append(event)
        self._log.append(event)
        if job.is_ended and job.round_trip is not None and job.round_trip.job_id == job.id:
            job.round_trip.closed = True
        self._changed.notify_all()

    def _apply(self, job: _Job, kind: str, payload: JsonDict, now: float) -> None:
        """jobs.job.apply: the one state machine."""
        if kind == "queued":
            job.state, job.progress, job.cancel_requested = "queued", None, False
        elif kind == "started":
            job.state, job.attempt, job.started = "running", payload["attempt"], now
        elif kind == "progress":
            job.progress = payload
        elif kind == "finished":
            job.state, job.result, job.ended = "finished", payload, now
        elif kind in ("failed", "cancelled"):
            job.state, job.error, job.ended = kind, payload["error"], now
        elif kind == "edit":
            self._apply_edit(job, payload)

    @staticmethod
    def _apply_edit(job: _Job, edit: JsonDict) -> None:
        kind = edit["kind"]
        if kind == "EDIT_EVENT_KIND_EXPORTED":
            job.edit = drop_zeros(
                {
                    "exportedPath": edit.get("path", ""),
                    "width": edit.get("width", 0),
                    "height": edit.get("height", 0),
                    "sourceFrame": edit.get("sourceFrame", 0),
                }
            )
            return
        if kind != "EDIT_EVENT_KIND_EDIT_RECEIVED":
            return
        if edit.get("followJobId") and job.edit is not None:
            job.edit["followJobId"] = edit["followJobId"]
            return
        if edit.get("followJobId") or not _takes_edit(job):
            return
        job.spec = {**job.spec, "editedFramePaths": [edit["path"]]}
        job.spec = echo_spec(job.spec)
        job.edit = {**(job.edit or {}), "version": edit["version"], "editedPath": edit["path"]}

    def _job_json(self, job: _Job, position: int | None = None) -> JsonDict:
        data: JsonDict = {"id": job.id, "spec": job.spec, "state": f"JOB_STATE_{job.state.upper()}"}
        data["position"] = self._position(job) if position is None else position
        data["createdAt"] = rfc3339(job.created)
        if job.started is not None:
            data["startedAt"] = rfc3339(job.started)
        if job.ended is not None:
            data["endedAt"] = rfc3339(job.ended)
        data["attempt"] = job.attempt
        data["lastSeq"] = len(job.events)
        data["cancelRequested"] = job.cancel_requested
        for key, value in (("progress", job.progress), ("result", job.result)):
            if value is not None:
                data[key] = value
        if job.error is not None:
            data["error"] = job.error
        data["outputPaths"] = list(job.outputs)
        if job.edit is not None:
            edit = {k: v for k, v in job.edit.items() if k != "followJobId"}
            edit["watching"] = not job.is_ended and not job.edit.get("followJobId")
            edit["followSaves"] = bool(job.spec.get("editSession", {}).get("followSaves"))
            data["edit"] = drop_zeros(edit)
        return drop_zeros(data)

    # --- failures ---

    def _check_reachable(self) -> None:
        if self.down:
            if self.down_reason == "not_running":
                raise DaemonNotRunning(
                    f"the framerelay daemon is not running (no {self.config_dir / 'daemon.json'})."
                )
            raise DaemonUnreachable(
                "nothing answers at http://127.0.0.1:0: [Errno 111] Connection refused."
            )
        if not self.token_ok:
            raise Unauthenticated("the call's token is wrong.")

    def _stall_message(self, job_id: str) -> str:
        job = self._jobs.get(job_id)
        state = job.state if job else "unknown"
        return (
            f"job {job_id} is {state} and nothing in the fake can move it on (a round trip "
            "waits for attach_edit or save_edit; a queue waits for a job; a paused queue for "
            "resume_queue)."
        )


def _edit_event(
    kind: str,
    message: str,
    *,
    hint: str = "",
    path: str = "",
    source: str = "",
    version: int = 0,
    width: int = 0,
    height: int = 0,
    source_frame: int = 0,
) -> JsonDict:
    return drop_zeros(
        {
            "kind": f"EDIT_EVENT_KIND_{kind}",
            "message": message,
            "hint": hint,
            "path": path,
            "source": source,
            "version": version,
            "width": width,
            "height": height,
            "sourceFrame": source_frame,
        }
    )


def _longer(items: list[JsonDict], count: int) -> bool:
    return len(items) > count


def _takes_edit(job: _Job) -> bool:
    """A new edit replaces the job's: it has not started (not even before a restart)."""
    return job.state in ("awaiting_edit", "queued") and job.started is None


def _plan(script: Script) -> Iterator[tuple[str, int, int, int]]:
    """(phase, steps, window, windows) in the order the executor reports them."""
    if script.windows <= 1:
        for phase, total in script.phases:
            yield phase, total, 1, 1
        return
    for phase, total in script.phases:
        if phase in PREPARE_PHASES:
            yield phase, total, 1, 1
    for window in range(1, script.windows + 1):
        for phase, total in script.phases:
            if phase not in PREPARE_PHASES:
                yield phase, total, window, script.windows


def _check_texts(spec: JsonDict) -> None:
    paths = [
        ("source", spec.get("sourcePath")),
        *(("edited frame", p) for p in spec.get("editedFramePaths", [])),
        ("mask", spec.get("maskPath")),
        ("output folder", spec.get("output", {}).get("folder")),
    ]
    for what, path in paths:
        if path is None:
            continue
        if len(path) > MAX_PATH_LENGTH:
            raise InvalidSpec(
                f"the {what} path is {len(path)} characters long; the limit is {MAX_PATH_LENGTH}.",
                "Use a shorter path: move the file or rename its folders.",
            )
        if "\x00" in path:
            raise InvalidSpec(
                f"the {what} path contains a NUL character.", "Send the path as plain text."
            )
    for what, text, limit in (
        ("model", spec.get("model", ""), MAX_PATH_LENGTH),
        ("label", spec.get("label", ""), MAX_LABEL_LENGTH),
        ("request id", spec.get("requestId", ""), MAX_REQUEST_ID_LENGTH),
    ):
        _check_text(text, what, limit)
    context = spec.get("hostContext", {})
    if len(context) > MAX_HOST_CONTEXT_ENTRIES:
        raise InvalidSpec(
            f"the host context has {len(context)} entries; the limit is "
            f"{MAX_HOST_CONTEXT_ENTRIES}.",
            "Keep only the keys the host needs to place the result.",
        )
    for key, value in context.items():
        _check_text(key, "host context key", MAX_HOST_CONTEXT_TEXT)
        _check_text(value, f"host context value of {key[:64]!r}", MAX_HOST_CONTEXT_TEXT)


def _check_text(value: str, what: str, limit: int) -> None:
    if len(value) > limit:
        raise InvalidSpec(
            f"the {what} is {len(value)} characters long; the limit is {limit}.",
            f"Send a {what} of at most {limit} characters.",
        )


def _check_absolute(path: str, what: str) -> None:
    if not path or path == ".":
        raise InvalidSpec(f"the {what} path is empty.")
    if not Path(path).is_absolute():
        raise InvalidSpec(f"the {what} path must be absolute, got {path!r}.", ABSOLUTE_HINT)


def _is_file(path: str) -> bool:
    try:
        return os.path.isfile(os.path.realpath(path))
    except (OSError, ValueError):
        return False


def _preset_choice(asked: str) -> JsonDict:
    """The engine picks auto's preset from the pictures; the fake, without any, picks local, as
    for an edit that changed nothing (serve --fake's FakeExecutor does the same)."""
    if asked == "PRESET_AUTO":
        reason = f"local: the edit changed 0% of the frame (under {LOCAL_AREA:.0%})"
        return {
            "preset": "local",
            "chosenByAuto": True,
            "structureCorrelation": 1.0,
            "reason": reason,
        }
    name = asked.removeprefix("PRESET_").lower()
    return {"preset": name, "reason": f"{name}: asked for"}


def _check_session(session: JsonDict, edited: list[str], frame_range: JsonDict | None) -> None:
    if len(edited) > 1:
        raise InvalidSpec(
            f"a round trip makes one edited frame, got {len(edited)}.",
            "Submit one job per edited frame, or a job without a round trip.",
        )
    index = int(session.get("frameIndex", 0))
    if frame_range is not None:
        first, end = frame_range.get("inFrame", 0), frame_range.get("outFrame", 0)
        if index > end - first - 2:
            raise InvalidSpec(
                f"frame {index} leaves fewer than two frames of the range [{first}, {end}) to "
                "propagate the edit into.",
                f"Pick a frame from 0 to {end - first - 2}; the edit propagates forward from it.",
            )


def _check_range(frame_range: JsonDict | None, fps: JsonDict | None) -> None:
    if frame_range is None:
        return
    if fps is None:
        raise InvalidSpec(
            "a frame range needs the source fps.", "Send source_fps, e.g. 24000/1001."
        )
    first, end = frame_range.get("inFrame", 0), frame_range.get("outFrame", 0)
    if end - first < 2:
        raise InvalidSpec(
            f"the frame range must hold at least two frames, got [{first}, {end}).",
            "out_frame is exclusive: [10, 58) is 48 frames starting at frame 10.",
        )
    if end - first > MAX_FRAMES:
        raise InvalidSpec(
            f"the frame range holds {end - first} frames; the limit is {MAX_FRAMES}.",
            "Split the clip into several jobs.",
        )


def _preview_png(size: tuple[int, int]) -> str:
    """serve --fake's preview, base64: frame 0 of its test pattern (a diagonal gradient, each
    channel a third of the way round from the last), as a PNG made with zlib."""
    width, height = size

    def row(y: int) -> bytes:
        pixels = bytearray(b"\x00")  # filter type: none
        for x in range(width):
            base = (x + y) * 2 % 256
            pixels += bytes((base, (base + 85) % 256, (base + 170) % 256))
        return bytes(pixels)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(row(y) for y in range(height))))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(png).decode("ascii")


def _named(value: str | None, default: str) -> str:
    """An enum name, with `default` for an unset one (absent, or ..._UNSPECIFIED)."""
    return default if value is None or value.endswith("_UNSPECIFIED") else value


def crash_loop_error(crashes: int) -> JsonDict:
    return Internal(
        f"the daemon stopped unexpectedly {crashes} times while running this job (it may have "
        "run out of memory), so it is not run again.",
        "Free GPU memory (close other GPU programs, `framerelay unload`) or make the job smaller "
        "(--width/--height, --window), then retry it; the daemon's log tells more.",
    ).to_dict()
