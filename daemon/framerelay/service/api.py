"""The daemon's API, transport-neutral: protobuf request in, protobuf response out.

The gRPC servicer and the HTTP/JSON facade both call these methods; they raise catalogue errors,
which each transport translates. Streaming methods check their request before returning the
stream, so a bad request fails before anything is sent.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

from google.protobuf.message import Message

from framerelay import __version__
from framerelay.errors import BusyError, InvalidSpecError
from framerelay.jobs import preflight
from framerelay.jobs.executor import Executor
from framerelay.jobs.job import Job, JobState
from framerelay.jobs.queue import CancelOutcome, JobQueue
from framerelay.jobs.spec import ClipInfo, JobSpec
from framerelay.jobs.worker import Worker
from framerelay.proto.v1 import daemon_pb2, jobs_pb2
from framerelay.service.cache import CacheStore
from framerelay.service.convert import (
    defaults_from_proto,
    defaults_to_proto,
    detected_editor_to_proto,
    editor_config_from_proto,
    editor_config_to_proto,
    estimate_to_proto,
    event_to_proto,
    job_to_proto,
    spec_from_proto,
    state_from_proto,
    status_to_proto,
    with_defaults,
)
from framerelay.service.job_defaults import DefaultsSettings, JobDefaults
from framerelay.service.round_trips import EditSessions

MAX_POLL_SECONDS = 60.0
CANCEL_OUTCOMES = {
    CancelOutcome.dequeued: daemon_pb2.CANCEL_OUTCOME_DEQUEUED,
    CancelOutcome.interrupt_requested: daemon_pb2.CANCEL_OUTCOME_INTERRUPT_REQUESTED,
    CancelOutcome.already_ended: daemon_pb2.CANCEL_OUTCOME_ALREADY_ENDED,
}


@dataclass(frozen=True)
class Method:
    name: str  # as in the proto: SubmitJob
    handler: str  # DaemonApi method: submit_job
    request_type: type[Message]
    streaming: bool


def snake_case(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def methods() -> dict[str, Method]:
    service = daemon_pb2.DESCRIPTOR.services_by_name["Daemon"]
    return {
        m.name: Method(
            m.name, snake_case(m.name), getattr(daemon_pb2, m.input_type.name), m.server_streaming
        )
        for m in service.methods
    }


class DaemonApi:
    def __init__(
        self,
        queue: JobQueue,
        executor: Executor,
        cache: CacheStore,
        edits: EditSessions | None = None,
        worker: Worker | None = None,
        defaults: DefaultsSettings | None = None,
        machine: preflight.MachineRecord | None = None,
        cache_root: Path | None = None,
    ):
        self.queue = queue
        self.machine = machine  # this machine's measured speeds; None: no estimates
        self.cache_root = cache_root
        self.executor = executor
        self.cache = cache
        self.edits = edits  # round trips with an image editor; None: not offered
        self.worker = worker  # None: the model is unloaded directly (no worker to coordinate)
        self.defaults = defaults  # None: the built-in defaults, which cannot be changed
        self.started = time.monotonic()
        self._config_writes = asyncio.Lock()  # one writer of config.toml at a time

    def _job(self, job_id: str) -> jobs_pb2.Job:
        job = self.queue.get(job_id)
        return job_to_proto(job, self.queue.position(job))

    async def submit_job(
        self, request: daemon_pb2.SubmitJobRequest
    ) -> daemon_pb2.SubmitJobResponse:
        defaults = self.defaults.current() if self.defaults else JobDefaults()
        spec = spec_from_proto(with_defaults(request.spec, defaults))
        if spec.segment is not None:
            spec = segment_of(spec, self.queue.get(spec.segment.of_job))
        # file checks, a probe and the pre-flight estimate: off the loop
        clip = await asyncio.to_thread(self.queue.admit, spec)
        if spec.segment is not None:
            check_segment_window(spec, clip)
        checked = await asyncio.to_thread(self._preflight, spec, clip)
        if spec.edit_session is not None:
            response = await self._submit_round_trip(spec)
        else:
            job = self.queue.enqueue_admitted(spec)
            response = daemon_pb2.SubmitJobResponse(job=job_to_proto(job, self.queue.position(job)))
        if checked is not None:
            response.estimate.CopyFrom(estimate_to_proto(checked.estimate, checked.gpu_total_bytes))
        return response

    def _preflight(self, spec: JobSpec, clip: ClipInfo | None) -> preflight.Preflight | None:
        """The estimate; raises when the job cannot fit (docs/estimates.md)."""
        if self.machine is None:
            return None
        status = self.executor.status()
        return preflight.check(
            spec,
            clip,
            self.machine,
            preflight.model_key(spec),
            status.device,
            status.vram_total_bytes,
            spec.output_folder or self.queue.output_root,
            self.cache_root,
        )

    async def get_job(self, request: daemon_pb2.GetJobRequest) -> daemon_pb2.GetJobResponse:
        return daemon_pb2.GetJobResponse(job=self._job(request.job_id))

    async def list_jobs(self, request: daemon_pb2.ListJobsRequest) -> daemon_pb2.ListJobsResponse:
        states = [state_from_proto(s) for s in request.states]
        jobs, cursor = self.queue.list_jobs(states, request.limit)
        positions = self.queue.positions()
        return daemon_pb2.ListJobsResponse(
            jobs=[job_to_proto(job, positions.get(job.id, 0)) for job in jobs], cursor=cursor
        )

    async def cancel_job(
        self, request: daemon_pb2.CancelJobRequest
    ) -> daemon_pb2.CancelJobResponse:
        job, outcome = self.queue.cancel(request.job_id)
        return daemon_pb2.CancelJobResponse(
            job=job_to_proto(job, self.queue.position(job)), outcome=CANCEL_OUTCOMES[outcome]
        )

    async def move_job(self, request: daemon_pb2.MoveJobRequest) -> daemon_pb2.MoveJobResponse:
        job, order = self.queue.move(request.job_id, request.position)
        return daemon_pb2.MoveJobResponse(
            job=job_to_proto(job, order.index(job.id) + 1), queue=order
        )

    async def watch_job(
        self, request: daemon_pb2.WatchJobRequest
    ) -> AsyncIterator[daemon_pb2.WatchJobResponse]:
        self.queue.get(request.job_id)
        events = self.queue.watch(request.job_id, request.after_seq)
        return (daemon_pb2.WatchJobResponse(event=event_to_proto(e)) async for e in events)

    async def poll_job(self, request: daemon_pb2.PollJobRequest) -> daemon_pb2.PollJobResponse:
        wait = min(max(request.wait_seconds, 0.0), MAX_POLL_SECONDS)
        events, ended = await self.queue.poll(
            request.job_id, request.after_seq, wait, request.max_events
        )
        return daemon_pb2.PollJobResponse(events=[event_to_proto(e) for e in events], ended=ended)

    async def watch_queue(
        self, request: daemon_pb2.WatchQueueRequest
    ) -> AsyncIterator[daemon_pb2.WatchQueueResponse]:
        after = request.after_cursor if request.HasField("after_cursor") else None
        last = self.queue.store.last_cursor()
        if after is not None and after > last:
            raise InvalidSpecError(
                f"after_cursor {after} is beyond the last event's cursor, {last}.",
                "Resume from a cursor the daemon gave (ListJobs, or an event), or omit it.",
            )
        events = self.queue.watch_all(after)
        return (daemon_pb2.WatchQueueResponse(event=event_to_proto(e)) async for e in events)

    async def get_cache_info(
        self, request: daemon_pb2.GetCacheInfoRequest
    ) -> daemon_pb2.GetCacheInfoResponse:
        info = await asyncio.to_thread(self.cache.info)
        clips = [
            daemon_pb2.CacheClip(source_path=c.source, entries=c.entries, bytes=c.bytes)
            for c in info.clips
        ]
        return daemon_pb2.GetCacheInfoResponse(
            entries=info.entries,
            bytes=info.bytes,
            root=str(info.root),
            unfinished_bytes=info.unfinished_bytes,
            clips=clips,
        )

    async def clear_cache(
        self, request: daemon_pb2.ClearCacheRequest
    ) -> daemon_pb2.ClearCacheResponse:
        running = self.queue.running_job_id()
        if running is not None:
            raise BusyError(f"job {running} is running and may be using the cache.")
        return daemon_pb2.ClearCacheResponse(freed_bytes=await asyncio.to_thread(self.cache.clear))

    async def get_status(
        self, request: daemon_pb2.GetStatusRequest
    ) -> daemon_pb2.GetStatusResponse:
        return status_to_proto(
            self.executor.status(),
            __version__,
            self.queue.store.queue_length(),
            self.queue.running_job_id(),
            time.monotonic() - self.started,
            os.getpid(),
            self.worker.waiting_on if self.worker is not None else None,
            self.queue.paused,
        )

    # --- round trips with an image editor ---

    def _edits(self) -> EditSessions:
        if self.edits is None:
            raise InvalidSpecError(
                "this daemon does not run round trips with an image editor.",
                "Submit the job with its edited frame.",
            )
        return self.edits

    async def _submit_round_trip(self, spec) -> daemon_pb2.SubmitJobResponse:
        job = await self._edits().submit(spec)
        exported = job.edit.exported_path if job.edit else ""
        return daemon_pb2.SubmitJobResponse(
            job=job_to_proto(job, self.queue.position(job)), exported_path=exported
        )

    async def attach_edit(
        self, request: daemon_pb2.AttachEditRequest
    ) -> daemon_pb2.AttachEditResponse:
        job, accepted = await self._edits().attach(request.job_id, Path(request.path))
        return daemon_pb2.AttachEditResponse(
            job=job_to_proto(job, self.queue.position(job)),
            version=accepted.version,
            warnings=list(accepted.warnings),
        )

    async def get_editor_config(
        self, request: daemon_pb2.GetEditorConfigRequest
    ) -> daemon_pb2.GetEditorConfigResponse:
        edits = self._edits()
        config = await asyncio.to_thread(edits.settings.current)
        detected = await asyncio.to_thread(edits.settings.detect)
        return daemon_pb2.GetEditorConfigResponse(
            config=editor_config_to_proto(config),
            config_path=str(edits.settings.path),
            no_open=edits.no_open,
            detected=[detected_editor_to_proto(editor) for editor in detected],
            read_only=edits.settings.locked,
        )

    async def set_editor_config(
        self, request: daemon_pb2.SetEditorConfigRequest
    ) -> daemon_pb2.SetEditorConfigResponse:
        edits = self._edits()
        config = editor_config_from_proto(request.config)
        async with self._config_writes:
            config = await asyncio.to_thread(edits.settings.update_over_api, config)
        return daemon_pb2.SetEditorConfigResponse(
            config=editor_config_to_proto(config),
            config_path=str(edits.settings.path),
            no_open=edits.no_open,
        )

    # --- queue control, model, cache and defaults ---

    async def pause_queue(
        self, request: daemon_pb2.PauseQueueRequest
    ) -> daemon_pb2.PauseQueueResponse:
        interrupted = self.queue.pause(request.interrupt_running)
        return daemon_pb2.PauseQueueResponse(paused=True, interrupted_job_id=interrupted or "")

    async def resume_queue(
        self, request: daemon_pb2.ResumeQueueRequest
    ) -> daemon_pb2.ResumeQueueResponse:
        return daemon_pb2.ResumeQueueResponse(was_paused=self.queue.resume())

    async def unload_model(
        self, request: daemon_pb2.UnloadModelRequest
    ) -> daemon_pb2.UnloadModelResponse:
        if self.worker is not None:
            return daemon_pb2.UnloadModelResponse(was_loaded=await self.worker.unload_now())
        loaded = self.executor.status().model_loaded
        await asyncio.to_thread(self.executor.unload)
        return daemon_pb2.UnloadModelResponse(was_loaded=loaded)

    async def gc_cache(self, request: daemon_pb2.GcCacheRequest) -> daemon_pb2.GcCacheResponse:
        running = self.queue.running_job_id()
        if running is not None:
            raise BusyError(f"job {running} is running and may be using the cache.")
        freed = await asyncio.to_thread(self.cache.gc, request.max_bytes)
        info = await asyncio.to_thread(self.cache.info)
        return daemon_pb2.GcCacheResponse(freed_bytes=freed, entries=info.entries, bytes=info.bytes)

    def _defaults(self) -> DefaultsSettings:
        if self.defaults is None:
            raise InvalidSpecError(
                "this daemon has no config file for job defaults.",
                "Set the preset, output format and folder in each job.",
            )
        return self.defaults

    async def get_defaults(
        self, request: daemon_pb2.GetDefaultsRequest
    ) -> daemon_pb2.GetDefaultsResponse:
        settings = self._defaults()
        defaults = await asyncio.to_thread(settings.current)
        return daemon_pb2.GetDefaultsResponse(
            defaults=defaults_to_proto(defaults), config_path=str(settings.path)
        )

    async def set_defaults(
        self, request: daemon_pb2.SetDefaultsRequest
    ) -> daemon_pb2.SetDefaultsResponse:
        settings = self._defaults()
        defaults = defaults_from_proto(request.defaults)
        async with self._config_writes:
            defaults = await asyncio.to_thread(settings.update, defaults)
        return daemon_pb2.SetDefaultsResponse(
            defaults=defaults_to_proto(defaults), config_path=str(settings.path)
        )


def segment_of(spec: JobSpec, earlier: Job) -> JobSpec:
    """A segment job with the earlier job's parameters and edited frame filled in
    (docs/segments.md); refuses one that does not continue that take."""
    segment = spec.segment
    assert segment is not None
    base = earlier.spec
    if earlier.state is not JobState.finished:
        raise InvalidSpecError(
            f"job {earlier.id} has not finished ({earlier.state.value}); only a finished take "
            "can have a segment re-rendered.",
            "Wait for it to finish, or submit the whole job again.",
        )
    if base.segment is not None:
        raise InvalidSpecError(
            f"job {earlier.id} is itself a re-rendered segment.",
            "Re-render a segment of the original job's take, or the whole take.",
        )
    if (spec.source, spec.frame_range) != (base.source, base.frame_range):
        raise InvalidSpecError(
            "a segment re-renders the same source and frame range as the earlier job.",
            f"Send the earlier job's source ({base.source.name}) and frame range.",
        )
    if len(base.edited_frames) != 1:
        raise InvalidSpecError(
            f"job {earlier.id} made {len(base.edited_frames)} takes or keyframes.",
            "Segments re-render takes of one edited frame; submit the whole job again.",
        )
    at = base.edited_frame_indices
    edited = spec.edited_frames if segment.new_edited_frame else base.edited_frames
    if segment.new_edited_frame and len(edited) != 1:
        raise InvalidSpecError(
            "a segment with a new edited frame needs that one edited frame.",
            "Send the edit of the take's frame at from_frame as edited_frame_paths[0].",
        )
    filled = replace(
        segment,
        base_preset=base.preset,
        base_params=base.params,
        base_edited_frame=base.edited_frames[0],
    )
    return replace(spec, edited_frames=edited, edit_frames=at, edit_session=None, segment=filled)


def check_segment_window(spec: JobSpec, clip: ClipInfo | None) -> None:
    """The segment's window exists in the take, and a new edited frame starts one."""
    from framerelay.engine import segments

    segment = spec.segment
    assert segment is not None
    params = spec.engine_params()
    at = spec.edited_frame_indices[0]
    start = segments.window_for(segment.from_frame, at, params, segment.new_edited_frame)
    count = clip.frame_count if clip is not None else None
    if count is None and spec.frame_range is not None:
        count = spec.frame_range.count
    if count is not None:
        segments.check_start(start, at, count, params)
