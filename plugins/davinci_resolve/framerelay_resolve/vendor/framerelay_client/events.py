"""The event reducer: a job's events (or a Job dict) folded into one `JobView` for a host's UI.

`reduce(view, event)` is pure and ignores events of other jobs and events it has seen (a seq at or
below `view.last_seq`), so a host may feed it a resumed stream, a poll and a queue stream alike.
States, error codes, queued reasons and edit kinds keep the API's names ("JOB_STATE_RUNNING"…);
the preset is the short name ("local"): the one asked for, then, once finished, the one used (what
`auto` chose; one per output, comma-separated, when they differ).

A job that a pause interrupted is queued again with reason QUEUED_REASON_PAUSED; when it runs
again, the phases it had finished come back at once as progress with the message "cached" (as do
phases the engine finds in its cache): `cached` says so for the current phase.

Once finished, the view says what the job did, from the finished event (or a Job's result): the
outputs, frame count and rate, each output's preset and why (`preset_choices`), the seed, seconds
per phase, windows, cache hits, LoRA steps run and the footage warnings.

`progress` (0..1) is an estimate over the whole job: loading and decoding take the first 5 %, then
each window of the clip an equal share, split over its phases by their usual cost (LoRA training
45 %, inversion 20 %, editing 30 %, encoding 5 %). It never goes back while the job runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any

UNSPECIFIED = "JOB_STATE_UNSPECIFIED"
QUEUED = "JOB_STATE_QUEUED"
RUNNING = "JOB_STATE_RUNNING"
FINISHED = "JOB_STATE_FINISHED"
FAILED = "JOB_STATE_FAILED"
CANCELLED = "JOB_STATE_CANCELLED"
AWAITING_EDIT = "JOB_STATE_AWAITING_EDIT"
ENDED_STATES = (FINISHED, FAILED, CANCELLED)
PAUSED = "QUEUED_REASON_PAUSED"
CACHED = "cached"  # the message of a phase that came from the cache

PREPARE_PHASES = ("load", "decode")
PREPARE_SHARE = 0.05
WINDOW_PHASES = {
    "lora": (0.0, 0.45),
    "invert": (0.45, 0.2),
    "edit": (0.65, 0.3),
    "encode": (0.95, 0.05),
}
_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$")


@dataclass(frozen=True)
class PresetChoice:
    """The preset one output used, and why (the finished event's `presetChoices`)."""

    preset: str  # local, style or shape
    chosen_by_auto: bool = False  # auto chose it from the pictures; else the job asked for it
    changed_fraction: float = 0.0  # auto: the fraction of the frame the edit changed
    structure_correlation: float = 0.0  # auto: how well the edges stayed where they were
    reason: str = ""  # one line for people

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PresetChoice:
        return cls(
            preset=str(data.get("preset", "")),
            chosen_by_auto=bool(data.get("chosenByAuto", False)),
            changed_fraction=float(data.get("changedFraction", 0.0)),
            structure_correlation=float(data.get("structureCorrelation", 0.0)),
            reason=str(data.get("reason", "")),
        )


@dataclass(frozen=True)
class JobView:
    job_id: str
    state: str = UNSPECIFIED
    phase: str = ""
    step: int = 0
    total: int = 0
    window: int = 0  # 1-based window of the clip being processed
    windows: int = 0
    eta_seconds: float | None = None  # left in the current phase, as the daemon estimates it
    cached: bool = False  # the current phase came from the cache (or an interrupted run)
    message: str = ""  # the latest progress or round-trip message
    hint: str = ""  # how to fix the problem a round-trip message reports
    progress: float = 0.0  # overall, 0..1
    preset: str = ""
    output_paths: tuple[str, ...] = ()
    error_code: str = ""
    error_message: str = ""
    error_hint: str = ""
    last_seq: int = 0
    awaiting_edit: bool = False
    exported_path: str = ""
    ended: bool = False
    position: int = 0  # 1-based queue position when queued (others' moves shift it silently)
    queued_reason: str = ""  # of the latest queued event: "QUEUED_REASON_PAUSED"…
    attempt: int = 0
    edit_version: int = 0  # accepted edits of a round trip
    started_at: float | None = None  # unix seconds of the latest start
    frame_count: int = 0  # of the result
    # What a finished job did (the finished event):
    fps: Fraction | None = None
    preset_choices: tuple[PresetChoice, ...] = ()  # one per output
    seed: int | None = None
    phase_seconds: dict[str, float] = field(default_factory=dict)  # load, decode, lora, ...
    cache_hits: int = 0  # windows whose LoRA and inversion came from the cache
    lora_steps_run: int = 0
    warnings: tuple[str, ...] = ()  # what the footage made framerelay change or drop

    @classmethod
    def empty(cls, job_id: str) -> JobView:
        return cls(job_id)

    @classmethod
    def from_job(cls, job: Mapping[str, Any]) -> JobView:
        """The view of a Job dict (GetJob, ListJobs, SubmitJob)."""
        state = str(job.get("state", UNSPECIFIED))
        progress = _mapping(job.get("progress"))
        result = _mapping(job.get("result"))
        error = _mapping(job.get("error"))
        edit = _mapping(job.get("edit"))
        params = _mapping(_mapping(job.get("spec")).get("params"))
        view = cls(
            job_id=str(job.get("id", "")),
            state=state,
            position=int(job.get("position", 0)),
            attempt=int(job.get("attempt", 0)),
            last_seq=int(job.get("lastSeq", 0)),
            preset=preset_name(str(result.get("preset") or params.get("preset", ""))),
            output_paths=tuple(result.get("outputPaths") or job.get("outputPaths") or ()),
            error_code=str(error.get("code", "")),
            error_message=str(error.get("message", "")),
            error_hint=str(error.get("hint", "")),
            exported_path=str(edit.get("exportedPath", "")),
            edit_version=int(edit.get("version", 0)),
            started_at=parse_time(job.get("startedAt")),
            frame_count=int(result.get("frameCount", 0)),
            awaiting_edit=state == AWAITING_EDIT,
            ended=state in ENDED_STATES,
        )
        if progress and state == RUNNING:
            view = _with_progress(view, progress)
        if state == FINISHED:
            view = replace(view, progress=1.0, **_result_fields(result))
        return view


def reduce(view: JobView, event: Mapping[str, Any]) -> JobView:
    """The view after `event` (a JobEvent dict); unchanged for another job's or a seen event."""
    seq = int(event.get("seq", 0))
    if event.get("jobId", view.job_id) != view.job_id or seq <= view.last_seq:
        return view
    view = replace(view, last_seq=seq)
    if "queued" in event:
        queued = _mapping(event["queued"])
        return replace(
            view,
            state=QUEUED,
            position=int(queued.get("position", 0)),
            queued_reason=str(queued.get("reason", "")),
            awaiting_edit=False,
            phase="",
            step=0,
            total=0,
            window=0,
            windows=0,
            eta_seconds=None,
            cached=False,
            progress=0.0,
        )
    if "started" in event:
        started = _mapping(event["started"])
        return replace(
            view,
            state=RUNNING,
            position=0,
            attempt=int(started.get("attempt", 0)),
            started_at=parse_time(event.get("time")),
            message="",
            hint="",
        )
    if "progress" in event:
        return _with_progress(replace(view, state=RUNNING), _mapping(event["progress"]))
    if "finished" in event:
        finished = _mapping(event["finished"])
        return replace(
            view,
            state=FINISHED,
            output_paths=tuple(finished.get("outputPaths", ())),
            frame_count=int(finished.get("frameCount", 0)),
            preset=preset_name(str(finished.get("preset", ""))) or view.preset,
            progress=1.0,
            eta_seconds=None,
            ended=True,
            **_result_fields(finished),
        )
    if "failed" in event:
        return _ended(view, FAILED, _mapping(_mapping(event["failed"]).get("error")))
    if "cancelled" in event:
        cancelled = _mapping(event["cancelled"])
        view = replace(view, phase=str(cancelled.get("phase", "")) or view.phase)
        return _ended(view, CANCELLED, _mapping(cancelled.get("error")))
    if "edit" in event:
        return _with_edit(view, _mapping(event["edit"]))
    return view  # a preview, or a kind newer than this client


def reduce_all(view: JobView, events: Iterable[Mapping[str, Any]]) -> JobView:
    for event in events:
        view = reduce(view, event)
    return view


def reduce_queue(views: Mapping[str, JobView], event: Mapping[str, Any]) -> dict[str, JobView]:
    """Every job's view after one event of a queue stream (a new job gets a view of its own)."""
    job_id = str(event.get("jobId", ""))
    current = views.get(job_id) or JobView.empty(job_id)
    return {**views, job_id: reduce(current, event)}


def describe(view: JobView) -> str:
    """One line for a status bar: "Queued (2)", "edit 3/4 · window 1/2 · 12 s left"…"""
    if view.state == QUEUED:
        text = f"Queued ({view.position})" if view.position else "Queued"
        return f"{text} · stopped by a pause" if view.queued_reason == PAUSED else text
    if view.state == AWAITING_EDIT:
        return view.message or f"Waiting for the edited frame: {view.exported_path}"
    if view.state == FINISHED:
        return "Finished"
    if view.state in (FAILED, CANCELLED):
        word = "Failed" if view.state == FAILED else "Cancelled"
        return f"{word}: {view.error_message}" if view.error_message else word
    if view.state == RUNNING:
        if not view.phase:
            parts = ["Starting"]
        elif view.cached:
            parts = [f"{view.phase} cached"]
        else:
            parts = [f"{view.phase} {view.step}/{view.total}"]
        if view.windows > 1:
            parts.append(f"window {view.window}/{view.windows}")
        if view.eta_seconds is not None and view.eta_seconds >= 1:
            parts.append(f"{view.eta_seconds:.0f} s left")
        return " · ".join(parts)
    return "Unknown"


def remaining_seconds(view: JobView, now: float) -> float | None:
    """Seconds left for the whole job, from its pace since it started; None until known."""
    if view.state != RUNNING or view.started_at is None or view.progress < 0.02:
        return None
    elapsed = max(0.0, now - view.started_at)
    return elapsed * (1.0 - view.progress) / view.progress


def preset_name(value: str) -> str:
    """ "PRESET_LOCAL" -> "local"; "" and "PRESET_UNSPECIFIED" -> "" (unknown yet)."""
    name = value.lower().removeprefix("preset_")
    return "" if name == "unspecified" else name


def parse_time(value: object) -> float | None:
    """Unix seconds of an RFC 3339 timestamp as the API writes it (up to nanoseconds)."""
    if not isinstance(value, str):
        return None
    match = _TIME.match(value)
    if match is None:
        return None
    stamp, fraction, zone = match.groups()
    moment = datetime.fromisoformat(stamp).replace(tzinfo=UTC)
    seconds = moment.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


def overall_progress(phase: str, step: int, total: int, window: int, windows: int) -> float | None:
    """The estimate described at the top of the module; None for a phase it does not know."""
    fraction = min(1.0, step / total) if total > 0 else 0.0
    if phase in PREPARE_PHASES:
        return PREPARE_SHARE * fraction
    if phase not in WINDOW_PHASES:
        return None
    start, weight = WINDOW_PHASES[phase]
    count = max(windows, 1)
    done = min(max(window, 1), count) - 1 + start + weight * fraction
    return PREPARE_SHARE + (1.0 - PREPARE_SHARE) * done / count


def _with_progress(view: JobView, progress: Mapping[str, Any]) -> JobView:
    phase = str(progress.get("phase", ""))
    step, total = int(progress.get("step", 0)), int(progress.get("total", 0))
    window, windows = int(progress.get("clip", 0)), int(progress.get("clips", 0))
    estimate = overall_progress(phase, step, total, window, windows)
    eta = progress.get("etaSeconds")
    return replace(
        view,
        phase=phase,
        step=step,
        total=total,
        window=window,
        windows=windows,
        eta_seconds=float(eta) if eta is not None else None,
        cached=progress.get("message") == CACHED,
        message=str(progress.get("message", "")),
        hint="",
        progress=view.progress if estimate is None else max(view.progress, estimate),
    )


def _ended(view: JobView, state: str, error: Mapping[str, Any]) -> JobView:
    return replace(
        view,
        state=state,
        error_code=str(error.get("code", "")),
        error_message=str(error.get("message", "")),
        error_hint=str(error.get("hint", "")),
        eta_seconds=None,
        awaiting_edit=False,
        ended=True,
    )


def _with_edit(view: JobView, edit: Mapping[str, Any]) -> JobView:
    kind = str(edit.get("kind", ""))
    view = replace(view, message=str(edit.get("message", "")), hint=str(edit.get("hint", "")))
    if kind == "EDIT_EVENT_KIND_EXPORTED":
        return replace(
            view, state=AWAITING_EDIT, awaiting_edit=True, exported_path=str(edit.get("path", ""))
        )
    if kind == "EDIT_EVENT_KIND_EDIT_RECEIVED" and not edit.get("followJobId"):
        return replace(view, edit_version=int(edit.get("version", view.edit_version)))
    return view


def _result_fields(finished: Mapping[str, Any]) -> dict[str, Any]:
    """What a finished event (or a Job's result) says the job did, as JobView fields."""
    fps = _mapping(finished.get("fps"))
    fields: dict[str, Any] = {
        "fps": Fraction(int(fps["num"]), int(fps["den"])) if fps.get("den") else None,
        "preset_choices": tuple(
            PresetChoice.from_json(_mapping(c)) for c in finished.get("presetChoices", ())
        ),
        "seed": int(finished.get("seed", 0)),  # proto3 JSON leaves out a seed of 0
        "phase_seconds": {
            str(k): float(v) for k, v in _mapping(finished.get("phaseSeconds")).items()
        },
        "cache_hits": int(finished.get("cacheHits", 0)),
        "lora_steps_run": int(finished.get("loraStepsRun", 0)),
        "warnings": tuple(str(w) for w in finished.get("warnings", ())),
    }
    if "windows" in finished:
        fields["windows"] = int(finished["windows"])
    return fields


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
