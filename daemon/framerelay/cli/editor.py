"""`framerelay editor`: show or change how the daemon opens frames in your image editor.

The settings are the [editor] table of config.toml in framerelay's config folder. This command
writes that file itself, as you, on this machine: so it may name any program and its arguments,
which the daemon's API may not (docs/security.md). A running daemon reads the change before its
next round trip.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from framerelay.roundtrip.editor import EditorConfig


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "editor",
        help="show or set the image editor of round trips",
        description="Without options, show the editor settings. With options, change them; "
        "they are written to config.toml in framerelay's config folder and apply to new round "
        "trips.",
    )
    parser.add_argument(
        "--application",
        metavar="APP",
        help='a detected editor ("gimp", "krita", "photoshop", ...), any application name or '
        'path, or "" for the system default',
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


def updated(config: EditorConfig, args: argparse.Namespace) -> EditorConfig:
    from framerelay.roundtrip.editor import EditorConfig

    arguments = config.arguments
    if args.arguments is not None or args.no_arguments:
        arguments = tuple(args.arguments or ())
    return EditorConfig.from_dict(
        {
            **config.to_dict(),
            **({} if args.application is None else {"application": args.application}),
            "arguments": list(arguments),
            **({} if args.open_editor is None else {"open_editor": args.open_editor}),
            **({} if args.poll_saves is None else {"poll_saves": args.poll_saves}),
        }
    )


def run(args: argparse.Namespace) -> int:
    from framerelay.roundtrip.editor import detect_editors
    from framerelay.service.config import config_dir
    from framerelay.service.editor_settings import EditorSettings, config_file

    settings = EditorSettings(config_file(config_dir()))
    config = settings.current()
    if changed(args):
        config = settings.update(updated(config, args))
    detected = ", ".join(editor.name for editor in detect_editors()) or "(none)"
    print(f"application: {config.application or '(the system default)'}")
    print(f"arguments:   {' '.join(config.arguments) or '(none)'}")
    print(f"open editor: {'yes' if config.open_editor else 'no'}")
    print(f"poll saves:  {'yes' if config.poll_saves else 'no'}")
    print(f"detected:    {detected}")
    print(f"config file: {settings.path}")
    print(f"daemon:      {daemon_view(config)}")
    return 0


def daemon_view(config: EditorConfig) -> str:
    """Whether a running daemon uses these settings."""
    from framerelay.errors import FramerelayError
    from framerelay.service.client import DaemonClient
    from framerelay.service.convert import editor_config_to_proto

    try:
        with DaemonClient.connect(timeout=5) as client:
            current = client.editor_config()
    except FramerelayError:
        return "not running; it reads these settings when it starts"
    if current.config != editor_config_to_proto(config):
        return f"running with other settings, from {current.config_path}"
    return "running with these settings" + (
        "; it never opens the editor (serve --no-open)" if current.no_open else ""
    )
