"""`framerelay doctor`: what this machine has, and a self-test of the whole pipeline."""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
from pathlib import Path


def register(commands) -> None:
    parser = commands.add_parser("doctor", help="check the install and run a tiny self-test")
    parser.add_argument("--model", help="model to look for locally (default: SVD img2vid)")
    parser.add_argument("--skip-selftest", action="store_true")
    parser.set_defaults(func=run)


def _line(label: str, value: str) -> None:
    print(f"{label:<16} {value}")


def _torch_lines() -> bool:
    try:
        import torch
    except ImportError:
        _line("torch", "missing: pip install 'framerelay[engine]' (install torch first)")
        return False
    _line("torch", torch.__version__)
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        _line("CUDA", f"{torch.version.cuda}, {props.name}, {props.total_memory / 2**30:.1f} GiB")
    else:
        _line("CUDA", "not available (the engine runs on the CPU, slowly)")
    return True


def _model_line(model: str) -> None:
    if Path(model).expanduser().is_dir():
        found = (Path(model).expanduser() / "model_index.json").is_file()
        _line("model", f"{model}: {'found' if found else 'no model_index.json'}")
        return
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(model, "model_index.json")
    state = "in the local hub cache" if isinstance(cached, str) else "not downloaded"
    _line("model", f"{model}: {state}")


def run(args: argparse.Namespace) -> int:
    from framerelay import __version__
    from framerelay.engine.params import DEFAULT_MODEL

    _line("framerelay", __version__)
    _line("Python", f"{platform.python_version()} ({sys.executable})")
    if not _torch_lines():
        return 1
    _model_line(args.model or DEFAULT_MODEL)
    if args.skip_selftest:
        return 0
    from framerelay.engine.selftest import run_selftest

    with tempfile.TemporaryDirectory(prefix="framerelay-doctor-") as folder:
        report = run_selftest(Path(folder))
    width, height = report.size
    _line(
        "self-test",
        f"passed in {report.seconds:.1f} s: {report.frames} frames at {report.fps} fps, "
        f"{width}x{height}, through decode, invert, matched edit and encode",
    )
    return 0
