"""`framerelay pause [--interrupt] | resume | unload`: steer the daemon's queue and model."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    pause = commands.add_parser(
        "pause",
        help="stop starting queued jobs (the running one finishes unless --interrupt)",
        description="Pause the queue; it stays paused across restarts until `framerelay resume`.",
    )
    pause.add_argument(
        "--interrupt",
        action="store_true",
        help="stop the running job at its next step and queue it first again",
    )
    pause.set_defaults(func=pause_queue)
    resume = commands.add_parser("resume", help="start queued jobs again")
    resume.set_defaults(func=resume_queue)
    unload = commands.add_parser(
        "unload", help="free the model and its GPU memory now (the next job loads it again)"
    )
    unload.set_defaults(func=unload_model)


def pause_queue(args: argparse.Namespace) -> int:
    from framerelay.service.client import DaemonClient

    with DaemonClient.connect() as client:
        response = client.pause(interrupt_running=args.interrupt)
    if response.interrupted_job_id:
        print(
            f"queue paused; job {response.interrupted_job_id[:8]} stops at its next step and "
            "runs first on `framerelay resume`"
        )
    else:
        print("queue paused; `framerelay resume` starts queued jobs again")
    return 0


def resume_queue(args: argparse.Namespace) -> int:
    from framerelay.service.client import DaemonClient

    with DaemonClient.connect() as client:
        was_paused = client.resume().was_paused
    print("queue resumed" if was_paused else "the queue was not paused")
    return 0


def unload_model(args: argparse.Namespace) -> int:
    from framerelay.service.client import DaemonClient

    with DaemonClient.connect() as client:
        was_loaded = client.unload().was_loaded
    print("model unloaded" if was_loaded else "no model was loaded")
    return 0
