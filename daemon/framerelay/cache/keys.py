"""Cache keys: a sha256 over a canonical JSON of everything that determines an artifact."""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
import math
from fractions import Fraction
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def cache_key(**parts: Any) -> str:
    """The sha256 hex digest of `parts` as canonical JSON; equal parts always give the same key.

    Values may be None, bool, int, float (finite), str, paths, enums, fractions, dataclasses,
    numpy scalars, and lists, tuples or str-keyed dicts of these. Tuples and lists key the same.
    """
    if not parts:
        raise ValueError("cache_key needs at least one part")
    return hashlib.sha256(canonical_json(parts).encode("utf-8")).hexdigest()


def canonical_json(value: Any) -> str:
    return json.dumps(
        _canonical(value, "parts"),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        allow_nan=False,
    )


def hash_frames(frames: np.ndarray) -> str:
    """sha256 of the array's shape, dtype and bytes (C order): the identity of decoded frames."""
    import numpy as np

    array = np.ascontiguousarray(frames)
    digest = hashlib.sha256()
    digest.update(f"{array.shape}|{array.dtype.str}|".encode())
    digest.update(array.data.cast("B"))
    return digest.hexdigest()


def _canonical(value: Any, where: str) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cache key part {where} is not finite: {value}")
        return value
    if isinstance(value, enum.Enum):
        return _canonical(value.value, where)
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, Fraction):
        return f"{value.numerator}/{value.denominator}"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return _canonical(fields, where)
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"cache key part {where} has a non-str key {key!r}")
            result[key] = _canonical(item, f"{where}.{key}")
        return result
    if isinstance(value, list | tuple):
        return [_canonical(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if hasattr(value, "item") and getattr(value, "shape", None) == ():  # numpy scalar
        return _canonical(value.item(), where)
    raise TypeError(f"cache key part {where} has unsupported type {type(value).__name__}")
