"""One edit job end to end: decode, fit, invert, edit, map back, encode.

`Engine` holds the loaded model so that a daemon keeps it warm between jobs; `run_edit` is what the
CLI and the daemon call.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from framerelay.engine import attention
from framerelay.engine.conditioning import (
    decode_video_latents,
    encode_condition,
    encode_video_latents,
)
from framerelay.engine.editing import sample_edit
from framerelay.engine.inversion import Inversion, invert
from framerelay.engine.loading import Placement, choose_placement, load_pipeline
from framerelay.engine.params import PRESETS, EngineParams, MatchingParams
from framerelay.engine.presets import choose_preset
from framerelay.engine.request import EditRequest, EditResult
from framerelay.engine.sarp import perturb_smooth_areas
from framerelay.errors import InvalidSpecError, OutOfMemoryError
from framerelay.media import geometry, image, video, writer
from framerelay.progress import CancelToken, Progress, ProgressSink, ignore_progress

log = logging.getLogger(__name__)


class Engine:
    """The loaded SVD pipeline, loaded on first use and kept until `unload`."""

    def __init__(
        self,
        model: str,
        device: str | None = None,
        dtype: str | None = None,
        local_files_only: bool = False,
    ):
        self.model = model
        self.placement: Placement = choose_placement(device, dtype)
        self.local_files_only = local_files_only
        self._pipe = None

    @property
    def loaded(self) -> bool:
        return self._pipe is not None

    @property
    def pipe(self):
        if self._pipe is None:
            self._pipe = load_pipeline(self.model, self.placement, self.local_files_only)
        return self._pipe

    def matches(self, model: str, device: str | None, dtype: str | None) -> bool:
        return self.model == model and self.placement == choose_placement(device, dtype)

    def unload(self) -> None:
        self._pipe = None
        if self.placement.device.type == "cuda":
            torch.cuda.empty_cache()


@dataclass
class _PreparedEdit:
    path: Path
    output: Path
    frame: torch.Tensor  # (1, 3, H, W) in [-1, 1]
    preset: str


def _check_request(request: EditRequest) -> EngineParams:
    params = request.params.validate()
    if not request.edited_frames:
        raise InvalidSpecError("no edited frame was given.", "Pass the edited first frame image.")
    if len(request.outputs) != len(request.edited_frames):
        raise InvalidSpecError(
            f"{len(request.edited_frames)} edited frames but {len(request.outputs)} outputs.",
            "Give one output per edited frame.",
        )
    for output in request.outputs:
        writer.output_format(output, request.output_format)
    return params


def _decode_source(request: EditRequest, params: EngineParams) -> video.Clip:
    clip = video.read_clip(request.source, request.start, request.end)
    if len(clip.frames) > params.window:
        raise InvalidSpecError(
            f"the clip has {len(clip.frames)} frames; one model window holds {params.window}.",
            "Shorten the range with --start/--end (long videos come with chained windows).",
        )
    return clip


def _prepare_edit(
    path: Path, output: Path, source_first: np.ndarray, params: EngineParams
) -> _PreparedEdit:
    edited = image.load_image(path)
    height, width = source_first.shape[:2]
    geometry.check_edit_aspect(edited.shape[1], edited.shape[0], width, height)
    fit = geometry.fit_to(edited.shape[1], edited.shape[0], params.width, params.height)
    frame = torch.from_numpy(fit.to_model(edited[None]))
    preset = params.matching.preset
    if preset == "auto":
        source = geometry.fit_to(width, height, params.width, params.height)
        choice = choose_preset(_unit(source.to_model(source_first[None])), _unit(frame.numpy()))
        log.info("auto preset for %s: %s", path.name, choice)
        preset = choice.preset
    return _PreparedEdit(path, output, frame, preset)


def _unit(model_frames: np.ndarray) -> np.ndarray:
    """(1, 3, H, W) in [-1, 1] -> (H, W, 3) in [0, 1]."""
    return (model_frames[0].transpose(1, 2, 0) + 1.0) / 2.0


def _matching_config(matching: MatchingParams, preset: str) -> attention.MatchingConfig:
    beta1, beta2 = matching.betas(preset)
    return attention.MatchingConfig(beta1, beta2, matching.mask_threshold)


@contextmanager
def _processors(unet, controller: attention.AttentionController | None):
    if controller is None:
        yield
        return
    previous = attention.install_processors(unet, controller)
    try:
        yield
    finally:
        attention.restore_processors(unet, previous)


@contextmanager
def _out_of_memory_as_error():
    try:
        yield
    except torch.cuda.OutOfMemoryError as error:
        raise OutOfMemoryError(f"the GPU ran out of memory: {error}".splitlines()[0]) from error
    except MemoryError as error:
        raise OutOfMemoryError("the machine ran out of memory.") from error


def _invert_source(
    pipe,
    frames: torch.Tensor,
    params: EngineParams,
    controller: attention.AttentionController | None,
    progress: ProgressSink,
    cancel: CancelToken | None,
) -> Inversion:
    generator = torch.Generator().manual_seed(params.seed)
    condition = encode_condition(pipe, frames[:1], params, generator)
    perturbed = perturb_smooth_areas(frames, params.sarp_threshold, params.sarp_alpha, generator)
    latents = encode_video_latents(pipe, perturbed, params.decode_chunk_size)
    with _processors(pipe.unet, controller):
        return invert(pipe, latents, condition, params.steps, controller, progress, cancel)


def _edit_one(
    pipe,
    inversion: Inversion,
    edit: _PreparedEdit,
    params: EngineParams,
    controller: attention.AttentionController | None,
    progress: ProgressSink,
    cancel: CancelToken | None,
) -> np.ndarray:
    generator = torch.Generator().manual_seed(params.seed + 1)
    condition = encode_condition(pipe, edit.frame, params, generator)
    with _processors(pipe.unet, controller):
        latents = sample_edit(
            pipe,
            inversion,
            condition,
            params.min_guidance,
            params.max_guidance,
            controller,
            progress,
            cancel,
        )
    frames = decode_video_latents(pipe, latents, params.decode_chunk_size)
    return frames.cpu().numpy()


def run_edit(
    request: EditRequest,
    progress: ProgressSink = ignore_progress,
    cancel: CancelToken | None = None,
    engine: Engine | None = None,
) -> EditResult:
    """Propagate each edited first frame through the source clip; one output per edited frame."""
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    params = _check_request(request)

    # 1. Decode the source range and fit it to the model size.
    progress(Progress("decode", 0, 1))
    clip = _decode_source(request, params)
    height, width = clip.frames.shape[1:3]
    fit = geometry.fit_to(width, height, params.width, params.height)
    frames = torch.from_numpy(fit.to_model(clip.frames))
    edits = [
        _prepare_edit(path, output, clip.frames[0], params)
        for path, output in zip(request.edited_frames, request.outputs, strict=True)
    ]
    progress(Progress("decode", 1, 1))
    timings["decode"] = time.perf_counter() - clock

    with _out_of_memory_as_error():
        # 2. Load the model (kept warm by a daemon's Engine).
        progress(Progress("load", 0, 1))
        engine = engine or Engine(request.model, request.device, request.dtype)
        pipe = engine.pipe
        progress(Progress("load", 1, 1))
        timings["load"] = time.perf_counter() - clock - sum(timings.values())

        # 3. Invert once, recording the source branch within the memory budget.
        controller = None
        if params.matching.enabled:
            layers = attention.self_attention_layers(pipe.unet)
            budget = params.source_memory_budget_mb * 2**20
            store = attention.SourceAttentionStore(budget, device="cpu")
            first = _matching_config(params.matching, edits[0].preset)
            controller = attention.AttentionController(layers, first, store)
        inversion = _invert_source(
            pipe, frames.to(engine.placement.device), params, controller, progress, cancel
        )
        timings["invert"] = time.perf_counter() - clock - sum(timings.values())

        # 4. Edit, map back to the source geometry and encode, once per edited frame.
        outputs = []
        for edit in edits:
            if controller is not None:
                controller.config = _matching_config(params.matching, edit.preset)
            edited = _edit_one(pipe, inversion, edit, params, controller, progress, cancel)
            progress(Progress("encode", 0, 1))
            restored = fit.from_model(edited)
            info = writer.write_video(
                restored, edit.output, clip.fps, request.output_format, overwrite=request.overwrite
            )
            outputs.append(info.path)
            progress(Progress("encode", 1, 1))
        timings["edit+encode"] = time.perf_counter() - clock - sum(timings.values())

    return EditResult(
        outputs=tuple(outputs),
        frame_count=len(clip.frames),
        fps=clip.fps,
        size=(width, height),
        preset=",".join(edit.preset for edit in edits),
        timings=timings,
    )


__all__ = ["PRESETS", "Engine", "run_edit"]
