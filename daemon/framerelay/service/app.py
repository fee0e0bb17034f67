"""The composition root: store, queue, worker, gRPC server, HTTP facade and discovery file.

`Daemon` runs inside an event loop (`framerelay serve` uses `asyncio.run`); `DaemonThread` runs one
in a background thread for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from concurrent.futures import Future
from dataclasses import replace
from typing import Any

import grpc.aio

from framerelay import __version__
from framerelay.cache import ArtifactCache
from framerelay.errors import InvalidSpecError
from framerelay.jobs.executor import Executor
from framerelay.jobs.preflight import MachineRecord
from framerelay.jobs.queue import JobQueue
from framerelay.jobs.reserve import DiskReserve
from framerelay.jobs.store import JobStore
from framerelay.jobs.worker import Worker
from framerelay.limits import MAX_REQUEST_BYTES, MAX_RESPONSE_BYTES
from framerelay.proto.v1 import daemon_pb2_grpc
from framerelay.service.api import DaemonApi
from framerelay.service.auth import Authenticator, TokenInterceptor
from framerelay.service.cache import ArtifactCacheStore, CacheStore
from framerelay.service.config import DaemonConfig, is_loopback
from framerelay.service.discovery import (
    Discovery,
    discovery_path,
    discovery_problem,
    remove_discovery,
    url_host,
    write_discovery,
)
from framerelay.service.editor_settings import EditorSettings, config_file
from framerelay.service.http_facade import HttpFacade
from framerelay.service.instance import InstanceLock
from framerelay.service.job_defaults import DefaultsSettings
from framerelay.service.logsetup import SecretScrubber
from framerelay.service.round_trips import EditSessions
from framerelay.service.servicer import DaemonServicer

log = logging.getLogger(__name__)

# Requests are small (the largest, SubmitJob, is a few kilobytes); responses can carry previews
# and long job lists.
MAX_METADATA_BYTES = 16 * 1024
GRPC_OPTIONS = [
    ("grpc.so_reuseport", 0),  # a taken port is an error, not a shared one
    ("grpc.max_receive_message_length", MAX_REQUEST_BYTES),
    ("grpc.max_send_message_length", MAX_RESPONSE_BYTES),
    ("grpc.max_metadata_size", MAX_METADATA_BYTES),
]


class Daemon:
    def __init__(
        self,
        config: DaemonConfig,
        executor: Executor,
        cache: CacheStore | None = None,
        token: str | None = None,
    ):
        self.config = config.validate()
        self.executor = executor
        self.cache = cache or ArtifactCacheStore(ArtifactCache(config.cache_dir))
        self.auth = Authenticator(token)
        self.discovery: Discovery | None = None
        self._scrubber = SecretScrubber(self.auth.secrets)
        self._guard_task: asyncio.Task[None] | None = None
        self._lock = InstanceLock(config.data_dir)
        self._store: JobStore | None = None
        self._edits: EditSessions | None = None
        self._server: grpc.aio.Server | None = None
        self._http: HttpFacade | None = None
        self._worker: Worker | None = None
        self._worker_task: asyncio.Task[None] | None = None
        self._stopped = asyncio.Event()

    @property
    def token(self) -> str:
        return self.auth.token

    @property
    def queue(self) -> JobQueue:
        assert self._worker is not None, "the daemon is not started"
        return self._worker.queue

    async def start(self) -> Discovery:
        try:
            return await self._start()
        except BaseException:
            await self.stop(grace=0)
            raise

    async def _start(self) -> Discovery:
        config = self.config
        self._scrubber.install()
        self._lock.acquire()
        for folder in (config.data_dir, config.outputs_dir, config.work_dir, config.edits_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._store = JobStore(config.database)
        queue = JobQueue(self._store, config.outputs_dir, policy=config.output_policy())
        settings = EditorSettings(config_file(config.config_dir), locked=config.allow_remote)
        self._edits = EditSessions(queue, config.edits_dir, settings, no_open=config.no_open)
        await self._edits.resume()
        reserve = DiskReserve(config.data_dir)
        if not reserve.ensure():
            log.warning("the disk of %s is full; jobs wait until it has room", config.data_dir)
        defaults = DefaultsSettings(config_file(config.config_dir), config.output_policy())
        machine = MachineRecord(config.data_dir)  # measured speeds, for the estimates
        self._worker = Worker(
            queue,
            self.executor,
            config.work_dir,
            idle_unload_s=config.idle_unload_s,
            progress_interval_s=config.progress_interval_s,
            reserve=reserve,
            machine=machine,
        )
        api = DaemonApi(
            queue,
            self.executor,
            self.cache,
            self._edits,
            self._worker,
            defaults,
            machine=machine,
            cache_root=config.cache_dir,
        )
        self._server = grpc.aio.server(
            interceptors=[TokenInterceptor(self.auth)], options=GRPC_OPTIONS
        )
        daemon_pb2_grpc.add_DaemonServicer_to_server(DaemonServicer(api), self._server)
        grpc_port = self._listen_grpc()
        await self._server.start()
        self._http = self._listen_http(api)
        self._http.start()
        self._worker_task = asyncio.create_task(self._worker.run(), name="worker")
        self.discovery = Discovery(
            config.host, grpc_port, self._http.port, self.token, os.getpid(), __version__
        )
        write_discovery(discovery_path(config.config_dir), self.discovery)
        self._guard_task = asyncio.create_task(self._guard_discovery(), name="discovery-guard")
        if not is_loopback(config.host):
            log.warning("listening on %s, beyond this machine (--allow-remote)", config.host)
        log.info(
            "framerelay %s: gRPC %s, HTTP %s, discovery file %s",
            __version__,
            self.discovery.grpc_target,
            self.discovery.http_url,
            discovery_path(config.config_dir),
        )
        return self.discovery

    def _listen_grpc(self) -> int:
        assert self._server is not None
        address = f"{url_host(self.config.host)}:{self.config.port}"
        try:
            return self._server.add_insecure_port(address)
        except RuntimeError as error:
            raise InvalidSpecError(
                f"cannot listen on {address}: {error}.", "Choose another --port, or 0 for any."
            ) from error

    async def _guard_discovery(self) -> None:
        """Rewrites the discovery file, with a new token, if others could read it."""
        path = discovery_path(self.config.config_dir)
        while True:
            await asyncio.sleep(self.config.discovery_check_s)
            assert self.discovery is not None
            problem = discovery_problem(path, self.discovery)
            if problem is None:
                continue
            if problem.leaked:
                self.auth.rotate()
                self.discovery = replace(self.discovery, token=self.auth.token)
            write_discovery(path, self.discovery)
            log.warning(
                "the discovery file %s %s; rewrote it%s",
                path,
                problem.reason,
                " with a new token" if problem.leaked else "",
            )

    def _listen_http(self, api: DaemonApi) -> HttpFacade:
        loop = asyncio.get_running_loop()
        config = self.config
        try:
            return HttpFacade(
                api,
                self.auth,
                loop,
                config.host,
                config.http_port,
                allowed_origins=config.allowed_origins,
                allowed_hosts=config.allowed_hosts,
                remote=config.allow_remote,
            )
        except OSError as error:
            raise InvalidSpecError(
                f"cannot listen on {self.config.host}:{self.config.http_port} for HTTP: {error}.",
                "Choose another --http-port, or 0 for any.",
            ) from error

    async def stop(self, grace: float = 5.0) -> None:
        """Stops serving; a running job is interrupted and runs again at the next start."""
        if self._guard_task is not None:
            self._guard_task.cancel()
        if self._worker is not None:
            self._worker.stop()
        if self._http is not None:
            self._http.stop()
        if self._server is not None:
            await self._server.stop(grace)
        if self._worker_task is not None:
            try:
                await asyncio.wait_for(self._worker_task, grace)
            except TimeoutError:
                log.warning("the running job did not stop within %.0f s; leaving it", grace)
        close = getattr(self.executor, "close", None)
        if close is not None and self._worker_task is not None:  # a pool's worker processes
            await asyncio.to_thread(close)
        if self._edits is not None:
            await self._edits.close()
        if self._store is not None:
            if self._worker_task is not None:
                self._store.end_session()  # a clean stop: the next start finds no crash
            self._store.close()
        if self.discovery is not None:
            remove_discovery(discovery_path(self.config.config_dir), self.discovery.pid)
        self._lock.release()
        self._scrubber.remove()
        self._stopped.set()

    async def wait_stopped(self) -> None:
        await self._stopped.wait()


class DaemonThread:
    """A daemon serving from a background thread with its own event loop."""

    def __init__(self, config: DaemonConfig, executor: Executor, cache: CacheStore | None = None):
        self.daemon = Daemon(config, executor, cache)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="daemon", daemon=True)
        self._started: Future[Discovery] = Future()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self._started.set_result(self.loop.run_until_complete(self.daemon.start()))
        except BaseException as error:
            self._started.set_exception(error)
            self.loop.close()
            return
        self.loop.run_until_complete(self.daemon.wait_stopped())
        self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        self.loop.close()

    def __enter__(self) -> DaemonThread:
        self._thread.start()
        self._started.result(timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(self.daemon.stop(grace=2.0), self.loop).result(30)
            self._thread.join(30)

    def call(self, coroutine: Any) -> Any:
        """Runs a coroutine in the daemon's loop and returns its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(30)

    @property
    def discovery(self) -> Discovery:
        """The current discovery file's content (its token changes if the file leaked)."""
        self._started.result()
        assert self.daemon.discovery is not None
        return self.daemon.discovery
