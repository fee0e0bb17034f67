"""`framerelay watch JOB`: follow a job's progress until it ends."""

from __future__ import annotations

import argparse

from framerelay.cli.progress_view import follow, print_finished
from framerelay.errors import InvalidSpecError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("watch", help="follow a job until it ends")
    parser.add_argument("job", help="job id (a unique prefix will do)")
    parser.add_argument(
        "--after-seq", type=int, default=0, help="resume after this event number (default: all)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from framerelay.service.client import DaemonClient

    if args.after_seq < 0:
        raise InvalidSpecError(
            f"--after-seq must be 0 or more, got {args.after_seq}.",
            "Give the number of the last event you saw, or 0 for all of them.",
        )
    with DaemonClient.connect() as client:
        job_id = client.resolve(args.job)
        print_finished(job_id, follow(client, job_id, args.after_seq))
    return 0
