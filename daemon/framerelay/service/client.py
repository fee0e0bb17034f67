"""A blocking gRPC client for the CLI and the tray app; finds the daemon by its discovery file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc

from framerelay.errors import NotFoundError
from framerelay.limits import MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES
from framerelay.proto.v1 import daemon_pb2, daemon_pb2_grpc, events_pb2, jobs_pb2, specs_pb2
from framerelay.service.auth import HEADER, bearer
from framerelay.service.config import config_dir
from framerelay.service.discovery import Discovery, discovery_path, read_discovery
from framerelay.service.errors import error_from_rpc

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_REQUEST_BYTES),
    ("grpc.max_receive_message_length", MAX_RESPONSE_BYTES),
]


class DaemonClient:
    def __init__(self, target: str, token: str, timeout: float = 10.0):
        self.target = target
        self.timeout = timeout
        self._metadata = ((HEADER, bearer(token)),)
        self._channel = grpc.insecure_channel(target, options=CHANNEL_OPTIONS)
        self._stub = daemon_pb2_grpc.DaemonStub(self._channel)

    @classmethod
    def from_discovery(cls, discovery: Discovery, timeout: float = 10.0) -> DaemonClient:
        return cls(discovery.grpc_target, discovery.token, timeout)

    @classmethod
    def connect(cls, folder: Path | None = None, timeout: float = 10.0) -> DaemonClient:
        """Reads `<config dir>/daemon.json` (FRAMERELAY_CONFIG_DIR overrides the folder)."""
        return cls.from_discovery(read_discovery(discovery_path(folder or config_dir())), timeout)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method, request, timeout: float | None = None):
        try:
            return method(request, metadata=self._metadata, timeout=timeout or self.timeout)
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None

    def submit(self, spec: specs_pb2.JobSpec) -> jobs_pb2.Job:
        return self._call(self._stub.SubmitJob, daemon_pb2.SubmitJobRequest(spec=spec)).job

    def get(self, job_id: str) -> jobs_pb2.Job:
        return self._call(self._stub.GetJob, daemon_pb2.GetJobRequest(job_id=job_id)).job

    def list(
        self, states: tuple[jobs_pb2.JobState.ValueType, ...] = (), limit: int = 0
    ) -> daemon_pb2.ListJobsResponse:
        request = daemon_pb2.ListJobsRequest(states=states, limit=limit)
        return self._call(self._stub.ListJobs, request)

    def cancel(self, job_id: str) -> daemon_pb2.CancelJobResponse:
        return self._call(self._stub.CancelJob, daemon_pb2.CancelJobRequest(job_id=job_id))

    def move(self, job_id: str, position: int) -> daemon_pb2.MoveJobResponse:
        request = daemon_pb2.MoveJobRequest(job_id=job_id, position=position)
        return self._call(self._stub.MoveJob, request)

    def watch(self, job_id: str, after_seq: int = 0) -> Iterator[events_pb2.JobEvent]:
        """The job's events after `after_seq`, until its terminal event."""
        request = daemon_pb2.WatchJobRequest(job_id=job_id, after_seq=after_seq)
        try:
            for response in self._stub.WatchJob(request, metadata=self._metadata):
                yield response.event
        except grpc.RpcError as error:
            raise error_from_rpc(error) from None

    def poll(
        self, job_id: str, after_seq: int = 0, wait_seconds: float = 0.0, max_events: int = 0
    ) -> daemon_pb2.PollJobResponse:
        request = daemon_pb2.PollJobRequest(
            job_id=job_id, after_seq=after_seq, wait_seconds=wait_seconds, max_events=max_events
        )
        return self._call(self._stub.PollJob, request, timeout=self.timeout + wait_seconds)

    def status(self) -> daemon_pb2.GetStatusResponse:
        return self._call(self._stub.GetStatus, daemon_pb2.GetStatusRequest())

    def cache_info(self) -> daemon_pb2.GetCacheInfoResponse:
        return self._call(self._stub.GetCacheInfo, daemon_pb2.GetCacheInfoRequest())

    def clear_cache(self) -> daemon_pb2.ClearCacheResponse:
        return self._call(self._stub.ClearCache, daemon_pb2.ClearCacheRequest())

    def attach(self, job_id: str, path: Path) -> daemon_pb2.AttachEditResponse:
        request = daemon_pb2.AttachEditRequest(job_id=job_id, path=str(path))
        return self._call(self._stub.AttachEdit, request, timeout=max(self.timeout, 60.0))

    def editor_config(self) -> daemon_pb2.GetEditorConfigResponse:
        return self._call(self._stub.GetEditorConfig, daemon_pb2.GetEditorConfigRequest())

    def set_editor_config(
        self, config: daemon_pb2.EditorConfig
    ) -> daemon_pb2.SetEditorConfigResponse:
        request = daemon_pb2.SetEditorConfigRequest(config=config)
        return self._call(self._stub.SetEditorConfig, request)

    def watch_queue(self, after_cursor: int | None = None) -> QueueStream:
        """Every job's events after `after_cursor` (None: from now on); `cancel()` ends it."""
        request = daemon_pb2.WatchQueueRequest()
        if after_cursor is not None:
            request.after_cursor = after_cursor
        return QueueStream(self._stub.WatchQueue(request, metadata=self._metadata))

    def pause(self, interrupt_running: bool = False) -> daemon_pb2.PauseQueueResponse:
        request = daemon_pb2.PauseQueueRequest(interrupt_running=interrupt_running)
        return self._call(self._stub.PauseQueue, request)

    def resume(self) -> daemon_pb2.ResumeQueueResponse:
        return self._call(self._stub.ResumeQueue, daemon_pb2.ResumeQueueRequest())

    def unload(self) -> daemon_pb2.UnloadModelResponse:
        request = daemon_pb2.UnloadModelRequest()
        return self._call(self._stub.UnloadModel, request, timeout=max(self.timeout, 60.0))

    def gc_cache(self, max_bytes: int) -> daemon_pb2.GcCacheResponse:
        request = daemon_pb2.GcCacheRequest(max_bytes=max_bytes)
        return self._call(self._stub.GcCache, request, timeout=max(self.timeout, 60.0))

    def defaults(self) -> daemon_pb2.GetDefaultsResponse:
        return self._call(self._stub.GetDefaults, daemon_pb2.GetDefaultsRequest())

    def set_defaults(self, defaults: daemon_pb2.JobDefaults) -> daemon_pb2.SetDefaultsResponse:
        request = daemon_pb2.SetDefaultsRequest(defaults=defaults)
        return self._call(self._stub.SetDefaults, request)

    def resolve(self, job_id: str) -> str:
        """The full id of the one job whose id starts with `job_id`."""
        if len(job_id) == 32:
            return job_id
        matches = [job.id for job in self.list().jobs if job.id.startswith(job_id)]
        if len(matches) != 1:
            found = "no job" if not matches else f"{len(matches)} jobs"
            raise NotFoundError(f"{found} with an id starting {job_id!r}.")
        return matches[0]


class QueueStream:
    """A WatchQueue call: iterate for events; `cancel()` (from any thread) ends the iteration."""

    def __init__(self, call: Any):
        self._call = call

    def __iter__(self) -> Iterator[events_pb2.JobEvent]:
        try:
            for response in self._call:
                yield response.event
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.CANCELLED and self._call.cancelled():
                return
            raise error_from_rpc(error) from None

    def cancel(self) -> None:
        self._call.cancel()
