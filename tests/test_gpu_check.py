"""bench/gpu_check.py on the CPU at a tiny size (--dry-run): every phase runs and reports."""

from __future__ import annotations

import json

import pytest
import torch

from bench import gpu_check


@pytest.mark.slow
def test_dry_run_reports_every_phase(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "check.json"
        assert gpu_check.main(["--dry-run", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)
    figures = json.loads(out.read_text())
    phases = figures["phases"]
    assert [name for name, entry in phases.items() if "error" in entry] == []
    assert {
        "plain sampling",
        "inversion (records the source store)",
        "matched edit",
        "re-edit (store kept)",
        "LoRA training, 3 steps",
        "fused mask vs reference",
        "plain sampling, channels-last",
        "inversion + matched edit, channels-last",
    } <= set(phases)
    assert all(entry["seconds"] > 0 and entry["peak_rss_mib"] > 0 for entry in phases.values())
    assert figures["store"]["kept_steps"] == figures["store"]["steps"] == 3
    assert figures["ratios"]["invert_plus_edit_over_plain"] > 0
    assert figures["lora"]["extrapolated_steps"] == 250
    assert figures["lora"]["extrapolated_s"] > figures["lora"]["median_step_s"] > 0
    mask = figures["fused_mask"]
    assert mask["backend"] == "explicit" and mask["decisions_differ_away_from_threshold"] == 0
    assert mask["max_abs_diff"] < 1e-4


def test_optional_phases_give_way_to_the_time_budget(tmp_path):
    out = tmp_path / "check.json"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert gpu_check.main(["--dry-run", "--out", str(out), "--budget-s", "0"]) == 0
    finally:
        torch.set_num_threads(threads)
    phases = json.loads(out.read_text())["phases"]
    assert phases["fused mask vs reference"] == {"skipped": "time budget spent"}
    assert phases["plain sampling, channels-last"] == {"skipped": "time budget spent"}
    assert "seconds" in phases["plain sampling"] and "seconds" in phases["matched edit"]
