"""`DaemonApi`: the methods a host calls, shared by `Client` (HTTP) and `FakeDaemon` (in memory).

Both implement two primitives, `call` (one unary RPC) and `_stream` (a server stream's events);
everything else is written once here, so the two cannot drift apart in names, arguments or
results. Results are plain dicts exactly as the HTTP API returns them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Generator, Iterable, Iterator, Mapping
from os import PathLike, fspath
from typing import Any

from .errors import ClientError, DaemonUnreachable, InvalidSpec, Unavailable

JsonDict = dict[str, Any]
TERMINAL_KINDS = ("finished", "failed", "cancelled")
JOB_STATES = (
    "JOB_STATE_QUEUED",
    "JOB_STATE_RUNNING",
    "JOB_STATE_FINISHED",
    "JOB_STATE_FAILED",
    "JOB_STATE_CANCELLED",
    "JOB_STATE_AWAITING_EDIT",
)
MAX_POLL_SECONDS = 60.0  # the daemon waits at most this long in PollJob


def is_terminal(event: Mapping[str, Any]) -> bool:
    """Whether a JobEvent dict is finished, failed or cancelled (the job's last event)."""
    return any(kind in event for kind in TERMINAL_KINDS)


def state_name(state: str) -> str:
    """ "queued" or "JOB_STATE_QUEUED" -> "JOB_STATE_QUEUED"."""
    name = state if state.startswith("JOB_STATE_") else f"JOB_STATE_{state.upper()}"
    if name not in JOB_STATES:
        raise InvalidSpec(f"unknown job state {state!r}.", f"Use one of {', '.join(JOB_STATES)}.")
    return name


class DaemonApi(ABC):
    """Every RPC a host needs, as methods."""

    @abstractmethod
    def call(self, method: str, body: Mapping[str, Any] | None = None) -> JsonDict:
        """One unary RPC by its proto name ("GetStatus"): the response message as a dict."""

    @abstractmethod
    def _stream(self, method: str, body: JsonDict) -> Generator[JsonDict, None, None]:
        """The events of a server stream (WatchJob, WatchQueue) until it ends; a generator, so
        that nothing is sent before the first event is asked for."""

    def _resume_wait(self, error: ClientError, deadline: float | None) -> float:
        """Called when a stream broke with `error`: waits before it resumes and returns the
        deadline for resuming, or raises. By default a stream does not resume."""
        raise error

    # --- unary ---

    def status(self) -> JsonDict:
        """GetStatus: version, device, modelLoaded, queueLength, runningJobId, pid, queuePaused
        (PauseQueue holds the queue), waitingOn (an ErrorInfo while the worker waits for a
        problem to clear by itself, e.g. a full data disk)…"""
        return self.call("GetStatus")

    def submit(self, spec: Mapping[str, Any]) -> JsonDict:
        """SubmitJob: `{"job": …, "estimate": …, "exportedPath": …}`: the estimate is the
        daemon's pre-flight one for this machine (peakVramBytes, cacheBytes, outputBytes,
        phases with seconds, docs/estimates.md); a job that cannot fit is refused instead
        (OutOfMemory or DiskFull, with a hint).
        exportedPath is for round trips only.

        Build `spec` with `framerelay_client.spec.job_spec`."""
        return self.call("SubmitJob", {"spec": dict(spec)})

    def get_job(self, job_id: str) -> JsonDict:
        """The Job dict (GetJob's `job`), with its live queue position."""
        job: JsonDict = self.call("GetJob", {"jobId": job_id})["job"]
        return job

    def list_jobs(self, states: Iterable[str] = (), limit: int = 0) -> JsonDict:
        """`{"jobs": [...], "cursor": "…"}`: the running job, the queue in order, jobs awaiting
        their edit, then ended jobs, latest first. `states`: "queued" or "JOB_STATE_QUEUED"…"""
        body: JsonDict = {}
        names = [state_name(s) for s in states]
        if names:
            body["states"] = names
        if limit:
            body["limit"] = limit
        return self.call("ListJobs", body)

    def cancel(self, job_id: str) -> JsonDict:
        """`{"job": …, "outcome": "CANCEL_OUTCOME_…"}`: DEQUEUED (it was queued or awaiting its
        edit), INTERRUPT_REQUESTED (running: it stops at its next step) or ALREADY_ENDED."""
        return self.call("CancelJob", {"jobId": job_id})

    def move(self, job_id: str, position: int) -> JsonDict:
        """`{"job": …, "queue": [queued ids in order]}`; position 1 runs next."""
        return self.call("MoveJob", {"jobId": job_id, "position": position})

    def poll(
        self, job_id: str, after_seq: int = 0, wait_seconds: float = 0.0, max_events: int = 0
    ) -> JsonDict:
        """`{"events": [...], "ended": true}` (keys absent when empty or false): the events after
        `after_seq`, waiting up to `wait_seconds` (at most 60) for the first."""
        body: JsonDict = {"jobId": job_id}
        if after_seq:
            body["afterSeq"] = after_seq
        if wait_seconds:
            body["waitSeconds"] = wait_seconds
        if max_events:
            body["maxEvents"] = max_events
        return self.call("PollJob", body)

    def attach_edit(self, job_id: str, path: str | PathLike[str]) -> JsonDict:
        """`{"job": …, "version": n, "warnings": [...]}`: the image at `path` (absolute, on the
        daemon's machine) becomes the edited frame of a round-trip job."""
        return self.call("AttachEdit", {"jobId": job_id, "path": fspath(path)})

    def get_editor_config(self) -> JsonDict:
        """`{"config": {...}, "configPath": "…", "noOpen": true, "detected": [...],
        "readOnly": true}` (booleans absent when false): `detected` lists the image editors
        found on the daemon's machine (`{"name", "label", "path"}`), the only applications
        `set_editor_config` may choose besides "" (the system default)."""
        return self.call("GetEditorConfig")

    def set_editor_config(self, config: Mapping[str, Any]) -> JsonDict:
        """Replaces the [editor] settings (`application`, `openEditor`, `pollSaves`); answers
        with `config`, `configPath` and `noOpen`. Forbidden for an application that is not a
        detected editor, for new `arguments` (config.toml only) and on a daemon run with
        --allow-remote (`readOnly`)."""
        return self.call("SetEditorConfig", {"config": dict(config)})

    def cache_info(self) -> JsonDict:
        """`{"entries": "n", "bytes": "n", "root": "…", "unfinishedBytes": "n", "clips": [...]}`
        (64-bit counts are strings; absent: 0). `bytes` is everything in the cache folder,
        `unfinishedBytes` the part no finished entry holds (checkpoints of LoRA training an
        interrupted job resumes from); `clips` groups the entries by source clip, largest first:
        `{"sourcePath": "…", "entries": "n", "bytes": "n"}`."""
        return self.call("GetCacheInfo")

    def clear_cache(self) -> JsonDict:
        """`{"freedBytes": "n"}`: empties the cache; raises Busy while a job runs."""
        return self.call("ClearCache")

    def gc_cache(self, max_bytes: int) -> JsonDict:
        """`{"freedBytes": "n", "entries": "n", "bytes": "n"}` (what is left): removes least
        recently used entries until the entries hold at most `max_bytes`; Busy while a job runs."""
        return self.call("GcCache", {"maxBytes": str(max_bytes)})

    # --- queue control, model and job defaults ---

    def pause_queue(self, interrupt_running: bool = False) -> JsonDict:
        """`{"paused": true, "interruptedJobId": "…"}`: no queued job starts until
        `resume_queue` (the pause outlives a daemon restart). The running job finishes, or with
        `interrupt_running` stops at its next step and goes back to the front of the queue
        (a `queued` event, reason QUEUED_REASON_PAUSED), to resume from its caches."""
        body: JsonDict = {"interruptRunning": True} if interrupt_running else {}
        return self.call("PauseQueue", body)

    def resume_queue(self) -> JsonDict:
        """`{"wasPaused": true}` (absent: it was not paused): queued jobs start again."""
        return self.call("ResumeQueue")

    def unload_model(self) -> JsonDict:
        """`{"wasLoaded": true}` (absent: nothing was loaded): frees the model and its GPU memory
        now; the next job loads it again. Busy while a job runs (pause, interrupting it, first)."""
        return self.call("UnloadModel")

    def get_defaults(self) -> JsonDict:
        """`{"defaults": {"preset": "PRESET_AUTO", "outputFormat": "OUTPUT_FORMAT_MOV",
        "outputFolder": "…"}, "configPath": "…"}`: what a job that leaves its preset, output
        format or output folder unset gets (outputFolder absent: the daemon's data folder)."""
        return self.call("GetDefaults")

    def set_defaults(self, defaults: Mapping[str, Any]) -> JsonDict:
        """Replaces the job defaults (a JobDefaults dict: build it with
        `framerelay_client.spec.job_defaults`; a key left out takes the built-in default) and
        answers like `get_defaults`. The folder must lie under the daemon's output roots."""
        return self.call("SetDefaults", {"defaults": dict(defaults)})

    # --- streams ---

    def watch(self, job_id: str, after_seq: int = 0) -> Iterator[JsonDict]:
        """The job's events after `after_seq`, live, until its terminal event (at once when it
        had ended before). A dropped stream resumes after the last seq seen: nothing is missed
        or repeated."""
        last = after_seq
        deadline: float | None = None
        while True:
            stream = self._stream("WatchJob", {"jobId": job_id, "afterSeq": last})
            try:
                for event in stream:
                    deadline = None
                    if int(event.get("seq", 0)) <= last:
                        continue
                    last = int(event["seq"])
                    yield event
                    if is_terminal(event):
                        return
                if self._ended(job_id, last):
                    return
                raise DaemonUnreachable("the WatchJob stream ended before the job did.")
            except (DaemonUnreachable, Unavailable) as error:
                deadline = self._resume_wait(error, deadline)
            finally:
                stream.close()

    def watch_queue(self, after_cursor: int | None = None) -> Iterator[JsonDict]:
        """Every job's events after `after_cursor` (None: from now on), live; never ends by
        itself. A dropped stream resumes after the last cursor seen. Take the cursor of
        `list_jobs()` to miss nothing between a listing and the stream."""
        last = (
            int(self.list_jobs(limit=1).get("cursor", 0)) if after_cursor is None else after_cursor
        )
        deadline: float | None = None
        while True:
            stream = self._stream("WatchQueue", {"afterCursor": str(last)})
            try:
                for event in stream:
                    deadline = None
                    cursor = int(event.get("cursor", 0))
                    if cursor <= last:
                        continue
                    last = cursor
                    yield event
                raise DaemonUnreachable("the WatchQueue stream ended (the daemon stopped).")
            except (DaemonUnreachable, Unavailable) as error:
                deadline = self._resume_wait(error, deadline)
            finally:
                stream.close()

    def _ended(self, job_id: str, after_seq: int) -> bool:
        """Whether the job has ended with no event after `after_seq`."""
        return bool(self.poll(job_id, after_seq, max_events=1).get("ended", False))
