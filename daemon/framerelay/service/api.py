"""The daemon's API, transport-neutral: protobuf request in, protobuf response out.

The gRPC servicer and the HTTP/JSON facade both call these methods; they raise catalogue errors,
which each transport translates. Streaming methods check their request before returning the
stream, so a bad request fails before anything is sent.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

from framerelay import __version__
from framerelay.errors import BusyError, FramerelayError, InvalidSpecError
from framerelay.jobs.executor import Executor
from framerelay.jobs.queue import CancelOutcome, JobQueue
from framerelay.proto.v1 import daemon_pb2, jobs_pb2
from framerelay.service.cache import CacheStore
from framerelay.service.convert import (
    detected_editor_to_proto,
    editor_config_from_proto,
    editor_config_to_proto,
    event_to_proto,
    job_to_proto,
    spec_from_proto,
    state_from_proto,
    status_to_proto,
)
from framerelay.service.edit_sessions import EditSessions

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
        waiting_on: Callable[[], FramerelayError | None] = lambda: None,
    ):
        self.queue = queue
        self.executor = executor
        self.cache = cache
        self.edits = edits  # round trips with an image editor; None: not offered
        self.waiting_on = waiting_on  # what the worker waits out before it runs jobs again
        self.started = time.monotonic()

    def _job(self, job_id: str) -> jobs_pb2.Job:
        job = self.queue.get(job_id)
        return job_to_proto(job, self.queue.position(job))

    async def submit_job(
        self, request: daemon_pb2.SubmitJobRequest
    ) -> daemon_pb2.SubmitJobResponse:
        spec = spec_from_proto(request.spec)
        await asyncio.to_thread(self.queue.admit, spec)  # file checks and a probe: off the loop
        if spec.edit_session is not None:
            return await self._submit_round_trip(spec)
        job = self.queue.enqueue_admitted(spec)
        return daemon_pb2.SubmitJobResponse(job=job_to_proto(job, self.queue.position(job)))

    async def get_job(self, request: daemon_pb2.GetJobRequest) -> daemon_pb2.GetJobResponse:
        return daemon_pb2.GetJobResponse(job=self._job(request.job_id))

    async def list_jobs(self, request: daemon_pb2.ListJobsRequest) -> daemon_pb2.ListJobsResponse:
        states = [state_from_proto(s) for s in request.states]
        jobs, cursor = self.queue.list(states, request.limit)
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
        return daemon_pb2.GetCacheInfoResponse(
            entries=info.entries,
            bytes=info.bytes,
            root=str(info.root),
            unfinished_bytes=info.unfinished_bytes,
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
            self.waiting_on(),
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
        config = await asyncio.to_thread(edits.settings.update_over_api, config)
        return daemon_pb2.SetEditorConfigResponse(
            config=editor_config_to_proto(config),
            config_path=str(edits.settings.path),
            no_open=edits.no_open,
        )
