"""`framerelay serve` starts and answers without media code or torch: they are imported by the
first job or round trip that needs them.

A `sitecustomize` probe on the daemon's PYTHONPATH records `sys.modules` when the process exits.
"""

from __future__ import annotations

from pathlib import Path

from tests.daemon_harness import http_call, make_media, start_serve, stop_serve

HEAVY = ("numpy", "cv2", "av", "PIL", "psd_tools", "tifffile", "imagecodecs", "watchdog", "torch")
HEAVY += ("diffusers", "transformers", "peft")
MEDIA_CODE = ("framerelay.media", "framerelay.engine.run", "framerelay.roundtrip.session")
PROBE = """\
import atexit
import sys


def _record():
    with open({record!r}, "w", encoding="utf-8") as stream:
        stream.write("\\n".join(sorted(sys.modules)))


atexit.register(_record)
"""


def serve_and_record(root: Path, calls: list[tuple[str, dict]]) -> tuple[set[str], list[dict]]:
    """Runs `serve --fake`, makes the calls over HTTP, stops it; the modules it had imported."""
    probe, record = root / "probe", root / "modules.txt"
    probe.mkdir(parents=True)
    (probe / "sitecustomize.py").write_text(PROBE.format(record=str(record)))
    process, found = start_serve(root, "--fake", "--no-open", extra_path=probe)
    try:
        answers = []
        for method, body in calls:
            status, answer = http_call(found, method, body)
            assert status == 200, (method, answer)
            answers.append(answer)
    finally:
        _, err = stop_serve(process)
    assert process.returncode == 0, err
    return set(record.read_text().split()), answers


def heavy_modules(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HEAVY or m.startswith(MEDIA_CODE)}


def test_serve_answers_without_media_code_or_torch(tmp_path):
    calls = [
        ("GetStatus", {}),
        ("ListJobs", {}),
        ("GetEditorConfig", {}),
        ("GetDefaults", {}),
        ("GetCacheInfo", {}),
    ]
    modules, _ = serve_and_record(tmp_path / "run", calls)
    assert "framerelay.service.app" in modules  # the probe saw the daemon
    assert heavy_modules(modules) == set()


def test_a_round_trip_imports_media_code_when_it_needs_it(tmp_path):
    """The same probe sees the round trip import the decoders: the test above can fail."""
    source, _ = make_media(tmp_path / "media", frames=6)
    spec = {
        "sourcePath": str(source),
        "frameRange": {"inFrame": 0, "outFrame": 6},
        "sourceFps": {"num": 24, "den": 1},
        "editSession": {"openEditor": False},
    }
    modules, (submitted,) = serve_and_record(tmp_path / "run", [("SubmitJob", {"spec": spec})])
    assert submitted["job"]["state"] == "JOB_STATE_AWAITING_EDIT"
    assert {"cv2", "framerelay.media.image", "framerelay.roundtrip.session"} <= modules
    assert "torch" not in modules  # the fake executor never needs it
