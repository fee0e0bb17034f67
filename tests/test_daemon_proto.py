"""The proto contract: committed stubs are fresh, enums start at UNSPECIFIED, one message pair
per RPC, and the error enum mirrors the catalogue."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

from framerelay.errors import ErrorCode
from framerelay.proto.v1 import daemon_pb2, errors_pb2, events_pb2, jobs_pb2, specs_pb2
from framerelay.service.errors import code_from_proto, code_to_proto
from tests.daemon_harness import ROOT

MODULES = (daemon_pb2, errors_pb2, events_pb2, jobs_pb2, specs_pb2)


def load_generate():
    spec = importlib.util.spec_from_file_location("generate", ROOT / "protos" / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_stubs_are_up_to_date():
    result = subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def test_the_check_reports_stale_missing_and_extra_files(tmp_path):
    generate = load_generate()
    fresh, committed = tmp_path / "fresh", tmp_path / "committed"
    for root in (fresh, committed):
        (root / "framerelay/proto/v1").mkdir(parents=True)
        (root / "framerelay/proto/v1/a_pb2.py").write_text("same")
    assert generate.stale_files(fresh, committed) == []
    (committed / "framerelay/proto/v1/a_pb2.py").write_text("edited by hand")
    (fresh / "framerelay/proto/v1/b_pb2.py").write_text("new")
    (committed / "framerelay/proto/v1/old_pb2.py").write_text("removed")
    assert generate.stale_files(fresh, committed) == [
        "missing: framerelay/proto/v1/b_pb2.py",
        "not generated: framerelay/proto/v1/old_pb2.py",
        "differs: framerelay/proto/v1/a_pb2.py",
    ]


def test_the_generator_pins_are_the_dev_pins():
    generate = load_generate()
    pyproject = (ROOT / "pyproject.toml").read_text()
    for name, version in generate.PINS.items():
        assert f'"{name}=={version}"' in pyproject


def test_every_enum_starts_with_unspecified_zero():
    enums = [e for module in MODULES for e in module.DESCRIPTOR.enum_types_by_name.values()]
    assert enums
    for enum in enums:
        zero = enum.values_by_number[0].name
        assert zero.endswith("_UNSPECIFIED"), enum.name


def test_every_rpc_has_its_own_request_and_response():
    service = daemon_pb2.DESCRIPTOR.services_by_name["Daemon"]
    names = {m.name for m in service.methods}
    assert {"SubmitJob", "GetJob", "ListJobs", "CancelJob", "MoveJob", "WatchJob"} <= names
    assert {"WatchQueue", "GetCacheInfo", "ClearCache", "GetStatus"} <= names
    for method in service.methods:
        assert method.input_type.name == f"{method.name}Request"
        assert method.output_type.name == f"{method.name}Response"
    streaming = {m.name for m in service.methods if m.server_streaming}
    assert streaming == {"WatchJob", "WatchQueue"}


def test_the_error_enum_mirrors_the_catalogue():
    names = set(errors_pb2.ErrorCode.DESCRIPTOR.values_by_name) - {"ERROR_CODE_UNSPECIFIED"}
    assert names == {f"ERROR_CODE_{code.value.upper()}" for code in ErrorCode}
    for code in ErrorCode:
        assert code_from_proto(code_to_proto(code)) is code
    assert code_from_proto(errors_pb2.ERROR_CODE_UNSPECIFIED) is ErrorCode.internal
