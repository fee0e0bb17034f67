"""`framerelay editor`: show or change how the daemon opens frames in your image editor."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "editor",
        help="show or set the image editor of round trips",
        description="Without options, show the editor settings. With options, change them; "
        "they are written to the daemon's config file and apply to new round trips.",
    )
    parser.add_argument(
        "--application",
        metavar="APP",
        help='"photoshop", an application name or path, or "" for the system default',
    )
    parser.add_argument(
        "--argument",
        dest="arguments",
        action="append",
        metavar="ARG",
        help="an argument placed before the file (repeatable; replaces the current ones; write --argument=-x for one that starts with a dash)",
    )
    parser.add_argument("--no-arguments", action="store_true", help="remove the extra arguments")
    opening = parser.add_mutually_exclusive_group()
    opening.add_argument("--open", dest="open_editor", action="store_true", default=None)
    opening.add_argument(
        "--no-open",
        dest="open_editor",
        action="store_false",
        help="only report the file to edit (--open: open it in the editor)",
    )
    polling = parser.add_mutually_exclusive_group()
    polling.add_argument("--poll", dest="poll_saves", action="store_true", default=None)
    polling.add_argument(
        "--no-poll",
        dest="poll_saves",
        action="store_false",
        help="check the folder for saves by polling (--poll; for network drives) or by OS "
        "notifications (--no-poll)",
    )
    parser.set_defaults(func=run)


def changed(args: argparse.Namespace) -> bool:
    options = (args.application, args.arguments, args.open_editor, args.poll_saves)
    return args.no_arguments or any(option is not None for option in options)


def run(args: argparse.Namespace) -> int:
    from framerelay.service.client import DaemonClient

    with DaemonClient.connect() as client:
        current = client.editor_config()
        if changed(args):
            config = current.config
            if args.application is not None:
                config.application = args.application
            if args.arguments is not None or args.no_arguments:
                config.ClearField("arguments")
                config.arguments.extend(args.arguments or [])
            if args.open_editor is not None:
                config.open_editor = args.open_editor
            if args.poll_saves is not None:
                config.poll_saves = args.poll_saves
            current = client.set_editor_config(config)
    config = current.config
    print(f"application: {config.application or '(the system default)'}")
    print(f"arguments:   {' '.join(config.arguments) or '(none)'}")
    opens = config.open_editor if config.HasField("open_editor") else True
    forced = " (the daemon runs with --no-open)" if current.no_open else ""
    print(f"open editor: {'yes' if opens else 'no'}{forced}")
    print(f"poll saves:  {'yes' if config.poll_saves else 'no'}")
    print(f"config file: {current.config_path}")
    return 0
