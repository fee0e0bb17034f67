"""Generate the committed Python stubs of protos/framerelay/proto/v1/*.proto into daemon/.

    python protos/generate.py          # regenerate daemon/framerelay/proto/
    python protos/generate.py --check  # exit 1 if the committed stubs differ from a fresh run

It also writes the standard-library client's list of EditParams fields and their JSON types
(daemon/framerelay_client/edit_params.py), so that a new engine parameter reaches the client with
its proto field; `scripts/vendor-client` then copies the client into the plugins.

The generator is pinned: stubs from grpcio-tools X need grpcio >= X at run time, so X is the
runtime floor in pyproject.toml. The proto tree mirrors the package path, so the generated imports
read `from framerelay.proto.v1 import ...` with no rewriting.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import metadata, resources
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUTPUT_ROOT = ROOT / "daemon"
PACKAGE = Path("framerelay/proto")
PINS = {"grpcio-tools": "1.85.1", "mypy-protobuf": "5.1.0"}
INIT_TEXT = '"""Generated from protos/ by protos/generate.py; do not edit."""\n'
CLIENT_PARAMS = Path("framerelay_client/edit_params.py")
CLIENT_PARAMS_HEAD = '''"""Generated from protos/ by protos/generate.py; do not edit.

EditParams of specs.proto: each engine parameter a job may set besides its preset, by its
snake_case name, and its JSON type. The daemon's parameter table (framerelay/engine/params.py,
docs/parameters.md) holds their ranges, defaults and help.
"""

PARAMS: dict[str, type] = {
'''


def check_pins() -> list[str]:
    problems = []
    for name, wanted in PINS.items():
        try:
            found = metadata.version(name)
        except metadata.PackageNotFoundError:
            found = "not installed"
        if found != wanted:
            problems.append(f"{name}=={wanted} is required, found {found}")
    return problems


def plugin(name: str) -> str:
    found = Path(sys.executable).parent / name
    if found.exists():
        return str(found)
    located = shutil.which(name)
    if located is None:
        raise SystemExit(f"{name} not found next to {sys.executable} or on PATH")
    return located


def generate(output_root: Path) -> None:
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).rglob("*.proto"))
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={output_root}",
        f"--grpc_python_out={output_root}",
        f"--mypy_out={output_root}",
        f"--mypy_grpc_out={output_root}",
        *protos,
    ]
    with tempfile.TemporaryDirectory() as tmp:
        descriptors = Path(tmp) / "descriptors.pb"
        if protoc.main([*args, f"--descriptor_set_out={descriptors}"]) != 0:
            raise SystemExit("protoc failed")
        client_params = client_params_text(descriptors.read_bytes())
    for folder in {(output_root / p).parent for p in protos} | {output_root / PACKAGE}:
        (folder / "__init__.py").write_text(INIT_TEXT)
    (output_root / CLIENT_PARAMS).parent.mkdir(parents=True, exist_ok=True)
    (output_root / CLIENT_PARAMS).write_text(client_params)


def client_params_text(descriptor_set: bytes) -> str:
    from google.protobuf import descriptor_pb2

    json_types = {
        descriptor_pb2.FieldDescriptorProto.TYPE_UINT32: "int",
        descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE: "float",
        descriptor_pb2.FieldDescriptorProto.TYPE_BOOL: "bool",
    }
    files = descriptor_pb2.FileDescriptorSet.FromString(descriptor_set).file
    (message,) = [m for f in files for m in f.message_type if m.name == "EditParams"]
    rows = [
        f'    "{field.name}": {json_types[field.type]},'
        for field in message.field
        if field.name != "preset"
    ]
    return CLIENT_PARAMS_HEAD + "\n".join(rows) + "\n}\n"


def generated_files(root: Path) -> set[Path]:
    stubs = {
        p.relative_to(root)
        for p in (root / PACKAGE).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    return stubs | ({CLIENT_PARAMS} if (root / CLIENT_PARAMS).exists() else set())


def stale_files(fresh_root: Path, committed_root: Path) -> list[str]:
    fresh, committed = generated_files(fresh_root), generated_files(committed_root)
    problems = [f"missing: {p}" for p in sorted(fresh - committed)]
    problems += [f"not generated: {p}" for p in sorted(committed - fresh)]
    problems += [
        f"differs: {p}"
        for p in sorted(fresh & committed)
        if not filecmp.cmp(fresh_root / p, committed_root / p, shallow=False)
    ]
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the stubs are stale")
    args = parser.parse_args(argv)
    pin_problems = check_pins()
    if pin_problems:
        print("generate.py: " + "; ".join(pin_problems), file=sys.stderr)
        return 1
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp))
            problems = stale_files(Path(tmp), OUTPUT_ROOT)
        if problems:
            print("stale proto stubs; run `python protos/generate.py`:", file=sys.stderr)
            print("\n".join(f"  {p}" for p in problems), file=sys.stderr)
            return 1
        print("proto stubs are up to date")
        return 0
    shutil.rmtree(OUTPUT_ROOT / PACKAGE, ignore_errors=True)
    generate(OUTPUT_ROOT)
    print(f"generated {len(generated_files(OUTPUT_ROOT))} files in {OUTPUT_ROOT / PACKAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
