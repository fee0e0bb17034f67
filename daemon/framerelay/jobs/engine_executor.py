"""The real executor: runs jobs through an engine made by its engine factory.

The default factory, `load_engine`, imports the engine (and torch with it) on the first job, never
before, so the daemon starts and answers without torch; tests give a factory of their own. An
engine holds the loaded model: this executor keeps one between jobs (the model stays warm) and the
worker calls `unload` after the idle time.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, Protocol

from framerelay.engine import segments
from framerelay.engine.params import DEFAULT_MODEL
from framerelay.engine.request import EditRequest, EditResult, Segment
from framerelay.engine.window_tasks import WindowHooks, WindowTask
from framerelay.jobs.executor import Execution, ExecutionResult, ExecutorStatus, Reporter
from framerelay.jobs.slot_process import Helpers
from framerelay.progress import CancelToken, ProgressSink

log = logging.getLogger(__name__)

PREVIEW_SIZE = 256  # longest side of a preview picture, in pixels


class WarmEngine(Protocol):
    """What the executor needs of an engine (`framerelay.engine.run.Engine`)."""

    model: str
    placement: Any  # .device: the torch device the model runs on

    @property
    def loaded(self) -> bool: ...

    def matches(self, model: str, device: str | None, dtype: str | None) -> bool: ...

    def unload(self) -> None: ...

    def edit(
        self,
        request: EditRequest,
        progress: ProgressSink,
        cancel: CancelToken | None,
        preview: Callable[[Any], None] | None,
        hooks: WindowHooks | None = None,
    ) -> EditResult: ...

    def plan_windows(self, job_id: str, request: EditRequest, folder: Path) -> list[WindowTask]: ...

    def analyse(self, task: WindowTask, progress: ProgressSink, cancel: CancelToken) -> None: ...


EngineFactory = Callable[[str, str | None, str | None], WarmEngine]  # (model, device, dtype)


def load_engine(model: str, device: str | None, dtype: str | None) -> WarmEngine:
    """The real engine; its module, torch and diffusers are imported now (the first job)."""
    from framerelay.engine.run import Engine

    return Engine(model, device, dtype)


def edit_request_for(
    run: Execution,
    default_model: str,
    device: str | None,
    dtype: str | None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    settings: Mapping[str, Any] | None = None,
) -> EditRequest:
    """The engine's request for one run of a job: frames and the host's rate as the job gives
    them; `settings`: machine parameters (engine/params.py) of whoever runs the engine."""
    spec = run.spec
    frame_range = spec.frame_range
    return EditRequest(
        source=spec.source,
        edited_frames=spec.edited_frames,
        outputs=run.outputs,
        frame_range=(frame_range.in_frame, frame_range.out_frame) if frame_range else None,
        frame_rate=spec.source_fps,
        output_format=spec.output_format,
        # A later attempt replaces what an earlier one wrote; the worker has checked that
        # a first attempt finds no outputs unless the job asked to overwrite them.
        overwrite=spec.overwrite or run.attempt > 1,
        mask=spec.mask,
        model=spec.model or default_model,
        device=device,
        dtype=dtype,
        params=spec.engine_params().with_values(settings or {}),
        cache_dir=cache_dir,
        use_cache=use_cache,
        sequence_fps=spec.sequence_fps or spec.source_fps,
        input_lut=spec.input_lut,
        keep_unedited=spec.keep_unedited,
        audio=spec.audio,
        edit_frames=spec.edited_frame_indices,
        segment=segment_for(spec),
    )


def segment_for(spec) -> Segment | None:
    """The engine's segment for a job's SegmentSpec (the earlier job's part filled in at submit)."""
    segment = spec.segment
    if segment is None:
        return None
    from framerelay.jobs.spec import engine_params

    params = spec.engine_params()
    at = spec.edited_frame_indices[0]
    start = segments.window_for(segment.from_frame, at, params, segment.new_edited_frame)
    return Segment(
        start_window=start,
        base=engine_params(segment.base_preset, segment.base_params),
        base_edited_frame=segment.base_edited_frame,
        new_frame=segment.new_edited_frame,
        whole=segment.whole,
    )


def preview_png(frame: Any, longest: int = PREVIEW_SIZE) -> tuple[bytes, int, int]:
    """A small PNG of a uint8 H×W×3 frame, and its size."""
    import io

    from PIL import Image

    picture = Image.fromarray(frame)
    picture.thumbnail((longest, longest))
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue(), picture.width, picture.height


def result_from(edit: EditResult, first_number: int = 0) -> ExecutionResult:
    """`first_number`: the frame number of the job's range's first frame (its in_frame)."""
    same = {f.name: getattr(edit, f.name) for f in fields(ExecutionResult)}
    return ExecutionResult(
        **{
            **same,
            "phase_seconds": dict(edit.phase_seconds),
            "compute_seconds": dict(edit.compute_seconds),
            "first_frame": first_number + edit.first_frame,
            "work": {**edit.work, "lora_steps": edit.lora_steps_run},
        }
    )


class EngineExecutor:
    def __init__(
        self,
        default_model: str = DEFAULT_MODEL,
        device: str | None = None,
        dtype: str | None = None,
        cache_dir: Path | None = None,  # None: the engine's default, $FRAMERELAY_CACHE_DIR
        engine_factory: EngineFactory = load_engine,
        use_cache: bool = True,
        settings: Mapping[str, Any] | None = None,  # machine parameters, by table name
    ):
        self.default_model = default_model
        self.device = device
        self.dtype = dtype
        self.cache_dir = cache_dir
        self.engine_factory = engine_factory
        self.use_cache = use_cache
        self.settings = dict(settings or {})
        self._engine: WarmEngine | None = None  # once a job has run
        self._lock = threading.Lock()

    def execute(
        self, run: Execution, report: Reporter, cancel: CancelToken, helpers: Helpers | None = None
    ) -> ExecutionResult:
        """Runs the job; with `helpers` (a worker pool), other workers may analyse its windows."""
        request = edit_request_for(
            run,
            self.default_model,
            self.device,
            self.dtype,
            self.cache_dir,
            self.use_cache,
            self.settings,
        )
        engine = self._engine_for(request.model)
        for output in run.outputs:
            output.parent.mkdir(parents=True, exist_ok=True)

        def preview(frame: Any) -> None:
            report.preview(*preview_png(frame), "edit")

        start = run.spec.frame_range.in_frame if run.spec.frame_range is not None else 0
        if helpers is None:
            return result_from(engine.edit(request, report.progress, cancel, preview), start)
        tasks = engine.plan_windows(run.job_id, request, run.work_dir / "windows")
        helpers.plan(tasks)
        hooks = helpers if tasks else None
        return result_from(engine.edit(request, report.progress, cancel, preview, hooks), start)

    def analyse(self, task: WindowTask, progress: ProgressSink, cancel: CancelToken) -> None:
        """Analyses a window of a job whose chain runs in another worker, into the cache."""
        assert task.request is not None
        self._engine_for(task.request.model, task.dtype).analyse(task, progress, cancel)

    def _engine_for(self, model: str, dtype: str | None = None) -> WarmEngine:
        """The warm engine when it holds `model` (in `dtype`), else a new one (it loads on first
        use)."""
        dtype = dtype or self.dtype
        with self._lock:
            engine = self._engine
            if engine is None or not engine.matches(model, self.device, dtype):
                if engine is not None:
                    engine.unload()
                engine = self.engine_factory(model, self.device, dtype)
                self._engine = engine
            return engine

    def unload(self) -> None:
        with self._lock:
            if self._engine is not None and self._engine.loaded:
                log.info("unloading %s after the idle time", self._engine.model)
                self._engine.unload()

    def status(self) -> ExecutorStatus:
        engine = self._engine
        if engine is None:  # nothing imported torch yet: report without importing it
            return ExecutorStatus(self.device or "auto", False)
        device = engine.placement.device
        if not engine.loaded or device.type != "cuda":
            return ExecutorStatus(str(device), engine.loaded, engine.model)
        torch = sys.modules["torch"]
        index = device.index if device.index is not None else torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        return ExecutorStatus(f"cuda:{index}", True, engine.model, total - free, total)
