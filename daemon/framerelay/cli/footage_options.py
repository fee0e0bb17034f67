"""The footage switches `edit` and `submit` share (docs/footage-and-colour.md)."""

from __future__ import annotations

from pathlib import Path


def add_footage_switches(parser) -> None:
    """--input-lut, --no-keep-unedited and --no-audio, on a parser or an argument group."""
    parser.add_argument(
        "--input-lut",
        type=Path,
        metavar="FILE.cube",
        help="input transform for log footage: a 1D LUT to BT.709 (default: none)",
    )
    parser.add_argument(
        "--no-keep-unedited",
        dest="keep_unedited",
        action="store_false",
        help="use the model's output everywhere, also outside the --mask",
    )
    parser.add_argument(
        "--no-audio", dest="audio", action="store_false", help="do not copy the source's audio"
    )
