"""The real executor: runs jobs through `framerelay.engine.run.run_edit`.

The engine (and torch with it) is imported on the first job, never before, so the daemon starts
and answers without torch. `load` is the one place a model is loaded and `unload` the one place it
is freed; the worker calls `unload` after the configured idle time.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys
import threading
from types import ModuleType

from framerelay.engine.params import DEFAULT_MODEL
from framerelay.engine.request import EditRequest, EditResult
from framerelay.errors import InvalidSpecError
from framerelay.jobs.executor import Execution, ExecutionResult, ExecutorStatus, Reporter
from framerelay.progress import CancelToken, Progress

log = logging.getLogger(__name__)

ENGINE_MODULE = "framerelay.engine.run"


def edit_request_for(
    run: Execution, default_model: str, device: str | None, dtype: str | None
) -> EditRequest:
    spec = run.spec
    if spec.mask is not None:  # EditRequest has no mask field yet
        raise InvalidSpecError(
            "this engine does not take a mask yet.", "Submit the job without a mask."
        )
    return EditRequest(
        source=spec.source,
        edited_frames=spec.edited_frames,
        outputs=run.outputs,
        start=spec.start_seconds,
        end=spec.end_seconds,
        output_format=spec.output_format,
        model=spec.model or default_model,
        device=device,
        dtype=dtype,
        params=spec.engine_params(),
    )


def result_from(edit: EditResult) -> ExecutionResult:
    return ExecutionResult(edit.outputs, edit.frame_count, edit.fps, edit.size)


class EngineExecutor:
    def __init__(
        self,
        default_model: str = DEFAULT_MODEL,
        device: str | None = None,
        dtype: str | None = None,
    ):
        self.default_model = default_model
        self.device = device
        self.dtype = dtype
        self._engine: ModuleType | None = None
        self._loaded_model = ""
        self._lock = threading.Lock()

    def execute(self, run: Execution, report: Reporter, cancel: CancelToken) -> ExecutionResult:
        request = edit_request_for(run, self.default_model, self.device, self.dtype)
        engine = self.load(request.model, report)
        for output in run.outputs:
            output.parent.mkdir(parents=True, exist_ok=True)
        return result_from(engine.run_edit(request, report.progress, cancel))

    def load(self, model: str, report: Reporter) -> ModuleType:
        """Imports the engine and makes `model` the warm one.

        The engine's model holder plugs in here: it should load `model` on the device once and keep
        it until `unload`; run_edit then reuses it.
        """
        with self._lock:
            if self._engine is None or self._loaded_model != model:
                report.progress(Progress("load", 0, 1, message=model))
                self._engine = importlib.import_module(ENGINE_MODULE)
                self._loaded_model = model
                report.progress(Progress("load", 1, 1, message=model))
            return self._engine

    def unload(self) -> None:
        with self._lock:
            if not self._loaded_model:
                return
            log.info("unloading %s after the idle time", self._loaded_model)
            self._loaded_model = ""
            gc.collect()
            torch = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_available():
                torch.cuda.empty_cache()

    def status(self) -> ExecutorStatus:
        torch = sys.modules.get("torch")  # only once a job imported it: status never imports torch
        if torch is None or not self._loaded_model:
            return ExecutorStatus(self.device or "auto", False, self._loaded_model)
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        if not device.startswith("cuda"):
            return ExecutorStatus(device, True, self._loaded_model)
        index = torch.cuda.current_device()
        free, total = torch.cuda.mem_get_info(index)
        return ExecutorStatus(f"cuda:{index}", True, self._loaded_model, total - free, total)
