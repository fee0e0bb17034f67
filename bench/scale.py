"""Several workers (docs/scale.md): wall time of a 5-window job on the tiny model (CPU) with one
worker, with two local worker processes and on a local two-worker Ray cluster, in one run; then a
model of the speed-up with K GPUs at real size, from the real-size accounting.

    PYTHONPATH=daemon:. python bench/scale.py [--lora-steps 20] [--steps 5] [--no-ray]
        [--repeats 2] [--accounting real_size.json]   # bench/real_size.py --json (default: the
                                        # per-phase H100 seconds recorded in bench/RESULTS.md)

Every configuration first runs a warm-up job (another clip: its own cache entries), so that every
process has loaded its engine; then the measured job runs `--repeats` times, going round the
configurations (each run with an empty cache), so that changes in the machine's load fall on all
of them alike. The frames of the measured jobs are compared bit for bit. One torch thread per
process.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch, in this process and the workers

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "daemon"), str(ROOT)]

# -- the speed-up model --------------------------------------------------------------------------

STEPS, LORA_STEPS = 25, 250  # the defaults
# H100-projected seconds per phase at 576x1024x14, bf16, today's defaults: bench/RESULTS.md,
# "Real size without a GPU: the accounting", final run of 2026-12-05 21:48.
RECORDED = {
    "lora_step": 0.94,  # new: LoRA step 576x1024, temporal ckpt
    "source_call": 0.17,  # plain call, batch 1: the anchor's source call a later window replays
    "inversion": 4.7,  # per clip, new: inversion (25 record calls + the closing one)
    "encode": 0.15,  # VAE encode 14 frames + 1 frame, CLIP embedding
    "edit_store": 11.5,  # per clip, new: edit (25 matched steps from the store)
    "decode": 0.41,  # VAE decode, chunks of 8
    "capture_edit": 0.59,  # new: skip-interval capture (the anchor's edit call replayed)
    "step_store": 0.41,  # new: edit stage 1-3, store
    "step_inline": 0.58,  # new: edit stage 1-3, inline (source branch recomputed)
}


def costs_from_accounting(path: Path) -> dict[str, float]:
    """The same figures from `bench/real_size.py --json` output."""
    summary = json.loads(path.read_text())
    phases, clip = summary["phases"], summary["clips"]["new"]

    def mean(names: list[str]) -> float:
        return sum(phases[n]["h100_s"] for n in names) / len(names)

    return {
        "lora_step": phases["new: LoRA step 576x1024, temporal ckpt"]["h100_s"],
        "source_call": phases["plain call, batch 1"]["h100_s"],
        "inversion": clip["inversion"]["h100_s"],
        "encode": sum(
            phases[n]["h100_s"]
            for n in ("VAE encode, 14 frames", "VAE encode, 1 frame", "CLIP image embedding")
        ),
        "edit_store": clip["edit"]["h100_s"],
        "decode": phases["VAE decode, chunks of 8"]["h100_s"],
        "capture_edit": phases["new: skip-interval capture"]["h100_s"],
        "step_store": mean([f"new: edit stage {k}, store" for k in (1, 2, 3)]),
        "step_inline": mean([f"new: edit stage {k}, inline" for k in (1, 2, 3)]),
    }


@dataclass(frozen=True)
class WindowCosts:
    anchor: float  # the anchor's analysis: LoRA + inversion
    later: float  # a later window's (with skip-interval each LoRA step and inversion call
    # replays the anchor's source call first)
    edit_anchor: float  # the anchor's edit, from its store
    edit_local: float  # a later window's edit when its worker analysed it (store kept)
    edit_hit: float  # ... when another worker did (a cache hit: source branch inline)
    skip_interval: bool  # later windows wait for the anchor's analysis

    @classmethod
    def of(cls, c: dict[str, float], skip_interval: bool = True) -> WindowCosts:
        analysis = LORA_STEPS * c["lora_step"] + c["inversion"] + c["encode"]
        replay = c["source_call"] if skip_interval else 0.0
        capture = c["capture_edit"] if skip_interval else 0.0
        return cls(
            anchor=analysis,
            later=analysis + (LORA_STEPS + STEPS) * replay,
            edit_anchor=c["edit_store"] + c["decode"],
            edit_local=STEPS * (capture + c["step_store"]) + c["decode"],
            edit_hit=STEPS * (capture + c["step_inline"]) + c["decode"],
            skip_interval=skip_interval,
        )

    def bound(self, windows: int) -> float:
        """Unlimited GPUs: the anchor, one later analysis, then the chain's edits."""
        first = self.anchor + self.later if self.skip_interval else self.later
        return max(first, self.anchor + self.edit_anchor) + (windows - 1) * self.edit_hit


def makespan(workers: int, windows: int, w: WindowCosts) -> float:
    """The job's time with `workers` GPUs under the pool's policy (jobs/fanout.py): the job's
    worker analyses the anchor, then edits window by window; free helpers take the first pending
    window (with skip-interval, once the anchor is stored); while a helper has the window the
    job's worker needs, that worker analyses a later pending one itself, or waits."""
    if workers == 1 or windows == 1:
        return w.anchor + w.edit_anchor + (windows - 1) * (w.later + w.edit_local)
    done: dict[int, float] = {}  # window -> when its entry is stored
    helpers = [w.anchor if w.skip_interval else 0.0] * (workers - 1)  # when each is free
    pending = list(range(1, windows))
    by_chain: set[int] = set()
    chain = w.anchor + w.edit_anchor

    def hand_out(until: float) -> None:
        """Helpers take pending windows at the moments they are free, up to `until`."""
        while pending:
            free = min(range(len(helpers)), key=lambda h: helpers[h])
            if helpers[free] > until:
                return
            window = pending.pop(0)
            helpers[free] += w.later
            done[window] = helpers[free]

    for window in range(1, windows):
        while True:
            hand_out(chain)
            if window in done and done[window] <= chain:
                chain += w.edit_local if window in by_chain else w.edit_hit
                break
            if window in pending:  # nobody has it: the chain computes it
                pending.remove(window)
            elif pending:  # a helper has it: analyse a later window meanwhile
                window_meanwhile = pending.pop(0)
                by_chain.add(window_meanwhile)
                chain += w.later
                done[window_meanwhile] = chain
                continue
            else:  # wait for the helper
                chain = max(chain, done[window])
                continue
            by_chain.add(window)
            chain += w.later
            done[window] = chain
    return chain


def print_model(costs: dict[str, float], source: str) -> None:
    print(f"\n## Speed-up with K GPUs at 576x1024x14 (H100-projected seconds; {source})")
    for skip_interval in (True, False):
        w = WindowCosts.of(costs, skip_interval)
        print(
            f"\nskip-interval {'on (the default)' if skip_interval else 'off'}: analysis "
            f"{w.anchor:.0f} s (anchor), {w.later:.0f} s (later windows); edit {w.edit_anchor:.1f} "
            f"s (anchor), {w.edit_local:.1f} s (later, analysed by the job's worker), "
            f"{w.edit_hit:.1f} s (analysed elsewhere)\n"
        )
        print("| windows (frames) | analysis share | 1 GPU | K=2 | K=4 | K=8 | K=∞ |")
        print("|---|---|---|---|---|---|---|")
        for windows in (2, 5, 10, 20):
            one = makespan(1, windows, w)
            share = (w.anchor + (windows - 1) * w.later) / one
            cells = [f"{one / 60:.1f} min"]
            cells += [f"{one / makespan(k, windows, w):.2f}×" for k in (2, 4, 8)]
            cells.append(f"{one / w.bound(windows):.2f}×")
            frames = 14 + (windows - 1) * 13
            print(f"| {windows} ({frames}) | {share:.0%} | " + " | ".join(cells) + " |")


# -- the measurement -----------------------------------------------------------------------------


class Reports:
    def __init__(self) -> None:
        self.phase_seconds: dict[str, float] = {}
        self._phase, self._since = "", time.perf_counter()

    def progress(self, progress) -> None:
        now = time.perf_counter()
        if progress.phase != self._phase:
            if self._phase:
                self.phase_seconds[self._phase] = (
                    self.phase_seconds.get(self._phase, 0.0) + now - self._since
                )
            self._phase, self._since = progress.phase, now

    def preview(self, *args) -> None:
        pass


def make_job(folder: Path, warm_up: bool, params):
    from framerelay.jobs.spec import JobSpec
    from tests.media_factory import make_clip, pattern_frame, pattern_frames, write_image

    folder.mkdir(parents=True)
    frames = pattern_frames(14, 192, 128)
    if warm_up:  # another clip: the warm-up's cache entries are not the measured job's
        frames = 255 - frames
    source = make_clip(folder / "src.mp4", width=192, height=128, fps=Fraction(24), frames=frames)
    edit = pattern_frame(0, 192, 128).copy()
    edit[20:60, 40:100] = (255, 0, 0)
    edited = write_image(folder / "edit.png", edit)
    return JobSpec(source, (edited,), preset="local", params=params, output_format="png")


def timed(executor, spec, folder: Path) -> tuple[float, Reports]:
    from framerelay.jobs.executor import Execution
    from framerelay.progress import CancelToken

    reports = Reports()
    run = Execution(folder.name, spec, (folder / "frames",), folder / "work", 1)
    started = time.perf_counter()
    executor.execute(run, reports, CancelToken())
    return time.perf_counter() - started, reports


def frames_of(folder: Path):
    import numpy as np

    from framerelay.media.image import load_image

    return np.stack([load_image(f) for f in sorted(folder.glob("frame_*.png"))])


def measure(args, root: Path) -> None:
    import numpy as np

    from framerelay.engine.tiny import save_tiny_pipeline
    from framerelay.jobs.engine_executor import EngineExecutor
    from framerelay.jobs.pool import PoolExecutor
    from framerelay.jobs.slot_process import RuntimeSpec, SlotSpec
    from framerelay.jobs.spec import ParamOverrides
    from framerelay.jobs.workers import ENGINE_RUNTIME, RAY_RUNTIME

    model = save_tiny_pipeline(root / "model")
    params = ParamOverrides(
        height=128, width=256, steps=args.steps, window=4, lora_steps=args.lora_steps, lora_rank=8
    )
    warm_spec, spec = make_job(root / "warm", True, params), make_job(root / "job", False, params)

    def engine(cache: Path) -> RuntimeSpec:
        kwargs = {"default_model": str(model), "device": "cpu", "dtype": "fp32", "cache_dir": cache}
        return RuntimeSpec(ENGINE_RUNTIME, kwargs)

    configs = {
        "1 worker (the daemon's own)": lambda c: EngineExecutor(str(model), "cpu", "fp32", c),
        "2 local worker processes": lambda c: PoolExecutor(
            [SlotSpec(f"cpu {i}", engine(c)) for i in (1, 2)]
        ),
    }
    if not args.no_ray:
        ray_kwargs = {"address": "local:2", "gpus_per_task": 0}
        configs["1 worker + a 2-worker local Ray cluster"] = lambda c: PoolExecutor(
            [
                SlotSpec("cpu", engine(c), helps=False),
                SlotSpec(
                    "ray",
                    RuntimeSpec(RAY_RUNTIME, {**ray_kwargs, "cache_dir": c}, True),
                    runs_jobs=False,
                ),
            ]
        )
    print(
        f"{platform.node()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
        f"tiny model, 14 frames at 128x256 = 5 windows of 4, {args.steps} steps, "
        f"LoRA {args.lora_steps} steps at rank 8\n"
    )
    # All the executors stay up; the measured runs go round the configurations, so that a change
    # in the machine's load falls on all of them alike.
    executors, cold, runs, loads = {}, {}, {name: [] for name in configs}, []
    phases: dict[str, float] = {}
    try:
        for index, (name, make) in enumerate(configs.items()):
            executors[name] = make(root / f"run{index}" / "cache")
            cold[name], _ = timed(executors[name], warm_spec, root / f"run{index}" / "warm")
        for repeat in range(args.repeats):
            for index, name in enumerate(configs):
                folder = root / f"run{index}"
                shutil.rmtree(folder / "cache", ignore_errors=True)  # every window analysed again
                shutil.rmtree(folder / "job", ignore_errors=True)
                loads.append(os.getloadavg()[0])
                seconds, reports = timed(executors[name], spec, folder / "job")
                runs[name].append(seconds)
                if index == 0 and repeat == 0:
                    phases = reports.phase_seconds
    finally:
        for executor in executors.values():
            close = getattr(executor, "close", None)
            if close is not None:
                close()
    print(
        "| configuration | warm-up job (cold) | measured job, each run | best | speed-up (best) "
        "| frames |"
    )
    print("|---|---|---|---|---|---|")
    reference, first = None, None
    for index, name in enumerate(configs):
        frames = frames_of(root / f"run{index}" / "job" / "frames")
        same = "reference" if reference is None else (
            "identical" if np.array_equal(frames, reference) else "DIFFERENT"
        )  # fmt: skip
        reference = frames if reference is None else reference
        best = min(runs[name])
        first = best if first is None else first
        each = ", ".join(f"{r:.1f}" for r in runs[name])
        print(
            f"| {name} | {cold[name]:.1f} s | {each} s | {best:.1f} s | {first / best:.2f}× "
            f"| {same} |"
        )
    analysis = sum(phases.get(p, 0.0) for p in ("lora", "invert"))
    print(
        f"\nthe 1-worker job's phases (first run): analysis (lora, invert) {analysis:.1f} s, "
        f"edit {phases.get('edit', 0.0):.1f} s, of {sum(phases.values()):.1f} s reported"
    )
    print(f"load average before each measured run: {', '.join(f'{x:.1f}' for x in loads)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--lora-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2, help="measured runs per configuration")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray cluster")
    parser.add_argument("--model-only", action="store_true", help="only the speed-up model")
    parser.add_argument("--accounting", type=Path, help="bench/real_size.py --json output")
    args = parser.parse_args()
    if not args.model_only:
        root = Path(tempfile.mkdtemp(prefix="framerelay-scale-"))
        os.environ.setdefault("RAY_TMPDIR", tempfile.mkdtemp(prefix="fr-ray-", dir="/tmp"))
        try:
            measure(args, root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
            shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)
    if args.accounting is not None:
        print_model(costs_from_accounting(args.accounting), str(args.accounting))
    else:
        print_model(RECORDED, "the accounting recorded in bench/RESULTS.md")


if __name__ == "__main__":
    main()
