"""`framerelay jobs`: list the daemon's jobs."""

from __future__ import annotations

import argparse

from framerelay.errors import InvalidSpecError
from framerelay.proto.v1 import jobs_pb2

ACTIVE = (jobs_pb2.JOB_STATE_RUNNING, jobs_pb2.JOB_STATE_QUEUED, jobs_pb2.JOB_STATE_AWAITING_EDIT)


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("jobs", help="list the running and queued jobs")
    parser.add_argument("--all", action="store_true", help="include ended jobs")
    parser.add_argument(
        "--limit", type=int, default=50, help="at most this many; 0: all (default: 50)"
    )
    parser.set_defaults(func=run)


def row(job: jobs_pb2.Job) -> str:
    state = jobs_pb2.JobState.Name(job.state).removeprefix("JOB_STATE_").lower()
    if job.state == jobs_pb2.JOB_STATE_QUEUED:
        detail = f"#{job.position}"
    elif job.state == jobs_pb2.JOB_STATE_RUNNING:
        p = job.progress
        detail = f"{p.phase} {p.step}/{p.total}" if p.phase else "starting"
        if job.cancel_requested:
            detail += " (stopping)"
    elif job.state == jobs_pb2.JOB_STATE_AWAITING_EDIT:
        detail = f"save {job.edit.exported_path.rsplit('/', 1)[-1]}"
    elif job.HasField("error"):
        detail = job.error.message
    else:
        detail = f"{job.result.frame_count} frames"
    name = job.spec.label or job.spec.source_path.rsplit("/", 1)[-1]
    return f"{job.id[:8]}  {state:<13}  {printable(detail):<24}  {printable(name)}"


def printable(text: str) -> str:
    """Text any API caller chose (a label, a file name), with control characters (terminal
    escapes, line breaks) shown as `?` so that it cannot rewrite the user's terminal."""
    return "".join(char if char.isprintable() else "?" for char in text)


def run(args: argparse.Namespace) -> int:
    from framerelay.service.client import DaemonClient

    if args.limit < 0:
        raise InvalidSpecError(
            f"--limit must be 0 or more, got {args.limit}.", "Give a number of jobs; 0: all."
        )
    with DaemonClient.connect() as client:
        states = () if args.all else ACTIVE
        jobs = client.list(states, args.limit).jobs
    if not jobs:
        print("no jobs" if args.all else "no running, queued or awaiting jobs")
        return 0
    print(f"{'JOB':<8}  {'STATE':<13}  {'DETAIL':<24}  SOURCE")
    for job in jobs:
        print(row(job))
    return 0
