"""A real daemon on 127.0.0.1:0 with temp-dir state, and clients for it (gRPC and plain HTTP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path
from typing import Any

from framerelay.jobs.executor import Executor
from framerelay.jobs.fake_executor import FakeExecutor, write_test_video
from framerelay.proto.v1 import events_pb2, specs_pb2
from framerelay.service.app import DaemonThread
from framerelay.service.cache import CacheStore
from framerelay.service.client import DaemonClient
from framerelay.service.config import DaemonConfig
from framerelay.service.discovery import Discovery

ROOT = Path(__file__).resolve().parent.parent


def make_config(root: Path, **overrides: Any) -> DaemonConfig:
    """Everything under `root`, which is also the one output root (never the real video folder)."""
    settings = {"progress_interval_s": 0.0, "output_roots": (root,), **overrides}
    return DaemonConfig(
        config_dir=root / "config",
        data_dir=root / "data",
        log_dir=root / "log",
        cache_dir=root / "cache",
        **settings,
    )


def make_media(root: Path, frames: int = 12) -> tuple[Path, Path]:
    """A small real source clip and an edited first frame (PNG)."""
    from PIL import Image

    root.mkdir(parents=True, exist_ok=True)
    source = root / "source.mp4"
    write_test_video(source, "mp4", frames, Fraction(24), (64, 64))
    edited = root / "edited.png"
    Image.new("RGB", (64, 64), (200, 30, 30)).save(edited)
    return source, edited


def job_spec(source: Path, edited: Path, **fields: Any) -> specs_pb2.JobSpec:
    spec = specs_pb2.JobSpec(source_path=str(source), edited_frame_paths=[str(edited)], **fields)
    return spec


def clip_spec(source: Path, edited: Path, frames: int = 6, **fields: Any) -> specs_pb2.JobSpec:
    return job_spec(
        source,
        edited,
        frame_range=specs_pb2.FrameRange(in_frame=0, out_frame=frames),
        source_fps=specs_pb2.Rational(num=24, den=1),
        **fields,
    )


@contextmanager
def running_daemon(
    root: Path,
    executor: Executor | None = None,
    cache: CacheStore | None = None,
    **config: Any,
) -> Iterator[tuple[DaemonThread, DaemonClient]]:
    daemon = DaemonThread(make_config(root, **config), executor or FakeExecutor(), cache)
    with daemon, DaemonClient.from_discovery(daemon.discovery) as client:
        yield daemon, client


def kinds(events: list[events_pb2.JobEvent]) -> list[str]:
    return [e.WhichOneof("kind") for e in events]


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")


def http_call(
    discovery: Discovery, method: str, body: dict | bytes | None = None, token: str | None = None
) -> tuple[int, dict]:
    """POST /v1/<method>; returns (status, JSON body) for successes and errors alike."""
    request = http_request(discovery, method, body, token)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def http_stream(
    discovery: Discovery, method: str, body: dict, token: str | None = None
) -> Iterator[dict]:
    """The NDJSON lines of a streaming method, skipping keep-alives."""
    with urllib.request.urlopen(http_request(discovery, method, body, token), timeout=30) as reply:
        for line in reply:
            if line.strip():
                yield json.loads(line)


def http_request(
    discovery: Discovery, method: str, body: dict | bytes | None, token: str | None
) -> urllib.request.Request:
    data = body if isinstance(body, bytes) else json.dumps(body or {}).encode()
    headers = {"Content-Type": "application/json"}
    token = discovery.token if token is None else token
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return urllib.request.Request(
        f"{discovery.http_url}/v1/{method}", data=data, headers=headers, method="POST"
    )


def daemon_env(root: Path, extra_path: Path | None = None) -> dict[str, str]:
    """Environment for a `python -m framerelay` subprocess using this worktree and `root`'s dirs."""
    paths = [str(p) for p in (extra_path, ROOT / "daemon") if p is not None]
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(paths),
        "FRAMERELAY_CONFIG_DIR": str(root / "config"),
        "FRAMERELAY_DATA_DIR": str(root / "data"),
        "FRAMERELAY_LOG_DIR": str(root / "log"),
        "FRAMERELAY_CACHE_DIR": str(root / "cache"),
    }


def start_serve(
    root: Path, *args: str, extra_path: Path | None = None
) -> tuple[subprocess.Popen[str], Discovery]:
    """`framerelay serve ARGS` in a subprocess; returns once its discovery file names it."""
    from framerelay.service.discovery import discovery_path, read_discovery

    path = discovery_path(root / "config")
    path.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "-m", "framerelay", "serve", *args],
        env=daemon_env(root, extra_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def ready() -> Discovery | None:
        if process.poll() is not None:
            raise AssertionError(f"serve exited with {process.returncode}: {process.stderr.read()}")
        if not path.exists():
            return None
        found = read_discovery(path)
        return found if found.pid == process.pid else None

    return process, wait_for(ready, timeout=30)


def stop_serve(process: subprocess.Popen[str], timeout: float = 15) -> tuple[str, str]:
    process.terminate()
    out, err = process.communicate(timeout=timeout)
    return out, err


def raw_http(
    discovery: Discovery,
    path: str,
    body: bytes = b"{}",
    headers: dict[str, str] | None = None,
    method: str = "POST",
    host: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request with exactly these headers (Host too: None sends the real one, "" none at
    all); returns (status, headers with lower-case names, body)."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", discovery.http_port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        host = f"127.0.0.1:{discovery.http_port}" if host is None else host
        if host:
            connection.putheader("Host", host)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            connection.putheader(name, value)
        connection.endheaders(body)
        reply = connection.getresponse()
        return reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read()
    finally:
        connection.close()


def authorized(discovery: Discovery, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {discovery.token}", **headers}
