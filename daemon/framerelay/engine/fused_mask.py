"""The spatial change mask without a probability matrix: two tiled passes over the keys.

The mask is, per query, half the L1 distance between the source and the edit attention rows,
averaged over heads (`attention.spatial_change_mask`, the reference). Both rows must be normalised
before they are compared, so one online-softmax pass cannot give it; two passes can:

1. per query and head, the log-sum-exp of the scores of both branches, over key tiles;
2. over key tiles again, P = exp(score - lse) for both branches and the sum of |P_src - P_edit|.

Only a tile of scores exists at a time. On CUDA a Triton kernel does both passes in registers
(`_triton_change_mask`): it reads Q and K of both branches and writes one float per query and head,
so a step's mask moves megabytes instead of the terabytes of fp32 probabilities. On other devices
`tiled_change_mask` runs the same algorithm in torch (for tests; the CPU default stays the
reference). Both are reached through the `framerelay::change_mask` operator, so that the
accounting (bench/real_size.py) sees one fused op, as the GPU runs it.
"""

from __future__ import annotations

import functools

import torch

BACKENDS = ("auto", "reference", "fused")


def tiled_change_mask(
    q_src: torch.Tensor,
    k_src: torch.Tensor,
    q_edit: torch.Tensor,
    k_edit: torch.Tensor,
    scale: float,
    block_q: int = 256,
    block_k: int = 256,
) -> torch.Tensor:
    """The two-pass algorithm in torch. Inputs (n, heads, L, d); output (n, L) float32 in [0, 1]."""
    n, _, length, _ = q_edit.shape
    keys = k_edit.shape[2]
    out = torch.empty(n, length, dtype=torch.float32, device=q_edit.device)
    key_tiles = [(s, min(keys, s + block_k)) for s in range(0, keys, block_k)]
    for qs in range(0, length, block_q):
        qe = min(length, qs + block_q)
        qa = q_src[:, :, qs:qe].float() * scale
        qb = q_edit[:, :, qs:qe].float() * scale

        def scores(q, k, start, end):
            return q @ k[:, :, start:end].float().transpose(-1, -2)

        # 1. log-sum-exp of both branches, online over key tiles
        lse = []
        for q, k in ((qa, k_src), (qb, k_edit)):
            peak = torch.full(qa.shape[:-1], -torch.inf, device=q.device)
            total = torch.zeros(qa.shape[:-1], device=q.device)
            for start, end in key_tiles:
                s = scores(q, k, start, end)
                new_peak = torch.maximum(peak, s.amax(dim=-1))
                total = total * torch.exp(peak - new_peak) + torch.exp(s - new_peak[..., None]).sum(
                    dim=-1
                )
                peak = new_peak
            lse.append(peak + torch.log(total))
        # 2. sum over key tiles of |P_src - P_edit|
        distance = torch.zeros(qa.shape[:-1], device=qa.device)
        for start, end in key_tiles:
            p_src = torch.exp(scores(qa, k_src, start, end) - lse[0][..., None])
            p_edit = torch.exp(scores(qb, k_edit, start, end) - lse[1][..., None])
            distance += (p_src - p_edit).abs().sum(dim=-1)
        out[:, qs:qe] = distance.mean(dim=1) / 2
    return out.clamp_(0.0, 1.0)


@torch.library.custom_op("framerelay::change_mask", mutates_args=())
def change_mask_op(
    q_src: torch.Tensor,
    k_src: torch.Tensor,
    q_edit: torch.Tensor,
    k_edit: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    if q_edit.is_cuda and triton_available():
        return _triton_change_mask(q_src, k_src, q_edit, k_edit, scale)
    return tiled_change_mask(q_src, k_src, q_edit, k_edit, scale)


@change_mask_op.register_fake
def _(q_src, k_src, q_edit, k_edit, scale):
    return q_edit.new_empty(q_edit.shape[0], q_edit.shape[2], dtype=torch.float32)


def change_mask_flops(q_src, k_src, q_edit, k_edit, *args, **kwargs) -> int:
    """Two passes, each computing the scores of both branches: four Q·Kᵀ products."""
    n, heads, length, dim = q_edit.shape
    return 4 * 2 * n * heads * length * k_edit.shape[2] * dim


@functools.cache
def triton_available() -> bool:
    if not torch.cuda.is_available():
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_backend(backend: str, device: torch.device) -> str:
    """'auto' is the fused kernel on CUDA with Triton, else the reference."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown mask backend {backend!r}; expected one of {BACKENDS}")
    if backend != "auto":
        return backend
    return "fused" if device.type == "cuda" and triton_available() else "reference"


def change_mask(
    q_src: torch.Tensor,
    k_src: torch.Tensor,
    q_edit: torch.Tensor,
    k_edit: torch.Tensor,
    scale: float,
    backend: str = "auto",
    max_chunk_elements: int = 1 << 26,
) -> torch.Tensor:
    """The spatial change mask (n, L) by the chosen backend."""
    if resolve_backend(backend, q_edit.device) == "fused":
        return torch.ops.framerelay.change_mask(q_src, k_src, q_edit, k_edit, float(scale))
    from framerelay.engine.attention import spatial_change_mask

    return spatial_change_mask(q_src, k_src, q_edit, k_edit, scale, max_chunk_elements)


# -- CUDA -----------------------------------------------------------------------------------------


def _triton_change_mask(q_src, k_src, q_edit, k_edit, scale: float) -> torch.Tensor:
    n, heads, length, dim = q_edit.shape
    keys = k_edit.shape[2]
    if dim not in (16, 32, 64, 128) or any(
        t.stride(-1) != 1 for t in (q_src, k_src, q_edit, k_edit)
    ):
        return tiled_change_mask(q_src, k_src, q_edit, k_edit, scale, 1024, 1024)
    kernel = _kernel()
    out = torch.empty(n, heads, length, dtype=torch.float32, device=q_edit.device)
    block_m, block_n = 64, 64

    def grid(_meta):
        return ((length + block_m - 1) // block_m, n * heads)

    kernel[grid](
        q_src, k_src, q_edit, k_edit, out,
        float(scale), length, keys, heads,
        *q_src.stride()[:3], *k_src.stride()[:3], *q_edit.stride()[:3], *k_edit.stride()[:3],
        DIM=dim, BLOCK_M=block_m, BLOCK_N=block_n,
        PRECISION="ieee" if q_edit.dtype == torch.float32 else "tf32",
        num_warps=4, num_stages=2,
    )  # fmt: skip
    return (out.mean(dim=1) / 2).clamp_(0.0, 1.0)


@functools.cache
def _kernel():
    import triton
    import triton.language as tl

    @triton.jit
    def change_mask_kernel(
        QA, KA, QB, KB, OUT,
        scale, L, LK, H,
        sqa_n, sqa_h, sqa_l, ska_n, ska_h, ska_l,
        sqb_n, sqb_h, sqb_l, skb_n, skb_h, skb_l,
        DIM: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
        PRECISION: tl.constexpr,
    ):  # fmt: skip
        pid_m = tl.program_id(0)
        pid_nh = tl.program_id(1)
        b = pid_nh // H
        h = pid_nh % H
        rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = tl.arange(0, BLOCK_N)
        dims = tl.arange(0, DIM)
        row_ok = rows < L
        qa_ptr = QA + b * sqa_n + h * sqa_h + rows[:, None] * sqa_l + dims[None, :]
        qb_ptr = QB + b * sqb_n + h * sqb_h + rows[:, None] * sqb_l + dims[None, :]
        qa = tl.load(qa_ptr, mask=row_ok[:, None], other=0.0)
        qb = tl.load(qb_ptr, mask=row_ok[:, None], other=0.0)
        ka_base = KA + b * ska_n + h * ska_h + dims[:, None]
        kb_base = KB + b * skb_n + h * skb_h + dims[:, None]

        # 1. log-sum-exp of both branches, online over key tiles
        peak_a = tl.full([BLOCK_M], float("-inf"), tl.float32)
        peak_b = tl.full([BLOCK_M], float("-inf"), tl.float32)
        total_a = tl.zeros([BLOCK_M], tl.float32)
        total_b = tl.zeros([BLOCK_M], tl.float32)
        for start in range(0, LK, BLOCK_N):
            key = start + cols
            key_ok = key < LK
            ka = tl.load(ka_base + key[None, :] * ska_l, mask=key_ok[None, :], other=0.0)
            kb = tl.load(kb_base + key[None, :] * skb_l, mask=key_ok[None, :], other=0.0)
            sa = tl.where(
                key_ok[None, :], tl.dot(qa, ka, input_precision=PRECISION) * scale, float("-inf")
            )
            sb = tl.where(
                key_ok[None, :], tl.dot(qb, kb, input_precision=PRECISION) * scale, float("-inf")
            )
            new_a = tl.maximum(peak_a, tl.max(sa, 1))
            new_b = tl.maximum(peak_b, tl.max(sb, 1))
            total_a = total_a * tl.exp(peak_a - new_a) + tl.sum(tl.exp(sa - new_a[:, None]), 1)
            total_b = total_b * tl.exp(peak_b - new_b) + tl.sum(tl.exp(sb - new_b[:, None]), 1)
            peak_a = new_a
            peak_b = new_b
        lse_a = peak_a + tl.log(total_a)
        lse_b = peak_b + tl.log(total_b)

        # 2. sum over key tiles of |P_src - P_edit|
        distance = tl.zeros([BLOCK_M], tl.float32)
        for start in range(0, LK, BLOCK_N):
            key = start + cols
            key_ok = key < LK
            ka = tl.load(ka_base + key[None, :] * ska_l, mask=key_ok[None, :], other=0.0)
            kb = tl.load(kb_base + key[None, :] * skb_l, mask=key_ok[None, :], other=0.0)
            pa = tl.exp(tl.dot(qa, ka, input_precision=PRECISION) * scale - lse_a[:, None])
            pb = tl.exp(tl.dot(qb, kb, input_precision=PRECISION) * scale - lse_b[:, None])
            distance += tl.sum(tl.where(key_ok[None, :], tl.abs(pa - pb), 0.0), 1)
        tl.store(OUT + pid_nh * L + rows, distance, mask=row_ok)

    return change_mask_kernel
