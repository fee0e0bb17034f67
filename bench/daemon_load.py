"""Daemon load: submit -> first event latency and events/s with many concurrent watchers.

    python bench/daemon_load.py [--jobs 200] [--watchers 50] [--step-seconds 0]

A real daemon (gRPC on 127.0.0.1:0, SQLite in a temp dir, the fake executor) gets `--jobs` jobs
while the worker is held; `--watchers` threads each follow their share of the jobs over WatchJob,
and one WatchQueue stream sees everything. The worker is then released. Printed: the latency from
each SubmitJob call to its Queued event on the queue stream, and the events per second delivered
to the watchers while the jobs ran. tests/test_daemon_load.py asserts on the same run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "daemon") not in sys.path:
    sys.path.insert(0, str(ROOT / "daemon"))

from framerelay.jobs.fake_executor import FakeExecutor  # noqa: E402
from framerelay.proto.v1 import daemon_pb2, events_pb2, specs_pb2  # noqa: E402
from framerelay.service.app import DaemonThread  # noqa: E402
from framerelay.service.client import DaemonClient  # noqa: E402
from framerelay.service.config import DaemonConfig  # noqa: E402

PHASES = (("decode", 1), ("edit", 3), ("encode", 1))
TERMINAL = {"finished", "failed", "cancelled"}


@dataclass
class LoadResult:
    job_ids: list[str]  # in the order the daemon queued them
    watched: dict[str, list[events_pb2.JobEvent]]  # job id -> what its watcher saw
    stream: list[events_pb2.JobEvent]  # everything the WatchQueue stream saw
    submit_latency: list[float]  # seconds from SubmitJob to its Queued event on the stream
    run_seconds: float  # from releasing the worker to the last terminal event
    delivered: int  # events received by all watchers
    errors: list[BaseException] = field(default_factory=list)

    @property
    def events_per_second(self) -> float:
        return self.delivered / self.run_seconds


def make_inputs(root: Path) -> tuple[Path, Path]:
    from fractions import Fraction

    from PIL import Image

    from framerelay.jobs.fake_executor import write_test_video

    source, edited = root / "source.mov", root / "edited.png"
    write_test_video(source, "mov", 4, Fraction(24), (16, 16))
    Image.new("RGB", (16, 16), (255, 0, 0)).save(edited)
    return source, edited


def spec_for(source: Path, edited: Path, n: int) -> specs_pb2.JobSpec:
    return specs_pb2.JobSpec(
        source_path=str(source),
        edited_frame_paths=[str(edited)],
        label=f"job {n}",
        output=specs_pb2.OutputSpec(format=specs_pb2.OUTPUT_FORMAT_MOV),
    )


def watch_queue(client: DaemonClient, expected: int, out: list, arrivals: dict) -> None:
    request = daemon_pb2.WatchQueueRequest(after_cursor=0)
    ended = 0
    for response in client._stub.WatchQueue(request, metadata=client._metadata):
        event = response.event
        out.append(event)
        arrivals.setdefault(event.job_id, time.perf_counter())
        if event.WhichOneof("kind") in TERMINAL:
            ended += 1
            if ended == expected:
                return


def watch_jobs(client: DaemonClient, inbox: list[str], ready: threading.Event, seen: dict) -> None:
    for job_id in inbox:
        events = seen.setdefault(job_id, [])
        for event in client.watch(job_id):
            events.append(event)
            ready.set()


def run_load(root: Path, jobs: int = 200, watchers: int = 50, step_seconds: float = 0.0):
    source, edited = make_inputs(root / "media")
    gate = threading.Event()
    fake = FakeExecutor(
        phases=PHASES, step_seconds=step_seconds, default_frames=2, frame_size=(16, 16), gate=gate
    )
    config = DaemonConfig(
        config_dir=root / "config",
        data_dir=root / "data",
        log_dir=root / "log",
        cache_dir=root / "cache",
        progress_interval_s=0.0,
    )
    errors: list[BaseException] = []

    def guarded(fn, *args):
        def run() -> None:
            try:
                fn(*args)
            except BaseException as error:
                errors.append(error)

        return threading.Thread(target=run, daemon=True)

    with DaemonThread(config, fake) as daemon, DaemonClient.from_discovery(daemon.discovery) as c:
        stream: list[events_pb2.JobEvent] = []
        arrivals: dict[str, float] = {}
        observer = guarded(watch_queue, c, jobs, stream, arrivals)
        observer.start()
        submitted: dict[str, float] = {}
        for n in range(jobs):
            started = time.perf_counter()
            job = c.submit(spec_for(source, edited, n))
            submitted[job.id] = started
        job_ids = list(submitted)
        seen: dict[str, list[events_pb2.JobEvent]] = {}
        readies = [threading.Event() for _ in range(watchers)]
        threads = [
            guarded(watch_jobs, c, job_ids[w::watchers], readies[w], seen) for w in range(watchers)
        ]
        for thread in threads:
            thread.start()
        for ready in readies:
            ready.wait(30)
        released = time.perf_counter()
        gate.set()
        for thread in (*threads, observer):
            thread.join(120)
        run_seconds = time.perf_counter() - released
    latency = [arrivals[j] - submitted[j] for j in job_ids if j in arrivals]
    delivered = sum(len(events) for events in seen.values())
    return LoadResult(job_ids, seen, stream, latency, run_seconds, delivered, errors)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--watchers", type=int, default=50)
    parser.add_argument("--step-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        result = run_load(Path(tmp), args.jobs, args.watchers, args.step_seconds)
    if result.errors:
        print(f"errors: {result.errors[:3]}", file=sys.stderr)
        return 1
    latency_ms = sorted(1000 * s for s in result.submit_latency)
    per_job = defaultdict(int)
    for event in result.stream:
        per_job[event.job_id] += 1
    print(f"jobs {args.jobs}, watchers {args.watchers}, step {args.step_seconds} s")
    print(
        f"submit -> first event: median {statistics.median(latency_ms):.2f} ms, "
        f"p95 {latency_ms[int(0.95 * (len(latency_ms) - 1))]:.2f} ms, max {latency_ms[-1]:.2f} ms"
    )
    print(
        f"events to watchers: {result.delivered} in {result.run_seconds:.2f} s = "
        f"{result.events_per_second:.0f} events/s "
        f"({statistics.mean(per_job.values()):.1f} events per job)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
