"""What one edit needs and what it produces. Torch-free, so the daemon can build and check requests."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from framerelay.engine.params import DEFAULT_MODEL, EngineParams
from framerelay.engine.presets import PresetChoice

OUTPUT_FORMATS = ("mp4", "mov", "png")


@dataclass(frozen=True)
class EditRequest:
    source: Path
    edited_frames: tuple[Path, ...]  # one output per edited frame
    outputs: tuple[Path, ...]  # same length as edited_frames
    # Frames [first, stop) from the source's first frame (0), counted at `frame_rate` (the host's
    # rate for the clip; None: the source's own). None: the whole clip.
    frame_range: tuple[int, int] | None = None
    frame_rate: Fraction | None = None
    output_format: str | None = None  # mp4 | mov | png; None: from the output path
    overwrite: bool = False  # replace existing outputs
    mask: Path | None = None  # white where the first frame was edited; elsewhere the source stays
    model: str = DEFAULT_MODEL
    device: str | None = None  # None: cuda if available, else cpu
    dtype: str | None = None  # None: bf16/fp16 on cuda, fp32 on cpu
    params: EngineParams = field(default_factory=EngineParams)
    cache_dir: Path | None = None  # None: the user cache dir (FRAMERELAY_CACHE_DIR overrides)
    use_cache: bool = True
    # Footage (docs/footage-and-colour.md):
    sequence_fps: Fraction | None = None  # frame rate of an image-sequence source (default 24)
    input_lut: Path | None = None  # 1D .cube LUT: source codes -> BT.709 display (log footage)
    keep_unedited: bool = True  # outside the (feathered) mask, the source's own pixels
    audio: bool = True  # copy the processed range of the source's audio into .mp4/.mov


@dataclass(frozen=True)
class EditResult:
    outputs: tuple[Path, ...]
    frame_count: int
    fps: Fraction
    size: tuple[int, int]  # (width, height) of the outputs, equal to the source
    preset: str = ""  # the preset used (resolved when "auto"), one per output, comma-separated
    preset_choices: tuple[PresetChoice, ...] = ()  # one per output: the preset and why
    seed: int = 0
    phase_seconds: dict[str, float] = field(default_factory=dict)  # load, decode, lora, ...
    windows: int = 1
    lora_steps_run: int = 0  # 0 when every window's LoRA came from the cache
    cache_hits: int = 0
    warnings: tuple[str, ...] = ()  # what the footage made framerelay change or drop
