"""bench/accounting.py: FLOPs, bytes and live memory of ops on fake tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bench import accounting as acct


def test_flops_bytes_and_peak_of_a_few_ops():
    with acct.fake_world():
        accountant = acct.Accountant()
        a = torch.empty(64, 32)
        b = torch.empty(32, 16)
        accountant.track([a, b])
        with accountant, accountant.phase("ops") as tally:
            c = a @ b  # 2*64*32*16 FLOPs; reads a and b, writes c
            d = c.view(16, 64)  # a view moves nothing
            e = torch.empty(1000)  # 4000 bytes, freed below
            del e
            f = torch.empty(100)
        assert tally.flops["float32"] == 2 * 64 * 32 * 16
        assert tally.bytes == (64 * 32 + 32 * 16 + 64 * 16) * 4
        assert tally.peak_bytes == (64 * 32 + 32 * 16 + 64 * 16 + 1000) * 4
        assert tally.largest_bytes == 64 * 16 * 4  # c
        assert accountant.live["cpu"] == (64 * 32 + 32 * 16 + 64 * 16 + 100) * 4
        del c, d, f


def test_attention_runs_the_fused_kernel_without_a_score_matrix():
    with acct.fake_world():
        accountant = acct.Accountant()
        q = torch.empty(2, 5, 4096, 64, dtype=torch.bfloat16)
        with accountant, accountant.phase("sdpa") as tally:
            F.scaled_dot_product_attention(q, q, q)
        assert tally.flops["bfloat16"] == 4 * 2 * 5 * 4096 * 4096 * 64
        assert tally.largest_bytes < 4096 * 4096  # never an L x L matrix
        assert "_scaled_dot_product_flash_attention_for_cpu" in tally.top


def test_cuda_autocast_lists_run_norms_in_float32():
    with acct.fake_world():
        x = torch.empty(2, 32, 4, 4, dtype=torch.bfloat16)
        lists = acct.CudaAutocastLists()
        try:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                assert F.group_norm(x, 8).dtype == torch.float32
                assert F.layer_norm(x, (4,)).dtype == torch.float32
                assert F.linear(torch.empty(2, 8), torch.empty(4, 8)).dtype == torch.bfloat16
        finally:
            lists.close()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert F.group_norm(x, 8).dtype == torch.bfloat16  # CPU autocast's own rule again


def test_host_copies_count_as_link_bytes_and_host_memory_apart():
    with acct.fake_world():
        accountant = acct.Accountant()
        x = torch.empty(1000)
        accountant.track(x)
        with accountant, accountant.phase("copy") as tally:
            on_host = x.to(acct.host_device())
            back = on_host.to(acct.device())
        assert tally.link_bytes == 8000 and tally.bytes == 0
        assert tally.host_peak_bytes == 4000
        del on_host, back
