"""Real-size accounting without a GPU: FLOPs, bytes moved, store bytes and peak device memory of
every phase of an edit with the real SVD UNet, VAE and CLIP image encoder (public configs in
bench/svd_configs.json, no weights) at 576x1024, on fake tensors (bench/accounting.py).

Two columns of settings are measured in one run:

* ``landed``: the code as it was before issue 17 (a 4096 MiB source store in host RAM, the
  reference spatial mask, diffusers' gradient checkpointing only, peft upcasting the LoRA input);
* ``new``: the defaults now (a store sized to a 24 GB GPU and the host's RAM, the fused mask,
  temporal blocks checkpointed, the LoRA in the compute dtype under autocast).

Per phase it prints TFLOPs (by dtype), TB moved, link bytes, the store's bytes per step, the peak
device memory (allocated, weights included) and a projected H100 time; then per-clip totals and
their ratios to plain diffusers-style sampling (25 CFG steps, same VAE decode).

    PYTHONPATH=daemon:. python bench/real_size.py [--frames 14|25] [--dtype bf16|fp16]
        [--gpu-gib 24] [--host-gib 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch._subclasses.fake_tensor import unset_fake_temporarily

from bench import accounting as acct
from bench.svd_real import real_components
from framerelay.engine import attention, fused_mask, lora, memory
from framerelay.engine.anchor import Anchor, AnchorEdit, capture_edit_kv, capture_source_kv
from framerelay.engine.conditioning import (
    Condition,
    decode_video_latents,
    encode_image_embeddings,
    encode_image_latent,
    encode_video_latents,
)
from framerelay.engine.denoiser import predict_v
from framerelay.engine.edm import denoising_sigmas, init_noise_sigma
from framerelay.engine.inversion import Inversion
from framerelay.engine.lora import trainer as lora_trainer
from framerelay.engine.params import DRAFT_STEPS
from framerelay.engine.source_store import TieredSourceStore

GB = 1e9
LANDED_STORE_MB = 4096
LOCAL_BETAS = (0.5, 0.8)  # the "local" preset: stages of 12, 8 and 5 steps out of 25
CUDA_CONTEXT = int(0.6 * GB)  # what the CUDA context and cuBLAS take before any tensor


@dataclass
class Setup:
    height: int = 576
    width: int = 1024
    frames: int = 14
    steps: int = 25
    dtype: torch.dtype = torch.bfloat16
    decode_chunk: int = 8
    lora_rank: int = 32
    gpu_bytes: int = 24 * 2**30
    host_bytes: int = 64 * 2**30

    @property
    def latent(self) -> tuple[int, int]:
        return self.height // 8, self.width // 8


@dataclass
class World:
    setup: Setup
    comp: object
    acc: acct.Accountant
    results: dict[str, acct.Tally] = field(default_factory=dict)
    store_step_bytes: dict[str, int] = field(default_factory=dict)
    decode_chunk: int = 8  # what run.py would use on the GPU the store is sized to

    def measure(self, name: str, fn: Callable[[], object]) -> acct.Tally:
        started = time.perf_counter()
        with self.acc, self.acc.phase(name) as tally:
            fn()
        self.results[name] = tally
        print(
            f"  measured {name:<32} {tally.total_flops / 1e12:9.1f} TF "
            f"{tally.bytes / 1e12:7.3f} TB  peak {tally.peak_bytes / GB:6.2f} GB "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
        return tally


# -- inputs ---------------------------------------------------------------------------------------


def _condition(world: World, batch: int = 1) -> Condition:
    unet = world.comp.unet
    h, w = world.setup.latent
    return Condition(
        torch.randn(batch, 1, 1024, dtype=unet.dtype),
        torch.randn(batch, 4, h, w, dtype=unet.dtype),
        torch.tensor([[6.0, 127.0, 0.02]] * batch, dtype=unet.dtype),
    )


def _latents(world: World, batch: int = 1) -> torch.Tensor:
    h, w = world.setup.latent
    return torch.randn(batch, world.setup.frames, 4, h, w)


def _controller(world: World, store, mask_backend: str) -> attention.AttentionController:
    config = attention.MatchingConfig(*LOCAL_BETAS, mask_backend=mask_backend)
    return attention.AttentionController(
        attention.self_attention_layers(world.comp.unet), config, store
    )


@contextlib.contextmanager
def _processors(world: World, controller) -> Iterator[None]:
    previous = attention.install_processors(world.comp.unet, controller)
    try:
        yield
    finally:
        attention.restore_processors(world.comp.unet, previous)


# -- stores ---------------------------------------------------------------------------------------


def landed_store() -> attention.SourceAttentionStore:
    return attention.SourceAttentionStore(LANDED_STORE_MB * 2**20, device=acct.host_device())


def new_store(world: World) -> TieredSourceStore:
    s = world.setup
    weights = world.acc.live[acct.DEVICE.type]
    budget = memory.default_store_budget(
        torch.device("cuda"),
        s.frames,
        *s.latent,
        s.dtype,
        s.decode_chunk,
        host_available=s.host_bytes,
        device_free=s.gpu_bytes - weights - CUDA_CONTEXT,
        decode_dtype=world.comp.vae.dtype,
    )
    return TieredSourceStore(budget, device=acct.device(), host_device=acct.host_device())


# -- phases ---------------------------------------------------------------------------------------


def measure_conditioning(world: World) -> None:
    s, comp = world.setup, world.comp
    frames = torch.rand(s.frames, 3, s.height, s.width) * 2 - 1
    first = frames[:1]
    world.measure("CLIP image embedding", lambda: encode_image_embeddings(comp, first))
    world.measure("VAE encode, 1 frame", lambda: encode_image_latent(comp, first))
    world.measure(
        f"VAE encode, {s.frames} frames",
        lambda: encode_video_latents(comp, frames, s.decode_chunk),
    )
    latents = _latents(world)
    free = s.gpu_bytes - world.acc.live[acct.DEVICE.type] - CUDA_CONTEXT
    chunk = memory.decode_chunk_that_fits(s.decode_chunk, s.height, s.width, comp.vae.dtype, free)
    world.decode_chunk = chunk
    world.measure(
        f"VAE decode, chunks of {chunk}", lambda: decode_video_latents(comp, latents, chunk)
    )


def measure_plain(world: World) -> None:
    x, cond = _latents(world, 2), _condition(world, 2)
    with torch.no_grad():
        world.measure("plain CFG step (batch 2)", lambda: predict_v(world.comp.unet, x, 1.0, cond))
        world.measure(
            "plain call, batch 1",
            lambda: predict_v(world.comp.unet, x[:1], 1.0, _condition(world)),
        )


def measure_matching(world: World, label: str, store_factory, mask_backend: str) -> None:
    s, unet = world.setup, world.comp.unet
    cond = _condition(world)
    x = _latents(world)
    sigma = 1.0
    store = store_factory()
    controller = _controller(world, store, mask_backend)
    stages = {1: 0, 2: int(LOCAL_BETAS[0] * s.steps), 3: int(LOCAL_BETAS[1] * s.steps)}
    with _processors(world, controller), torch.no_grad():

        def record() -> None:
            controller.record(sigma, s.frames)
            predict_v(unet, x, sigma, cond)
            controller.finish_call()

        world.measure(f"{label}: inversion call (record)", record)
        world.store_step_bytes[label] = store.nbytes
        filler = _fill_device_tier(world, store)
        uncond_cond = Condition(
            torch.cat([cond.image_embeddings] * 2),
            torch.cat([cond.image_latent] * 2),
            torch.cat([cond.added_time_ids] * 2),
        )
        three = Condition(
            torch.cat([cond.image_embeddings] * 3),
            torch.cat([cond.image_latent] * 3),
            torch.cat([cond.added_time_ids] * 3),
        )
        for stage, step in stages.items():
            for inline, batch, condition in ((False, 2, uncond_cond), (True, 3, three)):
                where = "inline" if inline else "store"

                def edit(inline=inline, batch=batch, condition=condition, step=step) -> None:
                    controller.edit(step, s.steps, sigma, s.frames, batch, inline)
                    predict_v(unet, torch.cat([x] * batch), sigma, condition)
                    controller.finish_call()

                world.measure(f"{label}: edit stage {stage}, {where}", edit)
        if isinstance(store, TieredSourceStore):  # a step streamed from the host tier
            host_only = memory.StoreBudget(0, store.budget.host_bytes)
            controller.store = TieredSourceStore(host_only, acct.device(), acct.host_device())
            record()
            controller.edit(0, s.steps, sigma, s.frames, 2, False)

            def streamed() -> None:
                controller.edit(0, s.steps, sigma, s.frames, 2, False)
                predict_v(unet, torch.cat([x] * 2), sigma, uncond_cond)
                controller.finish_call()

            world.measure(f"{label}: edit stage 1, store (host tier)", streamed)
            controller.store = store
        measure_skip_interval(world, label, controller, cond, x, sigma)
    del filler


def _fill_device_tier(world: World, store) -> torch.Tensor | None:
    """Device memory the other device-tier steps of the store would hold during editing."""
    if not isinstance(store, TieredSourceStore) or not store.device_nbytes:
        return None
    steps = min(world.setup.steps, store.budget.device_bytes // store.device_nbytes)
    extra = (steps - 1) * store.device_nbytes
    filler = torch.empty(extra, dtype=torch.uint8)
    world.acc.track(filler)
    print(f"  device tier: {steps} steps ({steps * store.device_nbytes / GB:.1f} GB)")
    return filler


def measure_skip_interval(world: World, label: str, controller, cond, x, sigma) -> None:
    """A later window's editing step: replay the anchor's call (capture K/V), then prepend."""
    s, comp = world.setup, world.comp
    with unset_fake_temporarily():  # a real schedule: the scheduler computes with data
        sigmas = denoising_sigmas(comp.scheduler.config, s.steps)
    inversion = Inversion(sigmas, [x] * s.steps, cond, init_noise_sigma(comp.scheduler.config), x)
    inversion.latents_at = lambda _sigma: x  # its sigma lookup reads data
    anchor = Anchor(inversion)
    matching = controller.config
    edit = AnchorEdit(cond, [x] * s.steps, matching)
    two = Condition(
        torch.cat([cond.image_embeddings] * 2),
        torch.cat([cond.image_latent] * 2),
        torch.cat([cond.added_time_ids] * 2),
    )

    def capture() -> None:
        capture_edit_kv(comp, anchor, edit, controller, 0, sigma, False, True)

    world.measure(f"{label}: skip-interval capture", capture)

    # the later window's inversion recorded its source with the anchor's K/V prepended
    saved_store = controller.store
    controller.store = attention.SourceAttentionStore(2**40, device=acct.host_device())
    capture_source_kv(comp, anchor, controller, sigma)
    controller.record(sigma, s.frames)
    predict_v(comp.unet, x, sigma, cond)
    controller.finish_call()

    def prepend() -> None:
        capture_edit_kv(comp, anchor, edit, controller, 0, sigma, False, True)
        controller.edit(0, s.steps, sigma, s.frames, 2, not controller.store.has(sigma))
        predict_v(comp.unet, torch.cat([x] * 2), sigma, two)
        controller.finish_call()
        controller.kv_mode = None

    world.measure(f"{label}: skip-interval capture + edit", prepend)
    controller.store = saved_store


@contextlib.contextmanager
def _landed_lora() -> Iterator[None]:
    """The LoRA training as landed: no temporal checkpointing, peft upcasting the LoRA input."""
    saved = lora_trainer.checkpoint_temporal_blocks, lora_trainer.lora_in_compute_dtype

    def off(unet, active=True):
        return contextlib.nullcontext()

    lora_trainer.checkpoint_temporal_blocks = lora_trainer.lora_in_compute_dtype = off
    try:
        yield
    finally:
        lora_trainer.checkpoint_temporal_blocks, lora_trainer.lora_in_compute_dtype = saved


@contextlib.contextmanager
def _cuda_autocast() -> Iterator[None]:
    """The LoRA trainer's autocast as on CUDA (the fake device is the CPU)."""
    saved = lora_trainer._autocast

    def autocast(device, dtype):
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=dtype)

    lora_trainer._autocast = autocast
    lists = acct.CudaAutocastLists()  # also while checkpointed blocks are replayed in backward
    try:
        yield
    finally:
        lora_trainer._autocast = saved
        lists.close()


def measure_lora_step(
    world: World,
    label: str,
    height: int,
    width: int,
    checkpointing: bool,
    autocast: bool,
    offload: bool = False,
) -> None:
    """One motion-LoRA training step (forward, backward, AdamW update), steady state."""
    s, unet = world.setup, world.comp.unet
    h, w = height // 8, width // 8
    batch = lora.TrainingBatch(
        torch.randn(1, s.frames, 4, h, w),
        torch.randn(1, 4, h, w),
        torch.randn(1, 1, 1024),
        torch.tensor([[6.0, 127.0, 0.02]]),
    )
    params = lora.LoraTrainingParams(rank=s.lora_rank, gradient_checkpointing=checkpointing)
    parameters = lora.inject_motion_lora(unet, params.rank, params.dropout)
    world.acc.track(parameters)
    dtype = s.dtype if autocast else None
    try:
        exp_avg = [torch.zeros_like(p) for p in parameters]  # AdamW state from step 2 on
        exp_avg_sq = [torch.zeros_like(p) for p in parameters]
        world.acc.track(exp_avg + exp_avg_sq)
        generator = torch.Generator().manual_seed(0)

        def step() -> None:
            sigma = params.sigma_schedule.sigma(torch.rand(1, generator=generator))
            noise = torch.randn(batch.video_latents.shape)
            condition_noise = torch.randn(batch.condition_latent.shape)
            with lora_trainer._training_mode(unet, checkpointing, autocast), _cuda_autocast():
                loss = lora.denoising_loss(unet, batch, sigma, noise, condition_noise, 0.02, dtype)
                loss.backward()
            grads = [p.grad for p in parameters]
            with torch.no_grad():  # torch.optim.AdamW's foreach update, op for op
                torch._foreach_lerp_(exp_avg, grads, 0.1)
                torch._foreach_mul_(exp_avg_sq, 0.999)
                torch._foreach_addcmul_(exp_avg_sq, grads, grads, 0.001)
                denom = torch._foreach_sqrt(exp_avg_sq)
                torch._foreach_add_(denom, 1e-8)
                torch._foreach_mul_(parameters, 1 - 5e-4 * 1e-2)
                torch._foreach_addcdiv_(parameters, exp_avg, denom, -5e-4)
            for p in parameters:
                p.grad = None

        unused = (world.comp.vae, world.comp.image_encoder)
        with memory.off_device(unused, offload, host=acct.host_device()):
            world.measure(label, step)
    finally:
        lora.remove_motion_lora(unet)


def measure_lora(world: World) -> None:
    s = world.setup
    sizes = [(s.height, s.width), (512, 896)] if (s.height, s.width) != (512, 896) else [(512, 896)]
    with _landed_lora():
        for height, width in sizes:
            for ckpt in (True, False):
                tag = "diffusers ckpt" if ckpt else "no ckpt"
                measure_lora_step(
                    world, f"landed: LoRA step {height}x{width}, {tag}", height, width, ckpt, True
                )
    for height, width in sizes:
        measure_lora_step(
            world,
            f"new: LoRA step {height}x{width}, temporal ckpt",
            height,
            width,
            True,
            True,
            offload=True,
        )


# -- totals ---------------------------------------------------------------------------------------


def _stage_counts(steps: int) -> dict[int, int]:
    first, second = int(LOCAL_BETAS[0] * steps), int(LOCAL_BETAS[1] * steps)
    return {1: first, 2: second - first, 3: steps - second}


def _kept_steps(step_bytes: int, budget: int, steps: int) -> int:
    return min(steps, budget // step_bytes) if step_bytes else 0


def clip_totals(
    world: World, label: str, budget_bytes: int, steps: int | None = None
) -> dict[str, acct.Tally]:
    """Whole-clip tallies for one setting; which steps the store keeps follows the inversion order
    (the lowest sigmas first, i.e. the last denoising steps). LoRA training is not included."""
    r, s = world.results, world.setup
    steps = steps or s.steps
    kept = _kept_steps(world.store_step_bytes[label], budget_bytes, steps)
    host_steps = 0
    if label == "new":
        store = new_store(world)
        device_steps = _kept_steps(world.store_step_bytes[label], store.budget.device_bytes, steps)
        host_steps = kept - device_steps
        streamed = r[f"{label}: edit stage 1, store (host tier)"]
        streaming = acct.Tally(
            "streaming",
            link_bytes=streamed.link_bytes - r[f"{label}: edit stage 1, store"].link_bytes,
        )
        streaming.seconds = acct.H100.link_seconds(streaming.link_bytes)
    decode = r[f"VAE decode, chunks of {world.decode_chunk}"]
    conditioning = r["CLIP image embedding"] + r["VAE encode, 1 frame"]
    plain = conditioning + r["plain CFG step (batch 2)"].scaled(steps) + decode
    record = r[f"{label}: inversion call (record)"]
    inversion = (
        r[f"VAE encode, {s.frames} frames"]
        + conditioning
        + r["plain call, batch 1"]
        + record.scaled(steps - 1 + (kept >= steps))
    )
    stage_of = {}
    counts = _stage_counts(steps)
    step = 0
    for stage in (1, 2, 3):
        for _ in range(counts[stage]):
            stage_of[step] = stage
            step += 1
    stored_steps = set(range(steps - kept, steps))

    def edit_pass(stored: set[int]) -> acct.Tally:
        total = conditioning
        for i in range(steps):
            where = "store" if i in stored else "inline"
            total = total + r[f"{label}: edit stage {stage_of[i]}, {where}"]
        if host_steps and stored:
            total = total + streaming.scaled(min(host_steps, len(stored)))
        return total + decode

    return {
        "plain sampling": plain,
        "inversion": inversion,
        "edit": edit_pass(stored_steps),
        "invert + edit": inversion + edit_pass(stored_steps),
        "re-edit, store kept": edit_pass(stored_steps),
        "re-edit, every step in the store": edit_pass(set(range(steps))),
        "re-edit, nothing stored": edit_pass(set()),
        "_kept": acct.Tally(f"{kept}"),
    }


# -- report ---------------------------------------------------------------------------------------


def _row(name: str, tally: acct.Tally, store: str = "") -> str:
    flops = tally.flops
    return (
        f"| {name} | {tally.total_flops / 1e12:,.1f} | {flops.get('float32', 0) / 1e12:,.1f} | "
        f"{tally.bytes / 1e12:.3f} | {tally.link_bytes / GB:.2f} | {store} | "
        f"{tally.peak_bytes / GB:.1f} | {tally.seconds:.2f} |"
    )


def report(world: World) -> dict:
    s = world.setup
    print()
    print(f"## Real-size accounting: {s.height}x{s.width}x{s.frames}, {s.steps} steps, {s.dtype}")
    print(f"projection: {acct.H100.describe()}")
    print(
        "peak = device memory allocated, weights included (UNet, VAE, CLIP resident), "
        "no allocator slack or CUDA context"
    )
    print()
    print(
        "| phase | TFLOP | of it fp32 | TB moved | link GB | store GB/step | peak GB | H100 s "
        "| largest tensor GB |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, tally in world.results.items():
        store = ""
        if name.endswith("inversion call (record)"):
            store = f"{world.store_step_bytes[name.split(':')[0]] / GB:.2f}"
        print(_row(name, tally, store) + f" {tally.largest_bytes / GB:.2f} |")
    summary = {"setup": {k: str(v) for k, v in vars(s).items()}, "phases": {}, "clips": {}}
    for name, tally in world.results.items():
        summary["phases"][name] = {
            "tflop": tally.total_flops / 1e12,
            "tflop_fp32": tally.flops.get("float32", 0) / 1e12,
            "tb": tally.bytes / 1e12,
            "link_gb": tally.link_bytes / GB,
            "peak_gb": tally.peak_bytes / GB,
            "h100_s": tally.seconds,
            "largest_gb": tally.largest_bytes / GB,
            "largest_shape": list(tally.largest_shape),
        }
    step_bytes = world.store_step_bytes
    budgets = {
        "landed": LANDED_STORE_MB * 2**20,
        "new": new_store_budget_total(world),
    }
    for label in ("landed", "new"):
        totals = clip_totals(world, label, budgets[label])
        kept = totals.pop("_kept").name
        plain = totals["plain sampling"]
        if label == "new":
            draft = clip_totals(world, label, budgets[label], DRAFT_STEPS)
            totals[f"draft ({DRAFT_STEPS} steps, no LoRA): invert + edit"] = draft["invert + edit"]
        print()
        print(
            f"### Per clip, {label} ({step_bytes[label] / GB:.2f} GB per step in the store; "
            f"{step_bytes[label] * s.steps / GB:.1f} GB for {s.steps} steps; the store keeps "
            f"{kept} of {s.steps})"
        )
        print()
        print("| pass | TFLOP | × plain | TB moved | × plain | H100 s | × plain |")
        print("|---|---|---|---|---|---|---|")
        clip = {}
        for name, tally in totals.items():
            print(
                f"| {name} | {tally.total_flops / 1e12:,.0f} | "
                f"{tally.total_flops / plain.total_flops:.2f} | {tally.bytes / 1e12:.2f} | "
                f"{tally.bytes / plain.bytes:.2f} | {tally.seconds:.1f} | "
                f"{tally.seconds / plain.seconds:.2f} |"
            )
            clip[name] = {
                "tflop": tally.total_flops / 1e12,
                "tb": tally.bytes / 1e12,
                "h100_s": tally.seconds,
                "peak_gb": tally.peak_bytes / GB,
            }
        clip["kept_steps"] = int(kept)
        summary["clips"][label] = clip
    plain_step = world.results["plain CFG step (batch 2)"]
    print()
    print("### A matched edit step against a plain CFG step (bytes moved)")
    print()
    for label in ("landed", "new"):
        for stage in (1, 2, 3):
            for where in ("store", "inline"):
                tally = world.results[f"{label}: edit stage {stage}, {where}"]
                print(
                    f"- {label}, stage {stage}, {where}: {tally.bytes / plain_step.bytes:.2f}× bytes, "
                    f"{tally.total_flops / plain_step.total_flops:.2f}× FLOPs"
                )
    peaks = {
        name: tally.peak_bytes / GB
        for name, tally in world.results.items()
        if not name.startswith("landed")
    }
    worst = max(peaks, key=peaks.get)
    print()
    print(f"largest peak at the new defaults: {peaks[worst]:.1f} GB ({worst})")
    summary["largest_new_peak"] = {"phase": worst, "gb": peaks[worst]}
    return summary


def new_store_budget_total(world: World) -> int:
    return new_store(world).budget.total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=14, help="14 (img2vid) or 25 (-xt)")
    parser.add_argument("--dtype", choices=("bf16", "fp16"), default="bf16")
    parser.add_argument("--height", type=int, default=576)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--gpu-gib", type=float, default=24.0, help="the GPU the store is sized to")
    parser.add_argument("--host-gib", type=float, default=64.0, help="available host RAM")
    parser.add_argument("--no-lora", action="store_true", help="skip the LoRA training steps")
    parser.add_argument("--only-lora", action="store_true", help="only the LoRA training steps")
    parser.add_argument(
        "--cpu-autocast-lists",
        action="store_true",
        help="autocast without CUDA's fp32 ops (norms in bf16): for comparison only",
    )
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    setup = Setup(
        height=args.height,
        width=args.width,
        frames=args.frames,
        dtype={"bf16": torch.bfloat16, "fp16": torch.float16}[args.dtype],
        gpu_bytes=int(args.gpu_gib * 2**30),
        host_bytes=int(args.host_gib * 2**30),
    )
    started = time.perf_counter()
    print(f"{platform.node()}: torch {torch.__version__}, {setup}", flush=True)
    extra = {torch.ops.framerelay.change_mask: fused_mask.change_mask_flops}
    with acct.fake_world():
        comp = real_components(setup.dtype, setup.frames)
        accountant = acct.Accountant(extra_flops=extra)
        for module in (comp.unet, comp.vae, comp.image_encoder):
            accountant.track(list(module.parameters()) + list(module.buffers()))
        world = World(setup, comp, accountant)
        print(f"  weights resident: {accountant.live[acct.DEVICE.type] / GB:.2f} GB", flush=True)
        if args.cpu_autocast_lists:
            acct.CudaAutocastLists.ops = ()
        if not args.only_lora:
            measure_conditioning(world)
            measure_plain(world)
            measure_matching(world, "landed", landed_store, "reference")
            measure_matching(world, "new", lambda: new_store(world), "fused")
        if not args.no_lora:
            measure_lora(world)
        summary = report(world) if not args.only_lora else {}
    summary["seconds"] = time.perf_counter() - started
    print(f"\naccounting took {summary['seconds']:.0f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as stream:
            json.dump(summary, stream, indent=1)


if __name__ == "__main__":
    main()
