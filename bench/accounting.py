"""FLOPs, bytes moved and peak memory of real-size models, counted without running them.

Everything runs under `FakeTensorMode` (tensors carry shapes, dtypes and devices, no data), and an
`Accountant` dispatch mode sees every aten op:

* FLOPs: torch.utils.flop_counter's formulas (matmuls, convolutions, attention), by dtype;
* bytes moved: the sum of each op's input and output tensor bytes (views and metadata ops move
  nothing; a host<->device copy is counted apart as link bytes);
* memory: every storage is counted from the op that creates it until it is freed (weak
  references on the storages), per device; the peak is the allocator's "allocated" figure (no
  fragmentation, no CUDA context, no cuBLAS/cuDNN workspaces);
* projected time: per op, the larger of compute time and memory time on a stated machine at
  stated efficiencies, summed (no overlap between ops, no launch overhead).

The CPU build of torch cannot make fake CUDA tensors take part in autograd, so the fake "device"
is the CPU and the host is the `meta` device: a store that puts tensors "on the host" is given
`host_device()` as its device. CUDA's autocast is emulated on CPU autocast (bf16/fp16 matmuls and
convolutions; group_norm, layer_norm and softmax in fp32, as CUDA's autocast lists have them), and
attention runs the fused (flash) kernel as it does on CUDA.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils import flop_counter
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

aten = torch.ops.aten

DEVICE = torch.device("cpu")  # stands for the GPU (see the module docstring)
HOST = torch.device("meta")  # stands for host memory


def device() -> torch.device:
    return DEVICE


def host_device() -> torch.device:
    return HOST


@dataclass(frozen=True)
class Machine:
    """Peak rates of one accelerator and the efficiencies assumed for a projection."""

    name: str
    matmul_flops: dict[torch.dtype, float]  # dense peak per dtype, FLOP/s
    bandwidth: float  # device memory, bytes/s
    link: float  # host <-> device, bytes/s
    compute_efficiency: float
    memory_efficiency: float
    link_efficiency: float

    def op_seconds(self, flops: float, dtype: torch.dtype, nbytes: float) -> float:
        peak = self.matmul_flops.get(dtype, self.matmul_flops[torch.float32])
        compute = flops / (peak * self.compute_efficiency) if flops else 0.0
        memory = nbytes / (self.bandwidth * self.memory_efficiency)
        return max(compute, memory)

    def link_seconds(self, nbytes: float) -> float:
        return nbytes / (self.link * self.link_efficiency)

    def describe(self) -> str:
        return (
            f"{self.name}: {self.matmul_flops[torch.bfloat16] / 1e12:.0f} TFLOP/s bf16, "
            f"{self.matmul_flops[torch.float32] / 1e12:.0f} TFLOP/s fp32, "
            f"{self.bandwidth / 1e12:.2f} TB/s, link {self.link / 1e9:.0f} GB/s; assumed "
            f"{self.compute_efficiency:.0%} of peak FLOP/s, {self.memory_efficiency:.0%} of "
            f"bandwidth, {self.link_efficiency:.0%} of the link; per op max(compute, memory), summed"
        )


# H100 SXM5 (dense, no sparsity). fp32 matmuls run without TF32 (torch's default for matmul).
H100 = Machine(
    name="H100 SXM",
    matmul_flops={
        torch.bfloat16: 989e12,
        torch.float16: 989e12,
        torch.float32: 67e12,
    },
    bandwidth=3.35e12,
    link=64e9,
    compute_efficiency=0.40,
    memory_efficiency=0.70,
    link_efficiency=0.35,
)


@dataclass
class Tally:
    """What one phase did."""

    name: str
    flops: Counter = field(default_factory=Counter)  # by dtype name
    bytes: int = 0  # device memory traffic
    link_bytes: int = 0  # host <-> device copies
    seconds: float = 0.0  # projected
    start_bytes: int = 0  # device memory allocated when the phase began
    peak_bytes: int = 0  # device memory peak during the phase
    host_peak_bytes: int = 0
    ops: int = 0
    top: Counter = field(default_factory=Counter)  # bytes by op name
    largest_bytes: int = 0  # the largest single device allocation made during the phase
    largest_shape: tuple = ()

    @property
    def total_flops(self) -> int:
        return sum(self.flops.values())

    def scaled(self, factor: float, name: str | None = None) -> Tally:
        return Tally(
            name or self.name,
            Counter({k: v * factor for k, v in self.flops.items()}),
            int(self.bytes * factor),
            int(self.link_bytes * factor),
            self.seconds * factor,
            self.start_bytes,
            self.peak_bytes,
            self.host_peak_bytes,
            int(self.ops * factor),
        )

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            f"{self.name}+{other.name}",
            self.flops + other.flops,
            self.bytes + other.bytes,
            self.link_bytes + other.link_bytes,
            self.seconds + other.seconds,
            min(self.start_bytes, other.start_bytes),
            max(self.peak_bytes, other.peak_bytes),
            max(self.host_peak_bytes, other.host_peak_bytes),
            self.ops + other.ops,
        )


_METADATA_OPS = {
    aten.sym_size.int,
    aten.sym_stride.int,
    aten.sym_numel.default,
    aten.sym_storage_offset.default,
    aten.is_contiguous.default,
    aten.is_contiguous.memory_format,
    aten.is_strides_like_format.default,
    aten.is_non_overlapping_and_dense.default,
    aten.size.default,
    aten.stride.default,
    aten.numel.default,
    aten.dim.default,
    aten.storage_offset.default,
    torch.ops.prim.device.default,
    torch.ops.prim.layout.default,
}


def _flash_cpu_flops(query, key, value, *args, out_val=None, **kwargs):
    shapes = [t.shape for t in (query, key, value)]
    return flop_counter.sdpa_flop_count(*shapes)


def _flash_cpu_backward_flops(grad_out, query, key, value, *args, out_val=None, **kwargs):
    shapes = [t.shape for t in (grad_out, query, key, value)]
    return flop_counter.sdpa_backward_flop_count(*shapes)


FLOP_FORMULAS = {
    **flop_counter.flop_registry,
    aten._scaled_dot_product_flash_attention_for_cpu: _flash_cpu_flops,
    aten._scaled_dot_product_flash_attention_for_cpu_backward: _flash_cpu_backward_flops,
}
_FLASH = int(torch.nn.attention.SDPBackend.FLASH_ATTENTION)
# Allocations: memory, but no traffic.
_ALLOCATIONS = {
    aten.empty.memory_format,
    aten.empty_strided.default,
    aten.empty_like.default,
    aten.new_empty.default,
    aten.new_empty_strided.default,
}


def _tensors(tree) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


def _nbytes(tensor: torch.Tensor) -> int:
    return tensor.numel() * tensor.element_size()


class Accountant(TorchDispatchMode):
    """Counts what every op does; see the module docstring. Use inside a FakeTensorMode."""

    def __init__(self, machine: Machine = H100, extra_flops: dict | None = None):
        super().__init__()
        self.machine = machine
        self.formulas = {**FLOP_FORMULAS, **(extra_flops or {})}
        self.live: Counter = Counter()  # bytes per device type
        self._tracked: dict[int, tuple[weakref.ref, str, int]] = {}
        self.tally: Tally | None = None

    # -- memory -------------------------------------------------------------------------------
    def track(self, tensors) -> None:
        for tensor in _tensors(tensors):
            storage = tensor.untyped_storage()
            key = id(storage)
            entry = self._tracked.get(key)
            if entry is not None and entry[0]() is storage:
                continue
            kind = tensor.device.type
            size = storage.nbytes()
            self.live[kind] += size
            tally = self.tally
            if tally is not None and kind == DEVICE.type and size > tally.largest_bytes:
                tally.largest_bytes, tally.largest_shape = size, tuple(tensor.shape)
            self._tracked[key] = (weakref.ref(storage, self._freed(key, kind, size)), kind, size)
        self._update_peak()

    def _freed(self, key: int, kind: str, size: int):
        def callback(_ref) -> None:
            self.live[kind] -= size
            entry = self._tracked.get(key)
            if entry is not None and entry[0]() is None:
                del self._tracked[key]

        return callback

    def _update_peak(self) -> None:
        tally = self.tally
        if tally is not None:
            tally.peak_bytes = max(tally.peak_bytes, self.live[DEVICE.type])
            tally.host_peak_bytes = max(tally.host_peak_bytes, self.live[HOST.type])

    # -- phases -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[Tally]:
        previous = self.tally
        tally = Tally(name, start_bytes=self.live[DEVICE.type], peak_bytes=self.live[DEVICE.type])
        tally.host_peak_bytes = self.live[HOST.type]
        self.tally = tally
        try:
            yield tally
        finally:
            self.tally = previous
            if previous is not None:  # a nested phase also counts in the enclosing one
                for key, value in tally.flops.items():
                    previous.flops[key] += value
                previous.bytes += tally.bytes
                previous.link_bytes += tally.link_bytes
                previous.seconds += tally.seconds
                previous.ops += tally.ops
                previous.top.update(tally.top)
                previous.peak_bytes = max(previous.peak_bytes, tally.peak_bytes)
                if tally.largest_bytes > previous.largest_bytes:
                    previous.largest_bytes = tally.largest_bytes
                    previous.largest_shape = tally.largest_shape
                previous.host_peak_bytes = max(previous.host_peak_bytes, tally.host_peak_bytes)

    # -- dispatch -----------------------------------------------------------------------------
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _METADATA_OPS:
            return func(*args, **kwargs)
        if func is aten._fused_sdp_choice.default:
            return _FLASH  # the fused kernel, as on CUDA (fake tensors would report "math")
        packet = func._overloadpacket
        if packet not in self.formulas:
            decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = func(*args, **kwargs)
        self.track(out)
        tally = self.tally
        if tally is None:
            return out
        inputs, outputs = _tensors((args, kwargs)), _tensors(out)
        if _is_view(func):
            return out
        tally.ops += 1
        devices = {t.device.type for t in inputs + outputs}
        if len(devices) > 1 and func in (aten._to_copy.default, aten.copy_.default):
            moved = sum(_nbytes(t) for t in outputs)
            tally.link_bytes += moved
            tally.seconds += self.machine.link_seconds(moved)
            return out
        if devices == {HOST.type} or func in _ALLOCATIONS:
            return out  # host-side work (filling the store) and allocations move no bytes
        moved = sum(_nbytes(t) for t in inputs) + sum(_nbytes(t) for t in outputs)
        flops = 0
        dtype = inputs[0].dtype if inputs else torch.float32
        if packet in self.formulas:
            flops = int(self.formulas[packet](*args, **kwargs, out_val=out))
            tally.flops[str(dtype).removeprefix("torch.")] += flops
        tally.bytes += moved
        tally.top[packet.__name__] += moved
        tally.seconds += self.machine.op_seconds(flops, dtype, moved)
        return out


def _is_view(func) -> bool:
    if func is aten._unsafe_view.default:
        return True
    schema = func._schema
    if not schema.returns:
        return True
    aliased = [r.alias_info is not None and not r.alias_info.is_write for r in schema.returns]
    return all(aliased)


# -- CUDA autocast, emulated on CPU autocast ---------------------------------------------------


class CudaAutocastLists:
    """Registers fp32 kernels for the ops that CUDA's autocast runs in fp32 but CPU's does not
    (group_norm, layer_norm, softmax), for the lifetime of the object."""

    ops = (
        ("group_norm", aten.group_norm.default),
        ("layer_norm", aten.layer_norm.default),
        ("softmax.int", aten.softmax.int),
    )

    def __init__(self):
        self.library = torch.library.Library("aten", "IMPL")
        exclude = torch._C.DispatchKeySet(torch._C.DispatchKey.AutocastCPU)

        def fp32(op):
            def kernel(*args, **kwargs):
                args, kwargs = _to_float32((args, kwargs))
                with torch._C._ExcludeDispatchKeyGuard(exclude):
                    return op(*args, **kwargs)

            return kernel

        for name, op in self.ops:
            self.library.impl(name, fp32(op), "AutocastCPU")

    def close(self) -> None:
        self.library._destroy()


def _to_float32(tree):
    from torch.utils._pytree import tree_map

    def cast(value):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value.float()
        return value

    return tree_map(cast, tree)


def _apply_overwriting(self, fn, recurse=True):
    """Module._apply for fake parameters: torch swaps a fake parameter in place, which fails while
    the fake mode holds a weak reference to it; replace the Parameter object instead."""
    if recurse:
        for module in self.children():
            module._apply(fn)
    for key, param in self._parameters.items():
        if param is None:
            continue
        with torch.no_grad():
            applied = fn(param)
        if applied is not param:
            self._parameters[key] = torch.nn.Parameter(applied, requires_grad=param.requires_grad)
    for key, buffer in self._buffers.items():
        if buffer is not None:
            self._buffers[key] = fn(buffer)
    return self


@contextlib.contextmanager
def fake_world() -> Iterator[FakeTensorMode]:
    """A FakeTensorMode in which modules can be moved and cast."""
    mode = FakeTensorMode(allow_non_fake_inputs=True)
    original = torch.nn.Module._apply
    torch.nn.Module._apply = _apply_overwriting
    try:
        with mode:
            yield mode
    finally:
        torch.nn.Module._apply = original
