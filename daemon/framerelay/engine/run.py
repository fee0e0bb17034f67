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
from collections.abc import Callable
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from framerelay import limits
from framerelay.cache import ArtifactCache, hash_frames
from framerelay.engine import artifacts, attention, lora, memory, source_store, speed
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
from framerelay.engine.presets import AUTO, PresetChoice, choose_preset
from framerelay.engine.region import latent_region, load_region, propagate_region
from framerelay.engine.request import EditRequest, EditResult
from framerelay.engine.sarp import perturb_smooth_areas
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
    """One edited first frame and the state of its chain of windows."""

    index: int
    path: Path
    output: Path
    frame: torch.Tensor  # (1, 3, H, W) in [-1, 1], at the model size
    choice: PresetChoice
    _sink: VideoSink | None = None
    anchor: AnchorEdit | None = None
    last_latent: torch.Tensor | None = None  # (1, 1, 4, h, w): the previous window's last frame
    last_frame: torch.Tensor | None = None  # (1, 3, H, W), re-fitted

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
        raise InvalidSpecError("no edited frame was given.", "Pass the edited first frame image.")
    limits.check_edited_count(len(request.edited_frames))
    for what, paths in (
        ("source", (request.source,)),
        ("edited frame", request.edited_frames),
        ("output", request.outputs),
    ):
        for path in paths:
            limits.check_path_text(path, what)
    if len(request.outputs) != len(request.edited_frames):
        raise InvalidSpecError(
            f"{len(request.edited_frames)} edited frames but {len(request.outputs)} outputs.",
            "Give one output per edited frame.",
        )
    if len(set(request.outputs)) != len(request.outputs):
        raise InvalidSpecError("two edits would write the same output.", "Give distinct outputs.")
    for output in request.outputs:
        writer.output_format(output, request.output_format)
        if output.exists() and not request.overwrite:
            raise InvalidSpecError(
                f"the output {output} exists.", "Choose another output or pass --overwrite."
            )
    return params


def _prepare_edit(
    index: int, path: Path, output: Path, source_first: np.ndarray, params: EngineParams
) -> _Edit:
    edited = image.load_image(path)
    height, width = source_first.shape[:2]
    geometry.check_edit_aspect(edited.shape[1], edited.shape[0], width, height)
    fit = geometry.fit_to(edited.shape[1], edited.shape[0], params.width, params.height)
    frame = torch.from_numpy(fit.to_model(edited[None]))
    choice = PresetChoice(params.matching.preset)
    if choice.preset == AUTO:
        source = geometry.fit_to(width, height, params.width, params.height)
        choice = choose_preset(_unit(source.to_model(source_first[None])), _unit(frame.numpy()))
        log.info("auto preset for %s: %s", path.name, choice.reason)
    return _Edit(index, path, output, frame, choice)


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


def _open_sink(output: Path, source: _Source, request: EditRequest) -> VideoSink:
    """A writer that restores the model's frames to the source's pixels, tags and audio."""
    found = source.span.footage
    fmt = writer.output_format(output, request.output_format)
    encoding, warnings = writer.for_source(
        found.colour,
        found.bit_depth,
        found.chroma,
        found.alpha,
        fmt,
        rotation=found.display.rotation,
        sar=found.display.sar,
        timecode=source.span.timecode,
    )
    for warning in warnings:
        _warn(source, warning)
    return VideoSink(
        output,
        found.fps,
        request.output_format,
        request.overwrite,
        restore=Restore(source.bridge, source.span, request.keep_unedited),
        encoding=encoding,
        audio=source.audio if fmt != "png" else None,
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
    inversion (recorded into `controller.store`); and the LoRA steps run. The job's own windows
    and a pool's helpers (engine/fanout.py) run this same function."""
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


def _edit_condition(pipe, edit: _Edit, params: EngineParams) -> Condition:
    generator = torch.Generator().manual_seed(params.seed + 1 + edit.index)
    if edit.last_latent is None:
        return encode_condition(pipe, edit.frame.to(pipe.unet.device), params, generator)
    # A later window: conditioned on the previous window's last generated frame, its final
    # latent used directly (no decode/encode round trip), its pixels for the CLIP embedding.
    assert edit.last_frame is not None  # kept with last_latent
    latent = edit.last_latent[:, 0] / pipe.vae.config.scaling_factor
    noise = torch.randn(latent.shape, generator=generator, dtype=torch.float32)
    latent = latent + params.noise_aug_strength * noise.to(latent.device)
    unet = pipe.unet
    return Condition(
        image_embeddings=encode_image_embeddings(pipe, edit.last_frame).to(unet.device, unet.dtype),
        image_latent=latent.to(unet.device, unet.dtype),
        added_time_ids=added_time_ids(pipe, params),
    )


def _edit_window(
    pipe,
    window: _Window,
    edit: _Edit,
    inversion: Inversion,
    params: EngineParams,
    anchor: Anchor | None,
    controller: attention.AttentionController,
    progress: ProgressSink,
    cancel: CancelToken | None,
) -> torch.Tensor:
    matching = _matching_config(params.matching, edit.choice.preset)
    condition = _edit_condition(pipe, edit, params)
    use_cfg = params.max_guidance > 1.0
    before_call = before_source = None
    if anchor is not None and edit.anchor is not None:
        anchor_edit = edit.anchor

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
        edit.anchor = AnchorEdit(condition, trajectory, matching, controller.region)
    edit.last_latent = latents[:, -1:]
    return latents


# -- the job -------------------------------------------------------------------------------------


def run_edit(
    request: EditRequest,
    progress: ProgressSink = ignore_progress,
    cancel: CancelToken | None = None,
    engine: Engine | None = None,
    preview: Callable[[np.ndarray], None] | None = None,
    hooks: WindowHooks | None = None,
) -> EditResult:
    """Propagate each edited first frame through the source clip; one output per edited frame.

    The motion LoRA and the inversion are computed once per window and shared by every edit, and
    kept in the artifact cache so that another edit of the same clip reuses them. `preview` gets
    the last frame (uint8, H×W×3, source size) of each window of the first edit once it is done.
    `hooks` (a worker pool, docs/scale.md) may have other workers analyse windows into the cache.
    """
    times = PhaseTimes()
    progress = times.wrap(progress)
    params = _check_request(request)

    # 1. Plan: which frames, which windows, the geometry and the edited frames.
    progress(Progress("decode", 0, 1))
    source = _open_source(request, params)
    windows = plan_windows(source.span.frame_count, params.window, params.overlap)
    fit = source.bridge.view.fit  # the picture as displayed, fitted to the model
    source_first = source.bridge.display_frame(next(footage.iter_native(source.span)))
    region = load_region(request.mask, fit) if request.mask is not None else None
    edits = [
        _prepare_edit(i, path, output, source_first, params)
        for i, (path, output) in enumerate(zip(request.edited_frames, request.outputs, strict=True))
    ]
    progress(Progress("decode", 1, 1))

    with _out_of_memory_as_error(), ExitStack() as stack:
        # 2. The model, kept warm by a daemon's Engine, and the job's attention controller.
        progress(Progress("load", 0, 1))
        engine = engine or Engine(request.model, request.device, request.dtype)
        pipe, device = engine.pipe, engine.placement.device
        engine.stores.begin_job()
        stack.callback(engine.stores.end_job)
        progress(Progress("load", 1, 1))
        cache = ArtifactCache(request.cache_dir) if request.use_cache else None
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="framerelay-")))
        adapters = _Adapters(pipe.unet)
        adapters.reset()
        controller = attention.AttentionController(
            attention.self_attention_layers(pipe.unet),
            attention.MatchingConfig(0.5, 0.8),
            attention.SourceAttentionStore(0),
        )
        previous = attention.install_processors(pipe.unet, controller)
        stack.callback(attention.restore_processors, pipe.unet, previous)
        stack.callback(adapters.reset)
        for edit in edits:
            edit.sink = _open_sink(edit.output, source, request)
            stack.callback(edit.sink.abort)
        autocast = engine.placement.dtype if device.type == "cuda" else None

        # 3. Window by window: LoRA, inversion, then every edit's chain.
        anchor: Anchor | None = None
        anchor_key: str | None = None
        lora_steps = hits = 0
        frames_iter = _model_frames(source)
        for index, (span, model_frames) in enumerate(group_frames(frames_iter, windows)):
            report = _in_window(progress, index, len(windows))
            frames = torch.from_numpy(model_frames).to(device)
            regions = None
            if region is not None:  # the edit region, along the source's motion
                regions = propagate_region(region, model_frames)
                region = regions[-1]
                latent_hw = (
                    params.height // pipe.vae_scale_factor,
                    params.width // pipe.vae_scale_factor,
                )
                controller.set_region(latent_region(regions, latent_hw))
            key = artifacts.window_key(
                hash_frames(model_frames),
                params,
                request.model,
                engine.dtype_name,
                len(span),
                anchor_key,
            )
            window = _Window(index, frames)
            if hooks is not None:  # another worker may be analysing this window: wait for it
                hooks.ready(index, key)
            entry = cache.get(key) if cache is not None else None
            hits += entry is not None
            store_shape = (
                device,
                len(span),
                (params.height // pipe.vae_scale_factor, params.width // pipe.vae_scale_factor),
                pipe.unet.dtype,
                params.decode_chunk_size,
                pipe.vae.dtype,
            )
            kept = engine.stores.take(key, params.steps, usable=entry is not None)
            controller.store = kept or source_store.window_store(
                params.source_memory_budget_mb, *store_shape
            )
            if kept is not None:
                report(Progress("invert", params.steps, params.steps, message=kept_message(kept)))

            adapters.reset()
            checkpoints = artifacts.checkpoint_dir(cache, key) if cache else scratch / key
            if entry is not None:  # hosts show that these phases came from the cache
                if params.lora.steps > 0:
                    report(Progress("lora", params.lora.steps, params.lora.steps, message="cached"))
                report(Progress("invert", params.steps, params.steps, message="cached"))
            if entry is not None:
                if params.lora.steps > 0:
                    lora.load_motion_lora(pipe.unet, entry.path / artifacts.LORA_FILE)
                inversion = artifacts.load_inversion(entry.path / artifacts.INVERSION_FILE, device)
            else:
                inversion, steps_run = analyse_window(
                    pipe, window, params, anchor, controller, checkpoints, report, cancel, autocast
                )
                lora_steps += steps_run
                if cache is not None:
                    store_analysis(
                        cache, key, pipe.unet, inversion, params, scratch, str(request.source)
                    )
                if hooks is not None:
                    hooks.analysed(index, key)

            for edit in edits:
                latents = _edit_window(
                    pipe, window, edit, inversion, params, anchor, controller, report, cancel
                )
                chunk = memory.decode_chunk_that_fits(
                    params.decode_chunk_size,
                    params.height,
                    params.width,
                    pipe.vae.dtype,
                    memory.device_free_bytes(device),
                )
                decoded = decode_video_latents(pipe, latents, chunk).float().cpu().numpy()
                refit = source.bridge.refit(decoded[-1])[None]
                edit.last_frame = torch.from_numpy(refit).to(device)
                new = slice(0 if index == 0 else params.overlap, None)
                edit.sink.write(decoded[new], None if regions is None else regions[new])
                if preview is not None and edit.index == 0:
                    preview(image.to_uint8(source.bridge.view.from_model(decoded[-1])))
                report(Progress("encode", index + 1, len(windows)))

            engine.stores.keep(
                key,
                controller.store,
                params.steps,
                functools.partial(source_store.room_for, *store_shape),
            )
            if index == 0 and params.skip_interval and len(windows) > 1:
                anchor = Anchor(inversion, adapters.switch)
                adapters.anchor_state = adapters.current_state()
                anchor_key = key
            if cancel is not None:
                cancel.raise_if_cancelled()

        # 4. Close the outputs: only now are they published at their paths.
        outputs = tuple(edit.sink.close().path for edit in edits)

    return EditResult(
        outputs=outputs,
        frame_count=source.span.frame_count,
        fps=source.span.footage.fps,
        size=source.span.footage.stored_size,
        preset=",".join(edit.choice.preset for edit in edits),
        preset_choices=tuple(edit.choice for edit in edits),
        seed=params.seed,
        phase_seconds=times.until_now("encode"),  # closing the outputs is encoding's
        windows=len(windows),
        lora_steps_run=lora_steps,
        cache_hits=hits,
        warnings=tuple(source.warnings),
    )
