"""Human byte sizes: "20GB" <-> 20_000_000_000."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}
_SIZE = re.compile(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*")


def parse_size(text: str) -> int:
    """Bytes in `text`: a number and an optional unit (B; KB/MB/GB/TB decimal; KiB/MiB/GiB/TiB)."""
    match = _SIZE.fullmatch(text)
    if match is None or match.group(2).upper() not in UNITS:
        raise ValueError(
            f"invalid size {text!r}; expected a number and a unit such as 500MB, 20GB or 8GiB"
        )
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as error:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"invalid size {text!r}") from error
    return int(number * UNITS[match.group(2).upper()])


def format_size(size: int) -> str:
    """Decimal units, three significant digits: 1234567 -> '1.23 MB'."""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("KB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 999.5 or unit == "PB":
            break
    return f"{value:.3g} {unit}"
