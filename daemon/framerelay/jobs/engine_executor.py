"""The real executor: runs jobs through `framerelay.engine.run.run_edit`.

The engine (and torch with it) is imported by the first job, never before, so the daemon starts
and answers without torch. The engine's `Engine` holds the loaded model: this executor keeps one
between jobs (the model stays warm) and the worker calls `unload` after the idle time.
"""

from __future__ import annotations

import importlib
import logging
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from framerelay.engine.params import DEFAULT_MODEL
from framerelay.engine.request import EditRequest, EditResult
from framerelay.engine.window_tasks import WindowTask
from framerelay.jobs.executor import Execution, ExecutionResult, ExecutorStatus, Reporter
from framerelay.jobs.slot_process import Helpers
from framerelay.progress import CancelToken, ProgressSink

log = logging.getLogger(__name__)

ENGINE_MODULE = "framerelay.engine.run"
FANOUT_MODULE = "framerelay.engine.fanout"
PREVIEW_SIZE = 256  # longest side of a preview picture, in pixels


def edit_request_for(
    run: Execution,
    default_model: str,
    device: str | None,
    dtype: str | None,
    cache_dir: Path | None = None,
) -> EditRequest:
    spec = run.spec
    return EditRequest(
        source=spec.source,
        edited_frames=spec.edited_frames,
        outputs=run.outputs,
        start=spec.start_seconds,
        end=spec.end_seconds,
        output_format=spec.output_format,
        # A later attempt replaces what an earlier one wrote; the worker has checked that
        # a first attempt finds no outputs unless the job asked to overwrite them.
        overwrite=spec.overwrite or run.attempt > 1,
        mask=spec.mask,
        model=spec.model or default_model,
        device=device,
        dtype=dtype,
        params=spec.engine_params(),
        cache_dir=cache_dir,
        sequence_fps=spec.sequence_fps or spec.source_fps,
        input_lut=spec.input_lut,
        keep_unedited=spec.keep_unedited,
        audio=spec.audio,
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


def result_from(edit: EditResult) -> ExecutionResult:
    return ExecutionResult(edit.outputs, edit.frame_count, edit.fps, edit.size, edit.preset)


class EngineExecutor:
    def __init__(
        self,
        default_model: str = DEFAULT_MODEL,
        device: str | None = None,
        dtype: str | None = None,
        cache_dir: Path | None = None,  # None: the engine's default, $FRAMERELAY_CACHE_DIR
    ):
        self.default_model = default_model
        self.device = device
        self.dtype = dtype
        self.cache_dir = cache_dir
        self._engine: Any = None  # framerelay.engine.run.Engine, once a job has run
        self._lock = threading.Lock()

    def execute(
        self, run: Execution, report: Reporter, cancel: CancelToken, helpers: Helpers | None = None
    ) -> ExecutionResult:
        """Runs the job; with `helpers` (a worker pool), other workers may analyse its windows."""
        request = edit_request_for(run, self.default_model, self.device, self.dtype, self.cache_dir)
        module = importlib.import_module(ENGINE_MODULE)
        engine = self._engine_for(module, request.model)
        for output in run.outputs:
            output.parent.mkdir(parents=True, exist_ok=True)

        def preview(frame: Any) -> None:
            report.preview(*preview_png(frame), "edit")

        hooks = None
        if helpers is not None:
            fanout = importlib.import_module(FANOUT_MODULE)
            tasks = fanout.plan(run.job_id, request, engine, run.work_dir / "windows")
            helpers.plan(tasks)
            hooks = helpers if tasks else None
        edit = module.run_edit(
            request, report.progress, cancel, engine=engine, preview=preview, hooks=hooks
        )
        return result_from(edit)

    def analyse(self, task: WindowTask, progress: ProgressSink, cancel: CancelToken) -> None:
        """Analyses a window of a job whose chain runs in another worker, into the cache."""
        assert task.request is not None
        module = importlib.import_module(ENGINE_MODULE)
        engine = self._engine_for(module, task.request.model, task.dtype)
        importlib.import_module(FANOUT_MODULE).analyse(engine, task, progress, cancel)

    def _engine_for(self, module: ModuleType, model: str, dtype: str | None = None) -> Any:
        """The warm engine when it holds `model` (in `dtype`), else a new one (it loads on first
        use)."""
        dtype = dtype or self.dtype
        with self._lock:
            engine = self._engine
            if engine is None or not engine.matches(model, self.device, dtype):
                if engine is not None:
                    engine.unload()
                engine = module.Engine(model, self.device, dtype)
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
