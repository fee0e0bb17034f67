"""One edit job end to end: decode, fit, per window train the motion LoRA, invert and edit,
map back, encode.

`Engine` holds the loaded model so that a daemon keeps it warm between jobs; `run_edit` is what the
CLI and the daemon call.
"""

from __future__ import annotations

import functools
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from framerelay import limits
from framerelay.cache import ArtifactCache, hash_frames
from framerelay.engine import (
    artifacts,
    attention,
    bidirectional,
    drift,
    lora,
    memory,
    qc,
    segments,
    source_store,
    speed,
)
from framerelay.engine.anchor import Anchor, AnchorEdit, capture_edit_kv, capture_source_kv
from framerelay.engine.conditioning import (
    Condition,
    added_time_ids,
    decode_video_latents,
    encode_condition,
    encode_image_embeddings,
    encode_image_latent,
    encode_source_condition,
    encode_video_latents,
    resize_frames,
)
from framerelay.engine.editing import sample_edit
from framerelay.engine.inversion import Inversion, invert
from framerelay.engine.loading import DTYPES, Placement, choose_placement, load_pipeline
from framerelay.engine.outputs import Restore, VideoSink
from framerelay.engine.params import EngineParams, MatchingParams
from framerelay.engine.presets import AUTO, PresetChoice, changed_area, choose_preset
from framerelay.engine.region import latent_region, load_region, propagate_region
from framerelay.engine.request import EditRequest, EditResult
from framerelay.engine.sarp import perturb_smooth_areas
from framerelay.engine.stitch import Piece, Stitcher
from framerelay.engine.window_tasks import WindowHooks, WindowTask
from framerelay.engine.windows import group_frames, plan_windows
from framerelay.errors import InvalidSpecError, OutOfMemoryError
from framerelay.media import audio, colour, footage, geometry, image, writer
from framerelay.progress import CancelToken, PhaseTimes, Progress, ProgressSink, ignore_progress

log = logging.getLogger(__name__)


class Engine:
    """The loaded SVD pipeline, loaded on first use and kept until `unload`."""

    def __init__(
        self,
        model: str,
        device: str | None = None,
        dtype: str | None = None,
        local_files_only: bool = False,
        speedups: speed.Speedups | None = None,
    ):
        self.model = model
        self.placement: Placement = choose_placement(device, dtype)
        self.local_files_only = local_files_only
        self.speedups = speedups if speedups is not None else speed.Speedups.from_env()
        self.stores = source_store.StoreKeeper()  # source stores kept for re-edits
        self._pipe = None

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    @property
    def pipe(self):
        if self._pipe is None:
            pipe = load_pipeline(self.model, self.placement, self.local_files_only)
            for module in (pipe.unet, pipe.vae, pipe.image_encoder):
                module.eval()
            speed.apply(pipe, self.speedups)
            self._pipe = pipe
        return self._pipe

    @property
    def dtype_name(self) -> str:
        return next(name for name, dtype in DTYPES.items() if dtype == self.placement.dtype)

    def matches(self, model: str, device: str | None, dtype: str | None) -> bool:
        return self.model == model and self.placement == choose_placement(device, dtype)

    def unload(self) -> None:
        self._pipe = None
        self.stores.clear()
        if self.placement.device.type == "cuda":
            torch.cuda.empty_cache()

    def edit(
        self,
        request: EditRequest,
        progress: ProgressSink = ignore_progress,
        cancel: CancelToken | None = None,
        preview: Callable[[np.ndarray], None] | None = None,
        hooks: WindowHooks | None = None,
    ) -> EditResult:
        """`run_edit` with this engine's model, loaded once and kept."""
        return run_edit(request, progress, cancel, engine=self, preview=preview, hooks=hooks)

    def plan_windows(self, job_id: str, request: EditRequest, folder: Path) -> list[WindowTask]:
        """The job's window analyses, for other workers (engine/fanout.py)."""
        from framerelay.engine import fanout

        return fanout.plan(job_id, request, self, folder)

    def analyse(
        self, task: WindowTask, progress: ProgressSink = ignore_progress, cancel=None
    ) -> None:
        """A window's analysis into the cache, for a job whose chain runs elsewhere."""
        from framerelay.engine import fanout

        fanout.analyse(self, task, progress, cancel)


@dataclass
class _Edit:
    """One edited frame: where it sits in the range and which take it goes to."""

    index: int
    path: Path
    frame: torch.Tensor  # (1, 3, H, W) in [-1, 1], at the model size
    choice: PresetChoice  # the preset and why
    at: int  # its frame index in the range (k)
    take: int  # the output it goes to
    changed: np.ndarray | None = None  # (H, W): what it changed, for drift control without a mask
    segment_frame: torch.Tensor | None = None  # a new edited frame for the segment's window
    segment_choice: PresetChoice | None = None  # the segment's windows' preset

    @property
    def preset(self) -> str:
        return self.choice.preset


@dataclass
class _Take:
    output: Path
    plan: bidirectional.Plan
    sink: VideoSink
    stitcher: Stitcher | None = None
    quality: qc.QcAccumulator | None = None

    def stitch(self, half: int, position: int, piece: Piece) -> None:
        assert self.stitcher is not None, "a take's stitcher is made with it"
        self.stitcher.add(half, position, piece)

    def stitch_close(self) -> None:
        assert self.stitcher is not None, "a take's stitcher is made with it"
        self.stitcher.close()


@dataclass
class _Chain:
    """One edit along one half: the state carried from window to window."""

    edit: _Edit
    half: int
    anchor: AnchorEdit | None = None
    last_latent: torch.Tensor | None = None  # (1, 1, 4, h, w): the previous window's last frame
    last_frame: torch.Tensor | None = None  # (1, 3, H, W), re-fitted
    take_key: str | None = None  # the previous window's take
    anchoring: drift.Anchoring | None = None
    changed: np.ndarray | None = None  # the edit's changed area at the last frame so far

    @property
    def sink(self) -> VideoSink:
        assert self._sink is not None, "the edit's output is opened with the job"
        return self._sink

    @sink.setter
    def sink(self, sink: VideoSink) -> None:
        self._sink = sink


@dataclass
class _Window:
    index: int
    frames: torch.Tensor  # (F, 3, H, W) in [-1, 1]


# -- checks and preparation ---------------------------------------------------------------------


def _check_request(request: EditRequest) -> EngineParams:
    params = request.params.validate()
    if not request.edited_frames:
        raise InvalidSpecError("no edited frame was given.", "Pass the edited frame image.")
    limits.check_edited_count(len(request.edited_frames))
    for what, paths in (
        ("source", (request.source,)),
        ("edited frame", request.edited_frames),
        ("output", request.outputs),
    ):
        for path in paths:
            limits.check_path_text(path, what)
    if len(request.outputs) != _take_count(request):
        raise InvalidSpecError(
            f"{len(request.edited_frames)} edited frames make {_take_count(request)} take(s), "
            f"but {len(request.outputs)} outputs were given.",
            "Give one output per edited frame, or one for edited frames at different frames.",
        )
    if len(set(request.outputs)) != len(request.outputs):
        raise InvalidSpecError("two edits would write the same output.", "Give distinct outputs.")
    for output in request.outputs:
        writer.output_format(output, request.output_format)
        if output.exists() and not request.overwrite:
            raise InvalidSpecError(
                f"the output {output} exists.", "Choose another output or pass --overwrite."
            )
    if request.segment is not None:
        segments.check(request, params)
    return params


def edit_frames(request: EditRequest) -> tuple[int, ...]:
    frames = request.edit_frames or (0,) * len(request.edited_frames)
    if len(frames) != len(request.edited_frames):
        raise InvalidSpecError(
            f"{len(request.edited_frames)} edited frames but {len(frames)} frame indices.",
            "Give one frame index per edited frame.",
        )
    distinct = set(frames)
    if 1 < len(distinct) < len(frames):
        raise InvalidSpecError(
            "some edited frames share a frame index and others do not.",
            "Give every edited frame the same index (one take each) or all different indices "
            "(one take split between them).",
        )
    return tuple(frames)


def fans_out(request: EditRequest) -> bool:
    """Whether a pool's other workers can analyse the job's windows ahead of it: engine/fanout.py
    plans the windows of one forward pass from the range's first frame, so a job whose edited
    frames are all that frame and that re-renders no segment."""
    return request.use_cache and request.segment is None and not any(edit_frames(request))


def _take_count(request: EditRequest) -> int:
    frames = edit_frames(request)
    return 1 if len(set(frames)) > 1 else len(frames)


def _prepare_edit(
    index: int,
    path: Path,
    at: int,
    take: int,
    source: np.ndarray,
    display_size: tuple[int, int],
    params: EngineParams,
) -> _Edit:
    """`source`: the source frame at `at`, (3, H, W) on the canvas."""
    frame = _load_edit(path, display_size, params)
    choice = _resolve_preset(params.matching, source, frame, path)
    return _Edit(index, path, frame, choice, at, take)


def _load_edit(path: Path, display_size: tuple[int, int], params: EngineParams) -> torch.Tensor:
    edited = image.load_image(path)
    width, height = display_size
    geometry.check_edit_aspect(edited.shape[1], edited.shape[0], width, height)
    fit = geometry.fit_to(edited.shape[1], edited.shape[0], params.width, params.height)
    return torch.from_numpy(fit.to_model(edited[None]))


def _resolve_preset(
    matching: MatchingParams, source: np.ndarray, frame: torch.Tensor, path: Path
) -> PresetChoice:
    choice = PresetChoice(matching.preset)
    if choice.preset == AUTO:
        choice = choose_preset(_unit(source[None]), _unit(frame.numpy()))
        log.info("auto preset for %s: %s", path.name, choice.reason)
    return choice


def _unit(model_frames: np.ndarray) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) in [0, 1]."""
    return (model_frames[0].transpose(1, 2, 0) + 1.0) / 2.0


def _matching_config(matching: MatchingParams, preset: str) -> attention.MatchingConfig | None:
    if not matching.enabled:
        return None
    beta1, beta2 = matching.betas(preset)
    return attention.MatchingConfig(beta1, beta2, matching.thresholds)


@contextmanager
def _out_of_memory_as_error():
    try:
        yield
    except torch.cuda.OutOfMemoryError as error:
        raise OutOfMemoryError(f"the GPU ran out of memory: {error}".splitlines()[0]) from error
    except MemoryError as error:
        raise OutOfMemoryError("the machine ran out of memory.") from error


def _in_window(progress: ProgressSink, index: int, count: int) -> ProgressSink:
    return lambda report: progress(replace(report, clip=index + 1, clips=count))


# -- the source's footage: frames in, takes out (docs/footage-and-colour.md) -----------------------


@dataclass
class _Source:
    span: footage.Span
    bridge: footage.Bridge
    audio: audio.AudioClip | None
    warnings: list[str]


def _open_source(request: EditRequest, params: EngineParams) -> _Source:
    """Probe the source, select the frames, and map its colour and geometry to the model's."""
    found = footage.probe(request.source, request.sequence_fps)
    first, stop = request.frame_range or (None, None)
    span = footage.select_range(found, first, stop, request.frame_rate)
    lut = colour.load_cube(request.input_lut) if request.input_lut is not None else None
    bridge = footage.bridge_for(found, params.width, params.height, lut)
    formats = {writer.output_format(o, request.output_format) for o in request.outputs}
    clip = None
    if request.audio and found.audio is not None and formats & {"mp4", "mov"}:
        clip = audio.read_range(found.path, span.start_time, span.duration)
    log.info(
        "source colour: %s; for the model: %s", found.colour.describe(), bridge.mapping.describe()
    )
    source = _Source(span, bridge, clip, [])
    for warning in found.warnings:
        _warn(source, warning)
    return source


def _warn(source: _Source, warning: str) -> None:
    if warning not in source.warnings:
        log.warning("%s", warning)
        source.warnings.append(warning)


def _model_frames(source: _Source):
    """The span's frames on the model's canvas, one (3, H, W) array at a time."""
    return (source.bridge.to_model(native) for native in footage.iter_native(source.span))


def _open_sink(
    output: Path, source: _Source, request: EditRequest, span: footage.Span
) -> VideoSink:
    """A writer that restores the model's frames to the source's pixels, tags and audio, for the
    frames of `span` (the range, or a re-rendered segment of it)."""
    found = span.footage
    fmt = writer.output_format(output, request.output_format)
    encoding, warnings = writer.for_source(
        found.colour,
        found.bit_depth,
        found.chroma,
        found.alpha,
        fmt,
        rotation=found.display.rotation,
        sar=found.display.sar,
        timecode=span.timecode,
    )
    for warning in warnings:
        _warn(source, warning)
    clip = source.audio
    if clip is not None and span is not source.span:
        clip = audio.read_range(found.path, span.start_time, span.duration)
    return VideoSink(
        output,
        found.fps,
        request.output_format,
        request.overwrite,
        restore=Restore(source.bridge, span, request.keep_unedited),
        encoding=encoding,
        audio=clip if fmt != "png" else None,
    )


# -- the motion LoRA: train (or load from the cache) and switch for skip-interval ------------------


class _Adapters:
    """The UNet's motion LoRA: the current window's, or (for a capture pass) the anchor's."""

    def __init__(self, unet):
        self.unet = unet
        self.anchor_state: dict[str, torch.Tensor] | None = None
        self._current: dict[str, torch.Tensor] | None = None

    def reset(self) -> None:
        if lora.has_motion_lora(self.unet):
            lora.remove_motion_lora(self.unet)

    def current_state(self) -> dict[str, torch.Tensor] | None:
        if not lora.has_motion_lora(self.unet):
            return None
        from peft import get_peft_model_state_dict

        state = get_peft_model_state_dict(self.unet, adapter_name=lora.MOTION_ADAPTER)
        return {name: tensor.detach().clone() for name, tensor in state.items()}

    def switch(self, which: str) -> None:
        if self.anchor_state is None or not lora.has_motion_lora(self.unet):
            return
        from peft import set_peft_model_state_dict

        if which == "anchor":
            self._current = self.current_state()
            set_peft_model_state_dict(self.unet, self.anchor_state, lora.MOTION_ADAPTER)
        elif self._current is not None:
            set_peft_model_state_dict(self.unet, self._current, lora.MOTION_ADAPTER)
            self._current = None


def _training_frames(frames: torch.Tensor, params: EngineParams) -> torch.Tensor:
    if params.lora.height is None or params.lora.width is None:
        return frames
    return resize_frames(frames, params.lora.height, params.lora.width)


def _train_lora(
    pipe,
    window: _Window,
    params: EngineParams,
    anchor: Anchor | None,
    controller: attention.AttentionController,
    checkpoints: Path,
    progress: ProgressSink,
    cancel: CancelToken | None,
    autocast: torch.dtype | None,
) -> int:
    frames = _training_frames(window.frames, params)
    first = frames[:1]
    batch = lora.TrainingBatch(
        video_latents=encode_video_latents(pipe, frames, params.decode_chunk_size).float(),
        condition_latent=encode_image_latent(pipe, first).float(),
        image_embeddings=encode_image_embeddings(pipe, first).float(),
        added_time_ids=added_time_ids(pipe, params).float(),
    )
    training = lora.LoraTrainingParams(
        steps=params.lora.steps,
        rank=params.lora.rank,
        lr=params.lora.lr,
        dropout=params.lora.dropout,
        checkpoint_every=params.lora.checkpoint_every,
        gradient_checkpointing=params.lora.gradient_checkpointing,
        seed=params.seed,
        noise_aug_strength=params.noise_aug_strength,
    )
    before_step = None
    same_size = params.lora.height is None
    if anchor is not None and same_size:
        sigmas = anchor.inversion.sigmas[:-1]

        def before_step(sigma: float) -> None:
            nearest = float(sigmas[(sigmas.log() - np.log(sigma)).abs().argmin()])
            capture_source_kv(pipe, anchor, controller, nearest)

    unused = (pipe.vae, pipe.image_encoder)
    with memory.off_device(unused, active=pipe.unet.device.type == "cuda"):
        result = lora.train_motion_lora(
            pipe.unet,
            batch,
            training,
            checkpoints,
            progress=progress,
            cancel=cancel,
            autocast_dtype=autocast,
            before_step=before_step,
        )
    controller.kv_mode = None
    pipe.unet.eval()
    # Frozen, as an adapter loaded from the cache is: a weight that requires grad makes torch's
    # matmul take another path even under no_grad, and a cache hit would give other frames.
    for parameter in lora.motion_lora_parameters(pipe.unet):
        parameter.requires_grad_(False)
    return result.steps_run


# -- one window ----------------------------------------------------------------------------------


def kept_message(store: source_store.TieredSourceStore) -> str:
    return f"source attention from the previous job: {store.summary(len(store))}"


def _invert_window(
    pipe,
    window: _Window,
    params: EngineParams,
    anchor: Anchor | None,
    controller: attention.AttentionController,
    progress: ProgressSink,
    cancel: CancelToken | None,
) -> Inversion:
    generator = torch.Generator().manual_seed(params.seed)
    condition = encode_source_condition(pipe, window.frames[:1], params, generator)
    frames = perturb_smooth_areas(
        window.frames, params.sarp_threshold, params.sarp_alpha, generator
    )
    latents = encode_video_latents(pipe, frames, params.decode_chunk_size)
    before_call = None
    if anchor is not None:

        def before_call(sigma: float) -> None:
            capture_source_kv(pipe, anchor, controller, sigma)

    recording = controller if params.matching.enabled else None
    inversion = invert(
        pipe, latents, condition, params.steps, recording, progress, cancel, before_call
    )
    controller.kv_mode = None
    if recording is not None and isinstance(controller.store, source_store.TieredSourceStore):
        message = controller.store.summary(params.steps)
        log.info("window %d: %s", window.index + 1, message)
        progress(Progress("invert", params.steps, params.steps, message=message))
    return inversion


def analyse_window(
    pipe,
    window: _Window,
    params: EngineParams,
    anchor: Anchor | None,
    controller: attention.AttentionController,
    checkpoints: Path,
    progress: ProgressSink,
    cancel: CancelToken | None,
    autocast: torch.dtype | None,
) -> tuple[Inversion, int]:
    """A window's analysis, what its cache entry holds: the motion LoRA (left in the UNet) and the
    inversion (recorded into `controller.store`); and the LoRA steps run. A pool's helpers
    (engine/fanout.py) run this; the job's own windows run the same two calls in `_Job.analysis`,
    timed apart (tests/test_scale_identity.py: the same frames either way)."""
    steps_run = 0
    if params.lora.steps > 0:
        steps_run = _train_lora(
            pipe, window, params, anchor, controller, checkpoints, progress, cancel, autocast
        )
    inversion = _invert_window(pipe, window, params, anchor, controller, progress, cancel)
    return inversion, steps_run


def store_analysis(
    cache: ArtifactCache,
    key: str,
    unet,
    inversion: Inversion,
    params: EngineParams,
    scratch: Path,
    clip: str,
) -> None:
    """Stores a window's analysis as its cache entry; the entry supersedes its LoRA checkpoints."""
    lora_file = None
    if params.lora.steps > 0:
        lora_file = lora.save_motion_lora(unet, scratch / f"{key}.safetensors")
    artifacts.store_window(cache, key, inversion, lora_file, clip)
    shutil.rmtree(artifacts.checkpoint_dir(cache, key), ignore_errors=True)


def _edit_condition(
    pipe, frame: torch.Tensor, chain: _Chain, params: EngineParams, new_frame: bool
) -> Condition:
    generator = torch.Generator().manual_seed(params.seed + 1 + chain.edit.index)
    if chain.last_latent is None or new_frame:
        return encode_condition(pipe, frame.to(pipe.unet.device), params, generator)
    # A later window: conditioned on the previous window's last generated frame, its final
    # latent used directly (no decode/encode round trip), its pixels for the CLIP embedding.
    assert chain.last_frame is not None  # kept with last_latent
    latent = chain.last_latent[:, 0] / pipe.vae.config.scaling_factor
    noise = torch.randn(latent.shape, generator=generator, dtype=torch.float32)
    latent = latent + params.noise_aug_strength * noise.to(latent.device)
    unet = pipe.unet
    return Condition(
        image_embeddings=encode_image_embeddings(pipe, chain.last_frame).to(
            unet.device, unet.dtype
        ),
        image_latent=latent.to(unet.device, unet.dtype),
        added_time_ids=added_time_ids(pipe, params),
    )


def _edit_window(
    pipe,
    window: _Window,
    chain: _Chain,
    condition: Condition,
    matching: attention.MatchingConfig | None,
    inversion: Inversion,
    params: EngineParams,
    anchor: Anchor | None,
    controller: attention.AttentionController,
    progress: ProgressSink,
    cancel: CancelToken | None,
) -> torch.Tensor:
    use_cfg = params.max_guidance > 1.0
    before_call = before_source = None
    if anchor is not None and chain.anchor is not None:
        anchor_edit = chain.anchor

        def before_call(step: int, sigma: float) -> None:
            capture_edit_kv(pipe, anchor, anchor_edit, controller, step, sigma, use_cfg)

        def before_source(sigma: float) -> None:  # as when the window's inversion recorded it
            capture_source_kv(pipe, anchor, controller, sigma)

    trajectory: list[torch.Tensor] | None = [] if window.index == 0 else None
    if matching is not None:
        controller.config = matching
    latents = sample_edit(
        pipe,
        inversion,
        condition,
        params.min_guidance,
        params.max_guidance,
        controller if matching is not None else None,
        progress,
        cancel,
        before_call,
        trajectory,
        before_source,
    )
    controller.kv_mode = None
    if trajectory is not None:
        chain.anchor = AnchorEdit(condition, trajectory, matching, controller.region)
    return latents


# -- the frames of the range ---------------------------------------------------------------------


class _Frames:
    """The range's frames on the model's canvas, window by window along a half.

    A take that only runs forward from the range's first frame reads the source once, as it goes;
    any other reads it once into a scratch file and picks frames from there.
    """

    def __init__(self, source: _Source, plan: bidirectional.Plan, scratch: Path):
        self.source = source
        self.streaming = (
            len(plan.halves) == 1
            and plan.halves[0].frames.start == 0
            and (plan.halves[0].direction == bidirectional.FORWARD)
        )
        self._scratch = scratch
        self._all: np.ndarray | None = None

    def at(self, index: int) -> np.ndarray:
        if self.streaming and index == 0:
            return next(_model_frames(self.source))
        return self._frames()[index]

    def _frames(self) -> np.ndarray:
        if self._all is None:
            frames = _model_frames(self.source)
            first = next(frames)
            count = self.source.span.frame_count
            stored = np.lib.format.open_memmap(
                self._scratch / "frames.npy", "w+", np.float32, (count, *first.shape)
            )
            stored[0] = first
            for i, frame in enumerate(frames, start=1):
                stored[i] = frame
            self._all = stored
        return self._all

    def windows(self, half: bidirectional.Half, windows: list[range]):
        """(positions in the half, (F, 3, H, W) frames) per window."""
        if self.streaming:
            yield from group_frames(_model_frames(self.source), windows)
            return
        frames = self._frames()
        for window in windows:
            indices = [half.frames[p] for p in window]
            yield window, np.ascontiguousarray(frames[indices])


# -- the job -------------------------------------------------------------------------------------


@dataclass
class _Counts:
    lora_steps: int = 0
    cache_hits: int = 0  # windows whose analysis came from the cache
    inversions: int = 0
    edit_passes: int = 0
    take_hits: int = 0  # windows whose edited latents came from the cache
    decoded: int = 0


class _Job:
    """One run of `run_edit`: the model, the cache, the controller and the takes."""

    def __init__(self, request, params, source, engine, progress, cancel, preview, stack):
        self.request, self.params, self.source = request, params, source
        self.engine, self.progress, self.cancel, self.preview = engine, progress, cancel, preview
        self.pipe, self.device = engine.pipe, engine.placement.device
        engine.stores.begin_job()  # source stores a warm engine kept for re-edits
        stack.callback(engine.stores.end_job)
        self.cache = ArtifactCache(request.cache_dir) if request.use_cache else None
        self.scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="framerelay-")))
        self.adapters = _Adapters(self.pipe.unet)
        self.adapters.reset()
        self.controller = attention.AttentionController(
            attention.self_attention_layers(self.pipe.unet),
            attention.MatchingConfig(0.5, 0.8),
            attention.SourceAttentionStore(0),
        )
        previous = attention.install_processors(self.pipe.unet, self.controller)
        stack.callback(attention.restore_processors, self.pipe.unet, previous)
        stack.callback(self.adapters.reset)
        self.autocast = engine.placement.dtype if self.device.type == "cuda" else None
        self.counts = _Counts()
        self.seconds: dict[str, float] = {}
        self.clip, self.clips = 0, 1
        self.mask: np.ndarray | None = None  # the user's edit region at the edited frame
        self.hooks: WindowHooks | None = None  # a pool's helpers analysing windows ahead

    # -- time per phase, for the finished event and the machine's calibration
    @contextmanager
    def timed(self, phase: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[phase] = self.seconds.get(phase, 0.0) + time.perf_counter() - started

    def params_for(self, half: bidirectional.Half, index: int) -> EngineParams:
        segment = self.request.segment
        if segment is None or half.direction != bidirectional.FORWARD:
            return self.params if segment is None else segment.base
        return segment.base if index < segment.start_window else self.params

    # -- the analysis of one window: motion LoRA and inversion, from the cache or computed
    def store_shape(self, frames: int, params: EngineParams) -> tuple:
        pipe = self.pipe
        latent = (params.height // pipe.vae_scale_factor, params.width // pipe.vae_scale_factor)
        return (
            self.device,
            frames,
            latent,
            pipe.unet.dtype,
            params.decode_chunk_size,
            pipe.vae.dtype,
        )

    def analysis(self, window, key, params, anchor, report, store: bool = True):
        """The window's inversion, its LoRA loaded; with `store`, the source store it edits from
        (kept from an earlier job by a warm engine, or new; `keep_store` hands it back)."""
        pipe, cache = self.pipe, self.cache
        entry = cache.get(key) if cache is not None else None
        self.counts.cache_hits += entry is not None
        if store:
            shape = self.store_shape(len(window.frames), params)
            kept = self.engine.stores.take(key, params.steps, usable=entry is not None)
            self.controller.store = kept or source_store.window_store(
                params.source_memory_budget_mb, *shape
            )
            if kept is not None:
                report(Progress("invert", params.steps, params.steps, message=kept_message(kept)))
        else:  # the anchor's: its replays record nothing, and a kept store must stay as it is
            self.controller.store = attention.SourceAttentionStore(0)
        self.adapters.reset()
        checkpoints = artifacts.checkpoint_dir(cache, key) if cache else self.scratch / key
        if entry is not None:
            report_cached_analysis(params, report)
            if params.lora.steps > 0:
                lora.load_motion_lora(pipe.unet, entry.path / artifacts.LORA_FILE)
            self._analysed(window, key)
            return artifacts.load_inversion(entry.path / artifacts.INVERSION_FILE, self.device)
        if params.lora.steps > 0:
            with self.timed("lora"):
                self.counts.lora_steps += _train_lora(
                    pipe,
                    window,
                    params,
                    anchor,
                    self.controller,
                    checkpoints,
                    report,
                    self.cancel,
                    self.autocast,
                )
        with self.timed("invert"):
            inversion = _invert_window(
                pipe, window, params, anchor, self.controller, report, self.cancel
            )
        self.counts.inversions += 1
        if cache is not None:
            store_analysis(
                cache, key, pipe.unet, inversion, params, self.scratch, str(self.request.source)
            )
            self._analysed(window, key)
        return inversion

    def _analysed(self, window: _Window, key: str) -> None:
        """The window's entry is in the cache: a pool's helpers may start the windows after it."""
        if self.hooks is not None and self.cache is not None:
            self.hooks.analysed(window.index, key)

    def keep_store(self, key: str, frames: int, params: EngineParams) -> None:
        shape = self.store_shape(frames, params)
        self.engine.stores.keep(
            key,
            self.controller.store,
            params.steps,
            functools.partial(source_store.room_for, *shape),
        )

    def decode(self, latents: torch.Tensor, params: EngineParams) -> np.ndarray:
        chunk = memory.decode_chunk_that_fits(
            params.decode_chunk_size,
            params.height,
            params.width,
            self.pipe.vae.dtype,
            memory.device_free_bytes(self.device),
        )
        with self.timed("decode"):
            decoded = decode_video_latents(self.pipe, latents, chunk)
            return decoded.float().cpu().numpy()

    def embed(self, frames: np.ndarray) -> np.ndarray:
        """The pipeline's image encoder on canvas frames (N, 3, H, W) -> (N, D)."""
        with self.timed("qc"), torch.no_grad():
            batch = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)
            return encode_image_embeddings(self.pipe, batch)[:, 0].float().cpu().numpy()


@dataclass
class _Half:
    """A half's anchor: window 0's analysis, set up when a later window first needs it."""

    window: _Window | None = None
    key: str | None = None
    params: EngineParams | None = None
    anchor: Anchor | None = None


def _run_half(job: _Job, h: int, chains: list[_Chain], takes: list[_Take], frames: _Frames):
    params, request, pipe = job.params, job.request, job.pipe
    plan = takes[0].plan
    half = plan.halves[h]
    windows = plan_windows(len(half.frames), params.window, params.overlap)
    segment = request.segment if half.direction == bidirectional.FORWARD else None
    state = _Half()
    region = job.mask
    box = job.source.bridge.view.fit.content_box
    content = _content_mask(params.height, params.width, box)
    latent_hw = (params.height // pipe.vae_scale_factor, params.width // pipe.vae_scale_factor)
    for chain in chains:
        chain.changed = chain.edit.changed
    for index, (positions, model_frames) in enumerate(frames.windows(half, windows)):
        job.clip += 1
        report = _in_window(job.progress, job.clip - 1, job.clips)
        window_params = job.params_for(half, index)
        window = _Window(index, torch.from_numpy(model_frames).to(job.device))
        regions = None
        if region is not None:  # the edit region, along the source's motion
            regions = propagate_region(region, model_frames)
            region = regions[-1]
            job.controller.set_region(latent_region(regions, latent_hw))
        else:
            job.controller.set_region(None)
        key = artifacts.window_key(
            hash_frames(model_frames),
            window_params,
            request.model,
            job.engine.dtype_name,
            len(positions),
            state.key if index > 0 and window_params.skip_interval else None,
        )
        if index == 0:
            state.window, state.key, state.params = window, key, window_params

        # 1. Each chain's take of this window: from the cache, or to be made.
        new_frame = segment is not None and segment.new_frame and index == segment.start_window
        found = {}
        for chain in chains:
            chain.take_key = _take_key(job, chain, key, window_params, index, new_frame)
            found[id(chain)] = _cached_take(job, chain, index, window_params)
        inversion = None
        if any(entry is None for entry in found.values()):
            if index > 0 and window_params.skip_interval:
                _ensure_anchor(job, state, report)
            if job.hooks is not None:  # another worker may be analysing this window: wait for it
                job.hooks.ready(index, key)
            inversion = job.analysis(window, key, window_params, state.anchor, report)
        else:  # every take of the window came from the cache: so, in effect, did its analysis
            report_cached_analysis(window_params, report)

        # 2. Edit (or take from the cache), decode, anchor the drift, hand frames to the takes.
        for chain in chains:
            take = takes[chain.edit.take]
            matching = _matching_config(
                window_params.matching, _preset(chain.edit, window_params, segment, index)
            )
            cached = found[id(chain)]
            if cached is not None:
                latents, kept = cached
                job.counts.take_hits += 1
                report(Progress("edit", window_params.steps, window_params.steps, message="cached"))
                if kept is not None:
                    chain.anchor = AnchorEdit(kept[0], kept[1], matching, job.controller.region)
            else:
                frame = chain.edit.segment_frame if new_frame else chain.edit.frame
                assert frame is not None and inversion is not None and chain.take_key is not None
                condition = _edit_condition(pipe, frame, chain, window_params, new_frame)
                with job.timed("edit"):
                    latents = _edit_window(
                        pipe,
                        window,
                        chain,
                        condition,
                        matching,
                        inversion,
                        window_params,
                        state.anchor,
                        job.controller,
                        report,
                        job.cancel,
                    )
                job.counts.edit_passes += 1
                if job.cache is not None:
                    kept = None
                    if index == 0 and window_params.skip_interval and chain.anchor is not None:
                        kept = (chain.anchor.condition, chain.anchor.trajectory)
                    artifacts.store_take(
                        job.cache, chain.take_key, latents, kept, str(request.source)
                    )
            chain.last_latent = latents[:, -1:]
            decoded = job.decode(latents, window_params)
            job.counts.decoded += 1
            refit = job.source.bridge.refit(decoded[-1])[None]
            chain.last_frame = torch.from_numpy(refit).to(job.device)
            decoded = _anchor_drift(
                job, chain, half, index, positions, decoded, model_frames, regions, content, take
            )
            for p in _written(index, len(positions), params.overlap, segment):
                piece = Piece(decoded[p], None if regions is None else regions[p], model_frames[p])
                take.stitch(h, positions[p], piece)
            if job.preview is not None and chain.edit.index == 0:
                job.preview(image.to_uint8(job.source.bridge.view.from_model(decoded[-1])))
            report(Progress("encode", index + 1, len(windows)))

        if inversion is not None:
            job.keep_store(key, len(positions), window_params)
        if (
            index == 0
            and window_params.skip_interval
            and len(windows) > 1
            and inversion is not None
        ):
            state.anchor = Anchor(inversion, job.adapters.switch)
            job.adapters.anchor_state = job.adapters.current_state()
        if job.cancel is not None:
            job.cancel.raise_if_cancelled()
    job.adapters.anchor_state = None


def _written(index: int, length: int, overlap: int, segment) -> range:
    """The positions of a window that it writes: not the frames shared with the previous window
    (that one wrote them), except when a segment's new edited frame conditions this window; then
    the previous window leaves them to it."""
    new_frame_at = segment.start_window if segment is not None and segment.new_frame else None
    start = 0 if index == 0 or index == new_frame_at else overlap
    stop = length - overlap if new_frame_at is not None and index == new_frame_at - 1 else length
    return range(start, stop)


def _preset(edit: _Edit, params: EngineParams, segment, index: int) -> str:
    if segment is not None and index >= segment.start_window and edit.segment_choice:
        return edit.segment_choice.preset
    return edit.preset


def _take_key(job: _Job, chain: _Chain, window_key: str, params, index: int, new_frame: bool):
    edit = chain.edit
    if index == 0 or new_frame:
        frame = edit.segment_frame if new_frame else edit.frame
        assert frame is not None  # a segment's new frame is loaded with the edit
        condition = hash_frames(frame.numpy())
    else:
        condition = "chain"
    region = job.controller.region
    segment = job.request.segment
    matching = _matching_config(params.matching, _preset(edit, params, segment, index))
    return artifacts.take_key(
        window_key,
        condition,
        None if index == 0 else chain.take_key,
        params,
        matching,
        edit.index,
        None if region is None else hash_frames(region.cpu().numpy()),
    )


def _cached_take(job: _Job, chain: _Chain, index: int, params: EngineParams):
    if job.cache is None or chain.take_key is None:
        return None
    entry = job.cache.get(chain.take_key)
    if entry is None:
        return None
    latents, kept = artifacts.load_take(entry, job.device)
    if index == 0 and params.skip_interval and kept is None:
        return None  # made without what later windows replay: make it again
    return latents, kept


def _ensure_anchor(job: _Job, state: _Half, report: ProgressSink) -> None:
    """Window 0's analysis, for skip-interval: it came from the cache when its takes did."""
    if state.anchor is not None or state.window is None:
        return
    inversion = job.analysis(state.window, state.key, state.params, None, report, store=False)
    state.anchor = Anchor(inversion, job.adapters.switch)
    job.adapters.anchor_state = job.adapters.current_state()


def _content_mask(height: int, width: int, box: tuple[int, int, int, int]) -> np.ndarray:
    x0, y0, x1, y1 = box
    mask = np.zeros((height, width), np.float32)
    mask[y0:y1, x0:x1] = 1.0
    return mask


def _anchor_drift(job, chain, half, index, positions, decoded, sources, regions, content, take):
    """Drift control and its measure; the frames to write."""
    if chain.anchoring is None:
        return decoded
    changed = None
    if chain.anchoring.region == "unedited" and regions is None and chain.changed is not None:
        changed = propagate_region(chain.changed, sources)
        chain.changed = changed[-1]
    with job.timed("qc"):
        out, before, after = chain.anchoring.process(
            decoded, sources, regions if regions is not None else changed, content
        )
    if take.quality is not None:
        first = half.frames[positions[0]] + take.quality.first_number
        last = half.frames[positions[-1]] + take.quality.first_number
        take.quality.add_drift(
            qc.WindowDrift(
                half.name, index + 1, (min(first, last), max(first, last)), before, after
            )
        )
    return out


def run_edit(
    request: EditRequest,
    progress: ProgressSink = ignore_progress,
    cancel: CancelToken | None = None,
    engine: Engine | None = None,
    preview: Callable[[np.ndarray], None] | None = None,
    hooks: WindowHooks | None = None,
) -> EditResult:
    """Propagate each edited frame through the source clip, forward and backward from it.

    The motion LoRA and the inversion are computed once per window and shared by every edit, and
    kept in the artifact cache so that another edit of the same clip reuses them; so is each
    edit's result per window, so that a re-rendered segment reuses the windows before it.
    `preview` gets the last frame (uint8, H×W×3, source size) of each window of the first edit.
    `hooks` (a worker pool, docs/scale.md) may have other workers analyse windows into the cache.
    """
    times = PhaseTimes()
    progress = times.wrap(progress)
    params = _check_request(request)
    at = edit_frames(request)

    # 1. Plan: which frames, the halves of each take, the geometry and the edited frames.
    progress(Progress("decode", 0, 1))
    source = _open_source(request, params)
    count = source.span.frame_count
    keyframes = tuple(sorted(set(at)))
    crossfade = params.crossfade_frames
    first = 0
    if request.segment is not None:
        first = segments.first_frame(request.segment, at[0], count, params)
    plan = bidirectional.plan(count, keyframes, crossfade, first)
    fit = source.bridge.view.fit  # the picture as displayed, fitted to the model
    with tempfile.TemporaryDirectory(prefix="framerelay-frames-") as frames_dir:
        frames = _Frames(source, plan, Path(frames_dir))
        display = source.span.footage.display_size
        one_take = len(keyframes) > 1
        edits = []
        for i, path in enumerate(request.edited_frames):
            base = request.segment.base_edited_frame if request.segment else None
            edit = _prepare_edit(
                i, base or path, at[i], 0 if one_take else i, frames.at(at[i]), display, params
            )
            if request.segment is not None:
                _prepare_segment_edit(edit, path, request.segment, frames, display, params)
            edits.append(edit)
        region = load_region(request.mask, fit) if request.mask is not None else None
        progress(Progress("decode", 1, 1))
        result = _run(
            request,
            params,
            source,
            plan,
            frames,
            edits,
            region,
            engine,
            progress,
            cancel,
            preview,
            times,
            hooks,
        )
    return result


def _prepare_segment_edit(edit, path, segment, frames, display, params) -> None:
    if segment.new_frame:
        edit.segment_frame = _load_edit(path, display, params)
        start = segments.window_start(segment.start_window, edit.at, params)
        edit.segment_choice = _resolve_preset(
            params.matching, frames.at(start), edit.segment_frame, path
        )
    else:
        edit.segment_choice = _resolve_preset(params.matching, frames.at(edit.at), edit.frame, path)


def _run(
    request,
    params,
    source,
    plan,
    frames,
    edits,
    region,
    engine,
    progress,
    cancel,
    preview,
    times,
    hooks,
) -> EditResult:
    with _out_of_memory_as_error(), ExitStack() as stack:
        # 2. The model, kept warm by a daemon's Engine, and the job's attention controller.
        progress(Progress("load", 0, 1))
        engine = engine or Engine(request.model, request.device, request.dtype)
        job = _Job(request, params, source, engine, progress, cancel, preview, stack)
        job.mask = region
        job.hooks = hooks if fans_out(request) else None
        progress(Progress("load", 1, 1))
        takes = _open_takes(job, plan, edits, stack)

        # 3. Half by half, window by window: LoRA, inversion, then every edit's chain.
        chains_of = {}
        for h in range(len(plan.halves)):
            if not plan.needed(h):
                continue
            keyframe = plan.keyframes[plan.halves[h].keyframe]
            chains_of[h] = [_Chain(e, h) for e in edits if e.at == keyframe]
        job.clips = sum(
            len(plan_windows(len(plan.halves[h].frames), params.window, params.overlap))
            for h in chains_of
        )
        for h, chains in chains_of.items():
            for chain in chains:
                chain.anchoring = _drift_for(job, chain.edit, frames)
            _run_half(job, h, chains, takes, frames)

        # 4. Close the outputs: only now are they published at their paths; then their reports.
        for take in takes:
            take.stitch_close()
        outputs = tuple(take.sink.close().path for take in takes)
        reports = []
        for take, output in zip(takes, outputs, strict=True):
            if take.quality is None:
                continue
            with job.timed("qc"):
                report = take.quality.report()
            report["job"] = segments.take_record(request, params, edits, takes.index(take))
            sidecar = qc.write_sidecar(output, report)
            log.info("%s: %s", output.name, report["verdict"])
            reports.append(qc.summary(report, sidecar))

    counts = job.counts
    return EditResult(
        outputs=outputs,
        frame_count=len(plan.output_frames),
        fps=source.span.footage.fps,
        size=source.span.footage.stored_size,
        preset=",".join(_take_presets(takes, edits)),
        preset_choices=tuple(
            next(e.choice for e in edits if e.take == t) for t in range(len(takes))
        ),
        seed=params.seed,
        phase_seconds=times.until_now("encode"),  # closing the outputs is encoding's
        compute_seconds=job.seconds,
        windows=job.clips,
        lora_steps_run=counts.lora_steps,
        cache_hits=counts.cache_hits,
        warnings=tuple(source.warnings),
        qc=tuple(reports),
        first_frame=plan.first,
        work={
            "inversions": counts.inversions,
            "edit_passes": counts.edit_passes,
            "take_hits": counts.take_hits,
            "decoded_windows": counts.decoded,
            "lora_steps": counts.lora_steps,
        },
    )


def _take_presets(takes: list[_Take], edits: list[_Edit]) -> list[str]:
    presets = []
    for t in range(len(takes)):
        names = sorted({e.preset for e in edits if e.take == t})
        presets.append("+".join(names))
    return presets


def _drift_for(job: _Job, edit: _Edit, frames: _Frames) -> drift.Anchoring | None:
    params = job.params
    if params.drift_strength <= 0 and not job.params.qc:
        return None
    region = drift.resolve_region(params.drift_region, edit.preset)
    if region == "unedited" and job.mask is None and edit.changed is None:
        source = frames.at(edit.at)
        edit.changed = changed_area(_unit(source[None]), _unit(edit.frame.numpy())).astype(
            np.float32
        )
    return drift.Anchoring(params.drift_strength, region)


def _open_takes(job: _Job, plan: bidirectional.Plan, edits: list[_Edit], stack) -> list[_Take]:
    request, source = job.request, job.source
    span = footage.sub_span(source.span, plan.first)
    number = _first_number(source.span)
    takes = []
    for t, output in enumerate(request.outputs):
        sink = _open_sink(output, source, request, span)
        stack.callback(sink.abort)
        take = _Take(output, plan, sink)
        if job.params.qc:
            edited = {e.at: e.frame[0].numpy() for e in edits if e.take == t}
            segment = request.segment
            for e in edits:  # a segment's new edited frame conditions its window's first frame
                if segment is not None and e.segment_frame is not None and e.take == t:
                    start = segments.window_start(segment.start_window, e.at, job.params)
                    edited[start] = e.segment_frame[0].numpy()
            take.quality = qc.QcAccumulator(
                first_number=number,
                edited=edited,
                box=source.bridge.view.fit.content_box,
                embed=job.embed,
                drift_strength=job.params.drift_strength,
                drift_region=job.params.drift_region,
            )
        take.stitcher = Stitcher(plan, _emitter(job, take), job.scratch / f"take{t}")
        takes.append(take)
    return takes


def report_cached_analysis(params: EngineParams, report) -> None:
    """Hosts show that a window's LoRA and inversion came from the cache."""
    if params.lora.steps > 0:
        report(Progress("lora", params.lora.steps, params.lora.steps, message="cached"))
    report(Progress("invert", params.steps, params.steps, message="cached"))


def _first_number(span: footage.Span) -> int:
    """The frame number hosts know the range's first frame by."""
    return span.footage.first_number + span.frames.start


def _emitter(job: _Job, take: _Take):
    def emit(index: int, piece: Piece) -> None:
        take.sink.write(piece.frame[None], None if piece.region is None else piece.region[None])
        if take.quality is not None:
            with job.timed("qc"):
                take.quality.add(index, piece.frame, piece.source, piece.region)

    return emit
