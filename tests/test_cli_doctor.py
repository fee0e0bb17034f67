"""`framerelay doctor` reports the install and proves it with a self-test on tiny components."""

from __future__ import annotations

import pytest

from framerelay.cli import main


@pytest.mark.slow
def test_doctor_reports_and_passes_its_self_test(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert main(["doctor"]) == 0
    lines = dict(
        line.split(maxsplit=1) for line in capsys.readouterr().out.splitlines() if line.strip()
    )
    assert lines["torch"].startswith("2.")
    assert "not downloaded" in lines["model"]
    report = lines["self-test"]
    assert report.startswith("passed in ") and "6 frames at 30000/1001 fps, 160x96" in report
