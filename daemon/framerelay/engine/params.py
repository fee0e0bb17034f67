"""Engine parameters, each declared once: on its field, with `param(...)`. Torch-free: the daemon
validates jobs with these.

`PARAMS`, the parameter table, is read from those declarations. From it come this module's range
checks, the artifact cache key (engine/artifacts.py), the JobSpec overrides (jobs/spec.py), the
proto conversion (service/convert.py) and both CLIs' flags (cli/param_flags.py); tests hold the
proto's EditParams, the client package's list and the Blender panel to it. Adding a parameter:
docs/parameters.md.

Defaults are the paper's and the official code's; the deliberate differences are listed in
docs/engine-notes.md.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from framerelay.engine.presets import AUTO, PRESET_NAMES, PRESETS
from framerelay.errors import InvalidSpecError
from framerelay.limits import MAX_GUIDANCE, MAX_MEMORY_BUDGET_MB, MAX_SEED, MAX_SIZE

__all__ = ["PRESETS", "PRESET_NAMES", "EngineParams", "MatchingParams", "MotionLoraParams"]

DEFAULT_MODEL = "stabilityai/stable-video-diffusion-img2vid"
DRAFT_STEPS = 12  # the draft mode's sampling steps (and no LoRA)

# Who sets a parameter: every client of a job (the proto, both CLIs, the client package), only
# whoever runs the engine (`framerelay edit`, not a job: it changes how, not what, is computed),
# or nobody but the code and its tests.
JOB, MACHINE, INTERNAL = "job", "machine", "internal"
_DECLARED = "framerelay.param"
_GROUP = "framerelay.param_group"


@dataclass(frozen=True)
class Param:
    """One row of the table. `param()` declares the row on a field; the table fills in `name`,
    `path`, `kind`, `default` and `optional` from the field."""

    help: str  # one line, lower case, for flags, docs and panels
    keys_cache: bool  # it changes a window's LoRA or inversion, so it is part of their cache key
    scope: str = JOB
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # the range excludes `low`
    high_open: bool = False  # ... or `high`
    multiple_of: int | None = None
    choices: tuple[str, ...] = ()
    hint: str = ""  # said with a value out of range; default: the help and the default
    flag: str = ""  # the CLI flag when not --name (or --no-name for a switch that is on)
    aliases: tuple[str, ...] = ()  # older flags that still work
    last: str = ""  # the parameter that holds this one's last-frame value (`--x FIRST [LAST]`)
    name: str = ""
    path: tuple[str, ...] = ()  # attribute names from EngineParams down to the field
    kind: type = object  # bool, int, float or str
    default: Any = None
    optional: bool = False  # None is a value: "decided by another parameter or at run time"

    @property
    def range_text(self) -> str:
        if self.choices:
            return "one of " + ", ".join(self.choices)
        if self.kind is bool or self.low is None or self.high is None:
            return "true or false" if self.kind is bool else "any"
        if self.multiple_of:
            return f"a multiple of {self.multiple_of} from {self.low} to {self.high}"
        if self.kind is int:
            return f"{self.low}..{self.high}"
        opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"within {opening}{self.low:g}, {self.high:g}{closing}"

    @property
    def cli_flag(self) -> str:
        if self.flag:
            return self.flag
        dashed = self.name.replace("_", "-")
        return f"--no-{dashed}" if self.kind is bool and self.default else f"--{dashed}"

    def check(self, value: Any) -> None:
        """Raises InvalidSpecError naming the parameter, its range and its default."""
        if value is None and self.optional:
            return
        if not self._fits(value):
            default = "none" if self.default is None else f"{self.default!r}"
            raise InvalidSpecError(
                f"{self.name} must be {self.range_text}, got {value!r}.",
                self.hint or f"{self.help[0].upper()}{self.help[1:]}; the default is {default}.",
            )

    def _fits(self, value: Any) -> bool:
        if self.kind is bool:
            return isinstance(value, bool)
        if self.kind is str:
            return value in self.choices
        numbers = int if self.kind is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, numbers) or not math.isfinite(value):
            return False
        low_ok = self.low is None or (value > self.low if self.low_open else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.high_open else value <= self.high)
        step_ok = not self.multiple_of or value % self.multiple_of == 0
        return low_ok and high_ok and step_ok


def param(default: Any, help: str, *, keys_cache: bool, **more: Any) -> Any:
    """Declares a field as an engine parameter; `keys_cache` has no default on purpose: whether
    a parameter changes the cached artifacts is a decision, not an afterthought."""
    return field(default=default, metadata={_DECLARED: Param(help, keys_cache, **more)})


SIZE = {"low": 64, "high": MAX_SIZE, "multiple_of": 64}
SIZE_HINT = "Use 576x1024 (SVD's training size) or another multiple of 64."


@dataclass(frozen=True)
class MatchingParams:
    """Fine-grained attention matching (paper section 4.2)."""

    preset: str = param(
        AUTO,
        "how long the source's motion is imposed: local, style, shape, or auto to choose",
        keys_cache=False,
        choices=PRESET_NAMES,
    )
    beta1: float | None = param(
        None,
        "end of full temporal matching, a fraction of the steps (overrides the preset)",
        keys_cache=False,
        low=0.0,
        high=1.0,
    )
    beta2: float | None = param(
        None,
        "end of low-resolution temporal matching, a fraction of the steps (overrides the preset)",
        keys_cache=False,
        low=0.0,
        high=1.0,
    )
    mask_threshold: float = param(
        0.35,
        "spatial matching: above it the edit's own attention is used whole (first frame)",
        keys_cache=False,
        low=0.0,
        high=1.0,
        last="mask_threshold_last",
    )
    mask_threshold_last: float | None = param(
        None,
        "the spatial matching threshold at the last frame (interpolated between; none: the first's)",
        keys_cache=False,
        low=0.0,
        high=1.0,
    )
    enabled: bool = param(
        True,
        "impose the source's motion through attention matching (the presets' stages)",
        keys_cache=False,
        name="attention_matching",
        aliases=("--no-matching",),
    )

    def betas(self, resolved_preset: str) -> tuple[float, float]:
        beta1, beta2 = PRESETS[resolved_preset]
        return (
            self.beta1 if self.beta1 is not None else beta1,
            self.beta2 if self.beta2 is not None else beta2,
        )

    @property
    def thresholds(self) -> tuple[float, float]:
        """The spatial threshold at the first and at the last frame."""
        last = self.mask_threshold if self.mask_threshold_last is None else self.mask_threshold_last
        return (self.mask_threshold, last)


@dataclass(frozen=True)
class MotionLoraParams:
    """Per-window motion LoRA on the temporal transformer blocks (paper section 4.1)."""

    steps: int = param(
        250,
        "motion LoRA training steps per window; 0 skips motion extraction (a quick draft)",
        keys_cache=True,
        low=0,
        high=1000,  # 4x the paper's 250; the engine is run at this edge (tests/test_engine_ranges.py)
    )
    rank: int = param(32, "rank of the motion LoRA", keys_cache=True, low=1, high=256)
    lr: float = param(
        5e-4, "motion LoRA learning rate", keys_cache=True, low=0.0, high=1.0, low_open=True
    )
    dropout: float = param(
        0.1, "motion LoRA dropout", keys_cache=True, low=0.0, high=1.0, high_open=True
    )
    # Resuming from a checkpoint gives the adapter an uninterrupted run gives (tests/test_lora.py).
    checkpoint_every: int = param(
        50,
        "LoRA training steps between checkpoints an interrupted job resumes from",
        keys_cache=False,
        scope=INTERNAL,
        low=1,
        high=1000,
    )
    gradient_checkpointing: bool = param(
        True,
        "recompute activations during LoRA training to save memory",
        keys_cache=True,
        scope=INTERNAL,
    )
    height: int | None = param(
        None,
        "motion LoRA training height (none: the processing size; with lora_width)",
        keys_cache=True,
        hint=SIZE_HINT,
        **SIZE,
    )
    width: int | None = param(
        None,
        "motion LoRA training width (none: the processing size; with lora_height)",
        keys_cache=True,
        hint=SIZE_HINT,
        **SIZE,
    )


@dataclass(frozen=True)
class EngineParams:
    height: int = param(576, "processing height, pixels", keys_cache=True, hint=SIZE_HINT, **SIZE)
    width: int = param(1024, "processing width, pixels", keys_cache=True, hint=SIZE_HINT, **SIZE)
    window: int = param(
        14,
        "frames per model window: 14 for SVD img2vid, 25 for img2vid-xt",
        keys_cache=True,
        low=2,
        high=64,
    )
    overlap: int = param(
        1, "frames shared by consecutive windows (written once)", keys_cache=True, low=0, high=63
    )
    skip_interval: bool = param(
        True,
        "later windows of a long clip attend to the first window's keys and values",
        keys_cache=True,
    )
    steps: int = param(
        25,
        "denoising steps of the inversion and the editing sampler",
        keys_cache=True,
        low=1,
        high=200,
    )
    seed: int = param(
        23, "the seed: the same seed gives the same take", keys_cache=True, low=0, high=MAX_SEED
    )
    min_guidance: float = param(
        1.0,
        "classifier-free guidance at the first frame",
        keys_cache=False,
        low=1.0,
        high=MAX_GUIDANCE,
    )
    max_guidance: float = param(
        2.0,
        "classifier-free guidance at the last frame",
        keys_cache=False,
        low=1.0,
        high=MAX_GUIDANCE,
    )
    # One SVD micro-conditioning for inversion, editing and LoRA training (see docs/engine-notes.md).
    fps_id: int = param(
        6,
        "SVD's frame-rate conditioning (the pipeline's default fps 7, minus one)",
        keys_cache=True,
        low=0,
        high=1000,
    )
    motion_bucket_id: int = param(
        127, "SVD's motion conditioning: more, more motion", keys_cache=True, low=0, high=1023
    )
    noise_aug_strength: float = param(
        0.02,
        "noise added to the conditioning frame's latent",
        keys_cache=True,
        low=0.0,
        high=1.0,
    )
    sarp_threshold: float = param(
        0.001,
        "smooth-area random perturbation: the gradient below which an area is smooth",
        keys_cache=True,
        low=0.0,
        high=1.0,
    )
    sarp_alpha: float = param(
        0.005,
        "smooth-area random perturbation: the strength of the noise",
        keys_cache=True,
        low=0.0,
        high=1.0,
    )
    # Chunking the temporal VAE decoder changes its frames, but only after the cache.
    decode_chunk_size: int = param(
        8, "frames the VAE decodes at a time", keys_cache=False, scope=INTERNAL, low=1, high=64
    )
    # The source branch's attention is kept or recomputed, giving the same frames either way.
    source_memory_budget_mb: int | None = param(
        None,
        "memory for the source branch's attention data (device first, then host), MB; steps that "
        "do not fit are recomputed (none: sized from the machine's free memory)",
        keys_cache=False,
        scope=MACHINE,
        low=0,
        high=MAX_MEMORY_BUDGET_MB,
        flag="--memory-budget",
    )
    # Nested parameters, named in the table by prefix + field name.
    matching: MatchingParams = field(default_factory=MatchingParams, metadata={_GROUP: ""})
    lora: MotionLoraParams = field(default_factory=MotionLoraParams, metadata={_GROUP: "lora_"})

    def value(self, name: str) -> Any:
        """A parameter's value by its table name."""
        value: Any = self
        for attribute in TABLE[name].path:
            value = getattr(value, attribute)
        return value

    def with_values(self, values: Mapping[str, Any]) -> EngineParams:
        """A copy with parameters set by their table names; None leaves a parameter as it is."""
        given = {name: v for name, v in values.items() if v is not None}
        unknown = sorted(set(given) - set(TABLE))
        if unknown:
            raise InvalidSpecError(f"unknown engine parameter(s): {', '.join(unknown)}.")
        changed: EngineParams = _with_paths(
            self, {TABLE[name].path: v for name, v in given.items()}
        )
        return changed

    def with_overrides(self, **changes: Any) -> EngineParams:
        return self.with_values(changes)

    def draft(self) -> EngineParams:
        """The draft mode: DRAFT_STEPS steps and no motion LoRA (a quick look at an edit; its cost
        is in bench/RESULTS.md). The motion then comes from the temporal attention matching only."""
        return replace(self, steps=min(self.steps, DRAFT_STEPS), lora=replace(self.lora, steps=0))

    def validate(self) -> EngineParams:
        """Checks every parameter's range (from the table), then the rules between them; the CLI
        and the daemon share these limits."""
        for row in PARAMS:
            row.check(self.value(row.name))
        check_windows(self)
        check_lora_size(self.lora)
        check_guidance(self.min_guidance, self.max_guidance)
        check_betas(self.matching)
        return self


def _with_paths(node: Any, values: Mapping[tuple[str, ...], Any]) -> Any:
    changes: dict[str, Any] = {}
    nested: dict[str, dict[tuple[str, ...], Any]] = {}
    for path, value in values.items():
        if len(path) == 1:
            changes[path[0]] = value
        else:
            nested.setdefault(path[0], {})[path[1:]] = value
    for attribute, inner in nested.items():
        changes[attribute] = _with_paths(getattr(node, attribute), inner)
    return replace(node, **changes)


def _kind(annotation: Any) -> tuple[type, bool]:
    """(bool|int|float|str, optional) from `int`, `float | None`..."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        kinds = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(kinds) == 1 and kinds[0] in (bool, int, float, str):
            return kinds[0], True
    if annotation in (bool, int, float, str):
        return annotation, False
    raise TypeError(f"an engine parameter is a bool, int, float or str, got {annotation!r}")


def _read(cls: type, prefix: str = "", path: tuple[str, ...] = ()) -> Iterator[Param]:
    hints = typing.get_type_hints(cls)
    for item in fields(cls):
        if _GROUP in item.metadata:
            yield from _read(hints[item.name], item.metadata[_GROUP], (*path, item.name))
            continue
        declared = item.metadata.get(_DECLARED)
        if declared is None:
            raise TypeError(f"{cls.__name__}.{item.name} is not declared with param()")
        kind, optional = _kind(hints[item.name])
        yield replace(
            declared,
            name=declared.name or prefix + item.name,
            path=(*path, item.name),
            kind=kind,
            default=item.default,
            optional=optional,
        )


PARAMS: tuple[Param, ...] = tuple(_read(EngineParams))
TABLE: dict[str, Param] = {row.name: row for row in PARAMS}
if len(TABLE) != len(PARAMS):
    raise TypeError("two engine parameters share a name")


def job_params() -> tuple[Param, ...]:
    """The parameters a job sets: the proto's EditParams, the JobSpec, both CLIs, the client."""
    return tuple(row for row in PARAMS if row.scope == JOB)


def cache_values(params: EngineParams) -> dict[str, Any]:
    """Every parameter that keys the artifact cache, by name."""
    values = {}
    for row in PARAMS:
        if row.keys_cache:
            value = params.value(row.name)
            values[row.name] = float(value) if row.kind is float and value is not None else value
    return values


# -- the rules between parameters ---------------------------------------------------------------


def check_windows(params: EngineParams) -> None:
    if not params.overlap < params.window:
        raise InvalidSpecError(
            f"overlap must be 0..window-1, got {params.overlap} for a {params.window}-frame window."
        )
    if params.skip_interval and params.overlap < 1:
        raise InvalidSpecError(
            "skip-interval cross-attention chains windows through an overlapping frame.",
            "Use --overlap 1 (the default) or turn skip-interval off.",
        )


def check_lora_size(lora: MotionLoraParams) -> None:
    if (lora.height is None) != (lora.width is None):
        raise InvalidSpecError(
            f"the LoRA training size needs lora_height and lora_width, got "
            f"{lora.height}x{lora.width}.",
            "Give both, as multiples of 64, or neither to train at the processing size.",
        )


def check_guidance(low: float, high: float) -> None:
    if not low <= high:
        raise InvalidSpecError(
            f"guidance must satisfy 1 <= min <= max <= {MAX_GUIDANCE:g}, got {low}..{high}.",
            "SVD's default is min 1, max 2; stronger guidance rarely helps beyond 3.",
        )


def check_betas(matching: MatchingParams) -> None:
    beta1, beta2 = matching.beta1, matching.beta2
    if beta1 is not None and beta2 is not None and beta1 > beta2:
        raise InvalidSpecError(f"beta1 must not exceed beta2, got {beta1} > {beta2}.")
