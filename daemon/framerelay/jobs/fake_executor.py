"""An executor without a model, for tests, benchmarks and plugin development (`serve --fake`).

It walks the engine's phases step by step, checks the cancel token at every step boundary, keeps a
per-phase checkpoint in the job's work folder (so a re-run after a restart skips finished phases,
as the engine's caches do) and writes small real videos: a moving gradient, through PyAV.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from os import getpid
from pathlib import Path
from typing import Any

from framerelay.engine.presets import AUTO, PresetChoice
from framerelay.engine.window_tasks import WindowTask
from framerelay.files import replacing, write_atomic
from framerelay.jobs.executor import Execution, ExecutionResult, ExecutorStatus, Reporter
from framerelay.progress import CancelToken, PhaseTimes, Progress

DEFAULT_PHASES: tuple[tuple[str, int], ...] = (
    ("decode", 2),
    ("lora", 4),
    ("invert", 3),
    ("edit", 4),
    ("encode", 2),
)
DEFAULT_FPS = Fraction(24)
CHECKPOINT = "fake-phases.json"
WINDOW_PHASES = ("lora", "invert", "edit")  # per window when a job has several
CODECS = {"mp4": ("libx264", "yuv420p"), "mov": ("prores_ks", "yuv422p10le")}


@dataclass
class FakeRun:
    """What one execute() call did, for tests to inspect."""

    job_id: str
    attempt: int
    steps: list[tuple[str, int]] = field(default_factory=list)
    skipped_phases: list[str] = field(default_factory=list)
    reports_after_cancel: int = 0


class FakeExecutor:
    def __init__(
        self,
        phases: tuple[tuple[str, int], ...] = DEFAULT_PHASES,
        step_seconds: float = 0.0,
        load_seconds: float = 0.0,
        frame_size: tuple[int, int] = (64, 64),
        default_frames: int = 8,
        fail: Callable[[Execution], BaseException | None] | None = None,
        fail_phase: str = "edit",
        gate: threading.Event | None = None,
        preview_phase: str | None = None,
        windows: int = 1,
        window_log: Path | None = None,
        gate_path: Path | None = None,
    ):
        self.phases = phases
        self.step_seconds = step_seconds
        self.load_seconds = load_seconds
        self.frame_size = frame_size
        self.default_frames = default_frames
        self.fail = fail
        self.fail_phase = fail_phase
        self.gate = gate  # when given, each job waits for it before its first step
        self.gate_path = gate_path  # the same across processes: waits until the file exists
        self.preview_phase = preview_phase  # when given, a preview follows its last step
        # With windows > 1, the analysis phases (lora, invert) and edit run per window, and a
        # pool's helpers may analyse windows 1.. (as engine/fanout.py does); each analysis
        # appends "job window pid chain|helper" to `window_log`.
        self.windows = windows
        self.window_log = window_log
        self.runs: list[FakeRun] = []
        self.loads = 0
        self.unloads = 0
        self._loaded = False
        self._lock = threading.Lock()

    def status(self) -> ExecutorStatus:
        return ExecutorStatus("cpu" if self._loaded else "auto", self._loaded, "fake")

    def unload(self) -> None:
        with self._lock:
            if self._loaded:
                self._loaded = False
                self.unloads += 1

    def execute(
        self, run: Execution, report: Reporter, cancel: CancelToken, helpers: Any = None
    ) -> ExecutionResult:
        record = FakeRun(run.job_id, run.attempt)
        self.runs.append(record)
        times = PhaseTimes()

        def progress(phase: str, step: int, total: int, message: str = "", clip: int = 1) -> None:
            if cancel.cancelled:
                record.reports_after_cancel += 1
            times.until_now(phase)
            report.progress(Progress(phase, step, total, clip, self.windows, message))

        tasks = self._plan(run) if self.windows > 1 else []
        if helpers is not None:
            helpers.plan(tasks)
        self._load(progress, cancel)
        self._wait_for_gate(cancel)
        done = read_checkpoint(run.work_dir)
        seconds: dict[str, float] = {}
        for phase, total in self.phases:
            if tasks and phase in WINDOW_PHASES[1:]:
                continue  # run with the first, window by window
            started = time.perf_counter()
            if phase in done:
                record.skipped_phases.append(phase)
                progress(phase, total, total, "cached")
                continue
            if tasks and phase == WINDOW_PHASES[0]:
                self._windows(run, tasks, helpers, record, progress, cancel)
                phase = WINDOW_PHASES[-1]
                done.extend(WINDOW_PHASES[:-1])
            else:
                self._steps(phase, total, run, record, progress, cancel)
            if phase == self.preview_phase:
                report.preview(preview_png(self.frame_size), *self.frame_size, phase)
            done.append(phase)
            write_checkpoint(run.work_dir, done)
            seconds[phase] = time.perf_counter() - started
        result = self._write_outputs(run)
        lora_steps = sum(phase == "lora" for phase, _ in record.steps)
        # the engine's compute times and work counts, for the machine's speed (jobs/preflight.py)
        return replace(
            result,
            phase_seconds=times.until_now("encode"),
            lora_steps_run=lora_steps,
            compute_seconds={
                "lora": seconds.get("lora", 0.0),
                "invert": seconds.get("invert", 0.0),
                "edit": seconds.get("edit", 0.0),
                "decode": seconds.get("encode", 0.0),
            },
            work={
                "lora_steps": lora_steps,
                "inversions": 1,
                "edit_passes": len(run.outputs),
                "decoded_windows": len(run.outputs),
            },
        )

    def _steps(self, phase, total, run, record, progress, cancel, clip: int = 1) -> None:
        for step in range(1, total + 1):
            cancel.raise_if_cancelled()
            if step == 1 and phase == self.fail_phase and self.fail is not None:
                error = self.fail(run)
                if error is not None:
                    raise error
            time.sleep(self.step_seconds)
            record.steps.append((phase, step))
            progress(phase, step, total, "", clip)

    def _plan(self, run: Execution) -> list[WindowTask]:
        folder = run.work_dir / "windows"
        folder.mkdir(parents=True, exist_ok=True)
        keys = [f"{run.job_id}-{i}" for i in range(self.windows)]
        return [
            WindowTask(
                run.job_id,
                i,
                self.windows,
                key,
                keys[0] if i else None,
                folder / f"{key}.done",
                None,
                "fake",
            )
            for i, key in enumerate(keys)
        ]

    def _windows(self, run, tasks, helpers, record, progress, cancel) -> None:
        """Per window: its analysis (from a helper, or here), then its edit."""
        phases = dict(self.phases)
        for task in tasks:
            clip = task.index + 1
            if helpers is not None:
                helpers.ready(task.index, task.key)
            if task.frames.exists():
                for phase in WINDOW_PHASES[:2]:
                    progress(phase, phases[phase], phases[phase], "cached", clip)
            else:
                for phase in WINDOW_PHASES[:2]:
                    self._steps(phase, phases[phase], run, record, progress, cancel, clip)
                self._analysed(task, "chain")
                if helpers is not None:
                    helpers.analysed(task.index, task.key)
            self._steps("edit", phases["edit"], run, record, progress, cancel, clip)

    def _analysed(self, task: WindowTask, role: str) -> None:
        write_atomic(task.frames, role.encode())
        if self.window_log is not None:
            with open(self.window_log, "a") as log:
                log.write(f"{task.job_id} {task.index} {getpid()} {role}\n")

    def analyse(self, task: WindowTask, progress: Callable[[Progress], None], cancel) -> None:
        """A helper's analysis of one window of a job whose chain runs elsewhere."""
        phases = dict(self.phases)
        for phase in WINDOW_PHASES[:2]:
            for step in range(1, phases[phase] + 1):
                cancel.raise_if_cancelled()
                time.sleep(self.step_seconds)
                progress(Progress(phase, step, phases[phase], task.index + 1, task.windows))
        self._analysed(task, "helper")

    def _wait_for_gate(self, cancel: CancelToken) -> None:
        while self.gate is not None and not self.gate.wait(0.01):
            cancel.raise_if_cancelled()
        while self.gate_path is not None and not Path(self.gate_path).exists():
            cancel.raise_if_cancelled()
            time.sleep(0.01)

    def _load(self, progress: Callable[[str, int, int], None], cancel: CancelToken) -> None:
        with self._lock:
            if self._loaded:
                return
            cancel.raise_if_cancelled()
            time.sleep(self.load_seconds)
            self._loaded = True
            self.loads += 1
        progress("load", 1, 1)

    def _write_outputs(self, run: Execution) -> ExecutionResult:
        """As the engine: the whole range, or a re-rendered segment from its first frame; a QC
        sidecar next to each output unless the job turned QC off."""
        spec = run.spec
        count = spec.frame_range.count if spec.frame_range else self.default_frames
        first = fake_first_frame(spec, count)
        frames = count - first
        fps = spec.source_fps or DEFAULT_FPS
        reports = []
        for index, output in enumerate(run.outputs):
            write_test_video(output, spec.output_format, frames, fps, self.frame_size, index)
            if spec.qc:
                reports.append(write_fake_qc(output, spec, first, count))
        choices = tuple(fake_choice(spec.preset) for _ in run.outputs)
        return ExecutionResult(
            run.outputs,
            frames,
            fps,
            self.frame_size,
            ",".join(c.preset for c in choices),
            preset_choices=choices,
            seed=spec.engine_params().seed,
            qc=tuple(reports),
            first_frame=(spec.frame_range.in_frame if spec.frame_range else 0) + first,
        )


def fake_first_frame(spec, count: int) -> int:
    """Where a segment's output starts, by the engine's window plan (engine/segments.py)."""
    if spec.segment is None or spec.segment.whole:
        return 0
    from framerelay.engine import segments

    params = spec.engine_params()
    at = spec.edited_frame_indices[0]
    start = segments.window_for(spec.segment.from_frame, at, params, spec.segment.new_edited_frame)
    first = segments.window_start(start, at, params)
    return min(count - 1, first if spec.segment.new_edited_frame else first + params.overlap)


def write_fake_qc(output: Path, spec, first: int, count: int) -> dict[str, Any]:
    """A QC sidecar of the engine's layout (engine/qc.py) with the fake's verdict: it measures
    nothing, and says so."""
    from framerelay.engine import qc

    number = spec.frame_range.in_frame if spec.frame_range else 0
    report = {
        "version": qc.REPORT_VERSION,
        "verdict": "OK: fake executor, nothing measured.",
        "frames": [number + first, number + count - 1],
        "temporal": {"warp_error": None, "source_warp_error": None, "ratio": None},
        "unedited": None,
        "first_frame": [],
        "embedding": None,
        "drift": {"strength": 0.0, "region": "auto", "windows": []},
        "worst_frames": [],
        "per_frame": [],
    }
    return qc.summary(report, qc.write_sidecar(output, report))


def fake_choice(asked: str) -> PresetChoice:
    """The engine resolves auto from the pictures; the fake, which has none, always picks local
    (as for an edit that changed nothing)."""
    if asked == AUTO:
        return PresetChoice("local", chosen_by_auto=True, structure_correlation=1.0)
    return PresetChoice(asked)


def preview_png(size: tuple[int, int]) -> bytes:
    """The first frame of the test pattern, as the engine previews a window's last frame."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(test_pattern(size, 0)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_pattern(size: tuple[int, int], n: int, seed: int = 0) -> Any:
    """Frame `n` of a moving gradient (uint8, height × width × 3)."""
    import numpy as np

    width, height = size
    ramp = np.add.outer(np.arange(height), np.arange(width)).astype(np.int64)
    base = (ramp * 2 + n * 9 + seed * 40) % 256
    return np.stack([base, (base + 85) % 256, (base + 170) % 256], axis=-1).astype(np.uint8)


def read_checkpoint(work_dir: Path) -> list[str]:
    path = work_dir / CHECKPOINT
    return json.loads(path.read_text()) if path.exists() else []


def write_checkpoint(work_dir: Path, phases: list[str]) -> None:
    work_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(work_dir / CHECKPOINT, json.dumps(phases).encode("utf-8"))


def write_test_video(
    path: Path, output_format: str, frames: int, fps: Fraction, size: tuple[int, int], seed: int = 0
) -> None:
    """A moving gradient of `frames` frames at `fps`, written beside `path`, renamed into place."""
    import av

    width, height = size
    path.parent.mkdir(parents=True, exist_ok=True)

    def picture(n: int) -> Any:
        return test_pattern(size, n, seed)

    with replacing(path) as tmp:
        if output_format == "png":
            tmp.mkdir()
            for n in range(frames):
                av.VideoFrame.from_ndarray(picture(n), format="rgb24").to_image().save(
                    tmp / f"frame_{n + 1:06d}.png"
                )
            return
        codec, pix_fmt = CODECS[output_format]
        with av.open(str(tmp), "w", format=output_format) as container:
            stream = container.add_stream(codec, rate=fps)
            assert isinstance(stream, av.VideoStream)
            stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
            for n in range(frames):
                frame = av.VideoFrame.from_ndarray(picture(n), format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
