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
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

from framerelay import __version__
from framerelay.errors import BusyError, InvalidSpecError
from framerelay.jobs.executor import Executor
from framerelay.jobs.queue import CancelOutcome, JobQueue
from framerelay.jobs.worker import Worker
from framerelay.proto.v1 import daemon_pb2, jobs_pb2
from framerelay.service.cache import CacheStore
from framerelay.service.convert import (
    defaults_from_proto,
    defaults_to_proto,
    detected_editor_to_proto,
    editor_config_from_proto,
    editor_config_to_proto,
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
    ):
        self.queue = queue
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
        await asyncio.to_thread(self.queue.admit, spec)  # file checks and a probe: off the loop
        if spec.edit_session is not None:
            return await self._submit_round_trip(spec)
        job = self.queue.enqueue_admitted(spec)
        return daemon_pb2.SubmitJobResponse(job=job_to_proto(job, self.queue.position(job)))

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
