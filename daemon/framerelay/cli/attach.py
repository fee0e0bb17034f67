"""`framerelay attach JOB IMAGE`: use an image as the edited frame of a round-trip job."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "attach",
        help="use an image as the edited frame of a round-trip job (pick a file instead)",
    )
    parser.add_argument("job", help="job id (a unique prefix will do)")
    parser.add_argument("image", type=Path, help="the edited frame: PNG, TIFF, JPEG or PSD")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from framerelay.proto.v1 import jobs_pb2
    from framerelay.service.client import DaemonClient

    with DaemonClient.connect() as client:
        response = client.attach(client.resolve(args.job), args.image.resolve())
    job = response.job
    for warning in response.warnings:
        print(f"warning: {warning}")
    where = f"queued at position {job.position}" if job.position else "uses it"
    if job.state == jobs_pb2.JOB_STATE_RUNNING:
        where = "is running"
    print(f"edit version {response.version} attached: job {job.id[:8]} {where}")
    return 0
