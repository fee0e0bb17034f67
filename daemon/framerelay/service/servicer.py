"""The gRPC servicer: each method translates errors and delegates to `DaemonApi`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeAlias

import grpc.aio

from framerelay.proto.v1 import daemon_pb2, daemon_pb2_grpc
from framerelay.service.api import DaemonApi
from framerelay.service.errors import rpc_errors

Context: TypeAlias = grpc.aio.ServicerContext


class DaemonServicer(daemon_pb2_grpc.DaemonServicer):
    def __init__(self, api: DaemonApi):
        self._api = api

    async def SubmitJob(self, request: daemon_pb2.SubmitJobRequest, context: Context):
        async with rpc_errors(context, "SubmitJob"):
            return await self._api.submit_job(request)

    async def GetJob(self, request: daemon_pb2.GetJobRequest, context: Context):
        async with rpc_errors(context, "GetJob"):
            return await self._api.get_job(request)

    async def ListJobs(self, request: daemon_pb2.ListJobsRequest, context: Context):
        async with rpc_errors(context, "ListJobs"):
            return await self._api.list_jobs(request)

    async def CancelJob(self, request: daemon_pb2.CancelJobRequest, context: Context):
        async with rpc_errors(context, "CancelJob"):
            return await self._api.cancel_job(request)

    async def MoveJob(self, request: daemon_pb2.MoveJobRequest, context: Context):
        async with rpc_errors(context, "MoveJob"):
            return await self._api.move_job(request)

    async def WatchJob(
        self, request: daemon_pb2.WatchJobRequest, context: Context
    ) -> AsyncIterator[daemon_pb2.WatchJobResponse]:
        async with rpc_errors(context, "WatchJob"):
            async for response in await self._api.watch_job(request):
                yield response

    async def PollJob(self, request: daemon_pb2.PollJobRequest, context: Context):
        async with rpc_errors(context, "PollJob"):
            return await self._api.poll_job(request)

    async def WatchQueue(
        self, request: daemon_pb2.WatchQueueRequest, context: Context
    ) -> AsyncIterator[daemon_pb2.WatchQueueResponse]:
        async with rpc_errors(context, "WatchQueue"):
            async for response in await self._api.watch_queue(request):
                yield response

    async def GetCacheInfo(self, request: daemon_pb2.GetCacheInfoRequest, context: Context):
        async with rpc_errors(context, "GetCacheInfo"):
            return await self._api.get_cache_info(request)

    async def ClearCache(self, request: daemon_pb2.ClearCacheRequest, context: Context):
        async with rpc_errors(context, "ClearCache"):
            return await self._api.clear_cache(request)

    async def GetStatus(self, request: daemon_pb2.GetStatusRequest, context: Context):
        async with rpc_errors(context, "GetStatus"):
            return await self._api.get_status(request)

    async def AttachEdit(self, request: daemon_pb2.AttachEditRequest, context: Context):
        async with rpc_errors(context, "AttachEdit"):
            return await self._api.attach_edit(request)

    async def GetEditorConfig(self, request: daemon_pb2.GetEditorConfigRequest, context: Context):
        async with rpc_errors(context, "GetEditorConfig"):
            return await self._api.get_editor_config(request)

    async def SetEditorConfig(self, request: daemon_pb2.SetEditorConfigRequest, context: Context):
        async with rpc_errors(context, "SetEditorConfig"):
            return await self._api.set_editor_config(request)

    async def PauseQueue(self, request: daemon_pb2.PauseQueueRequest, context: Context):
        async with rpc_errors(context, "PauseQueue"):
            return await self._api.pause_queue(request)

    async def ResumeQueue(self, request: daemon_pb2.ResumeQueueRequest, context: Context):
        async with rpc_errors(context, "ResumeQueue"):
            return await self._api.resume_queue(request)

    async def UnloadModel(self, request: daemon_pb2.UnloadModelRequest, context: Context):
        async with rpc_errors(context, "UnloadModel"):
            return await self._api.unload_model(request)

    async def GcCache(self, request: daemon_pb2.GcCacheRequest, context: Context):
        async with rpc_errors(context, "GcCache"):
            return await self._api.gc_cache(request)

    async def GetDefaults(self, request: daemon_pb2.GetDefaultsRequest, context: Context):
        async with rpc_errors(context, "GetDefaults"):
            return await self._api.get_defaults(request)

    async def SetDefaults(self, request: daemon_pb2.SetDefaultsRequest, context: Context):
        async with rpc_errors(context, "SetDefaults"):
            return await self._api.set_defaults(request)
