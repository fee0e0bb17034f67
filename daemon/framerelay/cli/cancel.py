"""`framerelay cancel JOB`: remove a queued job, or stop a running one at its next step."""

from __future__ import annotations

import argparse

OUTCOMES = {
    "CANCEL_OUTCOME_DEQUEUED": "removed from the queue",
    "CANCEL_OUTCOME_INTERRUPT_REQUESTED": "stops at its next step",
    "CANCEL_OUTCOME_ALREADY_ENDED": "had already ended",
}


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("cancel", help="cancel a queued or running job")
    parser.add_argument("job", help="job id (a unique prefix will do)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from framerelay.proto.v1 import daemon_pb2
    from framerelay.service.client import DaemonClient

    with DaemonClient.connect() as client:
        response = client.cancel(client.resolve(args.job))
    outcome = daemon_pb2.CancelOutcome.Name(response.outcome)
    print(f"job {response.job.id[:8]} {OUTCOMES[outcome]}")
    return 0
