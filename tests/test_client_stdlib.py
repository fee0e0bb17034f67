"""framerelay_client runs on nothing but the standard library, on Python 3.11 and 3.13.

Each interpreter runs isolated (`-I -S`: no site-packages, no user site, no PYTHON* variables)
with only a vendored copy of the package on its path, the way a plugin carries it, imports every
module, drives the fake, the reducer and the timecode arithmetic, and talks to a real daemon.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import framerelay_client
from tests.daemon_harness import make_media, running_daemon

VERSIONS = ("3.11", "3.13")  # the oldest and newest Pythons the hosts embed


def find_python(version: str) -> Path | None:
    """An interpreter of `version`: this one's base, one pyenv installed, or one on PATH (not a
    pyenv shim, which needs the version selected)."""
    name = f"python{version}"
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    on_path = shutil.which(name)
    candidates = [
        Path(sys.base_prefix) / "bin" / name,
        *sorted(pyenv.glob(f"{version}*/bin/{name}"), reverse=True),
        *([Path(on_path)] if on_path and "shims" not in Path(on_path).parts else []),
    ]
    return next((path for path in candidates if path.is_file()), None)


MODULES = ["api", "discovery", "errors", "events", "fake", "http", "protojson", "spec", "timecode"]

SCRIPT = r"""
import importlib, json, sys
from fractions import Fraction

sys.path.insert(0, sys.argv[1])
client = importlib.import_module("plugin.vendor.framerelay_client")  # as `from .vendor import`
for name in MODULES:
    importlib.import_module(f"plugin.vendor.framerelay_client.{name}")
tc = client.timecode
assert tc.frames_to_timecode(17982, "30000/1001") == "00:10:00;00"
assert tc.timecode_to_frames("01:00:00;00", Fraction(60000, 1001)) == 215784
assert tc.parse_fps(24 / 1.001) == Fraction(24000, 1001)

source, edited, url, token = sys.argv[2:6]
fake = client.FakeDaemon(root=sys.argv[6])
spec = client.job_spec(source, [edited], in_frame=0, out_frame=4, fps="24000/1001")
results = {}
for name, api in (("fake", fake), ("daemon", client.Client(url, token))):
    job = api.submit(spec)["job"]
    view = client.JobView.from_job(job)
    for event in api.watch(job["id"]):
        view = client.reduce(view, event)
    results[name] = [view.state, view.progress, view.frame_count, client.describe(view)]
try:
    client.Client("http://127.0.0.1:9", token).status()
except client.DaemonUnreachable as error:
    results["down"] = type(error).__name__
foreign = sorted(
    m for m in sys.modules
    if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] not in ("plugin", "__main__")
)
print(json.dumps({"version": sys.version_info[:2], "results": results, "foreign": foreign}))
"""


def vendored(root: Path) -> Path:
    """`root/plugin/vendor/framerelay_client`, a verbatim copy, as a plugin carries it."""
    target = root / "plugin" / "vendor" / "framerelay_client"
    shutil.copytree(
        Path(framerelay_client.__file__).parent,
        target,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for package in (root / "plugin", root / "plugin" / "vendor"):
        (package / "__init__.py").write_text("")
    return root


@pytest.mark.parametrize("version", VERSIONS)
def test_imports_and_works_with_the_standard_library_only(tmp_path, version):
    python = find_python(version)
    if python is None:
        pytest.skip(f"no Python {version} here (pyenv install {version} to run this check)")
    root = vendored(tmp_path / "isolated")
    source, edited = make_media(tmp_path / "media")
    script = SCRIPT.replace("MODULES", repr(MODULES))
    with running_daemon(tmp_path / "daemon") as (daemon, _):
        found = daemon.discovery
        argv = [str(root), str(source), str(edited), found.http_url, found.token]
        done = subprocess.run(
            [str(python), "-I", "-S", "-c", script, *argv, str(tmp_path / "fake")],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["version"] == [int(part) for part in version.split(".")]
    assert report["foreign"] == []
    finished = ["JOB_STATE_FINISHED", 1.0, 4, "Finished"]
    assert report["results"] == {"fake": finished, "daemon": finished, "down": "DaemonUnreachable"}


def test_the_isolated_interpreter_really_has_no_site_packages():
    python = sys.executable  # a venv with numpy installed
    done = subprocess.run(
        [str(python), "-I", "-S", "-c", "import numpy"], capture_output=True, text=True
    )
    assert done.returncode != 0 and "No module named 'numpy'" in done.stderr
