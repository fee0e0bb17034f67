"""Fine-grained attention matching (I2VEdit section 4.2) as diffusers attention processors.

The SVD UNet forward takes no attention kwargs, so per-step state lives in an
`AttentionController` shared by all processors. Only self-attention (attn1) layers get a
`MatchingProcessor`; cross-attention keeps the default processor.

Modes:
* ``off``: plain scaled-dot-product attention (identical to diffusers' AttnProcessor2_0).
* ``record`` (inversion, batch = the conditional source branch only): keeps what the source
  branch provides in a RAM store within a budget: the spatial layers' input hidden states (Q and K
  are recomputed from them) and the temporal layers' attention probabilities.
* ``edit``: the batch is [uncond, cond] when the store holds this step's source data, or
  [source, uncond, cond] when the source branch is recomputed inline. Spatial layers blend the source
  and edit attention of the conditional branch per query with the total-variation mask; temporal
  layers take the source probabilities at the layers the current stage selects.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from framerelay.engine import fused_mask

SPATIAL = "spatial"
TEMPORAL = "temporal"
LOW_RESOLUTION_FACTOR = 4  # stage 2 keeps source temporal maps at layers downscaled >= 4x
_SELF_ATTENTION = re.compile(r"(.*)\.(transformer_blocks|temporal_transformer_blocks)\.\d+\.attn1$")


@dataclass(frozen=True)
class SelfAttentionLayer:
    name: str  # module path of the Attention module
    kind: str  # SPATIAL or TEMPORAL
    level: int  # 0 at full latent resolution; the layer is downscaled by 2**level

    @property
    def downscale(self) -> int:
        return 2**self.level


def _level(prefix: str, down_blocks: int, up_blocks: int) -> int:
    block, _, rest = prefix.partition(".")
    if block == "mid_block":
        return down_blocks - 1
    index = int(rest.split(".", 1)[0])
    return index if block == "down_blocks" else up_blocks - 1 - index


def self_attention_layers(unet) -> list[SelfAttentionLayer]:
    """Every spatial and temporal self-attention layer of an SVD UNet, in module order."""
    layers = []
    for name, _ in unet.named_modules():
        match = _SELF_ATTENTION.match(name)
        if match:
            kind = TEMPORAL if match.group(2).startswith("temporal") else SPATIAL
            level = _level(match.group(1), len(unet.down_blocks), len(unet.up_blocks))
            layers.append(SelfAttentionLayer(name, kind, level))
    return layers


def temporal_stage(step: int, steps: int, beta1: float, beta2: float) -> int:
    """1: every temporal map from the source; 2: only low-resolution layers; 3: none."""
    if step < int(beta1 * steps):
        return 1
    if step < int(beta2 * steps):
        return 2
    return 3


def temporal_source_layers(layers: list[SelfAttentionLayer], stage: int) -> list[str]:
    """Names of the temporal layers that take the source map in a stage."""
    temporal = [layer for layer in layers if layer.kind == TEMPORAL]
    if stage == 1:
        return [layer.name for layer in temporal]
    if stage == 2:
        return [layer.name for layer in temporal if layer.downscale >= LOW_RESOLUTION_FACTOR]
    return []


@dataclass(frozen=True)
class MatchingConfig:
    beta1: float
    beta2: float
    mask_threshold: tuple[float, float] = (0.35, 0.35)
    spatial: bool = True
    temporal: bool = True
    max_chunk_elements: int = 1 << 26  # probabilities held at once by the spatial mask
    mask_backend: str = "auto"  # fused_mask.BACKENDS: the fused kernel on CUDA, else the reference


class SourceAttentionStore:
    """What the source branch provides, per inversion sigma, kept in RAM within a byte budget.

    A step is kept whole or not at all: a step that is not kept is recomputed inline during
    editing, so the budget trades memory for a larger editing batch.
    """

    def __init__(self, budget_bytes: float, device: torch.device | str = "cpu"):
        self.budget_bytes = budget_bytes
        self.device = torch.device(device)
        self.nbytes = 0
        self.full = budget_bytes <= 0
        self._steps: dict[str, dict[str, torch.Tensor]] = {}
        self._pending: dict[str, torch.Tensor] | None = None

    @staticmethod
    def key(sigma: float) -> str:
        return f"{sigma:.9e}"

    @property
    def recording(self) -> bool:
        return self._pending is not None

    def begin(self, sigma: float) -> None:
        self._pending_key = self.key(sigma)
        self._pending = None if self.full else {}

    def put(self, layer: str, tensor: torch.Tensor) -> None:
        if self._pending is not None:
            self._pending[layer] = tensor.detach().to(self.device, copy=True)

    def end(self) -> None:
        if self._pending is None:
            return
        size = sum(t.numel() * t.element_size() for t in self._pending.values())
        if self.nbytes + size <= self.budget_bytes:
            self._steps[self._pending_key] = self._pending
            self.nbytes += size
        else:
            self.full = True
        self._pending = None

    def has(self, sigma: float) -> bool:
        return self.key(sigma) in self._steps

    def get(self, sigma: float, layer: str) -> torch.Tensor:
        return self._steps[self.key(sigma)][layer]

    def step(self, sigma: float) -> Mapping[str, torch.Tensor] | None:
        """One step's tensors by layer (looked up once per UNet call, not per layer, so that a
        compiled UNet does not specialise on sigma)."""
        return self._steps.get(self.key(sigma))

    def __len__(self) -> int:
        return len(self._steps)


Observer = Callable[[str, str, float, torch.Tensor], None]


class AttentionController:
    """Per-step state shared by every MatchingProcessor of one UNet."""

    def __init__(
        self,
        layers: list[SelfAttentionLayer],
        config: MatchingConfig,
        store: SourceAttentionStore,
    ):
        self.layers = layers
        self.config = config
        self.store = store
        self.mode = "off"
        self.sigma = 0.0
        self.step = 0
        self.steps = 1
        self.branches = 1  # batch elements of the current UNet call
        self._inline = False
        self.num_frames = 1
        self.observer: Observer | None = None  # tests watch the source attention here
        self._temporal_source: set[str] = set()
        self._source: Mapping[str, torch.Tensor] | None = None  # this edit step's stored data
        # Skip-interval cross-attention: "capture" keeps each temporal layer's K/V (the anchor
        # clip's pass); "prepend" puts the captured K/V before the current clip's own.
        self.kv_mode: str | None = None
        self.anchor_kv: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.anchor_sigma = 0.0  # the anchor's noise level behind anchor_kv
        # Optional edit region per frame at latent resolution (F, h, w), 1 = edited: outside it
        # the spatial matching keeps the source attention whole.
        self.region: torch.Tensor | None = None
        self._region_tokens: dict[int, torch.Tensor] = {}

    # -- set by the sampler around each UNet call -------------------------------------------
    def record(self, sigma: float, num_frames: int) -> None:
        self.mode, self.sigma, self.branches, self.num_frames = "record", sigma, 1, num_frames
        self.store.begin(sigma)

    def edit(
        self, step: int, steps: int, sigma: float, num_frames: int, branches: int, inline: bool
    ) -> None:
        """Before an editing UNet call whose batch has `branches` elements, the source branch
        first when `inline`, the conditional edit branch last."""
        self.mode, self.step, self.steps, self.sigma = "edit", step, steps, sigma
        self.num_frames, self.branches, self._inline = num_frames, branches, inline
        self._source = None if inline else self.store.step(sigma)
        stage = temporal_stage(step, steps, self.config.beta1, self.config.beta2)
        enabled = self.config.temporal
        self._temporal_source = (
            set(temporal_source_layers(self.layers, stage)) if enabled else set()
        )

    def finish_call(self) -> None:
        if self.mode == "record":
            self.store.end()
        self.mode = "off"

    def plain(self, num_frames: int, sigma: float) -> None:
        """A call with no matching and no recording (kv_mode still applies)."""
        self.mode, self.branches, self.num_frames, self._inline = "off", 1, num_frames, False
        self.sigma = sigma

    # -- read by processors -----------------------------------------------------------------
    @property
    def source_inline(self) -> bool:
        return self._inline

    def source(self, layer: str) -> torch.Tensor:
        """The stored source tensor of a layer at the current edit step."""
        if self._source is None:
            raise RuntimeError(f"no stored source for {layer} at this step (sigma {self.sigma})")
        return self._source[layer]

    def takes_temporal_source(self, layer: str) -> bool:
        return layer in self._temporal_source

    def frame_thresholds(self, device: torch.device) -> torch.Tensor:
        start, end = self.config.mask_threshold
        position = torch.linspace(0.0, 1.0, self.num_frames, device=device)
        return start + (end - start) * position

    def set_region(self, region: torch.Tensor | None) -> None:
        self.region, self._region_tokens = region, {}

    def region_tokens(self, tokens: int, device: torch.device) -> torch.Tensor | None:
        """The region at a layer's token grid, (F, tokens); None without a region."""
        if self.region is None:
            return None
        if tokens not in self._region_tokens:
            frames, height, width = self.region.shape
            scale = math.sqrt(height * width / tokens)
            grid = (math.ceil(height / scale - 1e-6), math.ceil(width / scale - 1e-6))
            if grid[0] * grid[1] != tokens:
                raise ValueError(f"cannot map a {height}x{width} region onto {tokens} tokens")
            pooled = F.adaptive_avg_pool2d(self.region[:, None].float(), grid)
            self._region_tokens[tokens] = pooled.reshape(frames, tokens)
        return self._region_tokens[tokens].to(device)

    def observe(
        self, event: str, layer: str, probs: Callable[[], torch.Tensor], sigma: float | None = None
    ) -> None:
        if self.observer is not None:
            self.observer(event, layer, self.sigma if sigma is None else sigma, probs())


def _split_heads(tensor: torch.Tensor, heads: int) -> torch.Tensor:
    batch, length, width = tensor.shape
    return tensor.view(batch, length, heads, width // heads).transpose(1, 2)


def _merge_heads(tensor: torch.Tensor) -> torch.Tensor:
    batch, heads, length, dim = tensor.shape
    return tensor.transpose(1, 2).reshape(batch, length, heads * dim)


def _project(attn, hidden_states: torch.Tensor):
    q, k, v = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
    q, k, v = (_split_heads(t, attn.heads) for t in (q, k, v))
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    return q, k, v


def _project_qk(attn, hidden_states: torch.Tensor):
    """Q and K only (the source branch's V is never used)."""
    q = _split_heads(attn.to_q(hidden_states), attn.heads)
    k = _split_heads(attn.to_k(hidden_states), attn.heads)
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    return q, k


def attention_probs(q: torch.Tensor, k: torch.Tensor, scale: float) -> torch.Tensor:
    # in place where a temporary is made anyway: the same values, one probability matrix fewer
    return (q.float() @ k.float().transpose(-1, -2)).mul_(scale).softmax(dim=-1)


def spatial_change_mask(
    q_src: torch.Tensor,
    k_src: torch.Tensor,
    q_edit: torch.Tensor,
    k_edit: torch.Tensor,
    scale: float,
    max_chunk_elements: int = 1 << 26,
    group_elements: int = 1 << 20,
) -> torch.Tensor:
    """Per query: half the L1 distance between source and edit attention rows, averaged over
    heads, in [0, 1]. Inputs (n, heads, L, d); output (n, L) float32. Computed over groups of
    frames, or query chunks of one frame, so that at most `max_chunk_elements` probabilities per
    branch exist at once. Groups of frames hold about `group_elements` probabilities (4 MB, so
    that the elementwise passes run in cache: 2.7x faster on the CPU than one 22 MB group, and
    the same values, since every frame's rows are computed alike in any group)."""
    n, heads, length, _ = q_edit.shape
    per_frame = heads * length * k_edit.shape[2]
    mask = torch.empty(n, length, dtype=torch.float32, device=q_edit.device)
    if per_frame <= max_chunk_elements:
        group = max(1, min(max_chunk_elements, group_elements) // per_frame)
        for start in range(0, n, group):
            frames = slice(start, min(n, start + group))
            p_src = attention_probs(q_src[frames], k_src[frames], scale)
            p_edit = attention_probs(q_edit[frames], k_edit[frames], scale)
            mask[frames] = p_src.sub_(p_edit).abs_().mean(dim=1).sum(dim=-1) / 2
        return mask.clamp_(0.0, 1.0)
    rows = max(1, max_chunk_elements // (heads * k_edit.shape[2]))
    for frame in range(n):
        for start in range(0, length, rows):
            end = min(length, start + rows)
            p_src = attention_probs(q_src[frame, :, start:end], k_src[frame], scale)
            p_edit = attention_probs(q_edit[frame, :, start:end], k_edit[frame], scale)
            mask[frame, start:end] = p_src.sub_(p_edit).abs_().mean(dim=0).sum(dim=-1) / 2
    return mask.clamp_(0.0, 1.0)


def threshold_mask(mask: torch.Tensor, thresholds: torch.Tensor) -> torch.Tensor:
    """From a frame's threshold up the edit attention is used whole; below, blended by m."""
    return torch.where(mask >= thresholds[:, None], torch.ones_like(mask), mask)


class MatchingProcessor:
    """Replaces AttnProcessor2_0 on one self-attention layer."""

    def __init__(self, layer: SelfAttentionLayer, controller: AttentionController):
        self.layer = layer
        self.controller = controller

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        **kwargs,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            raise ValueError(f"{self.layer.name}: matching expects plain self-attention")
        residual = hidden_states
        q, k, v = _project(attn, hidden_states)
        ctl = self.controller
        if self.layer.kind == TEMPORAL:
            if ctl.kv_mode != "capture":
                ctl.observe(f"kv:{ctl.mode}", self.layer.name, lambda: torch.cat([k, v], dim=-1))
            if ctl.kv_mode is not None:
                k, v = self._skip_interval(k, v)
        out = F.scaled_dot_product_attention(q, k, v)
        if ctl.mode == "record":
            self._record(attn, hidden_states, q, k)
        elif ctl.mode == "edit":
            out = self._match(attn, hidden_states, q, k, v, out)
        out = attn.to_out[1](attn.to_out[0](_merge_heads(out).to(q.dtype)))
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _skip_interval(self, k: torch.Tensor, v: torch.Tensor):
        ctl, name = self.controller, self.layer.name
        if ctl.kv_mode == "capture":
            ctl.anchor_kv[name] = (k.detach(), v.detach())
            ctl.observe("anchor_produced", name, lambda: torch.cat([k, v], dim=-1))
            return k, v
        anchor_k, anchor_v = ctl.anchor_kv[name]
        if anchor_k.shape[0] != k.shape[0]:
            raise ValueError(
                f"{name}: anchor K/V batch {anchor_k.shape[0]} != current batch {k.shape[0]}"
            )
        ctl.observe(
            f"anchor_used:{ctl.mode}",
            name,
            lambda: torch.cat([anchor_k, anchor_v], dim=-1),
            ctl.anchor_sigma,
        )
        return torch.cat([anchor_k, k], dim=2), torch.cat([anchor_v, v], dim=2)

    def _record(self, attn, hidden_states, q, k) -> None:
        ctl, name = self.controller, self.layer.name
        if self.layer.kind == SPATIAL:
            ctl.store.put(name, hidden_states)
        else:
            ctl.store.put(name, attention_probs(q, k, attn.scale).to(q.dtype))
        ctl.observe("record", name, lambda: attention_probs(q, k, attn.scale))

    def _source_qk(self, attn, rows: int, q, k, hidden_states):
        ctl = self.controller
        if ctl.source_inline:
            return q[:rows], k[:rows]
        stored = ctl.source(self.layer.name).to(hidden_states.device)
        return _project_qk(attn, stored.to(hidden_states.dtype))

    def _match(self, attn, hidden_states, q, k, v, out):
        ctl = self.controller
        rows = q.shape[0] // ctl.branches
        cond = slice(q.shape[0] - rows, q.shape[0])
        if self.layer.kind == SPATIAL and ctl.config.spatial:
            q_src, k_src = self._source_qk(attn, rows, q, k, hidden_states)
            ctl.observe("use", self.layer.name, lambda: attention_probs(q_src, k_src, attn.scale))
            mask = fused_mask.change_mask(
                q_src,
                k_src,
                q[cond],
                k[cond],
                attn.scale,
                ctl.config.mask_backend,
                ctl.config.max_chunk_elements,
            )
            mask = threshold_mask(mask, ctl.frame_thresholds(mask.device))
            region = ctl.region_tokens(mask.shape[1], mask.device)
            if region is not None:
                mask = mask * region
            weight = mask[:, None, :, None].to(out.dtype)
            source_out = F.scaled_dot_product_attention(q_src, k_src, v[cond])
            out[cond] = (1 - weight) * source_out + weight * out[cond]
        elif self.layer.kind == TEMPORAL and ctl.takes_temporal_source(self.layer.name):
            if ctl.source_inline:
                probs = attention_probs(q[:rows], k[:rows], attn.scale)
            else:
                probs = ctl.source(self.layer.name).to(q.device, torch.float32)
            ctl.observe("use", self.layer.name, lambda: probs)
            out[cond] = (probs @ v[cond].float()).to(out.dtype)
        return out


def install_processors(unet, controller: AttentionController) -> dict:
    """Put a MatchingProcessor on every self-attention layer; returns the previous processors."""
    previous = dict(unet.attn_processors)
    by_name = {layer.name: layer for layer in controller.layers}
    processors = {}
    for key, processor in previous.items():
        layer = by_name.get(key.removesuffix(".processor"))
        processors[key] = MatchingProcessor(layer, controller) if layer else processor
    unet.set_attn_processor(processors)
    return previous


def restore_processors(unet, previous: dict) -> None:
    unet.set_attn_processor(previous)
