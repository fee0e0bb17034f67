"""Window analyses on a Ray cluster (`framerelay serve --ray ADDRESS`, docs/scale.md).

`RayRuntime` runs in the pool's Ray driver process, never in the daemon's own: a cluster that
goes away can end that process (Ray ends drivers that lose its control store), and the daemon
then fails the jobs that wait on it with a hint, and keeps serving. Each window is a Ray task
that requests a GPU (`gpus_per_task`); its frames and the anchor's entry travel through Ray's
object store, and its cache entry comes back the same way into the daemon's cache, so a re-edit
on this machine hits it. Ray retries a task whose worker died (`MAX_RETRIES`); an error in the
analysis itself (out of memory, a bad model path) is not retried: the job's worker computes
that window.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from collections import OrderedDict
from dataclasses import replace
from pathlib import Path
from typing import Any

from framerelay.cache import ArtifactCache
from framerelay.cache.store import META_FILE
from framerelay.engine.window_tasks import WindowTask
from framerelay.errors import CancelledError, InternalError, UnavailableError
from framerelay.jobs.executor import ExecutorStatus
from framerelay.jobs.slot_process import BoxedError, box, unbox
from framerelay.progress import CancelToken, Progress, ProgressSink

log = logging.getLogger(__name__)

MAX_RETRIES = 3  # a task whose worker process died runs again, this many times at most
CONNECT_TIMEOUT_S = 10.0
LOCAL = "local"  # --ray local[:N]: a one-machine cluster of N CPUs, started by the driver
# A driver that loses the cluster's control store ends after this long (Ray's default is 60 s).
RECONNECT_TIMEOUT_ENV = "RAY_gcs_rpc_server_reconnect_timeout_s"
CRASH_ONCE_ENV = "FRAMERELAY_RAY_CRASH_ONCE"  # tests: the first attempt's worker dies
Files = tuple[dict[str, bytes], dict[str, Any]]  # an entry's files and its metadata
UNREACHABLE_HINT = (
    "Start the cluster (`ray start --head` on one machine, `ray start --address HEAD:6379 "
    "--num-gpus N` on the others), check the address, or run the daemon without --ray."
)


class RayRuntime:
    """The pool's Ray driver: each `analyse` is one Ray task (the pool runs them side by side)."""

    def __init__(
        self, address: str, gpus_per_task: float = 1.0, cache_dir: Path | None = None, **_: Any
    ):
        self.address = address
        self.gpus_per_task = gpus_per_task
        self.cache = ArtifactCache(cache_dir)
        self._lock = threading.Lock()
        self._ray: Any = None
        self._remote: Any = None
        self._anchors: OrderedDict[str, Any] = OrderedDict()  # key -> object ref of its files

    # --- the runtime interface ---

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise InternalError("the Ray driver runs no jobs, only window analyses.")

    def prepare(self) -> None:
        """Connects to the cluster, once; called in the process's main thread (Ray's rule)."""
        self._connect()

    def analyse(self, task: WindowTask, progress: ProgressSink, cancel: CancelToken) -> None:
        ray = self._connect()
        if self.cache.get(task.key) is not None:
            return
        import numpy as np

        frames = ray.put(np.load(task.frames))
        anchor = self._anchor(task.anchor_key) if task.anchor_key is not None else None
        progress(Progress("lora", 0, 1, task.index + 1, task.windows, "on the Ray cluster"))
        ref = self._remote.remote(task, frames, anchor)
        while not ray.wait([ref], timeout=0.25)[0]:
            if cancel.cancelled:
                ray.cancel(ref, force=True)
                raise CancelledError("The job was cancelled.")
        try:
            outcome, value = ray.get(ref)
        except ray.exceptions.TaskCancelledError as error:
            raise CancelledError("The job was cancelled.") from error
        except ray.exceptions.RayError as error:
            raise self._lost(error) from error
        if outcome == "error":
            raise unbox(value)
        files, meta = value
        self.cache.put(task.key, lambda folder: _write_files(folder, files), meta)
        log.info("window %d of job %s came back from Ray", task.index + 1, task.job_id)

    def status(self) -> ExecutorStatus:
        return ExecutorStatus(f"ray {self.address}", False)  # the models are the cluster's

    def unload(self) -> None:
        pass

    def close(self) -> None:
        if self._ray is not None:
            log.info("closing the Ray connection")
            self._ray.shutdown()
            log.info("closed the Ray connection")

    # --- the cluster ---

    def _connect(self) -> Any:
        with self._lock:
            if self._ray is not None:
                return self._ray
            try:
                import ray
            except ImportError as error:
                raise UnavailableError(
                    "the daemon runs with --ray, but Ray is not installed.",
                    "pip install 'framerelay[cluster]' (on every machine of the cluster too).",
                ) from error
            os.environ.setdefault(RECONNECT_TIMEOUT_ENV, "30")
            try:
                if self.address.split(":")[0] == LOCAL:
                    _, _, cpus = self.address.partition(":")
                    ray.init(
                        num_cpus=int(cpus) if cpus else None,
                        include_dashboard=False,
                        log_to_driver=False,
                    )
                else:
                    _check_reachable(self.address)
                    ray.init(address=self.address, log_to_driver=False)
            except UnavailableError:
                raise
            except Exception as error:
                raise UnavailableError(
                    f"cannot connect to the Ray cluster at {self.address}: {error}".splitlines()[0],
                    UNREACHABLE_HINT,
                ) from error
            resources = ray.cluster_resources()
            log.info("connected to Ray at %s: %s", self.address, resources)
            if self.gpus_per_task > 0 and resources.get("GPU", 0) < self.gpus_per_task:
                log.warning(
                    "the Ray cluster has no GPU for the window tasks (%s); they wait for one "
                    "(start workers with `ray start --num-gpus N`, or serve with --ray-gpus 0)",
                    resources,
                )
            self._remote = ray.remote(analyse_remotely).options(
                num_gpus=self.gpus_per_task, max_retries=MAX_RETRIES, retry_exceptions=False
            )
            self._ray = ray
            return ray

    def _anchor(self, key: str) -> Any:
        """The anchor's entry in the object store, put there once per anchor."""
        with self._lock:
            if key in self._anchors:
                self._anchors.move_to_end(key)
                return self._anchors[key]
            entry = self.cache.get(key)
            if entry is None:
                raise InternalError("the anchor window's analysis is missing from the cache.")
            files = {
                path.name: path.read_bytes()
                for path in entry.path.iterdir()
                if path.is_file() and path.name != META_FILE
            }
            ref = self._ray.put((files, {**entry.meta, "kind": entry.kind}))
            self._anchors[key] = ref
            while len(self._anchors) > 4:  # the anchors of the last few jobs
                self._anchors.popitem(last=False)
            return ref

    def _lost(self, error: Exception) -> Exception:
        """A task that failed in Ray itself (its worker died MAX_RETRIES times, or the cluster
        went away): the cluster when it cannot be reached, else only this window."""
        try:
            self._ray.cluster_resources()
        except Exception:
            return UnavailableError(
                f"the Ray cluster at {self.address} went away during the job.", UNREACHABLE_HINT
            )
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        return InternalError(f"a Ray task failed: {text}")


def _check_reachable(address: str) -> None:
    """Ray retries an unreachable address for minutes; a refused connection fails now."""
    if address == "auto" or "://" in address:
        return
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as error:
        raise UnavailableError(
            f"cannot reach the Ray cluster at {address}: {error}.", UNREACHABLE_HINT
        ) from error


def _write_files(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        (folder / name).write_bytes(data)


# --- in the Ray worker process ---

_engines: dict[tuple[str, str, str], Any] = {}  # warm engines of this worker process


def analyse_remotely(task: WindowTask, frames: Any, anchor: Files | None) -> tuple[str, Any]:
    """One window's analysis on a Ray worker: ("done", its entry's files) or ("error", boxed)."""
    _crash_once_for_tests()
    try:
        return "done", _analyse_here(task, frames, anchor)
    except Exception as error:
        boxed: BoxedError = box(error)
        return "error", boxed


def _analyse_here(task: WindowTask, frames: Any, anchor: Files | None) -> Files:
    import numpy as np

    from framerelay.engine import fanout

    assert task.request is not None
    with tempfile.TemporaryDirectory(prefix="framerelay-ray-") as scratch:
        root = Path(scratch)
        cache = ArtifactCache(root / "cache")
        if anchor is not None and task.anchor_key is not None:
            files, meta = anchor
            cache.put(task.anchor_key, lambda folder: _write_files(folder, files), meta)
        np.save(root / "frames.npy", frames)
        request = replace(task.request, cache_dir=root / "cache")
        local = replace(task, frames=root / "frames.npy", request=request)
        fanout.analyse(_engine(task), local)
        entry = cache.get(task.key)
        assert entry is not None
        files = {
            path.name: path.read_bytes()
            for path in entry.path.iterdir()
            if path.is_file() and path.name != META_FILE
        }
        return files, {**entry.meta, "kind": entry.kind}


def _engine(task: WindowTask) -> Any:
    import ray
    import torch

    from framerelay.engine.run import Engine

    assert task.request is not None
    device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
    key = (task.request.model, device, task.dtype)
    if key not in _engines:
        for engine in _engines.values():
            engine.unload()
        _engines.clear()
        _engines[key] = Engine(task.request.model, device, task.dtype)
    return _engines[key]


def _crash_once_for_tests() -> None:
    marker = os.environ.get(CRASH_ONCE_ENV)
    if marker:
        try:
            descriptor = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            return
        os.close(descriptor)
        os._exit(1)
