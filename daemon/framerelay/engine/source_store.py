"""A source-branch store sized to the machine: on the device while it has room, then in (pinned)
host memory, streamed back layer by layer ahead of use.

Same interface as `attention.SourceAttentionStore` (the controller and processors do not know the
difference): a step is kept whole or not at all, and a step that is not kept is recomputed inline.
The default budget comes from the machine's free memory (`memory.default_store_budget`), so a
default run keeps all steps wherever RAM allows (about 22 GB at 576x1024x14).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import torch

from framerelay.engine.attention import SourceAttentionStore
from framerelay.engine.memory import StoreBudget, default_store_budget, steps_message

log = logging.getLogger(__name__)

DEVICE_TIER, HOST_TIER = "device", "host"
PREFETCH_LAYERS = 2  # host-tier layers copied ahead of the one in use


class TieredSourceStore(SourceAttentionStore):
    def __init__(
        self,
        budget: StoreBudget,
        device: torch.device | str,
        host_device: torch.device | str = "cpu",
        prefetch: int = PREFETCH_LAYERS,
        transfer=None,
    ):
        super().__init__(budget.total, device=host_device)
        self.budget = budget
        self.compute_device = torch.device(device)
        self.host_device = torch.device(host_device)
        self.prefetch = prefetch
        self.device_nbytes = 0
        self.host_nbytes = 0
        self._tier: dict[str, str] = {}
        self._step_size: int | None = None
        self._pending_tier: str | None = None
        self._order: list[str] = []
        self._index: dict[str, int] = {}
        self._inflight: dict[tuple[str, str], object] = {}
        streaming = self.compute_device.type == "cuda" and self.host_device.type == "cpu"
        self.transfer = transfer or (CudaTransfer(self.compute_device) if streaming else None)
        self.full = budget.total <= 0
        if self.compute_device == self.host_device:  # CPU: one memory, one tier
            self.budget = StoreBudget(0, budget.total)

    # -- recording ----------------------------------------------------------------------------
    def _choose_tier(self, size: int) -> str | None:
        if self.device_nbytes + size <= self.budget.device_bytes:
            return DEVICE_TIER
        if self.host_nbytes + size <= self.budget.host_bytes:
            return HOST_TIER
        return None

    def begin(self, sigma: float) -> None:
        self._pending_key = self.key(sigma)
        if self.full:
            self._pending, self._pending_tier = None, None
            return
        size = self._step_size
        tier = self._choose_tier(size) if size is not None else None
        if size is None:  # the first step: its size is not known yet
            tier = DEVICE_TIER if self.budget.device_bytes > 0 else HOST_TIER
        if tier is None:
            self.full = True
            self._pending = None
            return
        self._pending, self._pending_tier = {}, tier

    def put(self, layer: str, tensor: torch.Tensor) -> None:
        if self._pending is None:
            return
        if layer not in self._index:
            self._index[layer] = len(self._order)
            self._order.append(layer)
        if self._pending_tier == DEVICE_TIER:
            self._pending[layer] = tensor.detach().clone()
        else:
            self._pending[layer] = self._to_host(tensor.detach())

    def _to_host(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.compute_device.type == "cuda" and self.host_device.type == "cpu":
            pinned = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            return pinned.copy_(tensor)
        return tensor.to(self.host_device, copy=True)

    def end(self) -> None:
        if self._pending is None:
            return
        size = sum(t.numel() * t.element_size() for t in self._pending.values())
        self._step_size = size
        tier = self._pending_tier
        if tier == DEVICE_TIER and self.device_nbytes + size > self.budget.device_bytes:
            tier = HOST_TIER if self.host_nbytes + size <= self.budget.host_bytes else None
            if tier == HOST_TIER:
                self._pending = {k: self._to_host(v) for k, v in self._pending.items()}
        elif tier == HOST_TIER and self.host_nbytes + size > self.budget.host_bytes:
            tier = None
        if tier is None:
            self.full = True
        else:
            key = self._pending_key
            self._steps[key] = self._pending
            self._tier[key] = tier
            if tier == DEVICE_TIER:
                self.device_nbytes += size
            else:
                self.host_nbytes += size
            self.nbytes += size
        self._pending = None

    # -- use ----------------------------------------------------------------------------------
    def get(self, sigma: float, layer: str) -> torch.Tensor:
        key = self.key(sigma)
        tensor = self._steps[key][layer]
        if self._tier[key] == DEVICE_TIER or self.transfer is None:
            return tensor
        return self._streamed(key, layer)

    def step(self, sigma: float):
        key = self.key(sigma)
        if key not in self._steps:
            return None
        if self._tier[key] == DEVICE_TIER or self.transfer is None:
            return self._steps[key]
        return _StreamedStep(self, key)

    def _streamed(self, key: str, layer: str) -> torch.Tensor:
        """The host tensor on the device; the next layers' copies start ahead of use."""
        transfer = self.transfer
        assert transfer is not None  # host-tier steps are streamed only with a transfer
        index = self._index[layer]
        for ahead in self._order[index : index + 1 + self.prefetch]:
            if (key, ahead) not in self._inflight and ahead in self._steps[key]:
                self._inflight[(key, ahead)] = transfer.start(self._steps[key][ahead])
        handle = self._inflight.pop((key, layer))
        for stale in [k for k in self._inflight if k[0] != key or self._index[k[1]] < index]:
            del self._inflight[stale]  # layers this call skipped (e.g. temporal, stage 2)
        return transfer.finish(handle)

    def summary(self, steps: int) -> str:
        return steps_message(len(self), steps, self.nbytes, self.budget)


class _StreamedStep(Mapping):
    """One host-tier step, fetched layer by layer as the processors ask for it."""

    def __init__(self, store: TieredSourceStore, key: str):
        self._store, self._key = store, key

    def __getitem__(self, layer: str) -> torch.Tensor:
        return self._store._streamed(self._key, layer)

    def __iter__(self):
        return iter(self._store._steps[self._key])

    def __len__(self) -> int:
        return len(self._store._steps[self._key])


class CudaTransfer:
    """Host -> device copies on a side stream; the compute stream waits only for the layer it
    uses, so the copies of the next layers overlap the current layer's compute."""

    def __init__(self, device: torch.device):
        self.device = device
        self.stream = torch.cuda.Stream(device)

    def start(self, host: torch.Tensor):
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            tensor = host.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record(self.stream)
        return tensor, event

    def finish(self, handle) -> torch.Tensor:
        tensor, event = handle
        current = torch.cuda.current_stream(self.device)
        current.wait_event(event)
        tensor.record_stream(current)
        return tensor


def window_store(
    budget_mb: int | None,
    device: torch.device,
    frames: int,
    latent_hw: tuple[int, int],
    dtype: torch.dtype,
    decode_chunk: int,
    decode_dtype: torch.dtype | None = None,
) -> TieredSourceStore:
    """The store for one window: an explicit budget (MB, device first) or the machine's default."""
    auto = default_store_budget(
        device, frames, *latent_hw, dtype, decode_chunk, decode_dtype=decode_dtype
    )
    if budget_mb is None:
        budget = auto
    else:
        total = budget_mb * 2**20
        on_device = min(total, auto.device_bytes)
        budget = StoreBudget(on_device, total - on_device)
    log.debug("source store budget: %s", budget.describe())
    return TieredSourceStore(budget, device=device, host_device="cpu")


class StoreKeeper:
    """Keeps a job's complete source stores for a re-edit of the same clip by a warm engine.

    A re-edit finds the motion LoRA and the inversion in the artifact cache; with the window's
    store kept as well, its editing pass needs no source branch at all (about 1.1x plain sampling
    instead of 1.6x). A store is kept only while the memory would still hold another one as large
    (so keeping never costs the current job steps), and stores of an earlier job are released as
    soon as a window of the current job is not among them.
    """

    def __init__(self) -> None:
        self._kept: dict[str, TieredSourceStore] = {}
        self._previous: dict[str, TieredSourceStore] = {}

    def begin_job(self) -> None:
        self._previous, self._kept = self._kept, {}

    def take(self, key: str, steps: int, usable: bool = True) -> TieredSourceStore | None:
        """The store kept for this window key, if complete and `usable` (the window's inversion
        comes from the cache); a miss releases the earlier job's stores."""
        store = self._previous.pop(key, None)
        if usable and store is not None and len(store) >= steps:
            return store
        self._previous.clear()
        return None

    def keep(self, key: str, store, steps: int, has_room) -> bool:
        if not isinstance(store, TieredSourceStore) or len(store) < steps:
            return False
        if not has_room(store.nbytes):
            log.debug("not keeping the source store of %s: no room for another", key)
            return False
        self._kept[key] = store
        return True

    def end_job(self) -> None:
        self._previous.clear()

    def clear(self) -> None:
        self._kept.clear()
        self._previous.clear()

    def __len__(self) -> int:
        return len(self._kept)


def room_for(
    device: torch.device,
    frames: int,
    latent_hw: tuple[int, int],
    dtype: torch.dtype,
    decode_chunk: int,
    decode_dtype: torch.dtype | None,
    nbytes: int,
) -> bool:
    """Whether the default budget, computed now, would still hold `nbytes` more."""
    budget = default_store_budget(
        device, frames, *latent_hw, dtype, decode_chunk, decode_dtype=decode_dtype
    )
    return budget.total >= nbytes
