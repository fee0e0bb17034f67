"""Pre-flight estimates: peak VRAM, disk and time per phase of a job, before it runs. Torch-free.

The accounting model is `bench/real_size.py`'s (issue 17): FLOPs and peak device memory of every
phase of an edit with the real SVD UNet, VAE and CLIP image encoder at 576x1024x14 in bf16,
counted op by op on fake tensors (figures in bench/RESULTS.md). Each phase is scaled to the job:

* FLOPs: the share spent in spatial attention (quadratic in the tokens of a frame, computed from
  the UNet's levels) scales with frames x tokens²; the rest with frames x tokens (linear).
* peak device memory: the weights resident in the phase, plus activations linear in the latent
  elements (attention is fused: no token² matrices; bench/RESULTS.md). The source attention
  store's device tier is left out: it is sized to whatever memory is left (engine/memory.py).
* time: FLOPs divided by the machine's speed for that phase. Until a job has run, a GPU is assumed
  to be an H100 at the accounting's projected efficiency; then the speed measured on each job
  (`Speeds.update`) is kept and used.

Estimates ignore the artifact cache (a cached window skips training and inversion), so times are
an upper bound for re-edits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

GB = 1e9
GIB = 2**30

# The SVD UNet's spatial self-attention layers, per level of the latent (token grid downscaled
# 2^level): (attention layers, channels).
SVD_ATTENTION = ((5, 320), (5, 640), (5, 1280), (1, 1280))


@dataclass(frozen=True)
class Phase:
    """One phase at the profile's reference shape."""

    flops: float  # per unit (a UNet call, a training step, a window's encode...)
    attention_share: float  # of those FLOPs, the part quadratic in the tokens of a frame
    peak: float  # bytes of device memory at the peak, weights included
    resident: float  # bytes of weights on the device during the phase
    per_frame: bool = True  # activations scale with the frames (False: with the decode chunk)


@dataclass(frozen=True)
class Profile:
    """An accounting of one model at a reference shape; `scale` maps it to any job."""

    name: str
    height: int
    width: int
    frames: int
    chunk: int  # the VAE chunk the encode/decode phases were measured with
    phases: dict[str, Phase]
    attention: tuple[tuple[int, int], ...] = SVD_ATTENTION
    lora_bytes_per_rank: float = 17.8e6 * 4 / 32  # fp32 LoRA weights per unit of rank
    # Effective speeds (FLOP/s) of an H100 per phase, from the accounting's projected times.
    default_speeds: dict[str, float] = field(default_factory=dict)

    def quadratic(self, height: int, width: int) -> float:
        """Spatial-attention FLOPs of one frame (QKᵀ and PV) at a pixel size, batch 1."""
        h, w = height // 8, width // 8
        total = 0.0
        for level, (layers, channels) in enumerate(self.attention):
            tokens = (h >> level) * (w >> level)
            total += layers * 4.0 * tokens * tokens * channels
        return total

    def flops(self, phase: str, frames: int, height: int, width: int, chunk: int = 0) -> float:
        p = self.phases[phase]
        pixels = (height * width) / (self.height * self.width)
        count = frames / self.frames
        linear = (1 - p.attention_share) * count * pixels
        quadratic = (
            p.attention_share
            * count
            * (self.quadratic(height, width) / self.quadratic(self.height, self.width))
        )
        return p.flops * (linear + quadratic)

    def peak(self, phase: str, frames: int, height: int, width: int, chunk: int = 0) -> float:
        p = self.phases[phase]
        pixels = (height * width) / (self.height * self.width)
        extent = frames / self.frames if p.per_frame else (chunk or self.chunk) / self.chunk
        return p.resident + (p.peak - p.resident) * pixels * extent


# bench/real_size.py, 576x1024x14, bf16 (bench/RESULTS.md, "Real size without a GPU", the "new"
# rows, with the store's device tier (7.1 GB) taken out of the editing peaks). Weights: UNet,
# VAE and CLIP 4.51 GB; the UNet alone with the LoRA and its optimiser state ~3.2 GB.
_WEIGHTS = 4.51 * GB
_TRAINING_WEIGHTS = 3.2 * GB
_ATTENTION = 8.7e12 / 44.8e12  # the spatial attention share of one UNet call (14 x 6.2e11)
SVD = Profile(
    name="Stable Video Diffusion (bench/real_size.py accounting)",
    height=576,
    width=1024,
    frames=14,
    chunk=8,
    phases={
        # one motion-LoRA training step (forward, backward, AdamW), temporal blocks checkpointed
        "lora": Phase(138.5e12, _ATTENTION, 14.9 * GB, _TRAINING_WEIGHTS),
        # the VAE encode of a window's frames, CLIP and the condition
        "encode": Phase(36.5e12 + 2.9e12, 0.0, 10.7 * GB, _WEIGHTS, per_frame=False),
        # one inversion call, recording the source branch
        "invert": Phase(44.8e12, _ATTENTION, 6.7 * GB, _WEIGHTS),
        # one matched editing step from the store: [uncond, cond] and the fused mask
        "edit": Phase(116.5e12, (2 * 8.7e12 + 26.9e12) / 116.5e12, 9.2 * GB, _WEIGHTS),
        # the same step for a window after the first: the anchor's call replayed first
        "edit_anchored": Phase(
            277.0e12, (5 * 8.7e12 + 2 * 26.9e12) / 277.0e12, 15.9 * GB, _WEIGHTS
        ),
        # decoding a window's latents, in chunks of 8 frames
        "decode": Phase(97.2e12, 0.0, 14.3 * GB, _WEIGHTS, per_frame=False),
    },
    default_speeds={  # FLOPs / projected H100 seconds
        "lora": 138.5e12 / 0.97,
        "encode": 39.4e12 / 0.15,
        "invert": 44.8e12 / 0.18,
        "edit": 116.5e12 / 0.42,
        "edit_anchored": 277.0e12 / 1.07,
        "decode": 97.2e12 / 0.41,
    },
)
CUDA_CONTEXT = 0.6 * GB  # what the CUDA context and cuBLAS take before any tensor
HEADROOM = 1.06  # allocator slack over the allocated peak (bench/RESULTS.md)

TIME_PHASES = ("lora", "invert", "edit", "decode")  # the phases hosts show, in order
_CPU_FLOPS = 0.2e12  # a first guess for a CPU before any job has run there


@dataclass(frozen=True)
class JobShape:
    """What the estimate needs to know of a job."""

    frame_count: int  # of the range
    keyframes: tuple[int, ...] = (0,)
    edits: int = 1  # edited frames (takes, or keyframes of one take)
    height: int = 576
    width: int = 1024
    window: int = 14
    overlap: int = 1
    steps: int = 25
    lora_steps: int = 250
    lora_rank: int = 32
    lora_height: int | None = None
    lora_width: int | None = None
    skip_interval: bool = True
    decode_chunk: int = 8
    source_width: int = 1920  # of the output frames
    source_height: int = 1080
    output_format: str = "mov"
    deep: bool = False  # a 10-bit or deeper source (bigger outputs)
    outputs: int = 1
    cache: bool = True


@dataclass(frozen=True)
class Half:
    frames: int  # frames the half processes, its edited frame included
    edits: int  # edited frames it runs for


@dataclass
class Estimate:
    peak_vram_bytes: float
    peak_phase: str
    cache_bytes: float
    output_bytes: float
    scratch_bytes: float
    seconds: dict[str, float]  # per phase of TIME_PHASES
    windows: int
    profile: str
    calibrated: bool  # the speeds were measured on this machine

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())

    @property
    def disk_bytes(self) -> float:
        return self.cache_bytes + self.output_bytes + self.scratch_bytes


def halves(shape: JobShape) -> list[Half]:
    """The halves the job runs (engine/bidirectional.py), without their crossfade margins."""
    keys = sorted(set(shape.keyframes))
    per_key = shape.edits if len(keys) == 1 else 1
    out = []
    for i, k in enumerate(keys):
        low = 0 if i == 0 else (keys[i - 1] + k) // 2 + 1
        high = shape.frame_count if i == len(keys) - 1 else (k + keys[i + 1]) // 2 + 1
        for length in (k - low + 1, high - k):
            if length >= 2:
                out.append(Half(length, per_key))
    return out or [Half(max(2, shape.frame_count), per_key)]


def window_count(frames: int, window: int, overlap: int) -> int:
    if frames <= window:
        return 1
    return 1 + math.ceil((frames - window) / (window - overlap))


def estimate(
    shape: JobShape, speeds: dict[str, float] | None = None, profile=SVD, gpu: bool = True
) -> Estimate:
    """Peak VRAM, disk and time per phase of `shape`; `speeds`: measured FLOP/s per phase (until
    then, an H100-class guess for a GPU, a slow one for a CPU)."""
    h, w = shape.height, shape.width
    f = min(shape.window, max(2, shape.frame_count))
    lora_h, lora_w = shape.lora_height or h, shape.lora_width or w
    runs = halves(shape)
    windows = sum(window_count(x.frames, shape.window, shape.overlap) for x in runs)
    later = sum(window_count(x.frames, shape.window, shape.overlap) - 1 for x in runs)
    chains = sum(window_count(x.frames, shape.window, shape.overlap) * x.edits for x in runs)
    later_chains = sum(
        (window_count(x.frames, shape.window, shape.overlap) - 1) * x.edits for x in runs
    )
    anchored = shape.skip_interval and later > 0

    # 1. Peak device memory: the largest phase that runs.
    peaks = {
        "encode": profile.peak("encode", f, h, w, shape.decode_chunk),
        "invert": profile.peak("invert", f, h, w),
        "edit": profile.peak("edit", f, h, w),
        "decode": profile.peak("decode", f, h, w, 1),  # the chunk is cut to what fits
    }
    if shape.lora_steps > 0:
        peaks["lora"] = profile.peak("lora", f, lora_h, lora_w)
    if anchored:
        peaks["edit_anchored"] = profile.peak("edit_anchored", f, h, w)
    peak_phase = max(peaks, key=lambda phase: peaks[phase])
    peak = peaks[peak_phase] * HEADROOM + CUDA_CONTEXT

    # 2. Time per phase: FLOPs over the speed.
    guess = profile.default_speeds if gpu else dict.fromkeys(TIME_PHASES, _CPU_FLOPS)
    rates = {**guess, **(speeds or {})}
    work = {
        "lora": windows * shape.lora_steps * profile.flops("lora", f, lora_h, lora_w),
        "invert": windows
        * (profile.flops("encode", f, h, w) + (shape.steps + 1) * profile.flops("invert", f, h, w)),
        "edit": (chains - (later_chains if anchored else 0))
        * shape.steps
        * profile.flops("edit", f, h, w)
        + (later_chains if anchored else 0) * shape.steps * profile.flops("edit_anchored", f, h, w),
        "decode": chains * profile.flops("decode", f, h, w),
    }
    seconds = {phase: work[phase] / rates.get(phase, _CPU_FLOPS) for phase in TIME_PHASES}

    # 3. Disk: the cache's entries, the outputs, and frames waiting to be stitched.
    latent = f * 4 * (h // 8) * (w // 8) * 4  # one window's latents in fp32
    window_entry = (shape.steps + 1) * latent + shape.lora_rank * profile.lora_bytes_per_rank * (
        shape.lora_steps > 0
    )
    take_entries = chains * latent + len(runs) * shape.edits * shape.steps * latent
    cache = (windows * window_entry + take_entries) if shape.cache else 0.0
    pixels = shape.source_width * shape.source_height
    per_frame = _output_bytes_per_pixel(shape.output_format, shape.deep) * pixels
    output = per_frame * shape.frame_count * shape.outputs
    streaming = len(runs) == 1 and min(shape.keyframes) == 0
    canvas = 3 * h * w * 4
    scratch = 0.0 if streaming else shape.frame_count * canvas * 3.4  # frames, spills of halves
    return Estimate(
        peak_vram_bytes=peak,
        peak_phase=peak_phase,
        cache_bytes=cache,
        output_bytes=output,
        scratch_bytes=scratch,
        seconds=seconds,
        windows=windows,
        profile=profile.name,
        calibrated=speeds is not None and all(p in speeds for p in TIME_PHASES),
    )


def _output_bytes_per_pixel(fmt: str, deep: bool) -> float:
    """Sizes the writers make, rounded up (media/writer.py): ProRes 422 HQ at ~220 Mbit/s for
    1080p30, H.264/HEVC at crf 16, PNG compressed to about 60 % of raw."""
    if fmt == "png":
        return 3 * (2 if deep else 1) * 0.6
    if fmt == "mov":
        return 0.45 * (1.5 if deep else 1)
    return 0.12


def measured_speeds(
    shape: JobShape, seconds: dict[str, float], work: dict[str, int], profile=SVD
) -> dict[str, float]:
    """FLOP/s per phase that one finished job showed: the accounting's FLOPs for the work it did
    (its counts: LoRA steps, inversions, editing passes, decoded windows) over its times."""
    h, w = shape.height, shape.width
    f = min(shape.window, max(2, shape.frame_count))
    lora_h, lora_w = shape.lora_height or h, shape.lora_width or w
    done = {
        "lora": work.get("lora_steps", 0) * profile.flops("lora", f, lora_h, lora_w),
        "invert": work.get("inversions", 0)
        * (profile.flops("encode", f, h, w) + (shape.steps + 1) * profile.flops("invert", f, h, w)),
        "edit": work.get("edit_passes", 0) * shape.steps * profile.flops("edit", f, h, w),
        "decode": work.get("decoded_windows", 0) * profile.flops("decode", f, h, w),
    }
    return {
        phase: done[phase] / seconds[phase]
        for phase in TIME_PHASES
        if done[phase] > 0 and seconds.get(phase, 0.0) > 0.0
    }


# -- refusals -------------------------------------------------------------------------------------

_HINTS = {
    "lora": "train the motion LoRA at 512×896 or process fewer frames per window",
    "edit_anchored": "turn skip-interval off or process fewer frames per window",
    "edit": "use a smaller processing size or fewer frames per window",
    "invert": "use a smaller processing size or fewer frames per window",
    "encode": "use a smaller processing size",
    "decode": "use a smaller processing size",
}


def vram_problem(estimate: Estimate, total_bytes: int) -> tuple[str, str] | None:
    """(message, hint) when the job cannot fit a GPU of `total_bytes`; None when it fits."""
    if estimate.peak_vram_bytes <= total_bytes:
        return None
    need = math.ceil(estimate.peak_vram_bytes / GIB)  # as cards are labelled: 24 GB = 24 GiB
    has = round(total_bytes / GIB)
    return (
        f"needs {need} GB of VRAM ({_PHASE_NAMES[estimate.peak_phase]}), this GPU has {has}.",
        _HINTS[estimate.peak_phase][0].upper() + _HINTS[estimate.peak_phase][1:] + ".",
    )


_PHASE_NAMES = {
    "lora": "training the motion LoRA",
    "edit_anchored": "editing a later window with skip-interval",
    "edit": "editing",
    "invert": "inverting",
    "encode": "encoding the frames",
    "decode": "decoding",
}


def disk_problem(need: float, free: int, where: str) -> tuple[str, str] | None:
    if need <= free:
        return None
    return (
        f"needs {_size(need)} of disk on {where}, {_size(free)} are free.",
        "Free some space (`framerelay cache gc` trims the cache), choose another output folder, "
        "or process a shorter range.",
    )


def _size(size: float) -> str:
    return f"{size / GB:.1f} GB" if size >= 0.1 * GB else f"{size / 1e6:.0f} MB"
