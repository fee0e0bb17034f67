"""A job's windows as analysis tasks for other workers: plan them, and analyse one (docs/scale.md).

`plan` computes every window's cache key the way `run_edit` does and saves the window's frames
for a helper; `analyse` runs a window's analysis (`run.analyse_window`, the same code the job
runs) on a helper's warm engine and stores the cache entry that the editing chain then hits.
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch

from framerelay.cache import ArtifactCache, hash_frames
from framerelay.engine import artifacts, attention, lora, run, source_store
from framerelay.engine.anchor import Anchor
from framerelay.engine.request import EditRequest
from framerelay.engine.window_tasks import WindowTask
from framerelay.engine.windows import group_frames, plan_windows
from framerelay.errors import InternalError
from framerelay.progress import CancelToken, ProgressSink, ignore_progress

log = logging.getLogger(__name__)


def plan(job_id: str, request: EditRequest, engine: run.Engine, folder: Path) -> list[WindowTask]:
    """The job's window analyses, each window's frames saved under `folder`; none for a job of
    one window, without the cache (nothing to share), or that `run.fans_out` leaves alone."""
    params = request.params.validate()
    if not run.fans_out(request):
        return []
    source = run._open_source(request, params)
    windows = plan_windows(source.span.frame_count, params.window, params.overlap)
    if len(windows) < 2:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    tasks: list[WindowTask] = []
    anchor_key = None
    for index, (span, frames) in enumerate(group_frames(run._model_frames(source), windows)):
        key = artifacts.window_key(
            hash_frames(frames), params, request.model, engine.dtype_name, len(span), anchor_key
        )
        path = folder / f"window-{index}.npy"
        np.save(path, frames)
        tasks.append(
            WindowTask(
                job_id, index, len(windows), key, anchor_key, path, request, engine.dtype_name
            )
        )
        if index == 0 and params.skip_interval:
            anchor_key = key
    return tasks


def analyse(
    engine: run.Engine,
    task: WindowTask,
    progress: ProgressSink = ignore_progress,
    cancel: CancelToken | None = None,
) -> bool:
    """Computes the window's cache entry; False when it was there already."""
    request = task.request
    if request is None:
        raise InternalError(f"window task {task.id} carries no request.")
    cache = ArtifactCache(request.cache_dir)
    if cache.get(task.key) is not None:
        return False
    if engine.dtype_name != task.dtype:
        raise InternalError(f"a {engine.dtype_name} engine cannot analyse a {task.dtype} window.")
    params = request.params
    pipe, device = engine.pipe, engine.placement.device
    frames = np.load(task.frames)
    window = run._Window(task.index, torch.from_numpy(frames).to(device))
    report = run._in_window(progress, task.index, task.windows)
    with run._out_of_memory_as_error(), ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="framerelay-")))
        adapters = run._Adapters(pipe.unet)
        adapters.reset()
        controller = attention.AttentionController(
            attention.self_attention_layers(pipe.unet),
            attention.MatchingConfig(0.5, 0.8),
            attention.SourceAttentionStore(0),
        )
        previous = attention.install_processors(pipe.unet, controller)
        stack.callback(attention.restore_processors, pipe.unet, previous)
        stack.callback(adapters.reset)
        anchor = None
        if task.anchor_key is not None:
            anchor = _load_anchor(cache, task.anchor_key, pipe, adapters, params, device)
        latent_hw = (params.height // pipe.vae_scale_factor, params.width // pipe.vae_scale_factor)
        controller.store = source_store.window_store(
            params.source_memory_budget_mb,
            device,
            len(frames),
            latent_hw,
            pipe.unet.dtype,
            params.decode_chunk_size,
            pipe.vae.dtype,
        )
        autocast = engine.placement.dtype if device.type == "cuda" else None
        checkpoints = artifacts.checkpoint_dir(cache, task.key)
        inversion, _ = run.analyse_window(
            pipe, window, params, anchor, controller, checkpoints, report, cancel, autocast
        )
        run.store_analysis(
            cache, task.key, pipe.unet, inversion, params, scratch, str(request.source)
        )
    log.info("window %d/%d of job %s analysed", task.index + 1, task.windows, task.job_id)
    return True


def _load_anchor(cache, key: str, pipe, adapters, params, device) -> Anchor:
    """The anchor window's LoRA (kept aside for the capture passes) and inversion, as the job
    holds them after its first window."""
    entry = cache.get(key)
    if entry is None:
        raise InternalError("the anchor window's analysis is missing from the cache.")
    if params.lora.steps > 0:
        lora.load_motion_lora(pipe.unet, entry.path / artifacts.LORA_FILE)
        adapters.anchor_state = adapters.current_state()
        adapters.reset()
    inversion = artifacts.load_inversion(entry.path / artifacts.INVERSION_FILE, device)
    return Anchor(inversion, adapters.switch)
