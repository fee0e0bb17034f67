"""The parameter table (engine/params.py) and everything made from it or held to it: validation,
the artifact cache key, the proto's EditParams, the JobSpec overrides, the proto/JSON conversion,
both CLIs' flags, the client package's list; and the how-to (docs/parameters.md) carried out on a
copy of the package: one declaration plus the proto field."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

from framerelay.cli import edit, submit
from framerelay.engine.params import (
    INTERNAL,
    JOB,
    MACHINE,
    PARAMS,
    TABLE,
    EngineParams,
    Param,
    cache_values,
    job_params,
    param,
)
from framerelay.engine.params import _read as read_table
from framerelay.errors import InvalidSpecError
from framerelay.jobs.spec import OVERRIDABLE, JobSpec, ParamOverrides
from framerelay.proto.v1 import specs_pb2
from framerelay.service.convert import PARAM_FIELDS, spec_from_proto, spec_to_proto
from framerelay_client import spec as client_spec
from framerelay_client.spec import camel
from tests.daemon_harness import make_media
from tests.param_checks import client_problems, docs_problems, proto_problems

ROOT = Path(__file__).resolve().parent.parent

# Parameters whose other values need another parameter set too (the rules between parameters).
COMPANIONS: dict[str, dict[str, Any]] = {
    "overlap": {"skip_interval": False, "window": 64},
    "min_guidance": {"max_guidance": 20.0},
    "lora_height": {"lora_width": 64},
    "lora_width": {"lora_height": 64},
}


def other_value(row: Param) -> Any:
    """A valid value that is not the default."""
    if row.kind is bool:
        return not row.default
    if row.choices:
        return next(c for c in row.choices if c != row.default)
    if row.default is None:
        return row.low if row.kind is int else (row.low + row.high) / 2
    if row.kind is int:
        step = row.multiple_of or 1
        return row.default + step if row.default + step <= row.high else row.default - step
    return (row.default + row.high) / 2


def with_value(name: str, value: Any) -> dict[str, Any]:
    return {**COMPANIONS.get(name, {}), name: value}


@pytest.fixture
def media(tmp_path) -> tuple[Path, Path]:
    return make_media(tmp_path / "media")


# --- the table itself ---


def leaf_fields(cls: type, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    leaves = []
    for item in fields(cls):
        kind = item.default_factory if is_dataclass(item.default_factory) else None
        if kind is not None:
            leaves += leaf_fields(kind, (*path, item.name))
        else:
            leaves.append((*path, item.name))
    return leaves


def test_every_engine_field_is_a_row_of_the_table():
    assert [row.path for row in PARAMS] == leaf_fields(EngineParams)
    assert {row.scope for row in PARAMS} == {JOB, MACHINE, INTERNAL}
    for row in PARAMS:
        assert EngineParams().value(row.name) == row.default, row.name
        assert row.help and not row.help.endswith("."), row.name
        assert row.kind in (bool, int, float, str), row.name
        if row.kind in (int, float):
            assert row.low is not None and row.high is not None, f"{row.name} needs a range"


def test_a_field_without_a_declaration_is_refused():
    @dataclass(frozen=True)
    class Forgotten:
        declared: int = param(1, "a declared one", keys_cache=True, low=0, high=2)
        forgotten: int = 3

    with pytest.raises(TypeError, match=r"Forgotten.forgotten is not declared with param\(\)"):
        list(read_table(Forgotten))


def test_the_defaults_validate_and_every_range_is_enforced_at_both_ends():
    EngineParams().validate()
    for row in PARAMS:
        if row.kind is bool:
            with pytest.raises(InvalidSpecError, match=f"^{row.name} must be true or false"):
                EngineParams().with_values(with_value(row.name, 1)).validate()
            continue
        if row.choices:
            with pytest.raises(InvalidSpecError, match=f"^{row.name} must be one of"):
                EngineParams().with_values({row.name: "bold"}).validate()
            continue
        step = row.multiple_of or (1 if row.kind is int else 1e-9)
        for edge, beyond, open_edge in (
            (row.low, row.low - step, row.low_open),
            (row.high, row.high + step, row.high_open),
        ):
            inside = edge + (step if edge == row.low else -step) if open_edge else edge
            EngineParams().with_values(with_value(row.name, row.kind(inside))).validate()
            for bad in [row.kind(beyond), *([edge] if open_edge else [])]:
                with pytest.raises(InvalidSpecError, match=f"^{row.name} must be") as refused:
                    EngineParams().with_values(with_value(row.name, bad)).validate()
                assert refused.value.hint, row.name
        if row.kind is float:
            with pytest.raises(InvalidSpecError, match=f"^{row.name} must be"):
                EngineParams().with_values({row.name: float("nan")}).validate()
        if row.multiple_of:
            with pytest.raises(InvalidSpecError, match="multiple of 64"):
                EngineParams().with_values(with_value(row.name, row.low + 1)).validate()


def test_an_unknown_parameter_is_refused_by_name():
    with pytest.raises(InvalidSpecError, match=r"unknown engine parameter.*: strength"):
        EngineParams().with_values({"strength": 1})


# --- the cache key ---


def test_every_parameter_marked_keys_cache_changes_the_window_key_and_no_other_does():
    pytest.importorskip("torch")
    from framerelay.engine.artifacts import window_key

    def key(params: EngineParams) -> str:
        return window_key("frames", params, "model", "fp32", 14, None)

    base = key(EngineParams())
    for row in PARAMS:
        changed = EngineParams().with_values(with_value(row.name, other_value(row)))
        assert (key(changed) != base) == row.keys_cache, row.name
    assert set(cache_values(EngineParams())) == {row.name for row in PARAMS if row.keys_cache}


# --- the copies held to the table ---


def test_the_protos_edit_params_are_the_tables_job_parameters():
    assert proto_problems() == []
    assert set(PARAM_FIELDS) == set(OVERRIDABLE) == {r.name for r in job_params()} - {"preset"}


def test_the_client_packages_list_is_the_tables():
    assert client_problems() == []
    assert set(client_spec.PRESETS) == set(TABLE["preset"].choices)
    assert client_spec.PRESETS[0] == TABLE["preset"].default


# --- every door a job parameter comes through ---


def parse(register, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(argv)


def flag_args(name: str, value: Any) -> list[str]:
    argv = []
    for other, given in with_value(name, value).items():
        row = TABLE[other]
        argv += [row.cli_flag] if row.kind is bool else [row.cli_flag, str(given)]
    return argv


@pytest.mark.parametrize("row", job_params(), ids=lambda row: row.name)
def test_a_job_parameter_reaches_the_engine_through_every_door(row, media, tmp_path):
    source, edited = media
    value = other_value(row)
    expected = EngineParams().with_values(with_value(row.name, value))

    # The proto, as gRPC clients send it, and back; the job store's JSON.
    message = specs_pb2.JobSpec(source_path=str(source), edited_frame_paths=[str(edited)])
    for name, given in with_value(row.name, value).items():
        if name == "preset":
            message.params.preset = specs_pb2.Preset.Value(f"PRESET_{given.upper()}")
        else:
            setattr(message.params, name, given)
    spec = spec_from_proto(message)
    assert spec.engine_params() == expected
    assert spec_from_proto(spec_to_proto(spec)) == spec
    assert JobSpec.from_dict(spec.to_dict()) == spec

    # proto3 JSON, as the client package writes it for HTTP.
    params = {k: v for k, v in with_value(row.name, value).items() if k != "preset"}
    preset = value if row.name == "preset" else "auto"
    body = client_spec.job_spec(str(source), [str(edited)], preset=preset, params=params)
    assert camel(row.name) in body["params"] or row.name == "preset"
    parsed = json_format.ParseDict(body, specs_pb2.JobSpec())
    assert spec_from_proto(parsed).engine_params() == expected

    # `framerelay submit` and `framerelay edit`.
    flags = flag_args(row.name, value)
    submitted = submit.build_spec(
        parse(submit.register, ["submit", str(source), str(edited), *flags])
    )
    assert spec_from_proto(submitted).engine_params() == expected
    argv = ["edit", str(source), str(edited), "-o", str(tmp_path / "o.mp4"), *flags]
    job, _ = edit.build_job(parse(edit.register, argv))
    assert job.engine_params() == expected


def test_machine_parameters_are_flags_of_edit_only_and_internal_ones_of_neither(tmp_path):
    def flags_of(register, name: str) -> set[str]:
        commands = argparse.ArgumentParser().add_subparsers()
        register(commands)
        actions = commands.choices[name]._actions
        return {option for action in actions for option in action.option_strings}

    edit_flags = flags_of(edit.register, "edit")
    submit_flags = flags_of(submit.register, "submit")
    for row in PARAMS:
        assert (row.cli_flag in edit_flags) == (row.scope in (JOB, MACHINE)), row.name
        assert (row.cli_flag in submit_flags) == (row.scope == JOB), row.name
        for alias in row.aliases:
            assert alias in edit_flags, alias
    with pytest.raises(TypeError, match="not engine parameters a job sets: source_memory"):
        ParamOverrides(source_memory_budget_mb=10)


def test_the_mask_threshold_flag_still_takes_two_values(tmp_path):
    argv = ["edit", "a.mp4", "e.png", "-o", str(tmp_path / "o.mp4"), "--mask-threshold", "0.2"]
    one = edit.engine_params(parse(edit.register, argv)).matching
    two = edit.engine_params(parse(edit.register, [*argv, "0.6"])).matching
    assert one.thresholds == (0.2, 0.2) and two.thresholds == (0.2, 0.6)


# --- the how-to, carried out ---

DECLARATION = """\
    demo_strength: float = param(
        0.5, "a parameter added by the how-to", keys_cache=True, low=0.0, high=1.0
    )
"""
PROTO_FIELD = "  optional double demo_strength = {number};\n"
CHECK = """
import argparse, sys
from tests.param_checks import proto_problems, client_problems
problems = proto_problems() + client_problems()
if sys.argv[1] == "before":
    print("\\n".join(problems))
    raise SystemExit(0)
assert problems == [], problems
from framerelay.cli import submit
from framerelay.engine.params import TABLE, EngineParams, cache_values
from framerelay.errors import InvalidSpecError
from framerelay.jobs.spec import JobSpec, ParamOverrides
from framerelay.service.convert import spec_from_proto, spec_to_proto
parser = argparse.ArgumentParser()
submit.register(parser.add_subparsers())
args = parser.parse_args(["submit", sys.argv[2], sys.argv[3], "--demo-strength", "0.75"])
message = submit.build_spec(args)
assert message.params.demo_strength == 0.75
spec = spec_from_proto(message)
assert spec.params == ParamOverrides(demo_strength=0.75)
assert spec.engine_params().demo_strength == 0.75
assert JobSpec.from_dict(spec.to_dict()) == spec == spec_from_proto(spec_to_proto(spec))
assert cache_values(EngineParams(demo_strength=0.75)) != cache_values(EngineParams())
try:
    EngineParams(demo_strength=1.5).validate()
except InvalidSpecError as error:
    assert error.message == "demo_strength must be within [0, 1], got 1.5.", error.message
else:
    raise AssertionError("1.5 was accepted")
print("ok")
"""


@pytest.mark.slow
def test_adding_a_parameter_is_one_declaration_plus_the_proto_field(tmp_path, media):
    copy = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for part in ("daemon/framerelay", "daemon/framerelay_client", "protos"):
        shutil.copytree(ROOT / part, copy / part, ignore=ignore)
    for part in ("tests/__init__.py", "tests/param_checks.py"):
        (copy / part).parent.mkdir(exist_ok=True)
        shutil.copy(ROOT / part, copy / part)
    params = copy / "daemon/framerelay/engine/params.py"
    text = params.read_text()
    anchor = "    # Nested parameters"
    assert anchor in text
    params.write_text(text.replace(anchor, DECLARATION + anchor))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(copy / "daemon"), str(copy)])}

    def check(stage: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", CHECK, stage, *map(str, media)],
            capture_output=True, text=True, env=env, cwd=copy, timeout=300,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    # The declaration alone: the test that holds the proto to the table names what is missing.
    assert "demo_strength: a job parameter of the table has no EditParams field" in check("before")

    # The proto field, then the stubs (and the client's list) regenerated: everything follows.
    proto = copy / "protos/framerelay/proto/v1/specs.proto"
    text = proto.read_text()
    body = text[text.index("message EditParams {") :]
    number = len(specs_pb2.EditParams.DESCRIPTOR.fields) + 1
    end = text.index("message EditParams {") + body.index("\n}\n") + 1
    proto.write_text(text[:end] + PROTO_FIELD.format(number=number) + text[end:])
    generated = subprocess.run(
        [sys.executable, str(copy / "protos/generate.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert generated.returncode == 0, generated.stderr[-3000:]
    assert check("after").strip() == "ok"
    help_text = subprocess.run(
        [sys.executable, "-m", "framerelay", "edit", "--help"],
        capture_output=True, text=True, env={**env, "COLUMNS": "300"}, timeout=300,
    ).stdout  # fmt: skip
    assert "--demo-strength X" in help_text and "within [0, 1], default 0.5" in help_text


def test_the_docs_table_is_the_tables():
    assert docs_problems(ROOT) == []
