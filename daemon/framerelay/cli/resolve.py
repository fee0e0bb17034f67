"""`framerelay resolve send|place|bridge`: DaVinci Resolve from the command line.

Through Resolve Studio's external scripting, or the framerelay Bridge started in Resolve (the
only way on free 21.1+); `--via` chooses, `auto` tries them in that order.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from framerelay.errors import FramerelayError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("resolve", help="send the Resolve clip, place finished takes")
    actions = parser.add_subparsers(dest="resolve_command", required=True, metavar="ACTION")

    def via(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--via",
            choices=("auto", "external", "bridge"),
            default="auto",
            help="Studio's external scripting, the framerelay Bridge, or the first that answers",
        )

    send = actions.add_parser("send", help="send the selected clip (or the one under the playhead)")
    via(send)
    send.add_argument(
        "--image", type=Path, help="the edited frame (default: edit it in your editor)"
    )
    send.add_argument("--mask", type=Path, help="a mask of the edited region (with --image)")
    send.add_argument(
        "--preset",
        choices=("auto", "local", "style", "shape"),
        help="default: the daemon's, see `framerelay defaults`",
    )
    send.add_argument(
        "--format",
        choices=("mov", "mp4", "png"),
        help="output format (default: the daemon's, see `framerelay defaults`)",
    )
    send.add_argument("--output-dir", type=Path, help="folder for the take")
    send.add_argument(
        "--wait", action="store_true", help="follow the job and place its take when it finishes"
    )
    send.set_defaults(func=run_send)

    place = actions.add_parser("place", help="place every finished take of the open project")
    via(place)
    place.set_defaults(func=run_place)

    bridge = actions.add_parser("bridge", help="is the framerelay Bridge running in Resolve?")
    bridge.add_argument("--stop", action="store_true", help="stop it")
    bridge.set_defaults(func=run_bridge)


def resolve_errors(action):
    """The integration's and the client's errors as the CLI's one line and hint."""

    def run(args: argparse.Namespace) -> int:
        from framerelay_resolve.errors import ResolveError
        from framerelay_resolve.vendor.framerelay_client.errors import ClientError

        try:
            return action(args)
        except (ResolveError, ClientError) as error:
            raise FramerelayError(error.message, error.hint or "") from None

    return run


@resolve_errors
def run_send(args: argparse.Namespace) -> int:
    from framerelay_resolve import external
    from framerelay_resolve.flow import Flow

    if args.mask and not args.image:
        raise FramerelayError("--mask needs --image.", "Give the edited frame with --image.")
    flow = Flow(external.open_host(args.via), external.open_client(), print)
    flow.place_finished()
    sent = flow.send(
        str(args.image.resolve()) if args.image else None,
        str(args.mask.resolve()) if args.mask else None,
        args.preset,
        args.format,
        str(args.output_dir.resolve()) if args.output_dir else None,
    )
    if not args.wait:
        print("Run `framerelay resolve place` when it has finished (the tray app does it for you).")
        return 0
    view = flow.follow(sent.job_id)
    flow.place_finished()
    return 0 if view.state == "JOB_STATE_FINISHED" else 1


@resolve_errors
def run_place(args: argparse.Namespace) -> int:
    from framerelay_resolve import external

    report = external.place_finished_takes(via=args.via, log=print)
    if not (report.placed or report.failed or report.waiting or report.pending):
        print("No finished take is waiting to be placed.")
    return 1 if report.failed else 0


@resolve_errors
def run_bridge(args: argparse.Namespace) -> int:
    from framerelay_resolve.vendor.framerelay_client.resolve_bridge import BridgeClient

    client = BridgeClient.find()
    if args.stop:
        client.call("quit")
        print("The framerelay Bridge in Resolve stopped.")
        return 0
    answer = client.call("ping")
    version = ".".join(str(part) for part in (answer.get("version") or [])[:4])
    print(
        "The framerelay Bridge is running in {} {} (mailbox {}).".format(
            answer.get("product"), version, client.mailbox
        )
    )
    return 0
