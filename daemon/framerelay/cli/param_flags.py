"""The engine parameters' flags, made from the parameter table (engine/params.py) for both
`framerelay edit` and `framerelay submit`: one flag per parameter, its help, range and default
from the table. A flag left out is None, so the engine's (or the daemon's) default applies."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from framerelay.engine.params import DRAFT_STEPS, JOB, PARAMS, TABLE, EngineParams, Param


def add_param_flags(
    parser: argparse.ArgumentParser, scopes: Sequence[str] = (JOB,), preset_default: str = ""
) -> None:
    """Adds a flag for each parameter of `scopes`; `preset_default` replaces the preset's
    default in its help (the daemon's job defaults decide it for `submit`)."""
    group = parser.add_argument_group(
        "engine parameters", "Every parameter, its range and default: docs/parameters.md."
    )
    for row in sorted(PARAMS, key=lambda row: row.name != "preset"):  # the preset first
        if row.scope in scopes:
            default = preset_default if row.name == "preset" and preset_default else None
            _add(group, row, default)
    if JOB in scopes:
        group.add_argument(
            "--draft",
            action="store_true",
            help=f"quick look: at most {DRAFT_STEPS} steps and no motion LoRA "
            "(sets --steps and --lora-steps)",
        )


def _add(group: argparse._ArgumentGroup, row: Param, default_text: str | None) -> None:
    flags = (row.cli_flag, *row.aliases)
    shown = default_text or _text(row.default)
    if row.kind is bool:
        help_text = f"{'off' if row.default else 'on'}: {row.help} ({shown} by default)"
    elif row.choices:
        help_text = f"{row.help}; default {shown}"
    else:
        help_text = f"{row.help}; {row.range_text}, default {shown}"
    common: dict[str, Any] = {"dest": row.name, "default": None, "help": help_text}
    if row.kind is bool:
        group.add_argument(*flags, action="store_false" if row.default else "store_true", **common)
    elif row.choices:
        group.add_argument(*flags, choices=row.choices, **common)
    elif row.last:
        last = TABLE[row.last]
        common["help"] += f"; a second value (deprecated) is {last.cli_flag}"
        group.add_argument(
            *flags, type=row.kind, nargs="+", action=_FirstAndLast, metavar=("X", "LAST"), **common
        )
    else:
        group.add_argument(*flags, type=row.kind, metavar=_metavar(row), **common)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _metavar(row: Param) -> str:
    return "MB" if row.name.endswith("_mb") else ("N" if row.kind is int else "X")


class _FirstAndLast(argparse.Action):
    """`--mask-threshold T [T_LAST]`: the form older versions took; the second value sets the
    parameter the table names as this one's `last`."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        if len(values) > 2:
            raise argparse.ArgumentError(self, "takes one or two values")
        setattr(namespace, self.dest, values[0])
        if len(values) == 2:
            setattr(namespace, TABLE[self.dest].last, values[1])


def given_params(args: argparse.Namespace, scopes: Sequence[str] = (JOB,)) -> dict[str, Any]:
    """The parameters of `scopes` whose flag was given (or --draft set), by their table names."""
    values = {}
    for row in PARAMS:
        value = getattr(args, row.name, None)
        if row.scope in scopes and value is not None:
            values[row.name] = value
    if JOB in scopes and getattr(args, "draft", False):
        draft = EngineParams().with_values(values).draft()
        values.update(steps=draft.steps, lora_steps=draft.lora.steps)
    return values
